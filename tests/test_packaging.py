"""The wheel as built, not the editable checkout: every package and every file the code reads at run time is in it.

alt-text 0.1.0 shipped without server.service and server.netsafe (a hand-written package list) and nothing noticed,
because the tests run against an editable install. scripts/check_wheel.sh (run by .ci/run) installs the wheel into
a fresh venv and runs it; this is the quick check of its file list."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Files the code reads at run time (besides its modules); a new one goes into [tool.setuptools.package-data].
DATA_FILES = [
    "model/weights/default.safetensors",           # the shipped checkpoint (model.default_checkpoint_path)
    "model/weights/default.honesty.safetensors",   # its honesty heads (server.describe.heads)
    "model/MODEL_CARD.md",
    "server/audit/templates/report.html",          # the audit's HTML report (server.audit.report)
    "server/audit/templates/report.css",
    "server/audit/templates/report.js",
    "server/describe/concepts.json",               # concept vocabulary (server.describe.concepts)
    "server/describe/meanings.json",               # meaning and chart-type heads (server.describe.meanings)
]
# Files of the checkout under model/ and server/ that are deliberately not shipped (none today).
NOT_SHIPPED: set[str] = set()


def _checkout_files() -> list[str]:
    """The checkout's files as git sees them (tracked, plus new ones not ignored), that exist."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout.decode()
    return sorted(f for f in out.split("\0") if f and (ROOT / f).is_file())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel from a copy of the checkout's files (a stale build/ folder cannot add to it) and list it."""
    tmp = tmp_path_factory.mktemp("wheel")
    src, out = tmp / "src", tmp / "out"
    for f in _checkout_files():
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, src / f)
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []  # offline when it can
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", str(src),
                            "-w", str(out)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, f"pip wheel failed:\n{build.stdout}\n{build.stderr}"
    wheels = list(out.glob("alt_text-*.whl"))
    assert len(wheels) == 1, f"expected one alt_text wheel, got {wheels}"
    return wheels[0]


@pytest.fixture(scope="module")
def wheel_files(wheel) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return set(z.namelist())


def test_the_wheel_holds_every_package_of_the_checkout(wheel_files):
    packages = sorted(str(p.parent.relative_to(ROOT)) for top in ("model", "server")
                      for p in (ROOT / top).rglob("__init__.py") if "__pycache__" not in p.parts)
    assert {"server/service", "server/netsafe", "server/describe", "server/audit"} <= set(packages)
    missing = [p for p in packages if f"{p}/__init__.py" not in wheel_files]
    assert not missing, f"packages missing from the wheel: {missing}"
    modules = [f for f in _checkout_files() if f.endswith(".py") and f.split("/")[0] in ("model", "server")]
    assert not [m for m in modules if m not in wheel_files], "modules missing from the wheel"


def test_the_wheel_holds_every_data_file_the_code_reads(wheel_files):
    missing = [f for f in DATA_FILES if f not in wheel_files]
    assert not missing, f"data files missing from the wheel (add them to package-data in pyproject.toml): {missing}"
    # Any other file of the checkout under model/ or server/ is shipped too, or named in NOT_SHIPPED on purpose.
    others = [f for f in _checkout_files() if f.split("/")[0] in ("model", "server") and not f.endswith(".py")]
    unshipped = [f for f in others if f not in wheel_files and f not in NOT_SHIPPED]
    assert not unshipped, (f"files under model/ or server/ not in the wheel: {unshipped}; add them to package-data "
                           "in pyproject.toml (or to NOT_SHIPPED in this test if the code never reads them)")


def test_the_wheel_carries_the_license_and_the_command(wheel, wheel_files):
    dist_info = {f.split("/")[0] for f in wheel_files if f.split("/")[0].endswith(".dist-info")}
    assert len(dist_info) == 1
    assert any(f.startswith(f"{next(iter(dist_info))}/") and f.endswith("/LICENSE") for f in wheel_files)
    assert not [f for f in wheel_files if f.startswith("tests/")]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and "APPENDIX: How to apply the Apache License" in text
    with zipfile.ZipFile(wheel) as z:
        entry_points = z.read(f"{next(iter(dist_info))}/entry_points.txt").decode()
    assert "alt-text = server.cli:main" in entry_points


def test_torchvision_is_needed_only_by_the_encoders_that_use_it(monkeypatch):
    """torchvision is an extra: the bundled model loads without it, and asking for an encoder that needs it says how
    to install it instead of failing with an ImportError deep in a training run."""
    from model.encoders import UnknownEncoderError, build_encoder

    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision now raises ImportError
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    assert build_encoder("efficientnet-lite0", pretrained=False) is not None
    with pytest.raises(UnknownEncoderError, match=r"alt-text\[torchvision\]"):
        build_encoder("resnet50", pretrained=False)
