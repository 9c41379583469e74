"""Readers for the caption datasets people actually have on disk.

Four formats: the Flickr8k token file (``name.jpg#n<TAB>caption``), the Kaggle-style ``captions.txt`` CSV, COCO
captions JSON and Karpathy's ``dataset_*.json``. Copies of these datasets are often incomplete or hand-edited, so
a malformed line is reported with its file and line number and skipped, and an image listed but missing on disk is
skipped and counted, instead of stopping a training run an hour in.
"""
from __future__ import annotations

import csv
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
# A final held-out test set (e.g. ../shared/data/coco_holdout): evaluated, never trained, selected or tuned on.
HOLDOUT = "holdout"
_IMAGE_DIRS = ("images", "Images", "Flicker8k_Dataset", "Flickr8k_Dataset")


class DatasetError(ValueError):
    """A dataset directory or file that cannot be used at all (as opposed to a few bad lines)."""


@dataclass(frozen=True)
class CaptionedImage:
    path: Path  # absolute path of the image file
    captions: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path.name


def _malformed(path: Path, lineno: int, why: str) -> None:
    log.warning("%s:%d: skipped malformed line (%s)", path, lineno, why)


def read_flickr_tokens(path: str | Path) -> dict[str, list[str]]:
    """``Flickr8k.token.txt``: one ``NAME.jpg#N<TAB>caption`` per line."""
    path = Path(path)
    captions: dict[str, list[str]] = defaultdict(list)
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n\r")
            if not line.strip():
                continue
            key, tab, caption = line.partition("\t")
            name, hash_, index = key.rpartition("#")
            if not tab or not hash_ or not index.isdigit() or not name or not caption.strip():
                _malformed(path, lineno, "expected NAME#N<TAB>caption")
                continue
            captions[name].append(caption.strip())
    return dict(captions)


def read_captions_csv(path: str | Path) -> dict[str, list[str]]:
    """Kaggle-style ``captions.txt``: a CSV with the header ``image,caption``."""
    path = Path(path)
    captions: dict[str, list[str]] = defaultdict(list)
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header[:2]] != ["image", "caption"]:
            raise DatasetError(f"{path}:1: expected the header 'image,caption', got {header!r}")
        for row in reader:
            lineno = reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue
            # An unquoted caption containing commas splits into extra cells: join them back.
            name, caption = row[0].strip(), ",".join(row[1:]).strip()
            if not name or not caption:
                _malformed(path, lineno, "expected image,caption")
                continue
            captions[name].append(caption)
    return dict(captions)


def _load_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetError(f"{path}: expected a JSON object with an 'images' list")
    return data


def read_coco_json(path: str | Path) -> dict[str, list[str]]:
    """COCO captions JSON (``images`` with ``id``/``file_name``, ``annotations`` with ``image_id``/``caption``)."""
    path = Path(path)
    data = _load_json(path)
    names = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
            _malformed(path, i + 1, f"images[{i}] needs 'id' and 'file_name'")
            continue
        names[img["id"]] = img["file_name"]
    captions: dict[str, list[str]] = defaultdict(list)
    for i, ann in enumerate(data.get("annotations", [])):
        ok = isinstance(ann, dict) and isinstance(ann.get("caption"), str) and ann.get("image_id") in names
        if not ok or not ann["caption"].strip():
            _malformed(path, i + 1, f"annotations[{i}] needs a known 'image_id' and a 'caption'")
            continue
        captions[names[ann["image_id"]]].append(ann["caption"].strip())
    return dict(captions)


