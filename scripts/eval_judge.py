"""How often the audit's image judgements (``server/audit/judge.py``) fire where they must not, and where they should.

    python scripts/eval_judge.py --split dev                  # tune here
    python scripts/eval_judge.py --split test --out judge_test.json   # report once

Each image is described once by the real pipeline (bundled checkpoint, its heads, Tesseract); the evidence is cached
in ``~/.cache/alt-text/judge-eval/`` by image bytes and pipeline namespace, so a rerun costs no model time. Every
image is then judged under several markups, and each judgement's firing is counted as false or as a hit.

What a *correct name* is, per set (the false-finding rates are measured on these):

* **Photos** (COCO and Flickr8k, the split asked for; ``--photos`` per dataset, the first N in split order): the
  first human caption. People wrote it looking at the photo, for describing it; it never says text the photo shows
  unless that text mattered to them.
* **Honesty set** (``~/.cache/alt-text/honesty/manifest.json``, real non-photos and unusual photos from Debian
  packages; split asked for): its keywords, which a person wrote looking at each image as "words a true description
  would contain" (``scripts/honesty_set.json``), joined into a name, the kind word last ("debian policy manual
  release mailing list document", "debian swirl logo"). They hold the words that person read in the image where
  those mattered (a title, a logotype) and none where they did not; that is what a careful author writes, though a
  real author may paraphrase more. A name of generic words only ("r logo": one letter) is still a correct name.
* **Synthetic banners** (made here with Pillow and the system's DejaVu/Liberation fonts: short ad, sale and heading
  texts, and one-word logotypes, in varied fonts, colours and sizes; not real images, so reported apart): the text
  drawn, exactly; and, as a second correct name, the text with a word of its own ("Banner: <text>", "<text> logo").

Markups, and what counts:

* ``named``: the correct name. Any ``image-name-contradicts-text`` is false. ``image-of-text`` is false on any image
  that is not mostly text (photos; honesty kinds other than text; the logotypes); on the honesty text pages and the
  banners it is a hit (it does not depend on the name).
* ``decorative`` (alt=""): ``image-informative-hidden`` is false on photos, illustrations and icons not in a control
  (images that may well be decorative; whether a photo is, no pixel can tell) and a hit on text pages, logos,
  charts and banners (they carry information). Screenshots are counted apart (informative in documentation, but a
  product screenshot can be an ornament).
* ``placeholder`` (named "image", "banner" or "logo"): ``image-name-contradicts-text`` is a hit wherever the image
  carries text (text pages, logos, banners; reported over all of them and over those OCR read).
* ``wrong``: the correct name of another image of the same set and kind (shifted by one in a fixed order; one that
  shares a word with the right name is skipped): ``image-name-contradicts-text`` is a hit.
* ``in control``: an icon or logo marked decorative as the only content of a link without another name:
  ``image-informative-hidden`` is a hit.

Do not tune on the test split: the thresholds in judge.py were chosen on dev (see docs/audit-judgements.md).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from server.audit.judge import ImageMarkup, agrees, judge  # noqa: E402

CACHE = Path.home() / ".cache" / "alt-text" / "judge-eval"
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation"))
FONT_FILES = ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSansCondensed-Bold.ttf",
              "LiberationSans-Bold.ttf", "LiberationSerif-Regular.ttf", "LiberationSans-Regular.ttf")
BANNER_TEXTS = (
    "Spring sale 20% off everything", "Free shipping on orders over $50", "Subscribe to our newsletter",
    "Summer collection now in stores", "Join us for the annual charity run", "Book your table today",
    "Back to school savings", "New arrivals every week", "Download the free guide", "Open house this Saturday",
    "Fresh bread baked daily", "Register now for the spring workshop", "Black Friday deals start now",
    "Save up to 50% on winter coats", "Call us for a free quote", "Volunteers wanted", "Welcome to our garden centre",
    "Limited edition prints available", "Meet the team behind the project", "Try it free for 30 days",
    "Holiday opening hours", "Student discount every Tuesday", "Handmade in Portugal", "Concert tickets on sale now",
    "Clearance: last chance to buy", "Learn to code in ten weeks", "Farmers market every Sunday",
    "Gift cards for every occasion", "Plant a tree with every order", "Visit our new downtown store",
)
LOGO_WORDS = ("W3C", "ERCIM", "Nordwind", "ACME", "Pixelworks", "Bluebird", "Kestrel", "Orbitron", "Greenleaf",
              "Lumen", "Tidewater", "Foxglove")
PLACEHOLDERS = {"text": "image", "banner": "banner", "logo": "logo"}


# ---------------------------------------------------------------------------------------------------------------
# Synthetic banners


def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    for folder in FONT_DIRS:
        if (folder / name).is_file():
            return ImageFont.truetype(str(folder / name), size)
    return ImageFont.load_default(size=size)


def make_banner(text: str, seed: int = 0, logo: bool = False) -> Image.Image:
    """A web banner (or, with ``logo``, a one-word logotype) showing ``text``: a font, colours and size drawn from
    ``seed``, the text centred and scaled to fit."""
    rng = random.Random(seed)
    light = rng.random() < 0.5
    bg = tuple(rng.randint(200, 255) for _ in range(3)) if light else tuple(rng.randint(0, 90) for _ in range(3))
    fg = tuple(rng.randint(0, 70) for _ in range(3)) if light else tuple(rng.randint(210, 255) for _ in range(3))
    width, height = ((rng.choice((160, 200, 240)), rng.choice((60, 80, 100))) if logo
                     else (rng.choice((468, 600, 728, 970)), rng.choice((60, 90, 120, 250))))
    im = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(im)
    name = rng.choice(FONT_FILES)
    size = int(height * rng.uniform(0.35, 0.55))
    font = _font(name, size)
    while size > 10 and draw.textlength(text, font=font) > 0.9 * width:
        size -= 2
        font = _font(name, size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text(((width - (right - left)) / 2 - left, (height - (bottom - top)) / 2 - top), text, font=font, fill=fg)
    if not logo and rng.random() < 0.5:  # a rule or a frame, as banners have
        draw.rectangle((4, 4, width - 5, height - 5), outline=fg, width=2)
    return im


def banner_items() -> list[dict]:
    items = [{"id": f"banner-{i}", "kind": "banner", "text": t, "image": make_banner(t, seed=i)}
             for i, t in enumerate(BANNER_TEXTS)]
    items += [{"id": f"logotype-{i}", "kind": "logotype", "text": w, "image": make_banner(w, seed=100 + i, logo=True)}
              for i, w in enumerate(LOGO_WORDS)]
    for item in items:
        item["names"] = ([item["text"], f"{item['text']} logo"] if item["kind"] == "logotype"
                         else [item["text"], f"Banner: {item['text']}"])
    return items


# ---------------------------------------------------------------------------------------------------------------
# Real sets


def photo_items(roots: list[Path], split: str, limit: int) -> list[dict]:
    from model.datasets import load_split

    items = []
    for root in roots:
        for entry in load_split(root, split)[:limit]:
            items.append({"id": f"{root.name}/{entry.name}", "kind": "photo", "set": root.name, "path": entry.path,
                          "names": [entry.captions[0]]})
    return items


def honesty_name(entry: dict) -> str:
    kind = entry["kind"]
    words = [k for k in entry.get("keywords", []) if k not in (kind, "document", "text")]
    return " ".join(words + ["document" if kind == "text" else kind])


def honesty_items(manifest: Path, split: str) -> list[dict]:
    entries = json.loads(manifest.read_text())
    entries = entries["images"] if isinstance(entries, dict) else entries
    return [{"id": e["id"], "kind": e["kind"], "set": "honesty", "path": manifest.parent / e["file"],
             "names": [honesty_name(e)], "keywords": e.get("keywords", [])}
            for e in entries if e.get("split") == split]


# ---------------------------------------------------------------------------------------------------------------
# The pipeline, once per image


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def describe_all(items: list[dict], describer, batch: int = 16) -> None:
    """Adds each item's pipeline ``result``; evidence cached by image bytes and namespace."""
    from server.describe import Evidence
    from server.netsafe.images import decode_image

    CACHE.mkdir(parents=True, exist_ok=True)
    cache_file = CACHE / (hashlib.sha1(describer.namespace.encode()).hexdigest()[:16] + ".json")
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    todo = []
    for item in items:
        data = Path(item["path"]).read_bytes() if "path" in item else _png(item["image"])
        item["key"] = hashlib.sha1(data).hexdigest()
        if item["key"] not in cache:
            todo.append((item, data))
    started = time.time()
    for i in range(0, len(todo), batch):
        chunk = todo[i:i + batch]
        images = [decode_image(data) for _, data in chunk]
        for (item, _), ev in zip(chunk, describer.evidence(images, batch)):
            cache[item["key"]] = ev.to_dict()
        print(f"  described {min(i + batch, len(todo))}/{len(todo)} new images "
              f"({time.time() - started:.0f} s)", file=sys.stderr)
        if (i // batch) % 10 == 9:
            cache_file.write_text(json.dumps(cache))
    cache_file.write_text(json.dumps(cache))
    for item in items:
        item["result"] = describer.decide(Evidence.from_dict(cache[item["key"]]))


# ---------------------------------------------------------------------------------------------------------------
# Counting


class Tally:
    """Per (set, rule, what) the count of images and of firings, with the ids that fired (for reading them)."""

    def __init__(self):
        self.rows: dict[tuple, dict] = defaultdict(lambda: {"n": 0, "fired": 0, "ids": []})

    def add(self, group: str, rule: str, what: str, fired: bool, ident: str, detail: str = "") -> None:
        row = self.rows[(group, rule, what)]
        row["n"] += 1
        if fired:
            row["fired"] += 1
            row["ids"].append(f"{ident}{': ' + detail if detail else ''}")

    def table(self) -> list[dict]:
        return [{"set": g, "rule": r, "what": w, "n": v["n"], "fired": v["fired"],
                 "rate": round(v["fired"] / v["n"], 4) if v["n"] else None, "fired_on": v["ids"][:40]}
                for (g, r, w), v in sorted(self.rows.items())]


def _fires(rule: str, markup: ImageMarkup, result: dict):
    return next((j for j in judge(markup, result) if j.rule == rule), None)


def _detail(j, result: dict) -> str:
    return "" if j is None else f"kind={result.get('kind')} text={result.get('text')!r}"


INFORMATIVE = {"text", "logo", "chart", "banner", "logotype"}
MAY_BE_DECORATIVE = {"photo", "illustration", "icon"}
MOSTLY_TEXT = {"text", "banner"}


def wrong_names(items: list[dict]) -> dict[str, str]:
    """Per item, the correct name of the next item of its set and kind (one that shares a word is skipped)."""
    by_group = defaultdict(list)
    for item in items:
        by_group[(item.get("set", "synthetic"), item["kind"])].append(item)
    out = {}
    for group in by_group.values():
        for i, item in enumerate(group):
            for other in group[i + 1:] + group[:i]:
                if not agrees(other["names"][0], item["names"][0]):
                    out[item["id"]] = other["names"][0]
                    break
    return out


def evaluate(items: list[dict]) -> Tally:
    tally = Tally()
    wrong = wrong_names(items)
    for item in items:
        r, kind, ident = item["result"], item["kind"], item["id"]
        group = item.get("set", "synthetic")
        read = bool(r.get("text"))
        for name in item["names"]:
            j = _fires("image-name-contradicts-text", ImageMarkup(name), r)
            tally.add(group, "image-name-contradicts-text", f"false: {kind} correctly named", j is not None, ident,
                      f"{name!r} vs {r.get('text')!r}" if j else "")
        j = _fires("image-of-text", ImageMarkup(item["names"][0]), r)
        tally.add(group, "image-of-text", f"{'hit' if kind in MOSTLY_TEXT else 'false'}: {kind}", j is not None, ident,
                  _detail(j, r))
        j = _fires("image-informative-hidden", ImageMarkup("", decorative=True), r)
        verdict = "hit" if kind in INFORMATIVE else "false" if kind in MAY_BE_DECORATIVE else "apart"
        tally.add(group, "image-informative-hidden", f"{verdict}: {kind} marked decorative", j is not None, ident,
                  _detail(j, r))
        if kind in INFORMATIVE:
            placeholder = PLACEHOLDERS.get({"logotype": "logo"}.get(kind, kind), "image")
            j = _fires("image-name-contradicts-text", ImageMarkup(placeholder), r)
            tally.add(group, "image-name-contradicts-text", f"hit: {kind} named {placeholder!r}", j is not None, ident)
            if read:
                tally.add(group, "image-name-contradicts-text", f"hit: {kind} named {placeholder!r}, OCR read text",
                          j is not None, ident)
            if ident in wrong:
                j = _fires("image-name-contradicts-text", ImageMarkup(wrong[ident]), r)
                tally.add(group, "image-name-contradicts-text", f"hit: {kind} named as another {kind}",
                          j is not None, ident)
        if kind in ("icon", "logo", "logotype"):
            j = _fires("image-informative-hidden", ImageMarkup("", decorative=True, control="link"), r)
            tally.add(group, "image-informative-hidden", f"hit: {kind} decorative, only content of a link",
                      j is not None, ident)
    return tally


def upper_bound(fired: int, n: int, confidence: float = 0.95) -> float:
    """The one-sided Clopper-Pearson upper bound of a rate seen ``fired`` times in ``n`` (0 of 300 is still up to
    1 %)."""
    if fired >= n:
        return 1.0

    def at_most(p: float) -> float:  # P(X <= fired) for X ~ Binomial(n, p)
        return sum(math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                            + k * math.log(p) + (n - k) * math.log1p(-p)) for k in range(fired + 1))

    low, high = fired / n, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if at_most(mid) > 1 - confidence else (low, mid)
    return high


