"""How honest the describe pipeline is: per kind, the share of images described truthfully, falsely or withheld.

    python scripts/eval_honesty.py --kinds ~/.cache/alt-text/honesty/manifest.json --split test \
        --data ../shared/data/flickr8k --data ../shared/data/coco --out honesty_test.json

The images are real non-photos and out-of-domain photos gathered by ``scripts/gather_honesty_set.py``, each with
keywords written by a person who looked at it (``scripts/honesty_set.json``). An answer is judged:

* **withheld**: no alt text;
* **truthful**: for a non-photo, its kind is named right (icon and logo count as one), or the text read or the alt
  text contains one of its keywords ("a printer" for a printer icon), and no photo-scene caption is spoken; for a
  photo, the alt text contains one of its keywords;
* **false**: anything else (a photo-scene caption on a screenshot, the wrong kind, a caption naming the wrong thing);
  an icon's meaning or a logo's brand that is said must be one of the image's keywords, whatever its kind, and so
  must a chart's type ("Bar chart.") where the keywords name one (``CHART_TYPE_WORDS``; where they name none, the
  type is not judged, and does not count as content).

"With content" means more than the kind: a meaning, a brand, a chart type judged right, or text read.

It also reports in-domain coverage (the share of the datasets' photos of the same split that still get an alt text), the
share of non-photos that got a photo-scene caption, and what OCR cost per kind. Prints a table, writes JSON.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.datasets import load_split  # noqa: E402
from server.describe import Describer, Evidence, Policy, Wording  # noqa: E402
from server.describe.pipeline import result  # noqa: E402
from server.describe.concepts import stem  # noqa: E402
from server.describe.meanings import Vocabulary  # noqa: E402
from server.netsafe.images import ImageError, read_image_file  # noqa: E402

SAME_KIND = {"logo": "icon"}  # icons and logos are one class for judging: both are small brand/pictogram marks
# The keywords that name a chart's type, for each type the chart-type head says ("chart", "plot", "graph" name none).
CHART_TYPE_WORDS = {"area": {"area"}, "bar": {"bar"}, "flow": {"flow", "flowchart"}, "histogram": {"histogram"},
                    "line": {"line"}, "map": {"map"}, "pie": {"pie"}, "scatter": {"scatter"}, "table": {"table"}}


def _words(text: str) -> set[str]:
    return {stem(w) for w in re.findall(r"[a-z0-9]+", text.lower())}


def mentions(text: str | None, keywords: list[str]) -> bool:
    if not text:
        return False
    said = _words(text)
    return any(_words(k) and _words(k) <= said for k in keywords)


def judge(item: dict, r: dict) -> dict:
    """The verdict on one result for one labelled image."""
    true_kind = item["kind"]
    caption_spoken = bool(r["alt"]) and r["kind"] == "photo" and r["caption"].rstrip(".").lower() in r["alt"].lower()
    kind_right = SAME_KIND.get(r["kind"], r["kind"]) == SAME_KIND.get(true_kind, true_kind)
    text_right = mentions(r.get("text"), item.get("keywords", []))
    chart_type = chart_type_right(item, r)
    if not r["alt"]:
        verdict = "withheld"
    elif true_kind == "photo":
        verdict = "truthful" if mentions(r["alt"], item.get("keywords", [])) else "false"
    elif named_as(r):  # a meaning or a brand is said: it must be the right one, whatever the kind
        verdict = "truthful" if any(mentions(n, item.get("keywords", [])) for n in synonyms(r)) else "false"
    elif chart_type is False:
        verdict = "false"
    else:
        said_right = mentions(r["alt"], item.get("keywords", []))
        verdict = "truthful" if (kind_right or text_right or said_right) and not caption_spoken else "false"
    concept_said = (bool(r["alt"]) and not caption_spoken and r["kind"] == "photo"
                    and any(f" {c['word']}." in r["alt"] for c in r.get("concepts", [])))
    content = bool(r["alt"]) and bool(named_as(r) or r.get("text") or chart_type or r["kind"] == "photo")
    return {"verdict": verdict, "caption_spoken": caption_spoken, "kind_right": kind_right, "text_right": text_right,
            "concept_said": concept_said, "with_content": verdict == "truthful" and content,
            "meaning_said": named_as(r), "chart_type_right": chart_type}


def chart_type_right(item: dict, r: dict) -> bool | None:
    """Whether the chart type a result says is one its keywords name; None when it says none, or the keywords
    name no type to judge it by."""
    said = (r.get("chart_type") or {}).get("id")
    named = {t for t, words in CHART_TYPE_WORDS.items() if words & {k.lower() for k in item.get("keywords", [])}}
    if not said or not named:
        return None
    return said in named


def synonyms(r: dict) -> list[str]:
    """The words a said meaning stands for: its label and the names icon sets give it ("Print": print, printer,
    document-print), so that "Icon: Print." is right for a printer icon whose keywords say "printer"."""
    names = [named_as(r)]
    if r.get("meaning"):
        names += [n.replace("-", " ") for n in Vocabulary.load().names.get(r["meaning"]["id"], ())]
    return names


def named_as(r: dict) -> str:
    """The meaning or brand a result says ("Search", "GitHub"), "" for none."""
    return (r.get("meaning") or {}).get("label") or (r.get("brand") or {}).get("name") or ""


class Timed:
    """Wraps the describer's OCR to time it per image."""

    def __init__(self, describer: Describer):
        self.ocr, self.last = describer.ocr, 0.0
        if self.ocr is not None:
            describer.ocr = self

    def read(self, im):  # ``last`` is set to 0 before each image
        return self._timed(self.ocr.read, im)

    def read_title_bar(self, im):  # a screenshot's second read: its time counts with the first's
        return self._timed(self.ocr.read_title_bar, im)

    def _timed(self, read, im):
        t0 = time.perf_counter()
        try:
            return read(im)
        finally:
            self.last += time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kinds", required=True, type=Path, help="manifest.json of gather_honesty_set.py")
    ap.add_argument("--split", default="test", choices=["dev", "test"])
    ap.add_argument("--data", action="append", default=[], help="dataset for in-domain coverage (same split)")
    ap.add_argument("--photos", type=int, default=500, help="in-domain test photos per dataset (0: all)")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--out", default=None, help="write the JSON report here")
    ap.add_argument("--show", action="store_true", help="print every answer")
    ap.add_argument("--replay", type=Path, default=None,
                    help="a report of this script: decide again from its stored evidence with today's policy and "
                         "wording (no model; no in-domain coverage)")
    args = ap.parse_args()
    items = [m for m in json.loads(args.kinds.read_text()) if m["split"] == args.split]
    if args.replay:
        return replay(args, items)

    describer = Describer.load(args.checkpoint, device="cpu")
    timer = Timed(describer)
    rows = []
    for item in items:
        try:
            im = read_image_file(item["file"])
        except ImageError as e:
            print(f"skipped {item['id']}: {e}", file=sys.stderr)
            continue
        timer.last = 0.0
        t0 = time.perf_counter()
        ev = describer.evidence([im])[0]
        r = describer.decide(ev)
        rows.append({"id": item["id"], "kind": item["kind"], "alt": r["alt"], "predicted": r["kind"],
                     "kind_probs": ev.kind_probs, "ood": ev.ood, "confidence": r["confidence"],
                     "evidence": ev.to_dict(),  # to replay other thresholds without the model
                     "reason": r["reason"], "text": r["text"], "ocr": r["ocr"], "ocr_ms": round(1000 * timer.last, 1),
                     "ms": round(1000 * (time.perf_counter() - t0), 1), **judge(item, r)})
        if args.show:
            print(f"{item['id']:40} {item['kind']:12} -> {r['kind']:12} {rows[-1]['verdict']:9} {r['alt']!r}")

    coverage = {}
    for d in args.data:
        test = load_split(d, args.split)
        if args.photos:
            test = test[:args.photos]
        ims = [read_image_file(str(i.path)) for i in test]
        t0 = time.perf_counter()
        results = describer.describe(ims)
        elapsed = time.perf_counter() - t0
        coverage[Path(d).name] = {
            "n": len(results), "alt": round(sum(r["alt"] is not None for r in results) / len(results), 3),
            "caption_spoken": round(sum(r["kind"] == "photo" and r["alt"] is not None for r in results) / len(results), 3),
            "kinds": {k: sum(r["kind"] == k for r in results) for k in {r["kind"] for r in results}},
            "reasons": {k: sum(r["reason"] == k for r in results) for k in {r["reason"] for r in results} if k},
            "ocr_share": round(sum(r["ocr"] == "read" for r in results) / len(results), 3),
            "ms_per_image": round(1000 * elapsed / len(results), 1)}
    summarise(args, describer.namespace, rows, coverage)


