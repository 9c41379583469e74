"""Gather the icon set that the meaning head learns from: real web icon sets and freedesktop themes, rendered as pages
show them.

    python scripts/gather_icon_set.py --out ~/.cache/alt-text/icons

Nothing large enters the repository: this script installs the npm packages named in ``NPM_SETS`` and the
Iconify sets named in ``ICONIFY_SETS`` (``@iconify-json/<prefix>``: one design each, its SVGs written out into
OUT/iconify/<prefix>/) into OUT/npm (``npm install``, skipped when already there), downloads the Debian icon themes
in ``DEBIAN_SETS`` with ``apt-get download`` into OUT/debs and unpacks them into OUT/pkgs (never installed), then renders every icon whose
file name names a meaning of ``server/describe/meanings.json`` (or a brand), plus a sample of icons it names nothing
for (the "other" class, so that the head learns to say nothing about them), into OUT/images/<family>/ and writes
OUT/manifest.json: a list of {file, family, label, name, source, licence, style}. A family already in the manifest
keeps its renders (and their cached features): only families added since are rendered, unless ``--fresh``.

Every icon is rendered with ``rsvg-convert`` (librsvg) at a size web pages use (16-64 px) in one of the ways they
show it: a dark glyph on white, a coloured glyph on a transparent background, a white glyph on a coloured button,
a glyph on a light tinted button. File names follow the freedesktop icon naming specification in the Debian themes
and each set's own names on npm; the mapping from names to meanings is ``meanings.json`` and nothing else.

Reserved for an independent evaluation, and never used here: @tabler/icons, @phosphor-icons/*, remixicon, boxicons,
line-awesome, the same sets in Iconify (tabler, ph, ri, bx, bxs, bxl, la, las, lab; @iconify/json, which holds
them, is never installed), and Debian's tango-icon-theme.
"""
from __future__ import annotations

import argparse
import io
import json
import random
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.describe.meanings import Vocabulary  # noqa: E402

RESERVED = ("@tabler/", "@phosphor-icons/", "remixicon", "boxicons", "line-awesome", "@iconify/", "tango-icon-theme")
RESERVED_ICONIFY = frozenset(("tabler", "ph", "ri", "bx", "bxs", "bxl", "la", "las", "lab"))

