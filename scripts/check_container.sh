#!/usr/bin/env bash
# Does the container recipe build and serve? Builds scripts/deploy/Containerfile with podman and runs the image
# until /readyz answers 200 and `alt-text file` describes a test image inside it, then stops it with SIGTERM.
#
#   scripts/check_container.sh              # needs podman (Debian: apt-get install podman debootstrap)
#
# BASE: a Debian bookworm image. Without one (no registry of images can be reached from CI), the base is made from
# the Debian archive with debootstrap, once, and kept as localhost/debian-bookworm-minbase. Where the host has a
# local wheel folder or package index (pip's find-links / extra index: /opt/wheels, /opt/pypi...), it is mounted
# into the build and pip uses it, with TORCH naming the torch to install (default: the CPU build found there).
# Exits 0 with "skipped: <why>" when no container can run on this machine (no podman, no user namespaces, no
# network for the build); CHECK_CONTAINER_REQUIRED=1 makes that a failure.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
IMAGE="${IMAGE:-localhost/alt-text:check}"
BASE="${BASE:-localhost/debian-bookworm-minbase}"
PORT="${PORT:-18765}"
NAME="alt-text-check-$$"

skip() {
    echo "check_container: skipped: $*" >&2
    [ "${CHECK_CONTAINER_REQUIRED:-0}" = 1 ] && exit 1
    exit 0
}
cleanup() { podman rm -f "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT

command -v podman >/dev/null 2>&1 || skip "podman is not installed"
podman info >/dev/null 2>&1 || skip "podman cannot run here: $(podman info 2>&1 | tail -n 1)"

# Two things of CI's virtual machines that crun refuses, and what makes it run there:
# - a hybrid cgroup layout (cgroup v1 controllers, and hugetlb on the unified v2 hierarchy: "cgroups in hybrid mode
#   not supported, drop all controllers from cgroupv2"): with CHECK_CONTAINER_FIX_CGROUPS=1 (.ci/run sets it; it
#   changes the machine's mounts), each controller of the v2 hierarchy is mounted as a v1 hierarchy instead;
# - no CAP_SYS_RESOURCE, so the container's limits cannot exceed this shell's (nor, for processes, the kernel's
#   pid_max): they are set to those.
unified=/sys/fs/cgroup/unified
if [ -f "$unified/cgroup.controllers" ] && [ -n "$(cat "$unified/cgroup.controllers")" ] \
        && [ "${CHECK_CONTAINER_FIX_CGROUPS:-0}" = 1 ]; then
    for c in $(cat "$unified/cgroup.controllers"); do
        mkdir -p "/sys/fs/cgroup/$c" && mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" \
            || skip "cannot move the $c cgroup controller off the unified hierarchy"
    done
fi
nproc="$(ulimit -Hu)"; pid_max="$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 32768)"
[ "$nproc" = unlimited ] || [ "$nproc" -gt "$pid_max" ] && nproc="$pid_max"
limits=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=$nproc:$nproc")

if ! podman image exists "$BASE"; then
    command -v debootstrap >/dev/null 2>&1 || skip "no $BASE image and no debootstrap to make one"
    ROOTFS="$(mktemp -d "${TMPDIR:-/var/tmp}/debian-rootfs.XXXXXX")"
    echo "check_container: making $BASE with debootstrap (minbase bookworm)" >&2
    debootstrap --variant=minbase bookworm "$ROOTFS" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
    tar -C "$ROOTFS" -c . | podman import - "$BASE" >/dev/null
    rm -rf "$ROOTFS"
fi

args=("${limits[@]}" --build-arg "BASE=$BASE")
links=()
for d in /opt/wheels; do [ -d "$d" ] && links+=("$d") && args+=(-v "$d:$d:ro"); done
indexes=()
for d in /opt/pypi /opt/pypi-more; do [ -d "$d/simple" ] && indexes+=("file://$d/simple") && args+=(-v "$d:$d:ro"); done
[ ${#links[@]} -gt 0 ] && args+=(--build-arg "PIP_FIND_LINKS=${links[*]}")
[ ${#indexes[@]} -gt 0 ] && args+=(--build-arg "PIP_EXTRA_INDEX_URL=${indexes[*]}")
if [ -z "${TORCH:-}" ]; then  # a CPU build of torch in the wheel folder, when there is one: no 3 GB CUDA download
    cpu="$(ls /opt/wheels/torch-*+cpu-*.whl 2>/dev/null | head -n 1 || true)"
    [ -n "$cpu" ] && TORCH="torch==$(basename "$cpu" | cut -d- -f2)"
fi
[ -n "${TORCH:-}" ] && args+=(--build-arg "TORCH=$TORCH")
# a proxy's CA, as the host's pip is told (PIP_CERT, or cert in pip's configuration)
cert="${PIP_CERT:-$(pip config list 2>/dev/null | sed -n "s/^global\.cert='\(.*\)'$/\1/p" | head -n 1)}"
if [ -n "$cert" ] && [ -f "$cert" ]; then args+=(-v "$cert:/etc/ssl/host-ca.crt:ro" --build-arg PIP_CERT=/etc/ssl/host-ca.crt); fi
[ -n "${TORCH_INDEX:-}" ] && args+=(--build-arg "TORCH_INDEX=$TORCH_INDEX")

echo "check_container: building $IMAGE" >&2
podman build --network host -f "$ROOT/scripts/deploy/Containerfile" -t "$IMAGE" "${args[@]}" "$ROOT"

user="$(podman image inspect "$IMAGE" --format '{{.Config.User}}')"
[ "$user" = alt-text ] || { echo "check_container: the image runs as '$user', not alt-text" >&2; exit 1; }

echo "check_container: alt-text file inside the image" >&2
out="$(podman run --rm "${limits[@]}" --network none -v "$ROOT/tests/data/cat.jpg:/tmp/cat.jpg:ro" "$IMAGE" alt-text file /tmp/cat.jpg)"
echo "  $out" >&2
case "$out" in *"cat"*) ;; *) echo "check_container: unexpected description: $out" >&2; exit 1;; esac
podman run --rm "${limits[@]}" --network none "$IMAGE" tesseract --version >/dev/null 2>&1 \
    || { echo "check_container: Tesseract is missing from the image" >&2; exit 1; }

echo "check_container: serving on 127.0.0.1:$PORT" >&2
podman run -d "${limits[@]}" --name "$NAME" --shm-size 256m -p "127.0.0.1:$PORT:8000" "$IMAGE" >/dev/null
for _ in $(seq 1 120); do
    if python3 -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:$PORT/readyz', timeout=3).status != 200)" 2>/dev/null; then
        ready=1; break
    fi
    [ "$(podman inspect -f '{{.State.Running}}' "$NAME")" = true ] || break
    sleep 2
done
[ "${ready:-0}" = 1 ] || { podman logs "$NAME" 2>&1 | tail -n 30 >&2; echo "check_container: /readyz never answered 200" >&2; exit 1; }
python3 -c "import json, urllib.request; r = json.load(urllib.request.urlopen('http://127.0.0.1:$PORT/readyz')); print('  /readyz:', r)" >&2
podman stop -t 30 "$NAME" >/dev/null
code="$(podman inspect -f '{{.State.ExitCode}}' "$NAME")"
[ "$code" = 0 ] || { podman logs "$NAME" 2>&1 | tail -n 30 >&2; echo "check_container: exit $code after SIGTERM" >&2; exit 1; }
echo "check_container: ok ($IMAGE: builds, describes, serves /readyz, stops cleanly on SIGTERM)" >&2

# The compose file as users run it (podman-compose), with two changes it cannot do without here: the image just
# built instead of a second build, and Redis from a local image (no registry of images can be reached), both with
# this shell's limits. It publishes port 8000 as the file says. An image described once is then cached in Redis.
if ! command -v podman-compose >/dev/null 2>&1; then
    echo "check_container: compose skipped: podman-compose is not installed (pip install podman-compose)" >&2
    exit 0
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/alt-text-compose.XXXXXX")"
project="altcheck$$"
compose_down() { (cd "$WORK" && podman-compose -p "$project" -f "$ROOT/scripts/deploy/compose.yaml" \
    -f "$WORK/override.yaml" down -t 30 >/dev/null 2>&1) || true; rm -rf "$WORK"; cleanup; }
trap compose_down EXIT
printf 'FROM %s\nRUN apt-get update && apt-get install -y --no-install-recommends redis-server && rm -rf /var/lib/apt/lists/*\n' \
    "$BASE" > "$WORK/Redisfile"
podman build --network host "${limits[@]}" -f "$WORK/Redisfile" -t localhost/redis-check "$WORK" >/dev/null
cat > "$WORK/override.yaml" <<YAML
services:
  alt-text:
    image: $IMAGE
    ulimits: {nofile: $(ulimit -Hn), nproc: $nproc}
  redis:
    image: localhost/redis-check
    ulimits: {nofile: $(ulimit -Hn), nproc: $nproc}
YAML
echo "check_container: compose up (alt-text and Redis)" >&2
(cd "$WORK" && podman-compose -p "$project" -f "$ROOT/scripts/deploy/compose.yaml" -f "$WORK/override.yaml" \
    up -d --no-build >/dev/null)
ready=0
PORT=8000
for _ in $(seq 1 120); do
    if python3 -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:$PORT/readyz', timeout=3).status != 200)" 2>/dev/null; then
        ready=1; break
    fi
    sleep 2
done
service() { podman ps -q --filter "label=io.podman.compose.project=$project" --filter "label=com.docker.compose.service=$1"; }
[ "$ready" = 1 ] || { podman logs "$(service alt-text)" 2>&1 | tail -n 30 >&2; echo "check_container: compose: /readyz never answered 200" >&2; exit 1; }
python3 - "$PORT" "$ROOT/tests/data/cat.jpg" <<'PY'
import base64, json, sys, urllib.request
port, image = sys.argv[1], open(sys.argv[2], "rb").read()
ready = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz"))
assert ready["cache"]["state"] == "ok", ready
def ask():
    body = json.dumps({"images": [{"data": base64.b64encode(image).decode()}]}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/alt-text", body, {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=120))["results"][0]
first, second = ask(), ask()
assert first["alt"] and not first["cached"] and second["cached"] and second["alt"] == first["alt"], (first, second)
print(f"  compose: {first['alt']!r}, then from the Redis cache", file=sys.stderr)
PY
podman exec "$(service redis)" redis-cli dbsize | grep -qv '^0$' \
    || { echo "check_container: compose: nothing was cached in Redis" >&2; exit 1; }
echo "check_container: compose ok (alt-text with Redis: ready, describes, caches in Redis)" >&2