def read_karpathy_json(path: str | Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Karpathy's ``dataset_{flickr8k,flickr30k,coco}.json``: captions and the split of each image.

    His split names map to ours: ``val`` is ``dev``, ``restval`` joins ``train``. Image names keep their
    ``filepath`` folder (COCO's ``val2014/...``) so they resolve under the dataset root.
    """
    path = Path(path)
    data = _load_json(path)
    captions: dict[str, list[str]] = {}
    splits: dict[str, list[str]] = {s: [] for s in SPLITS}
    split_names = {"train": "train", "restval": "train", "val": "dev", "test": "test"}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or not isinstance(img.get("filename"), str):
            _malformed(path, i + 1, f"images[{i}] needs a 'filename'")
            continue
        name = f"{img['filepath']}/{img['filename']}" if img.get("filepath") else img["filename"]
        sents = [s.get("raw", "").strip() for s in img.get("sentences", []) if isinstance(s, dict)]
        sents = [s for s in sents if s]
        if not sents:
            _malformed(path, i + 1, f"images[{i}] has no sentences")
            continue
        captions[name] = sents
        split = split_names.get(img.get("split", "train"))
        if split:
            splits[split].append(name)
    return captions, splits


def read_split(path: str | Path) -> list[str]:
    """A split file: one image name per line (blank lines and ``#`` comments ignored)."""
    with open(path, encoding="utf-8") as f:
        return [s for s in (line.strip() for line in f) if s and not s.startswith("#")]


def _image_dir(root: Path) -> Path:
    for d in _IMAGE_DIRS:
        if (root / d).is_dir():
            return root / d
    return root


def _flickr_split_file(root: Path, split: str) -> Path:
    return root / f"Flickr_8k.{split}Images.txt"


def detect_format(root: str | Path) -> str:
    """Which of the supported layouts a dataset directory has."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset directory")
    if (root / "Flickr8k.token.txt").is_file():
        return "flickr8k"
    if (root / "captions.json").is_file():
        return "coco"
    if list(root.glob("dataset_*.json")):
        return "karpathy"
    if (root / "captions.txt").is_file():
        return "captions-csv"
    raise DatasetError(
        f"{root}: unknown dataset layout; expected Flickr8k.token.txt, captions.json (+ train/dev/test.txt), "
        "dataset_*.json (Karpathy) or captions.txt (Kaggle CSV)"
    )


def read_manifest_split(path: str | Path, split: str) -> list[str]:
    """The file names of one split in a ``MANIFEST.tsv`` (a header with ``filename`` and ``split`` columns)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.DictReader(f, delimiter="\t")
        if not {"filename", "split"} <= set(rows.fieldnames or ()):
            raise DatasetError(f"{path}: expected a header with filename and split columns")
        return [r["filename"] for r in rows if r["split"] == split]


def load_split(root: str | Path, split: str) -> list[CaptionedImage]:
    """The images of one split (``train``, ``dev``, ``test``, or a COCO-layout ``holdout`` directory's own) of a
    dataset directory, with their captions."""
    if split not in (*SPLITS, HOLDOUT):
        raise DatasetError(f"unknown split {split!r}; expected one of {', '.join((*SPLITS, HOLDOUT))}")
    root = Path(root).resolve()
    fmt = detect_format(root)
    image_dir = _image_dir(root)
    if fmt == "karpathy":
        captions, splits = read_karpathy_json(sorted(root.glob("dataset_*.json"))[0])
        names = splits[split]
        if names and (root / names[0]).is_file():  # COCO's "val2014/..." names resolve under the root
            image_dir = root
    else:
        if fmt == "flickr8k":
            captions = read_flickr_tokens(root / "Flickr8k.token.txt")
        elif fmt == "coco":
            captions = read_coco_json(root / "captions.json")
        else:
            captions = read_captions_csv(root / "captions.txt")
        split_file = _flickr_split_file(root, split) if fmt in ("flickr8k", "captions-csv") else root / f"{split}.txt"
        if split_file.is_file():
            names = read_split(split_file)
        elif fmt == "coco" and split == HOLDOUT and (root / "MANIFEST.tsv").is_file():
            names = read_manifest_split(root / "MANIFEST.tsv", split)  # a holdout directory lists its images there
        else:
            raise DatasetError(f"{root}: split file {split_file.name} not found")
    return collect(names, captions, image_dir, source=str(root))


def collect(names: list[str], captions: dict[str, list[str]], image_dir: Path, source: str = "") -> list[CaptionedImage]:
    """Pair listed names with their captions and files; count what is missing instead of failing."""
    items, no_caption, no_file = [], 0, 0
    seen = set()
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        caps = captions.get(name)
        if not caps:
            no_caption += 1
            continue
        path = image_dir / name
        if not path.is_file():
            no_file += 1
            continue
        items.append(CaptionedImage(path, tuple(caps)))
    if no_caption or no_file:
        log.warning(
            "%s: skipped %d listed image(s) missing on disk and %d without captions (%d kept)",
            source or image_dir, no_file, no_caption, len(items),
        )
    return items