# family -> (npm package, folder of SVGs inside it, licence). A family is one design: it is left out whole when
# the head is validated leave-one-family-out.
NPM_SETS = {
    "mdi": ("@mdi/svg", "svg", "Apache-2.0 (Material Design Icons)"),
    "material": ("@material-design-icons/svg", ".", "Apache-2.0 (Google Material Icons)"),
    "lucide": ("lucide-static", "icons", "ISC (Lucide)"),
    "fontawesome": ("@fortawesome/fontawesome-free", "svgs", "CC-BY-4.0 (Font Awesome Free)"),
    "simple-icons": ("simple-icons", "icons", "CC0-1.0 (Simple Icons)"),
    "carbon": ("@carbon/icons", "svg/32", "Apache-2.0 (IBM Carbon)"),
    "eva": ("eva-icons", ".", "MIT (Eva Icons)"),
    "cssgg": ("css.gg", "icons/svg", "MIT (css.gg)"),
    "octicons": ("@primer/octicons", "build/svg", "MIT (GitHub Octicons)"),
    "heroicons": ("heroicons", ".", "MIT (Heroicons)"),
    "ionicons": ("ionicons", "dist/svg", "MIT (Ionicons)"),
    "feather": ("feather-icons", "dist/icons", "MIT (Feather)"),
    "bootstrap": ("bootstrap-icons", "icons", "MIT (Bootstrap Icons)"),
}
# Iconify prefixes of sets drawn unlike any family above (each its own design; not Iconify's copies of Material,
# Octicons, Font Awesome ..., which would be one design in two families). Their licences are read from the package.
ICONIFY_SETS = (
    "akar-icons", "ant-design", "basil", "charm", "ci", "cil", "circum", "clarity", "codicon", "dashicons", "el",
    "entypo", "flowbite", "fluent", "fluent-mdl2", "foundation", "gravity-ui", "gridicons", "hugeicons",
    "humbleicons", "icon-park-outline", "iconamoon", "iconoir", "jam", "lets-icons", "lineicons", "mage",
    "majesticons", "meteor-icons", "mi", "mingcute", "mynaui", "pepicons-pop", "prime", "proicons", "quill",
    "radix-icons", "solar", "streamline", "system-uicons", "teenyicons", "typcn", "uil", "uiw", "zondicons",
)
# family -> (Debian package, icon theme folder, sub-folders to read, licence)
DEBIAN_SETS = {
    "adwaita": ("adwaita-icon-theme", "usr/share/icons/Adwaita", ("scalable",), "LGPL-3 / CC-BY-SA-3.0 (GNOME)"),
    "breeze": ("breeze-icon-theme", "usr/share/icons/breeze", ("actions/22", "places/22", "status/22",
                                                              "devices/22", "apps/22"), "LGPL-3 (KDE Breeze)"),
    "papirus": ("papirus-icon-theme", "usr/share/icons/Papirus", ("24x24/actions", "24x24/places",
                                                                  "24x24/status", "24x24/devices",
                                                                  "24x24/panel", "24x24/apps"), "GPL-3 (Papirus)"),
    "oxygen": ("oxygen-icon-theme", "usr/share/icons/oxygen/base", ("32x32/actions", "32x32/places",
                                                                    "32x32/status", "32x32/devices"),
               "LGPL-3 (KDE Oxygen)"),
    "elementary": ("elementary-xfce-icon-theme", "usr/share/icons/elementary-xfce", ("actions/24", "places/24",
                                                                                     "status/24", "devices/24"),
                   "GPL-2+ (elementary, Xfce)"),
}
SIZES = (16, 20, 24, 24, 32, 32, 40, 48, 64)
DARK = ("#000000", "#212529", "#333333", "#444444", "#1f2937", "#374151", "#5f6368", "#0f172a")
COLOURS = ("#1a73e8", "#0d6efd", "#d93025", "#188038", "#e37400", "#6f42c1", "#0366d6", "#dc3545", "#198754",
           "#6c757d", "#3b5998", "#e1306c", "#ff0000", "#00acee", "#7c3aed", "#0891b2", "#be123c")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fetch_npm(out: Path) -> Path:
    modules = out / "npm" / "node_modules"
    assert not RESERVED_ICONIFY & set(ICONIFY_SETS)
    wanted = [pkg for pkg, _, _ in NPM_SETS.values()] + [f"@iconify-json/{prefix}" for prefix in ICONIFY_SETS]
    assert not any(pkg.startswith(RESERVED) for pkg in wanted)
    missing = [p for p in wanted if not (modules / p / "package.json").exists()]
    if missing:
        npm = shutil.which("npm") or sys.exit("npm is not installed: it fetches the web icon sets")
        (out / "npm").mkdir(parents=True, exist_ok=True)
        if not (out / "npm" / "package.json").exists():
            (out / "npm" / "package.json").write_text('{"name": "icons", "private": true}\n')
        log(f"npm install {' '.join(missing)}")
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", *missing],
                       cwd=out / "npm", check=True)
    return modules


def fetch_debian(out: Path) -> Path:
    debs, pkgs = out / "debs", out / "pkgs"
    debs.mkdir(parents=True, exist_ok=True)
    for pkg, *_ in DEBIAN_SETS.values():
        if (pkgs / pkg / ".complete").exists():
            continue
        if not sorted(debs.glob(f"{pkg}_*.deb")):
            log(f"apt-get download {pkg}")
            subprocess.run(["apt-get", "download", pkg], cwd=debs, check=True)
        (pkgs / pkg).mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(sorted(debs.glob(f"{pkg}_*.deb"))[-1]), str(pkgs / pkg)], check=True)
        (pkgs / pkg / ".complete").touch()
    return pkgs


def npm_files(modules: Path, family: str) -> list[tuple[Path, str]]:
    """(file, style) of a web set; the style (a sub-folder such as solid/outline) is kept for the manifest."""
    pkg, folder, _ = NPM_SETS[family]
    root = modules / pkg / folder
    out = []
    for path in sorted(root.rglob("*.svg")):
        rel = path.relative_to(root).parts
        if family == "eva" and rel[0] not in ("fill", "outline"):
            continue
        if family == "ionicons" and not rel[-1].endswith(".svg"):
            continue
        out.append((path, "/".join(rel[:-1])))
    return out