def replay(args, items: list[dict]) -> None:
    """The stored evidence of an earlier report, decided again: for thresholds and rules, in seconds."""
    old = json.loads(args.replay.read_text())
    if old.get("split") != args.split:
        raise SystemExit(f"{args.replay} is a report on the {old.get('split')} split, not {args.split}")
    by_id = {m["id"]: m for m in items}
    rows = []
    for row in old["rows"]:
        ev = Evidence.from_dict(row["evidence"])
        r = result(ev, Policy(), Wording())
        rows.append({**row, "alt": r["alt"], "predicted": r["kind"], "reason": r["reason"], "text": r["text"],
                     **judge(by_id[row["id"]], r)})
        if args.show:
            print(f"{row['id']:40} {row['kind']:12} -> {r['kind']:12} {rows[-1]['verdict']:9} {r['alt']!r}")
    summarise(args, old["pipeline"] + " (replayed)", rows, {})


def summarise(args, pipeline: str, rows: list[dict], coverage: dict) -> None:
    by_kind = defaultdict(list)
    for row in rows:
        by_kind[row["kind"]].append(row)
    table = {}
    for kind, rs in sorted(by_kind.items()):
        n = len(rs)
        table[kind] = {"n": n, **{v: round(sum(r["verdict"] == v for r in rs) / n, 3)
                                  for v in ("truthful", "false", "withheld")},
                       "photo_caption": round(sum(r["caption_spoken"] for r in rs) / n, 3),
                       "ocr_share": round(sum(r["ocr"] == "read" for r in rs) / n, 3),
                       "ocr_ms_mean": round(sum(r["ocr_ms"] for r in rs) / n, 1),
                       "ms_mean": round(sum(r["ms"] for r in rs) / n, 1)}
    nonphoto = [r for r in rows if r["kind"] != "photo"]
    photos = [r for r in rows if r["kind"] == "photo"]
    summary = {
        "nonphoto_n": len(nonphoto),
        "nonphoto_without_photo_caption": round(1 - sum(r["caption_spoken"] for r in nonphoto) / max(len(nonphoto), 1), 3),
        "nonphoto_named_correctly": round(sum(r["verdict"] == "truthful" for r in nonphoto) / max(len(nonphoto), 1), 3),
        "nonphoto_false": round(sum(r["verdict"] == "false" for r in nonphoto) / max(len(nonphoto), 1), 3),
        "nonphoto_named_with_content": round(sum(r.get("with_content", False) for r in nonphoto)
                                             / max(len(nonphoto), 1), 3),
        "meanings_said": sum(bool(r.get("meaning_said")) for r in nonphoto),
        "meanings_false": sum(bool(r.get("meaning_said")) and r["verdict"] == "false" for r in nonphoto),
        "chart_types_judged": sum(r.get("chart_type_right") is not None for r in nonphoto),
        "chart_types_right": sum(bool(r.get("chart_type_right")) for r in nonphoto),
        "ood_photo_n": len(photos),
        "ood_photo_false": round(sum(r["verdict"] == "false" for r in photos) / max(len(photos), 1), 3),
        "ood_photo_truthful": round(sum(r["verdict"] == "truthful" for r in photos) / max(len(photos), 1), 3),
        "concepts_said": sum(r["concept_said"] for r in rows),
        "concepts_truthful": sum(r["concept_said"] and r["verdict"] == "truthful" for r in rows),
    }

    report = {"split": args.split, "pipeline": pipeline, "summary": summary, "by_kind": table,
              "in_domain_coverage": coverage, "rows": rows}
    print(f"\n{'kind':14}{'n':>5}{'truthful':>10}{'false':>8}{'withheld':>10}{'photo cap':>10}{'OCR %':>7}{'OCR ms':>8}")
    for kind, t in table.items():
        print(f"{kind:14}{t['n']:>5}{t['truthful']:>10.0%}{t['false']:>8.0%}{t['withheld']:>10.0%}"
              f"{t['photo_caption']:>10.0%}{t['ocr_share']:>7.0%}{t['ocr_ms_mean']:>8.0f}")
    print(json.dumps(summary, indent=2))
    for name, c in coverage.items():
        print(f"in-domain {name} {args.split}: {c['alt']:.0%} get an alt ({c['caption_spoken']:.0%} a caption) of {c['n']}, "
              f"{c['ms_per_image']} ms/image; kinds {c['kinds']}; withheld {c['reasons']}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