def summary(rows: list[dict]) -> list[dict]:
    """Per rule, the false findings on correctly named (or possibly decorative) images of the real sets together,
    and of the synthetic banners, with the 95 % upper bound; and the hits."""
    out = []
    for rule in sorted({r["rule"] for r in rows}):
        for label, real in (("real images", True), ("synthetic", False)):
            for verdict in ("false", "hit"):
                picked = [r for r in rows if r["rule"] == rule and r["what"].startswith(verdict + ":")
                          and (r["set"] != "synthetic") == real and "OCR read" not in r["what"]]
                n, fired = sum(r["n"] for r in picked), sum(r["fired"] for r in picked)
                if n:
                    out.append({"rule": rule, "images": label, "verdict": verdict, "n": n, "fired": fired,
                                "rate": round(fired / n, 4),
                                "upper_95": round(upper_bound(fired, n), 4) if verdict == "false" else None})
    return out


def print_table(rows: list[dict]) -> None:
    print(f"{'set':<10} {'rule':<28} {'what':<52} {'n':>5} {'fired':>6} {'rate':>7}")
    for row in rows:
        rate = "-" if row["rate"] is None else f"{100 * row['rate']:.1f}%"
        print(f"{row['set']:<10} {row['rule']:<28} {row['what'][:52]:<52} {row['n']:>5} {row['fired']:>6} {rate:>7}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("dev", "test"), required=True)
    ap.add_argument("--data", type=Path, action="append", help="Flickr8k/COCO directories (default: both in "
                    "../shared/data)")
    ap.add_argument("--photos", type=int, default=300, help="photos per dataset (the first N of the split)")
    ap.add_argument("--honesty", type=Path, default=Path.home() / ".cache/alt-text/honesty/manifest.json")
    ap.add_argument("--no-banners", action="store_true", help="leave out the synthetic banners")
    ap.add_argument("--out", type=Path, help="write the table (with the ids that fired) as JSON")
    args = ap.parse_args(argv)

    from server.describe import Describer

    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    roots = args.data or [p for p in (shared / "coco", shared / "flickr8k") if p.is_dir()]
    items = photo_items(roots, args.split, args.photos)
    if args.honesty.is_file():
        items += honesty_items(args.honesty, args.split)
    else:
        print(f"no honesty set at {args.honesty}: build it with scripts/gather_honesty_set.py", file=sys.stderr)
    if not args.no_banners:
        items += banner_items()  # no split: nothing is tuned on them alone
    describer = Describer.load()
    started = time.time()
    describe_all(items, describer)
    rows = evaluate(items).table()
    print_table(rows)
    totals = summary(rows)
    print(f"\n{'rule':<28} {'images':<12} {'verdict':<7} {'n':>5} {'fired':>6} {'rate':>7} {'95% up to':>10}")
    for t in totals:
        bound = "-" if t["upper_95"] is None else f"{100 * t['upper_95']:.1f}%"
        print(f"{t['rule']:<28} {t['images']:<12} {t['verdict']:<7} {t['n']:>5} {t['fired']:>6} "
              f"{100 * t['rate']:>6.1f}% {bound:>10}")
    print(f"{len(items)} images, {time.time() - started:.0f} s", file=sys.stderr)
    if args.out:
        report = {"split": args.split, "namespace": describer.namespace, "summary": totals, "rows": rows}
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