def iconify_files(modules: Path, out: Path, family: str) -> tuple[list[tuple[Path, str]], str]:
    """(files, licence) of an Iconify set: each icon written out as an SVG file once (aliases, other names for the
    same picture, and hidden icons are not)."""
    pkg = modules / "@iconify-json" / family
    data = json.loads((pkg / "icons.json").read_text())
    info = json.loads((pkg / "info.json").read_text())
    folder = out / "iconify" / family
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name, icon in sorted(data["icons"].items()):
        if icon.get("hidden"):
            continue
        path = folder / f"{name}.svg"
        if not path.exists():
            w, h = icon.get("width", data.get("width", 16)), icon.get("height", data.get("height", 16))
            left, top = icon.get("left", data.get("left", 0)), icon.get("top", data.get("top", 0))
            path.write_text(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{left} {top} {w} {h}" '
                            f'width="{w}" height="{h}">{icon["body"]}</svg>')
        files.append((path, ""))
    return files, f"{info['license']['spdx']} ({info['name']}, Iconify)"


def debian_files(pkgs: Path, family: str) -> list[tuple[Path, str]]:
    pkg, theme, subdirs, _ = DEBIAN_SETS[family]
    out = []
    for sub in subdirs:
        for path in sorted((pkgs / pkg / theme / sub).rglob("*")):
            if path.is_symlink() or path.suffix not in (".svg", ".png"):
                continue  # a link is another name for an icon already read
            out.append((path, sub))
    return out


def simple_icons(modules: Path) -> list[dict]:
    """Simple Icons' own list of its brands ({slug, title, hex, ...}), whichever of its two layouts the package has."""
    data = json.loads((modules / "simple-icons" / "data" / "simple-icons.json").read_text())
    return data if isinstance(data, list) else data["icons"]


def brand_names(modules: Path) -> dict[str, str]:
    """Simple Icons' slug -> brand title (the list that names a logo)."""
    return {i["slug"]: i["title"] for i in simple_icons(modules)}


def icon_label(vocab: Vocabulary, family: str, set_style: str, stem: str, brands: dict[str, str]) -> str | None:
    """The class an icon's file name gives it; every Simple Icons slug is a brand, but only in the brand sets
    (Simple Icons, Font Awesome's "brands"): "x" is a close icon elsewhere."""
    brand_set = family == "simple-icons" or (family == "fontawesome" and set_style == "brands")
    return vocab.label_for(stem, brand_set=brand_set, brands=brands)


# -- rendering -------------------------------------------------------------------------------------------------------

def _coloured_svg(text: str, colour: str) -> str:
    """The SVG with its glyph colour set: ``currentColor`` replaced, and a fill on the root for shapes that inherit
    one (most sets draw paths with no fill of their own, which is black)."""
    text = text.replace("currentColor", colour).replace("currentcolor", colour)
    root = re.search(r"<svg\b[^>]*>", text)
    if root is None:
        return text
    extra = "".join(f' {k}="{colour}"' for k in ("fill", "color") if not re.search(rf"\s{k}\s*=", root.group()))
    return text[:root.start() + 4] + extra + text[root.start() + 4:]


def rasterise(path: Path, size: int, colour: str | None) -> Image.Image:
    if path.suffix == ".png":
        im = Image.open(path).convert("RGBA")
        if max(im.size) > size:
            im.thumbnail((size, size), Image.LANCZOS)
        return im
    text = path.read_text(errors="replace")
    if colour:
        text = _coloured_svg(text, colour)
    png = subprocess.run(["rsvg-convert", "-w", str(size), "-h", str(size), "--keep-aspect-ratio"],
                         input=text.encode(), capture_output=True, check=True).stdout
    return Image.open(io.BytesIO(png)).convert("RGBA")


