"""Gather the honesty evaluation image set from real Debian packages.

The captioner was trained on everyday photos (Flickr8k, COCO) and invents photo captions for screenshots, charts,
icons, documents and unusual photos. To train and measure a "kind" classifier and the honesty of the captions we
need real images of those kinds. Rather than commit hundreds of megabytes (or draw fake images ourselves), the repo
commits only the list `scripts/honesty_set.json`; this script rebuilds the images from Debian packages:

    python scripts/gather_honesty_set.py --out ~/.cache/alt-text/honesty

It downloads the packages named in the list with `apt-get download` (never installs them) into OUT/debs, unpacks
them with `dpkg-deb -x` into OUT/pkgs (both skipped when already there), renders PDF pages with `pdftoppm`
(poppler-utils), HTML pages with a headless Chromium and SVG files with `rsvg-convert` (librsvg2-bin), reads GIMP
pattern files (.pat, a tiny raw-pixel format Pillow lacks) itself, and writes
OUT/images/<id>.png (photos without transparency as .jpg) and OUT/manifest.json: a list of
{id, file, kind, split, keywords, source, licence}. Images are reduced to at most 1024 px a side; transparency
is kept. Entries whose file has vanished from its package are skipped and reported.

Only the standard library, Pillow and the command-line tools above are used.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
DEFAULT_LIST = HERE / "honesty_set.json"
MAX_SIDE = 1024
KINDS = {"photo", "text", "screenshot", "chart", "icon", "logo", "illustration"}
SPLITS = {"train", "dev", "test"}
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
    "--disable-extensions", "--mute-audio",
]


class GatherError(Exception):
    """A problem the user must fix (missing tool, failed download); reported without a traceback."""


def need_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if not path:
        raise GatherError(f"`{name}` is not available: {hint}")
    return path


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise GatherError("Chromium is not available: install it (`apt-get install chromium`) to render HTML entries")


def fetch_package(pkg: str, debs: Path, pkgs: Path, log) -> Path:
    """Return the unpacked root of `pkg`, downloading and unpacking it when not already cached."""
    root = pkgs / pkg
    if (root / ".complete").exists():
        return root
    found = sorted(debs.glob(f"{pkg}_*.deb"))
    if not found:
        apt = need_tool("apt-get", "this script needs Debian's apt-get to download packages")
        log(f"downloading {pkg}")
        proc = subprocess.run([apt, "download", pkg], cwd=debs, capture_output=True, text=True)
        found = sorted(debs.glob(f"{pkg}_*.deb"))
        if proc.returncode != 0 or not found:
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise GatherError(f"`apt-get download {pkg}` failed: {msg[-1] if msg else 'no .deb written'}")
    dpkg = need_tool("dpkg-deb", "this script needs dpkg-deb to unpack packages")
    log(f"unpacking {found[-1].name}")
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    proc = subprocess.run([dpkg, "-x", str(found[-1]), str(root)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise GatherError(f"`dpkg-deb -x {found[-1].name}` failed: {proc.stderr.strip()}")
    (root / ".complete").touch()
    return root


def read_gimp_pattern(path: Path) -> Image.Image:
    """A GIMP .pat file: big-endian header (header size, version, width, height, bytes per pixel, b"GPAT",
    name) followed by the raw pixels."""
    data = path.read_bytes()
    header_size, _version, width, height, depth = struct.unpack(">5I", data[:20])
    if data[20:24] != b"GPAT" or depth not in (1, 2, 3, 4):
        raise GatherError(f"{path} is not a GIMP pattern file")
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[depth]
    return Image.frombytes(mode, (width, height), data[header_size:header_size + width * height * depth])


def load_raster(path: Path, svg_size: int) -> Image.Image:
    name = path.name.lower()
    if name.endswith(".pat"):
        return read_gimp_pattern(path)
    if name.endswith((".svg", ".svgz")):
        rsvg = need_tool("rsvg-convert", "install librsvg2-bin to rasterise SVG entries")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.png"
            src = path
            if name.endswith(".svgz"):
                src = Path(tmp) / "in.svg"
                src.write_bytes(gzip.decompress(path.read_bytes()))
            subprocess.run([rsvg, "-w", str(svg_size), "-h", str(svg_size), "--keep-aspect-ratio",
                            "-o", str(out), str(src)], check=True, capture_output=True)
            img = Image.open(out)
            img.load()
            return img
    img = Image.open(path)
    img.load()
    return img


def render_pdf(path: Path, page: int, dpi: int) -> Image.Image:
    tool = need_tool("pdftoppm", "install poppler-utils to render PDF entries")
    with tempfile.TemporaryDirectory() as tmp:
        src = path
        if path.name.endswith(".gz"):
            src = Path(tmp) / "in.pdf"
            src.write_bytes(gzip.decompress(path.read_bytes()))
        base = Path(tmp) / "page"
        subprocess.run([tool, "-r", str(dpi), "-f", str(page), "-l", str(page), "-png", "-singlefile",
                        str(src), str(base)], check=True, capture_output=True)
        img = Image.open(str(base) + ".png")
        img.load()
        return img


def render_html(path: Path, width: int, height: int) -> Image.Image:
    tool = chromium_binary()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "shot.png"
        profile = Path(tmp) / "profile"
        cmd = [tool, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--screenshot={out}", path.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if not out.exists():
            raise GatherError(f"Chromium wrote no screenshot for {path}: {proc.stderr.strip()[-300:]}")
        img = Image.open(out)
        img.load()
        return img


def crop(img: Image.Image, box) -> Image.Image:
    """Crop by fractions [left, top, right, bottom] of the image size."""
    w, h = img.size
    l, t, r, b = box
    return img.crop((round(l * w), round(t * h), round(r * w), round(b * h)))


def has_alpha(img: Image.Image) -> bool:
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        return img.convert("RGBA").getextrema()[3][0] < 255
    return False


def build_image(entry: dict, root: Path) -> Image.Image | None:
    src = entry["source"]
    path = root / src["path"].lstrip("/")
    if not path.exists():
        return None
    render = src.get("render")
    if render == "pdftoppm":
        img = render_pdf(path, int(src.get("page", 1)), int(src.get("dpi", 60)))
    elif render == "chromium":
        img = render_html(path, int(src.get("width", 1280)), int(src.get("height", 900)))
    elif render is None:
        img = load_raster(path, int(src.get("size", 256)))
    else:
        raise GatherError(f"entry {entry['id']}: unknown render {render!r}")
    if src.get("frame") is not None:  # one frame of a multi-frame file
        img.seek(int(src["frame"]))
    if src.get("crop"):
        img = crop(img, src["crop"])
    if max(img.size) > MAX_SIDE:
        img = img.copy()
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
    return img


def save(img: Image.Image, kind: str, stem: Path) -> Path:
    alpha = has_alpha(img)
    if kind == "photo" and not alpha:
        out = stem.parent / (stem.name + ".jpg")
        img.convert("RGB").save(out, quality=90)
    else:
        out = stem.parent / (stem.name + ".png")
        img = img.convert("RGBA" if alpha else "RGB")
        img.save(out, optimize=True)
    return out


def validate(entries: list[dict]) -> None:
    seen = set()
    for e in entries:
        for key in ("id", "split", "kind", "source", "licence"):
            if key not in e:
                raise GatherError(f"entry {e.get('id', '?')} has no {key!r}")
        if e["id"] in seen:
            raise GatherError(f"duplicate id {e['id']!r}")
        seen.add(e["id"])
        if e["kind"] not in KINDS or e["split"] not in SPLITS:
            raise GatherError(f"entry {e['id']}: bad kind or split ({e['kind']}, {e['split']})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="output folder (e.g. ~/.cache/alt-text/honesty)")
    ap.add_argument("--list", type=Path, default=DEFAULT_LIST, help="the image list (default: %(default)s)")
    ap.add_argument("--split", choices=sorted(SPLITS), action="append", help="only these splits (repeatable)")
    ap.add_argument("--force", action="store_true", help="rebuild images that already exist")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    start = time.monotonic()
    try:
        data = json.loads(args.list.read_text())
        entries = data["images"] if isinstance(data, dict) else data
        validate(entries)
        if args.split:
            entries = [e for e in entries if e["split"] in args.split]
        out = args.out.expanduser().resolve()
        debs, pkgs, images = out / "debs", out / "pkgs", out / "images"
        for d in (debs, pkgs, images):
            d.mkdir(parents=True, exist_ok=True)
        # Fail early, before any download, when a needed tool is missing.
        renders = {e["source"].get("render") for e in entries}
        if "chromium" in renders:
            chromium_binary()
        if "pdftoppm" in renders:
            need_tool("pdftoppm", "install poppler-utils to render PDF entries")
        if any(e["source"]["path"].lower().endswith((".svg", ".svgz")) for e in entries):
            need_tool("rsvg-convert", "install librsvg2-bin to rasterise SVG entries")
        roots = {}
        for pkg in sorted({e["source"]["package"] for e in entries}):
            roots[pkg] = fetch_package(pkg, debs, pkgs, log)
        manifest, missing, failed = [], [], []
        for i, e in enumerate(entries):
            existing = [p for p in (images / f"{e['id']}.png", images / f"{e['id']}.jpg") if p.exists()]
            if existing and not args.force:
                file = existing[0]
            else:
                for p in existing:
                    p.unlink()
                try:
                    img = build_image(e, roots[e["source"]["package"]])
                except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError, GatherError) as exc:
                    failed.append(f"{e['id']}: {exc}")
                    continue
                if img is None:
                    missing.append(f"{e['id']}: {e['source']['package']}:{e['source']['path']}")
                    continue
                file = save(img, e["kind"], images / e["id"])
            if (i + 1) % 100 == 0:
                log(f"{i + 1}/{len(entries)} images")
            manifest.append({
                "id": e["id"], "file": str(file), "kind": e["kind"], "split": e["split"],
                "keywords": e.get("keywords", []), "source": e["source"], "licence": e["licence"],
                **({"notes": e["notes"]} if e.get("notes") else {}),
            })
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    except GatherError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for label, items in (("missing from their package", missing), ("failed to render", failed)):
        if items:
            print(f"{len(items)} entries {label} (skipped):", file=sys.stderr)
            for item in items:
                print(f"  {item}", file=sys.stderr)
    counts = {}
    for m in manifest:
        counts[(m["split"], m["kind"])] = counts.get((m["split"], m["kind"]), 0) + 1
    print(f"wrote {len(manifest)} images to {images} and {out / 'manifest.json'} "
          f"in {time.monotonic() - start:.0f} s", file=sys.stderr)
    for split in ("train", "dev", "test"):
        row = ", ".join(f"{k} {counts[(split, k)]}" for k in sorted(KINDS) if (split, k) in counts)
        if row:
            print(f"  {split}: {row}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
