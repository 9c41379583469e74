"""Package the browser extension: dist/alt-text-chrome.zip (Chrome Web Store upload) and
dist/alt-text-firefox.zip (addons.mozilla.org upload, or about:debugging "Load Temporary Add-on").

    python scripts/build_extension.py [--out dist]

One source tree, extension/, runs unpacked in both browsers. Each package gets a manifest without the other
browser's keys, so neither store warns: Chrome's drops `browser_specific_settings` and `background.scripts`,
Firefox's drops `background.service_worker`. Development files (tests, npm files) are left out.
"""
from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "extension"
EXCLUDED_DIRS = {"tests", "node_modules"}
EXCLUDED_FILES = {"package.json", "package-lock.json"}
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the same sources give the same zip, byte for byte


def extension_files(source: Path = SOURCE) -> list[Path]:
    """Files that ship, relative to ``source``, sorted."""
    files = []
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if not path.is_file() or rel.parts[0] in EXCLUDED_DIRS or rel.name in EXCLUDED_FILES:
            continue
        if any(part.startswith(".") for part in rel.parts):
            continue
        files.append(rel)
    return files


def manifest_for(browser: str, manifest: dict) -> dict:
    m = json.loads(json.dumps(manifest))  # deep copy
    background = m.get("background", {})
    if browser == "chrome":
        m.pop("browser_specific_settings", None)
        background.pop("scripts", None)
    else:
        background.pop("service_worker", None)
    return m


def build(out_dir: Path, source: Path = SOURCE) -> dict[str, Path]:
    manifest = json.loads((source / "manifest.json").read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    built = {}
    for browser in ("chrome", "firefox"):
        target = out_dir / f"alt-text-{browser}.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
            for rel in extension_files(source):
                if rel.as_posix() == "manifest.json":
                    data = json.dumps(manifest_for(browser, manifest), indent=2).encode() + b"\n"
                else:
                    data = (source / rel).read_bytes()
                info = zipfile.ZipInfo(rel.as_posix(), FIXED_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                z.writestr(info, data)
        built[browser] = target
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output folder (default: dist/)")
    args = parser.parse_args(argv)
    for browser, path in build(args.out).items():
        print(f"{browser}: {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