def render(path: Path, rng: random.Random, brand_hex: str | None, themed: bool) -> tuple[Image.Image, str]:
    """One rendering as a web page might show the icon, and the name of the style used. Themed icons (Debian's,
    drawn in their own colours) keep them."""
    size = rng.choice(SIZES)
    style = rng.choice(("plain", "plain", "transparent", "button", "tinted"))
    if themed:
        glyph_colour = None
    elif style == "button":
        glyph_colour = "#ffffff"
    elif brand_hex and rng.random() < 0.5:
        glyph_colour = "#" + brand_hex
    else:
        glyph_colour = rng.choice(DARK) if style in ("plain", "tinted") or rng.random() < 0.6 else rng.choice(COLOURS)
    glyph = rasterise(path, size, glyph_colour)
    if style == "transparent":
        return glyph, style
    pad = rng.choice((0, size // 8, size // 4, size // 2)) if style != "plain" else rng.choice((0, 0, size // 8))
    w, h = glyph.width + 2 * pad, glyph.height + 2 * pad
    if style == "button":
        bg = (rng.choice(COLOURS) if not (themed or brand_hex) or rng.random() < 0.5 else "#6c757d")
        if themed:
            bg = rng.choice(("#e8eaed", "#dee2e6", "#f1f3f4"))
    elif style == "tinted":
        bg = rng.choice(("#f1f3f4", "#e8f0fe", "#f8f9fa", "#e9ecef", "#fff3cd", "#eef2ff"))
    else:
        bg = "#ffffff"
    canvas = Image.new("RGBA", (w, h), (0, 0, 0, 0) if style == "button" else bg)
    if style == "button":
        ImageDraw.Draw(canvas).rounded_rectangle((0, 0, w - 1, h - 1), radius=rng.choice((0, w // 6, w // 2)),
                                                 fill=bg)
    canvas.alpha_composite(glyph, (pad, pad))
    return canvas, style


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path.home() / ".cache" / "alt-text" / "icons")
    ap.add_argument("--per-class", type=int, default=4, help="icons per family and meaning (different styles)")
    ap.add_argument("--others", type=int, default=150, help="icons per family that name no meaning")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--fresh", action="store_true", help="render every family again, not only those the manifest "
                                                         "lacks")
    args = ap.parse_args(argv)
    if not shutil.which("rsvg-convert"):
        sys.exit("rsvg-convert is not installed: apt-get install librsvg2-bin")

    vocab = Vocabulary.load()
    modules, pkgs = fetch_npm(args.out), fetch_debian(args.out)
    si = simple_icons(modules)
    titles = {i["slug"]: i["title"] for i in si}
    brand_hex = {i["slug"]: i["hex"] for i in si}
    rng = random.Random(args.seed)

    manifest_path = args.out / "manifest.json"
    kept = [] if args.fresh or not manifest_path.exists() else json.loads(manifest_path.read_text())["images"]
    done = {e["family"] for e in kept}
    jobs = []  # (family, label, name, path, style dir, licence, themed, hex)
    for family in [*NPM_SETS, *DEBIAN_SETS, *ICONIFY_SETS]:
        if family in ICONIFY_SETS:
            files, licence = iconify_files(modules, args.out, family)
        else:
            files = npm_files(modules, family) if family in NPM_SETS else debian_files(pkgs, family)
            licence = (NPM_SETS.get(family) or DEBIAN_SETS[family])[-1]
        by_label: dict[str, list] = defaultdict(list)
        others = []
        for path, sub in files:
            label = icon_label(vocab, family, sub, path.stem, titles)
            (by_label[label] if label else others).append((path, sub))
        for label, items in by_label.items():
            rng.shuffle(items)
            slug = label.split(":", 1)[1]
            for path, sub in items[:args.per_class]:
                jobs.append((family, label, path.stem, path, sub, licence, family in DEBIAN_SETS,
                             brand_hex.get(slug) if label.startswith("brand:") else None))
        rng.shuffle(others)
        for path, sub in others[:args.others]:
            jobs.append((family, "other", path.stem, path, sub, licence, family in DEBIAN_SETS, None))
        log(f"{family}: {len(files)} files, {len(by_label)} labels, {len(others)} unnamed"
            + (" (kept as rendered)" if family in done else ""))

    images = args.out / "images"
    manifest = list(kept)
    jobs = [(i, job) for i, job in enumerate(jobs) if job[0] not in done]

    def one(i: int, job) -> dict | None:
        family, label, name, path, sub, licence, themed, hexcode = job
        r = random.Random(args.seed * 1_000_003 + i)
        try:
            im, style = render(path, r, hexcode, themed)
        except (subprocess.CalledProcessError, OSError, ValueError) as e:
            log(f"skipped {path}: {type(e).__name__}")
            return None
        if im.getchannel("A").getextrema()[1] == 0:
            return None  # rendered nothing visible
        out = images / family / f"{i:05d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        im.save(out)
        return {"file": str(out.relative_to(args.out)), "family": family, "label": label, "name": name,
                "source": str(path.relative_to(args.out)) if path.is_relative_to(args.out) else str(path),
                "licence": licence, "style": style, "set_style": sub}

    with ThreadPoolExecutor(args.jobs) as pool:
        for entry in pool.map(lambda a: one(*a), jobs):
            if entry:
                manifest.append(entry)
    manifest_path.write_text(json.dumps({"images": manifest}, indent=0))
    labels = {e["label"] for e in manifest}
    log(f"{len(manifest)} images, {len(labels)} labels -> {args.out / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
