#!/usr/bin/env bash
# Does the built package start? CI installs the checkout in editable mode, which hides a wheel that lacks a
# sub-package or a data file (alt-text 0.1.0 shipped without server.service and server.netsafe). This builds the
# wheel from the checkout's files, installs it alone into a fresh venv and runs it from outside the checkout:
#   alt-text --version; alt-text file cat.jpg; alt-text serve until /readyz answers 200, then SIGTERM.
# The venv sees the system site-packages (torch and the other dependencies are not downloaded again), so the
# dependencies must be installed already (.ci/run installs them first); the script checks that the wheel's own
# requirements are met there without an index, and that `server` and `model` are imported from the venv, not from
# an editable install of the checkout.
#
#   scripts/check_wheel.sh            # PYTHON=python3.11 scripts/check_wheel.sh for another interpreter
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python}"
READY_TIMEOUT="${CHECK_WHEEL_READY_TIMEOUT:-300}"   # seconds for `alt-text serve` to answer /readyz 200
WORK="$(mktemp -d "${TMPDIR:-/tmp}/alt-text-wheel.XXXXXX")"
SERVER_PID=""
STEP="setting up"
REPORTED=""

fail() {
    echo >&2
    echo "check_wheel: FAILED while ${STEP}: $*" >&2
    echo "check_wheel: the package as built (the wheel) is broken; an editable install does not show it." >&2
    REPORTED=1
    exit 1
}

cleanup() {
    local rc=$?
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 30); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    if [ $rc -ne 0 ] && [ -f "$WORK/serve.log" ]; then
        echo "---- last lines of alt-text serve's log ----" >&2
        tail -n 40 "$WORK/serve.log" >&2 || true
    fi
    rm -rf "$WORK"
    if [ $rc -ne 0 ] && [ -z "$REPORTED" ]; then
        echo "check_wheel: FAILED (exit $rc) while ${STEP}" >&2
    fi
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM

# Nothing from the caller's environment may point Python at the checkout or reconfigure the service.
unset PYTHONPATH PYTHONHOME PYTHONSTARTUP
export PYTHONNOUSERSITE=1
while read -r name; do unset "$name"; done < <(env | sed -n 's/^\(ALT_TEXT_[A-Za-z0-9_]*\)=.*/\1/p')
export XDG_CACHE_HOME="$WORK/cache"   # the service's default cache path; kept out of the user's cache

