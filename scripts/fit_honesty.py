"""Fit the describe pipeline's heads for one captioner checkpoint and store them beside it.

    python scripts/fit_honesty.py --data ../shared/data/flickr8k --data ../shared/data/coco \
        --kinds ~/.cache/alt-text/honesty/manifest.json

Data, and what each part is fitted on (test sets are never read):

* out-of-domain reference: pooled encoder features of ``--refs`` images from the datasets' *train* splits (and the
  PCA the kind classifier sees); the threshold keeps ``--ood-keep`` of the *dev* photos in domain;
* kind classifier: the kinds manifest's *train* split (real screenshots, charts, icons, ... gathered by
  ``scripts/gather_honesty_set.py``) plus in-domain photos from the *train* splits (none of them a reference
  image), checked on the manifest's *dev* split and the dev photos; the principal directions of the tapped
  blocks' mean maps (``--kind-taps``) come from the same images;
* calibration: the *dev* photos, labelled acceptable when the caption's per-image CIDEr-D against its references
  reaches ``--acceptable-cider``; AUROC and a reliability table come from two-fold cross-fitting on dev.

Writes ``<checkpoint>.honesty.safetensors`` (``--out``) and a JSON report (``--report``), and prints a summary.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model import Captioner, default_checkpoint_path  # noqa: E402
from model.checkpoint import file_digest  # noqa: E402
from model.datasets import load_split  # noqa: E402
from server.describe import KINDS, PIPELINE_VERSION, Describer, HeadsError, heads_path  # noqa: E402
from server.describe.concepts import agreement, cue_masses, top_concepts  # noqa: E402
from server.describe.heads import (  # noqa: E402
    CALIBRATION_FEATURES,
    CUE_FEATURES,
    NAMED_HEADS,
    PIXEL_FEATURES,
    Heads,
    Linear,
    calibration_features,
    kind_features,
)
from server.describe.pixels import PixelStats  # noqa: E402
from server.describe.decision import Policy, kind_group  # noqa: E402
from server.describe.meaning_head import on_directions, principal_directions  # noqa: E402
from server.netsafe.images import ImageError, read_image_file  # noqa: E402
from fit_meanings import parse_taps  # noqa: E402  (beside this script)

log = logging.getLogger("fit_honesty")


def kept_named_heads(path: Path, checkpoint_digest: str) -> dict:
    """The meaning and chart-type heads already fitted for this checkpoint (scripts/fit_meanings.py), by name, kept
    when the other heads are refitted; {} when there are none, or they were fitted for another checkpoint."""
    if not path.is_file():
        return {}
    try:
        old = Heads.load(path, checkpoint_digest=checkpoint_digest)
    except HeadsError:
        return {}
    return {name: getattr(old, name) for name in NAMED_HEADS if getattr(old, name) is not None}


# -- raw evidence per image, cached on disk (the encoder pass is the slow part) ------------------------------------

def captioner_only(checkpoint: Path, taps: tuple[int, ...] = ()) -> Describer:
    """The checkpoint's model stage without heads: heads already beside it (fitted for an earlier checkpoint, which
    the describe pipeline refuses to load) are what this script replaces. ``taps``: the blocks whose mean maps
    each ModelOutput keeps."""
    return Describer(Captioner.load(checkpoint, device="cpu"), taps=taps)


class Extractor:
    def __init__(self, describer: Describer, cache_dir: Path):
        self.d = describer
        self.cache_dir = cache_dir
        cache_dir.mkdir(parents=True, exist_ok=True)

    def _file(self, paths: list[str], tag: str) -> Path:
        taps = ",".join(map(str, self.d.taps))
        key = hashlib.sha1("\n".join([self.d.captioner.version, PIPELINE_VERSION, f"taps{taps}", tag, *paths]).encode()
                           ).hexdigest()[:16]
        return self.cache_dir / f"{tag}-{key}.npz"

    def run(self, paths: list[str], tag: str, batch: int = 16) -> dict:
        """pooled [N,C], probs [N,1000], tap<block> [N,c] (the describer's taps), pixels (list of dicts), caption,
        words, raw (per image); unreadable files are dropped (``kept`` lists the paths that remain)."""
        f = self._file(paths, tag)
        arrays = ["pooled", "probs", *(f"tap{b}" for b in self.d.taps)]
        if f.is_file():
            z = np.load(f, allow_pickle=False)
            meta = json.loads(str(z["meta"]))
            return {**{k: z[k] for k in arrays}, **meta}
        pooled, probs, pixels, captions, words, raw, kept = [], [], [], [], [], [], []
        taps = [[] for _ in self.d.taps]
        t0 = time.time()
        for i in range(0, len(paths), batch):
            ims, ok = [], []
            for p in paths[i:i + batch]:
                try:
                    ims.append(read_image_file(p))
                    ok.append(p)
                except ImageError as e:
                    log.warning("%s: skipped (%s)", p, e)
            if not ims:
                continue
            for p, im, out in zip(ok, ims, self.d.run_model(ims)):
                pooled.append(out.pooled.astype(np.float32))
                for rows, m in zip(taps, out.taps):
                    rows.append(m.astype(np.float32))
                probs.append(out.probs.numpy() if out.probs is not None else np.zeros(1000, np.float32))
                pixels.append(self.d.look(im).to_dict())
                captions.append(out.caption), words.append(out.words), raw.append(out.raw_confidence)
                kept.append(p)
            if (i // batch) % 20 == 0:
                log.info("%s: %d/%d images (%.0f s)", tag, i + len(ims), len(paths), time.time() - t0)
        meta = {"pixels": pixels, "caption": captions, "words": words, "raw": raw, "kept": kept}
        stacked = dict(zip(arrays, [np.stack(a) for a in (pooled, probs, *taps)]))
        np.savez(f, **stacked, meta=json.dumps(meta))
        return {**stacked, **meta}


# -- fitting ---------------------------------------------------------------------------------------------------------

def fit_linear(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float, class_weight: bool = True,
               monotone: int | None = None, steps: int = 300) -> Linear:
    """(Multinomial) logistic regression by L-BFGS on standardised features; ``n_classes == 1`` is binary.
    ``monotone``: index of a feature whose weight is kept >= 0."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    xs = torch.tensor((x - mean) / std, dtype=torch.float64)
    yt = torch.tensor(y)
    k = max(n_classes, 1)
    w = torch.zeros(k, x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    if n_classes == 1:
        pos = float(y.mean())
        weights = torch.where(yt > 0, 0.5 / max(pos, 1e-6), 0.5 / max(1 - pos, 1e-6)) if class_weight else None
    else:
        counts = np.bincount(y, minlength=k).astype(float)
        cw = torch.tensor(len(y) / (k * np.maximum(counts, 1)))
        weights = cw[yt] if class_weight else None

    def weight_matrix():
        if monotone is None:
            return w
        col = torch.nn.functional.softplus(w[:, monotone:monotone + 1])
        return torch.cat([w[:, :monotone], col, w[:, monotone + 1:]], 1)

    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        z = xs @ weight_matrix().T + b
        if n_classes == 1:
            losses = torch.nn.functional.binary_cross_entropy_with_logits(z[:, 0], yt.double(), reduction="none")
        else:
            losses = torch.nn.functional.cross_entropy(z, yt.long(), reduction="none")
        loss = (losses * weights).mean() if weights is not None else losses.mean()
        loss = loss + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return Linear(weight_matrix().numpy().astype(np.float32), b.numpy().astype(np.float32),
                      mean.astype(np.float32), std.astype(np.float32))


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    pos = labels.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if not n_pos or not n_neg:
        return float("nan")
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def reliability(p: np.ndarray, y: np.ndarray, bins=(0, 0.2, 0.4, 0.6, 0.8, 1.0001)) -> list[dict]:
    rows = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        m = (p >= lo) & (p < hi)
        if m.any():
            rows.append({"bin": f"{lo:.1f}-{min(hi, 1):.1f}", "n": int(m.sum()),
                         "mean_predicted": round(float(p[m].mean()), 3), "observed": round(float(y[m].mean()), 3)})
    return rows


def per_image_cider(refs: list[list[str]], hyps: list[str]) -> np.ndarray:
    from pycocoevalcap.cider.cider import Cider

    from model.vocab import tokenize

    gts = {i: [" ".join(tokenize(r)) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [" ".join(tokenize(h))] for i, h in enumerate(hyps)}
    _, scores = Cider().compute_score(gts, res)
    return np.asarray(scores, dtype=np.float64)


def kind_cv(base: np.ndarray, taps: list[np.ndarray], y: np.ndarray, packages: np.ndarray, unusual: np.ndarray,
            args, folds: int = 5) -> dict:
    """The kind classifier fitted as ``main`` fits it, on the packages of four folds, and judged on the fifth's
    (whole packages held out, so a figure says how it does on software it never saw): how often it names a
    non-photo's kind wrongly or rightly by the decision's rule (``Policy.kind_min``, icon and logo together), and
    how often it names an unusual photo (a coin, the moon) as something else. The tapped blocks' directions are
    fitted on the four folds too. ``base``: the features without taps; ``taps``: the blocks' mean maps."""
    policy = Policy()
    order = np.unique(packages)
    np.random.default_rng(args.seed).shuffle(order)
    probs = np.zeros((len(y), len(KINDS)))
    for held in np.array_split(order, folds):
        test = np.isin(packages, held)
        directions = [principal_directions(torch.from_numpy(t[~test]), args.kind_tap_pca) for t in taps]

        def features(rows):
            tapped = [on_directions(t[rows], d).numpy() for t, d in zip(taps, directions)]
            return np.concatenate([base[rows], *tapped], 1)

        lin = fit_linear(features(~test), y[~test], len(KINDS), l2=args.kind_l2)
        probs[test] = torch.softmax(torch.from_numpy(lin(features(test))), -1).numpy()
    groups = [[KINDS.index(k) for k in kind_group(KINDS[b], policy)] for b in probs[:, 1:].argmax(1) + 1]
    p_best = np.array([row[g].sum() for row, g in zip(probs, groups)])
    named = (p_best >= policy.kind_min) & (p_best > probs[:, 0])
    right = np.array([t in g for t, g in zip(y, groups)])
    nonphoto = y > 0
    return {"folds": folds, "packages": int(len(order)), "nonphotos": int(nonphoto.sum()),
            "unusual_photos": int(unusual.sum()), "kind_min": policy.kind_min,
            "nonphoto_named_right": round(float((named & right)[nonphoto].mean()), 3),
            "nonphoto_named_wrong": round(float((named & ~right)[nonphoto].mean()), 3),
            "nonphoto_likeliest_right": round(float(right[nonphoto].mean()), 3),
            "unusual_photos_named_a_kind": round(float(named[unusual].mean()), 3),
            "unusual_photos_likeliest_photo": round(float((probs.argmax(1) == 0)[unusual].mean()), 3),
            "train_photos_likeliest_photo": round(float((probs.argmax(1) == 0)[~nonphoto & ~unusual].mean()), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--data", action="append", required=True, help="dataset directory (repeatable)")
    ap.add_argument("--kinds", required=True, type=Path, help="manifest.json of gather_honesty_set.py")
    ap.add_argument("--out", default=None, help="heads file (default: beside the checkpoint)")
    ap.add_argument("--report", default="honesty_fit.json")
    ap.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache/alt-text/honesty-fit")
    ap.add_argument("--refs", type=int, default=1000, help="reference images from the train splits")
    ap.add_argument("--kind-photos", type=int, default=600, help="train photos for the kind classifier")
    ap.add_argument("--dev-photos", type=int, default=1200, help="dev photos (calibration, thresholds)")
    ap.add_argument("--kind-pca", type=int, default=32, help="PCA dimensions of the features the kind classifier sees")
    ap.add_argument("--kind-l2", type=float, default=0.01,
                    help="L2 penalty of the kind classifier (chosen by the grouped cross-validation in the report)")
    ap.add_argument("--kind-taps", default="10,14,15",
                    help="encoder blocks (comma-separated) whose mean maps the kind classifier reads too, or 'none' "
                         "(EfficientNet-Lite encoders only)")
    ap.add_argument("--kind-tap-pca", type=int, default=128, help="principal directions of each tapped block's mean")
    ap.add_argument("--ood-keep", type=float, default=0.97, help="share of dev photos kept in domain")
    ap.add_argument("--acceptable-cider", type=float, default=0.5)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    try:
        args.kind_taps = parse_taps(args.kind_taps)
    except ValueError as e:
        ap.error(f"--kind-taps: {e}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    ckpt = Path(args.checkpoint) if args.checkpoint else default_checkpoint_path()
    describer = captioner_only(ckpt, args.kind_taps)
    if args.kind_taps:
        try:
            describer.captioner.encode_and_pool([Image.new("RGB", (8, 8))], taps=args.kind_taps)
        except ValueError as e:  # a block the encoder has not, an encoder without blocks to tap
            ap.error(f"--kind-taps: {e}")
    ex = Extractor(describer, args.cache_dir)

    # --- images ---
    train_items, dev_items = [], []
    for d in args.data:
        train_items += load_split(d, "train")
        dev_items += load_split(d, "dev")
    rng.shuffle(train_items)
    rng.shuffle(dev_items)
    ref_items = train_items[:args.refs]
    kind_photo_items = train_items[args.refs:args.refs + args.kind_photos]
    dev_items = dev_items[:args.dev_photos]
    manifest = json.loads(args.kinds.read_text())
    kind_train = [m for m in manifest if m["split"] == "train" and Path(m["file"]).is_file()]
    kind_dev = [m for m in manifest if m["split"] == "dev" and Path(m["file"]).is_file()]
    log.info("refs %d, kind train %d + %d photos, kind dev %d + dev photos %d", len(ref_items), len(kind_train),
             len(kind_photo_items), len(kind_dev), len(dev_items))

    refs = ex.run([str(i.path) for i in ref_items], "refs")
    kphotos = ex.run([str(i.path) for i in kind_photo_items], "kind-photos")
    dev = ex.run([str(i.path) for i in dev_items], "dev-photos")
    ktrain = ex.run([m["file"] for m in kind_train], "kinds-train")
    kdev = ex.run([m["file"] for m in kind_dev], "kinds-dev")

    # --- out of domain ---
    x = refs["pooled"] / np.linalg.norm(refs["pooled"], axis=1, keepdims=True)
    pca_mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - pca_mean, full_matrices=False)
    pca = vt[:args.kind_pca].astype(np.float32)
    reference = x.astype(np.float32)
    dummy = Linear(np.zeros((1, 1), np.float32), np.zeros(1, np.float32), np.zeros(1, np.float32),
                   np.ones(1, np.float32))
    heads = Heads(pca_mean.astype(np.float32), pca, reference, dummy, dummy,
                  {"k": args.k, "kinds": list(KINDS), "n_pca": args.kind_pca})
    ood_dev = heads.ood(dev["pooled"])
    ood_threshold = float(np.quantile(ood_dev, args.ood_keep))
    heads.meta["ood_threshold"] = round(ood_threshold, 4)

    # --- kind ---
    fitted_on = {b: np.concatenate([ktrain[f"tap{b}"], kphotos[f"tap{b}"]]) for b in args.kind_taps}
    heads.kind_taps = [(b, principal_directions(torch.from_numpy(fitted_on[b]), args.kind_tap_pca))
                       for b in args.kind_taps]

    def kfeats(batch: dict, taps: bool = True) -> np.ndarray:
        rows = []
        oods = heads.ood(batch["pooled"])
        proj = heads.project(batch["pooled"])
        tapped = heads.project_taps([batch[f"tap{b}"] for b in args.kind_taps]) if args.kind_taps and taps else None
        for i in range(len(batch["kept"])):
            p = torch.from_numpy(batch["probs"][i])
            entropy = float(-(p * p.clamp_min(1e-12).log()).sum())
            rows.append(kind_features(PixelStats.from_dict(batch["pixels"][i]), cue_masses(p), float(p.max()),
                                      entropy, float(oods[i]), proj[i], args.kind_pca,
                                      None if tapped is None else tapped[i]))
        return np.stack(rows)

    kind_index = {k: i for i, k in enumerate(KINDS)}
    by_file = {m["file"]: m["kind"] for m in manifest}
    by_source = {m["file"]: m["source"]["package"] for m in manifest}
    xk = np.concatenate([kfeats(ktrain), kfeats(kphotos)])
    yk = np.array([kind_index[by_file[f]] for f in ktrain["kept"]] + [0] * len(kphotos["kept"]))
    heads.kind = fit_linear(xk, yk, len(KINDS), l2=args.kind_l2)
    packages = [by_source[f] for f in ktrain["kept"]] + [f"train photos {i % 5}" for i in range(len(kphotos["kept"]))]
    unusual = np.array([by_file[f] == "photo" for f in ktrain["kept"]] + [False] * len(kphotos["kept"]))
    cv_report = kind_cv(np.concatenate([kfeats(ktrain, taps=False), kfeats(kphotos, taps=False)]),
                        [fitted_on[b] for b in args.kind_taps],
                        yk, np.array(packages), unusual, args)
    xdev = np.concatenate([kfeats(kdev), kfeats(dev)])
    ydev = np.array([kind_index[by_file[f]] for f in kdev["kept"]] + [0] * len(dev["kept"]))
    pdev = heads.kind_probs(xdev)
    confusion = np.zeros((len(KINDS), len(KINDS)), int)
    for t, p in zip(ydev, pdev.argmax(1)):
        confusion[t, p] += 1
    nonphoto = ydev > 0
    ood_kdev = heads.ood(kdev["pooled"])
    dev_kinds = np.array([by_file[f] for f in kdev["kept"]])
    ood_report = {"threshold": heads.meta["ood_threshold"], "dev_photos_flagged": round(float((ood_dev > ood_threshold).mean()), 3)}
    for name, mask in (("ood_photos", dev_kinds == "photo"), ("nonphotos", dev_kinds != "photo")):
        if mask.any():
            scores, labels = np.r_[ood_dev, ood_kdev[mask]], np.r_[np.zeros(len(ood_dev)), np.ones(int(mask.sum()))]
            ood_report[f"auroc_{name}_vs_dev_photos"] = round(auroc(scores, labels), 3)
            ood_report[f"{name}_flagged"] = round(float((ood_kdev[mask] > ood_threshold).mean()), 3)
    # --- familiar kind: the kind-train non-photos, and how far each was from the other packages' examples ---
    xt = ktrain["pooled"] / np.linalg.norm(ktrain["pooled"], axis=1, keepdims=True)
    yt = np.array([kind_index[by_file[f]] for f in ktrain["kept"]])
    package = np.array([by_source[f] for f in ktrain["kept"]])
    keep = yt > 0
    heads.kind_reference, heads.kind_reference_kind = xt[keep].astype(np.float32), yt[keep]
    heads.__post_init__()
    novelty_max, novelty_q = {}, {}
    for i, kind in enumerate(KINDS[1:], start=1):
        loo = []
        for j in np.flatnonzero(yt == i):
            others = xt[(yt == i) & (package != package[j])]
            if len(others):
                sims = np.sort(others @ xt[j])[::-1][:args.k]
                loo.append(1.0 - float(sims.mean()))
        if loo:
            novelty_max[kind] = round(max(loo), 4)
            novelty_q[kind] = [round(float(q), 3) for q in np.quantile(loo, [0.5, 0.9, 0.99])]
    heads.meta["kind_novelty_max"] = novelty_max
    dev_nov = heads.kind_novelty(np.concatenate([kdev["pooled"], dev["pooled"]]))
    best = pdev[:, 1:].argmax(1) + 1
    named = (pdev[np.arange(len(best)), best] >= 0.7) & (pdev[np.arange(len(best)), best] > pdev[:, 0])
    unfamiliar = np.array([dev_nov[KINDS[b]][n] > novelty_max.get(KINDS[b], np.inf) for n, b in enumerate(best)])
    familiar_report = {
        "kind_novelty_max": novelty_max, "leave_one_package_out_q50_q90_q99": novelty_q,
        "dev_named_kind_unfamiliar": {"right": int((named & unfamiliar & (best == ydev)).sum()),
                                      "wrong": int((named & unfamiliar & (best != ydev)).sum()),
                                      "named": int(named.sum())},
    }

    kind_report = {
        "accuracy_dev": round(float((pdev.argmax(1) == ydev).mean()), 3),
        "nonphoto_called_photo_dev": round(float((pdev[nonphoto, 0] >= 0.6).mean()), 3) if nonphoto.any() else None,
        "dev_photos_called_photo": round(float((pdev[~nonphoto, 0] >= 0.6).mean()), 3),
        "confusion_dev": {KINDS[i]: {KINDS[j]: int(confusion[i, j]) for j in range(len(KINDS)) if confusion[i, j]}
                          for i in range(len(KINDS)) if confusion[i].any()},
    }

    # --- calibration on dev photos ---
    refs_by_path = {str(i.path): i.captions for i in dev_items}
    cider = per_image_cider([refs_by_path[p] for p in dev["kept"]], dev["caption"])
    y = (cider >= args.acceptable_cider).astype(np.float64)
    p_photo = pdev[len(kdev["kept"]):, 0]
    xc = []
    for i in range(len(dev["kept"])):
        probs = torch.from_numpy(dev["probs"][i])
        concepts = top_concepts(probs)
        xc.append(calibration_features(dev["raw"][i], len(dev["words"][i].split()),
                                       agreement(concepts, dev["words"][i]), float(probs.max()),
                                       float(ood_dev[i]), float(p_photo[i])))
    xc = np.stack(xc)
    folds = np.arange(len(y)) % 2
    cross = np.zeros(len(y))
    for f in (0, 1):
        lin = fit_linear(xc[folds != f], y[folds != f], 1, l2=1e-3, class_weight=False, monotone=0)
        cross[folds == f] = 1 / (1 + np.exp(-lin(xc[folds == f])[:, 0]))
    heads.calibration = fit_linear(xc, y, 1, l2=1e-3, class_weight=False, monotone=0)
    raw = np.asarray(dev["raw"])
    calib_report = {
        "acceptable_cider": args.acceptable_cider, "dev_images": int(len(y)), "acceptable_share": round(float(y.mean()), 3),
        "auroc_calibrated_crossfit": round(auroc(cross, y), 3), "auroc_raw_confidence": round(auroc(raw, y), 3),
        "reliability_crossfit": reliability(cross, y), "reliability_raw": reliability(raw, y),
        "calibrated_quantiles": {q: round(float(np.quantile(cross, float(q))), 3) for q in
                                 ("0.05", "0.08", "0.1", "0.25", "0.5")},
        "weights": dict(zip(CALIBRATION_FEATURES, heads.calibration.weight[0].round(3).tolist())),
    }

    heads.meta.update({
        "checkpoint": file_digest(ckpt), "kind_features": list(PIXEL_FEATURES + CUE_FEATURES) + ["ood"],
        "calibration_features": list(CALIBRATION_FEATURES),
        "fit": {"kind_taps": list(args.kind_taps), "kind_tap_pca": args.kind_tap_pca, "refs": len(refs["kept"]),
                "kind_train": len(ktrain["kept"]), "kind_train_photos": len(kphotos["kept"]),
                "ood_keep": args.ood_keep, "ood_dev_quantiles": [round(float(q), 3) for q in
                                                                np.quantile(ood_dev, [0.5, 0.9, 0.95, 0.99])]},
    })
    out = Path(args.out) if args.out else heads_path(ckpt)
    for name, head in kept_named_heads(heads_path(ckpt), file_digest(ckpt)).items():
        setattr(heads, name, head)
    heads.save(out)
    report = {"heads": str(out), "ood_threshold": heads.meta["ood_threshold"], "ood": ood_report, "kind": kind_report,
              "kind_grouped_cv": cv_report,
              "familiar_kind": familiar_report,
              "calibration": calib_report, "fit": heads.meta["fit"]}
    Path(args.report).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