# 1. The wheel, built from a copy of the checkout's files (tracked and not ignored): a stale build/ folder in the
#    checkout cannot add modules that no longer exist, and nothing is written into the checkout.
STEP="copying the checkout"
mkdir -p "$WORK/src" "$WORK/wheel"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf -) | tar -xf - -C "$WORK/src" || fail "could not copy the checkout's files"
else
    cp -a "$ROOT/." "$WORK/src/" || fail "could not copy $ROOT"
    rm -rf "$WORK/src/build" "$WORK/src"/*.egg-info
fi

STEP="building the wheel"
isolation=(--no-build-isolation)  # offline and quick, with the setuptools installed here
"$PY" -c 'import setuptools, sys; sys.exit(int(setuptools.__version__.split(".")[0]) < 68)' 2>/dev/null \
    || isolation=()
"$PY" -m pip wheel --no-deps "${isolation[@]}" -q "$WORK/src" -w "$WORK/wheel" >"$WORK/build.log" 2>&1 \
    || { tail -n 30 "$WORK/build.log" >&2; fail "pip wheel failed"; }
wheels=("$WORK"/wheel/alt_text-*.whl)
[ -f "${wheels[0]}" ] || fail "pip wheel made no alt_text-*.whl"
WHEEL="${wheels[0]}"
echo "check_wheel: built $(basename "$WHEEL") ($(du -h "$WHEEL" | cut -f1))"

# 2. A fresh venv holding only the wheel (dependencies from the system site-packages).
STEP="installing the wheel into a fresh venv"
"$PY" -m venv --system-site-packages "$WORK/venv" || fail "python -m venv failed"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install -q --no-index --no-deps --force-reinstall "$WHEEL" >"$WORK/install.log" 2>&1 \
    || { cat "$WORK/install.log" >&2; fail "pip install of the wheel failed"; }
# Its requirements, met by what the venv sees (checked here: pip's resolver would also weigh the venv's own old
# setuptools against torch's requirement of a newer one)
"$VPY" - <<'EOF' || fail "a requirement of the wheel is not installed (see above)"
import sys
from importlib import metadata

try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
missing = []
for line in metadata.requires("alt-text") or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue  # an optional extra
    try:
        have = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        missing.append(f"{req} (not installed)")
        continue
    if req.specifier and not req.specifier.contains(have, prereleases=True):
        missing.append(f"{req} (installed: {have})")
for m in missing:
    print(f"  missing requirement: {m}", file=sys.stderr)
sys.exit(1 if missing else 0)
EOF
[ -x "$WORK/venv/bin/alt-text" ] || fail "the wheel installed no alt-text command into the venv"

cd "$WORK"   # outside the checkout: the current directory is not on the path of what runs next

STEP="checking where the packages come from"
VENV_SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
# every package of the checkout (each folder of model/ and server/ with an __init__.py) from the venv
"$VPY" - "$VENV_SITE" "$WORK/src" <<'EOF' || fail "packages missing from the wheel (an editable install of the checkout filled them in)"
import importlib, os, sys
from pathlib import Path

site, src = os.path.realpath(sys.argv[1]), Path(sys.argv[2])
names = sorted(".".join(p.parent.relative_to(src).parts) for top in ("model", "server")
               for p in (src / top).rglob("__init__.py"))
bad = []
for name in names:
    where = os.path.realpath(importlib.import_module(name).__file__)
    print(f"  {name:16} {where}")
    if not where.startswith(site + os.sep):
        bad.append(name)
if bad:
    sys.exit(f"imported from outside the venv's site-packages ({site}): {', '.join(bad)}")
EOF

# 3. The commands, as a user of the wheel runs them.
STEP="running alt-text --version"
out="$("$WORK/venv/bin/alt-text" --version 2>&1)" || { echo "$out" >&2; fail "alt-text --version exited non-zero"; }
echo "check_wheel: alt-text --version -> $out"

STEP="running alt-text file cat.jpg"
cp "$ROOT/tests/data/cat.jpg" "$WORK/cat.jpg"
out="$("$WORK/venv/bin/alt-text" file "$WORK/cat.jpg" 2>"$WORK/file.err")" \
    || { cat "$WORK/file.err" >&2; fail "alt-text file exited non-zero"; }
[ -n "$(printf '%s' "$out" | tr -d '[:space:]')" ] || { cat "$WORK/file.err" >&2; fail "alt-text file printed nothing"; }
echo "check_wheel: alt-text file cat.jpg -> $(printf '%s' "$out" | head -n 1)"

STEP="starting alt-text serve"
PORT="$("$VPY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$WORK/venv/bin/alt-text" serve --host 127.0.0.1 --port "$PORT" --workers 1 --threads 4 --cache none \
    >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
STEP="waiting for /readyz on port $PORT"
"$VPY" - "$PORT" "$READY_TIMEOUT" "$SERVER_PID" <<'EOF' || fail "alt-text serve did not become ready (log below)"
import json, os, sys, time, urllib.error, urllib.request

port, timeout, pid = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
deadline, last = time.monotonic() + timeout, "no answer"
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(f"alt-text serve exited before it was ready (last /readyz: {last})")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            body = json.load(r)
            print(f"check_wheel: /readyz 200 -> status={body.get('status')} model={body.get('model')} "
                  f"pipeline={body.get('pipeline')}")
            sys.exit(0)
    except urllib.error.HTTPError as e:
        last = f"{e.code} {e.read()[:200]!r}"
    except OSError as e:
        last = str(e)
    time.sleep(1)
sys.exit(f"no 200 from /readyz within {timeout:.0f} s (last: {last})")
EOF

STEP="stopping alt-text serve (SIGTERM)"
kill -TERM "$SERVER_PID"
rc=0
for _ in $(seq 1 60); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 1; done
if kill -0 "$SERVER_PID" 2>/dev/null; then
    fail "alt-text serve was still running 60 s after SIGTERM"
fi
wait "$SERVER_PID" || rc=$?
SERVER_PID=""
[ "$rc" -eq 0 ] || fail "alt-text serve exited $rc after SIGTERM"
if grep -q "Traceback" "$WORK/serve.log"; then
    fail "alt-text serve logged a traceback"
fi
echo "check_wheel: alt-text serve answered /readyz 200 and stopped cleanly on SIGTERM"
STEP="done"
echo "check_wheel: OK: the wheel installs and runs on its own"
