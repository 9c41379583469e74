"""Fit the icon meaning head (meanings and brands) for a captioner checkpoint, validated on families held out.

    python scripts/gather_icon_set.py --out ~/.cache/alt-text/icons        # the rendered icons, once
    python scripts/fit_meanings.py --icons ~/.cache/alt-text/icons --view glyph --folds 12

The head reads the encoder's pooled features and a 3x3 summary of its grid (so that a left arrow differs from a
right one), of the image as the page shows it (``--view page``: chart types) or of its glyph view (``--view glyph``:
icon meanings, as shipped; ``server/describe/glyph.py``), for glyphs also the same summaries of the maps of three
blocks inside the encoder (``--taps``, from the same pass), and is a linear layer (meanings; ``--hidden N``: one
hidden layer, as for chart types) over the classes of
``server/describe/meanings.json`` that at least ``--min-families`` icon sets draw, plus "other" (icons that mean
nothing in the vocabulary, and meanings too few sets draw to be learned). It learns each icon twice: as its set draws
it, and redrawn in another style (``--styles``, scripts/glyph_styles.py: bolder, lighter, outlined or filled), so that
a new set's stroke weight or fill is less new to it; it is validated, and its thresholds chosen, on the held-out
families' icons as drawn.

Validation: for each family (one icon set or theme), a head fitted on all the other families predicts it (with
``--folds N``, on all the families outside its group of about 1/N of the icons: 63 families make 63 fits too many). The
threshold a meaning needs to be spoken is the lowest at which the pooled held-out predictions are wrong at most
``--max-wrong`` of the times they speak (a spoken meaning on an "other" icon counts as wrong); brands get a
threshold of their own, chosen the same way on the brand predictions. The figures per family left out are in the
report. The shipped head is then fitted on every family and stored in the checkpoint's
``.honesty.safetensors`` heads file beside the kind and calibration heads (``--heads``), so it is loaded and
checked with them.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model import Captioner, default_checkpoint_path  # noqa: E402
from server.describe.heads import Linear, heads_for, heads_path  # noqa: E402
from server.describe.meanings import OTHER, Vocabulary  # noqa: E402
from server.describe.glyph import SIZE as GLYPH_SIZE  # noqa: E402
from server.describe.glyph import glyph_view  # noqa: E402
from server.describe.meaning_head import MeaningHead, head_inputs  # noqa: E402
from server.netsafe.images import decode_image  # noqa: E402
from gather_icon_set import brand_names, icon_label  # noqa: E402  (beside this script: how the set labels icons)

log = logging.getLogger("fit_meanings")
GLYPH_TAPS = (10, 14, 15)  # EfficientNet-Lite0's blocks 10 (112 channels, 14x14), 14 (192, 7x7), 15 (320, 7x7)


def parse_taps(text: str) -> tuple[int, ...]:
    """A --taps value: encoder block numbers separated by commas, or 'none' (ValueError otherwise)."""
    if text == "none":
        return ()
    if not re.fullmatch(r"\d+(,\d+)*", text):
        raise ValueError(f"block numbers separated by commas (10,14,15) or 'none', not {text!r}")
    return tuple(int(b) for b in text.split(","))


def extract(icons: Path, checkpoint: Path, view: str = "page", batch: int = 32, taps: tuple[int, ...] = ()
            ) -> tuple[list[dict], np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """(manifest entries, pooled [N, C], grid summary [N, 9, C], per tapped encoder block its (mean [N, c], 3x3
    summary [N, 9, c])) of every rendered icon, as the page shows it or (``view`` "glyph") its glyph view, cached
    beside them (a file per block): icons rendered since (a family added) are the only ones encoded again."""
    entries = json.loads((icons / "manifest.json").read_text())["images"]
    files = [e["file"] for e in entries]
    prefix = "features-" if view == "page" else "features-glyph-"
    caches = [icons / f"{prefix}{checkpoint.stem}.npz",
              *(icons / f"{prefix}tap{b}-{checkpoint.stem}.npz" for b in taps)]
    old = [_read_cache(c) for c in caches]  # per cache: {file: row}, pooled, grid (or None)
    todo = [i for i, f in enumerate(files) if any(o is None or f not in o[0] for o in old)]
    new: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in caches]  # per cache, per batch: (pooled, grid)
    if todo:
        captioner = Captioner.load(checkpoint, device="cpu")
        t0 = time.time()
        for start in range(0, len(todo), batch):
            ims = [decode_image((icons / files[i]).read_bytes()) for i in todo[start:start + batch]]
            if view == "glyph":
                ims = [glyph_view(im, GLYPH_SIZE) for im in ims]
            p, g, tapped = head_inputs(captioner, ims, taps)
            for out, (mp, mg) in zip(new, [(p, g), *tapped]):
                out.append((mp.astype(np.float16), mg.astype(np.float16)))
            if start % (batch * 20) == 0:
                log.info("features %d/%d (%.0f s)", start, len(todo), time.time() - t0)
    done = set(todo)
    merged = []
    for cache, o, n in zip(caches, old, new):
        if o is not None and not todo and list(o[0]) == files:
            merged.append((o[1], o[2]))
            continue
        cached = [i for i in range(len(files)) if i not in done]
        parts = ([(cached, o[1][[o[0][files[i]] for i in cached]], o[2][[o[0][files[i]] for i in cached]])]
                 if cached else [])
        if todo:
            parts.append((todo, np.concatenate([p for p, _ in n]), np.concatenate([g for _, g in n])))
        pooled = np.empty((len(files), *parts[0][1].shape[1:]), np.float16)
        grid = np.empty((len(files), *parts[0][2].shape[1:]), np.float16)
        for rows, p, g in parts:
            pooled[rows], grid[rows] = p, g
        np.savez(cache, files=np.array(files), pooled=pooled, grid=grid)
        merged.append((pooled, grid))
    (pooled, grid), *tapped = [(p.astype(np.float32), g.astype(np.float32)) for p, g in merged]
    return entries, pooled, grid, tapped


def extract_styles(icons: Path, checkpoint: Path, files: list[str], batch: int = 32, taps: tuple[int, ...] = ()
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """(which of ``files`` were redrawn in another style, then their pooled, grid and tapped features as
    :func:`extract` gives them) of each icon's glyph view redrawn in one other style (scripts/glyph_styles.py:
    bolder, lighter, outlined or filled, the first that applies in an order fixed by the file's name), cached beside
    the icons like extract's (a file per block; a file's style "" and zeros where none applies)."""
    from glyph_styles import some_style  # beside this script; needs scipy (pip install .[icons])
    caches = [icons / f"features-glyph-styles-{checkpoint.stem}.npz",
              *(icons / f"features-glyph-styles-tap{b}-{checkpoint.stem}.npz" for b in taps)]
    old = [_read_styles(c) for c in caches]
    known = set.intersection(*(set(o[0]) for o in old)) if all(o is not None for o in old) else set()
    style = {f: old[0][0][f][0] for f in known}
    rows = {f: [(o[1][o[0][f][1]], o[2][o[0][f][1]]) for o in old] for f in known}  # per cache (pooled, grid)
    todo = [f for f in files if f not in known]
    if todo:
        captioner = Captioner.load(checkpoint, device="cpu")
        t0, pending = time.time(), []
        for n, f in enumerate(todo):
            style[f], view = some_style(glyph_view(decode_image((icons / f).read_bytes()), GLYPH_SIZE), f)
            if view is not None:
                pending.append((f, view))
            if len(pending) == batch or (n == len(todo) - 1 and pending):
                p, g, tapped = head_inputs(captioner, [v for _, v in pending], taps)
                for j, (name, _) in enumerate(pending):
                    rows[name] = [(a[j].astype(np.float16), b[j].astype(np.float16))
                                  for a, b in [(p, g), *tapped]]
                pending = []
            if n % 2000 == 0:
                log.info("styled features %d/%d (%.0f s)", n, len(todo), time.time() - t0)
        shapes = next(iter(rows.values()), None)  # None: no icon redrawn yet, nothing to cache the shape of
        done = list(style)
        for k, cache in enumerate(caches if shapes else ()):
            zero = (np.zeros_like(shapes[k][0]), np.zeros_like(shapes[k][1]))
            np.savez(cache, files=np.array(done), style=np.array([style[f] for f in done]),
                     pooled=np.stack([rows.get(f, [zero] * len(caches))[k][0] for f in done]).astype(np.float16),
                     grid=np.stack([rows.get(f, [zero] * len(caches))[k][1] for f in done]).astype(np.float16))
    which = np.array([i for i, f in enumerate(files) if style[f]], dtype=np.int64)
    if not len(which):
        return which, np.zeros((0, 1), np.float32), np.zeros((0, 9, 1), np.float32), []
    (pooled, grid), *tapped = [(np.stack([rows[files[i]][k][0] for i in which]).astype(np.float32),
                                np.stack([rows[files[i]][k][1] for i in which]).astype(np.float32))
                               for k in range(len(caches))]
    return which, pooled, grid, tapped


def _read_styles(path: Path) -> tuple[dict[str, tuple[str, int]], np.ndarray, np.ndarray] | None:
    """({file: (style, row)}, pooled, grid) of a styles cache; None when there is none."""
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        return ({str(f): (str(st), i) for i, (f, st) in enumerate(zip(z["files"], z["style"]))}, z["pooled"],
                z["grid"])


def _read_cache(path: Path) -> tuple[dict[str, int], np.ndarray, np.ndarray] | None:
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        return {f: i for i, f in enumerate(z["files"])}, z["pooled"], z["grid"]


def honesty_held_out(entries: list[dict], honesty_list: Path) -> list[dict]:
    """The entries, less every icon that the honesty set's dev or test split shows (the same package and icon name,
    in any size): the honesty figures are measured on images the heads never learned from."""
    if not honesty_list.exists():
        return entries
    held = {(m["source"]["package"], Path(m["source"]["path"]).stem.removesuffix("-symbolic"))
            for m in json.loads(honesty_list.read_text())["images"] if m["split"] in ("dev", "test")}
    packages = {p for p, _ in held}

    def package_of(e: dict) -> str:
        parts = Path(e["source"]).parts
        return parts[parts.index("pkgs") + 1] if "pkgs" in parts else ""

    kept = [e for e in entries if package_of(e) not in packages
            or (package_of(e), Path(e["source"]).stem.removesuffix("-symbolic")) not in held]
    log.info("left out %d icons that the honesty set's dev and test splits show", len(entries) - len(kept))
    return kept


def relabelled(entries: list[dict], icons: Path) -> list[dict]:
    """The icons labelled by ``meanings.json`` as it is now, from their file names: the set keeps the labels of the
    vocabulary it was gathered with, and a name added since (a synonym, a label corrected) must count without
    rendering the set again (which would change every file and its cached features)."""
    modules = icons / "npm" / "node_modules"
    if not (modules / "simple-icons").is_dir():
        return entries
    vocab, brands = Vocabulary.load(), brand_names(modules)
    out = [dict(e, label=icon_label(vocab, e["family"], e.get("set_style", ""), e["name"], brands) or OTHER)
           for e in entries]
    changed = sum(a["label"] != b["label"] for a, b in zip(entries, out))
    log.info("%d icons labelled otherwise by the vocabulary as it is now", changed)
    return out


def select(manifest: list[dict], args, without: set[str] = frozenset()
           ) -> tuple[list[dict], np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(entries learned from, their rows in the manifest, class index, family, classes): the honesty set's dev and
    test icons, "variant" icons and the families ``without`` left out, and at most 150 of a family's icons whose class
    is too rare ("other")."""
    vocab = Vocabulary.load()
    if args.task == "meaning":
        manifest = relabelled(manifest, args.icons)
    kept = {id(e) for e in honesty_held_out(manifest, args.honesty_list)}
    rows = [i for i, e in enumerate(manifest) if id(e) in kept and e["family"] not in without and not (
        args.task == "meaning" and e["label"] == OTHER and vocab.variant_of(e["name"]))]  # "battery-40": no class
    entries = [manifest[i] for i in rows]
    if args.task == "chart":  # a chart set's labels are types: "bar" -> "chart:bar"
        entries = [dict(e, label=e["label"] if ":" in e["label"] else "chart:" + e["label"]) for e in entries]
    classes = classes_of(entries, args.min_families if args.task == "meaning" else 2, args.min_brand_families)
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index.get(e["label"], 0) for e in entries])
    fam = np.array([e["family"] for e in entries])
    # simple-icons' brands that no other set draws are "other": keep a sample, not three thousand of them
    rng = np.random.default_rng(0)
    keep = np.ones(len(y), bool)
    for f in np.unique(fam):
        demoted = np.flatnonzero((fam == f) & (y == 0) & np.array([e["label"] != OTHER for e in entries]))
        if len(demoted) > 150:
            keep[rng.choice(demoted, len(demoted) - 150, replace=False)] = False
    return [e for e, k in zip(entries, keep) if k], np.array(rows)[keep], y[keep], fam[keep], classes


def classes_of(entries: list[dict], min_families: int, min_brand_families: int) -> list[str]:
    fams = defaultdict(set)
    for e in entries:
        fams[e["label"]].add(e["family"])
    keep = [k for k, f in fams.items() if k != OTHER and len(f) >= (
        min_brand_families if k.startswith("brand:") else min_families)]
    return [OTHER, *sorted(keep)]


def fit_linear(x: np.ndarray, y: np.ndarray, k: int, weight_decay: float, epochs: int, seed: int = 0) -> Linear:
    """Multinomial logistic regression on standardised features (full-batch L-BFGS)."""
    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0) + 1e-4
    xt = torch.as_tensor((x - mean) / std)
    yt = torch.as_tensor(y)
    counts = np.bincount(y, minlength=k).astype(np.float32)
    cw = torch.as_tensor(np.where(counts > 0, (counts.sum() / np.maximum(counts, 1) / k) ** 0.5, 0.0), dtype=torch.float32)
    w = torch.zeros(k, x.shape[1], requires_grad=True)
    b = torch.zeros(k, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=epochs, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w.T + b, yt, weight=cw) + weight_decay * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return Linear(w.detach().numpy(), b.detach().numpy(), mean.astype(np.float32), std.astype(np.float32))


def fit_mlp(x: np.ndarray, y: np.ndarray, k: int, hidden: int, epochs: int, seed: int = 0) -> tuple[Linear, Linear]:
    """One hidden layer (GELU), AdamW with a one-cycle schedule, label smoothing and dropout. Chart types use it; for
    icon meanings it ranked held-out icon sets no better than the linear head (see the model card)."""
    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0) + 1e-4
    xt, yt = torch.as_tensor((x - mean) / std, dtype=torch.float32), torch.as_tensor(y)
    first, last = torch.nn.Linear(x.shape[1], hidden), torch.nn.Linear(hidden, k)
    net = torch.nn.Sequential(torch.nn.Dropout(0.1), first, torch.nn.GELU(), torch.nn.Dropout(0.3), last)
    steps = epochs * ((len(xt) + 255) // 256)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps)
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 256):
            b = perm[i:i + 256]
            loss = torch.nn.functional.cross_entropy(net(xt[b]), yt[b], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    f = lambda t: t.detach().numpy().astype(np.float32)  # noqa: E731
    return (Linear(f(first.weight), f(first.bias), mean.astype(np.float32), std.astype(np.float32)),
            Linear(f(last.weight), f(last.bias), np.zeros(hidden, np.float32), np.ones(hidden, np.float32)))


def fit_head(x: np.ndarray, y: np.ndarray, k: int, args) -> tuple[Linear | None, Linear]:
    """(hidden layer or None, output layer)."""
    if args.hidden:
        return fit_mlp(x, y, k, args.hidden, args.epochs)
    return None, fit_linear(x, y, k, args.weight_decay, args.epochs)


def predict(hidden: Linear | None, out: Linear, x: np.ndarray) -> np.ndarray:
    if hidden is not None:
        x = torch.nn.functional.gelu(torch.as_tensor(hidden(x))).numpy()
    return torch.softmax(torch.as_tensor(out(x)), -1).numpy()


def spoken_stats(p: np.ndarray, y: np.ndarray, tau: float, brand_tau: float | None = None,
                 brand: np.ndarray | None = None) -> dict:
    """Coverage and errors at threshold ``tau`` (``brand_tau`` for the classes ``brand`` marks): a class is spoken
    when it is not "other" (0) and its probability reaches its threshold."""
    top, conf = p.argmax(1), p.max(1)
    need = np.full(len(top), tau) if brand_tau is None else np.where(brand[top], brand_tau, tau)
    spoken = (top != 0) & (conf >= need)
    named = y != 0
    wrong = spoken & (top != y)
    return {"icons": int(len(y)), "named_icons": int(named.sum()),
            "spoken_share_of_named": round(float((spoken & named).sum() / max(named.sum(), 1)), 4),
            "right_share_of_named": round(float((spoken & (top == y) & named).sum() / max(named.sum(), 1)), 4),
            "spoken": int(spoken.sum()), "wrong_when_spoken": round(float(wrong.sum() / max(spoken.sum(), 1)), 4),
            "spoken_on_other": int((spoken & ~named).sum())}


def reliability(p: np.ndarray, y: np.ndarray, edges=(0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0001)) -> list[dict]:
    """How often the likeliest class is right, by its probability: the calibration a threshold is chosen on."""
    top, conf = p.argmax(1), p.max(1)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        b = (conf >= lo) & (conf < hi)
        rows.append({"p": f"{lo:.2f}-{min(hi, 1):.2f}", "n": int(b.sum()),
                     "right": round(float((top == y)[b].mean()), 4) if b.any() else None})
    return rows


def choose_threshold(p: np.ndarray, y: np.ndarray, max_wrong: float, said: np.ndarray | None = None) -> float:
    """The lowest threshold at which the classes in ``said`` (a mask over classes; all by default), when they are the
    prediction, are wrong at most ``max_wrong`` of the time."""
    top, conf = p.argmax(1), p.max(1)
    said = np.ones(p.shape[1], bool) if said is None else said
    for tau in np.arange(0.10, 0.995, 0.01):
        spoken = (top != 0) & (conf >= tau) & said[top]
        if (spoken & (top != y)).sum() <= max_wrong * max(spoken.sum(), 1):
            return round(float(tau), 2)
    return 0.99


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--icons", type=Path, default=Path.home() / ".cache" / "alt-text" / "icons")
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--heads", type=Path, default=None, help="heads file to add the head to (default: beside the "
                                                             "checkpoint)")
    ap.add_argument("--task", choices=("meaning", "chart"), default="meaning",
                    help="meaning: icons from gather_icon_set.py; chart: charts from gather_chart_set.py (--icons is "
                         "then that set's folder)")
    ap.add_argument("--honesty-list", type=Path, default=Path(__file__).with_name("honesty_set.json"),
                    help="icons its dev and test splits show are never learned from")
    ap.add_argument("--min-families", type=int, default=3)
    ap.add_argument("--min-brand-families", type=int, default=2)
    ap.add_argument("--max-wrong", type=float, default=0.05)
    ap.add_argument("--weight-decay", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=None,
                    help="hidden units, 0: a linear head (default: 0 for meanings, 512 for chart types, as shipped)")
    ap.add_argument("--epochs", type=int, default=None,
                    help="epochs, or L-BFGS iterations for a linear head (default: 30, or 80 for a linear head)")
    ap.add_argument("--features", choices=("pooled", "pooled+grid"), default="pooled+grid")
    ap.add_argument("--view", choices=("page", "glyph"), default="page",
                    help="page: the encoder's features of the image as shown (chart types); glyph: of its glyph view, "
                         "the icon's shape whatever its colours (server/describe/glyph.py; icon meanings, as shipped)")
    ap.add_argument("--pooled-components", type=int, default=None,
                    help="principal directions of the pooled features (default: 512 for meanings, 256 for chart "
                         "types, as shipped; on the first 18 families 512 said 27.6 %% of the held-out icons' "
                         "meanings at 4.9 %% wrong, 256 24.1 %% at 5.0 %%, 1024 28.2 %% at 5.0 %% with a lower top-1)")
    ap.add_argument("--grid-components", type=int, default=None,
                    help="... and of each grid cell (default: 64 for meanings, 32 for chart types)")
    ap.add_argument("--folds", type=int, default=0,
                    help="hold families out in this many groups of about equal size instead of one at a time (0): "
                         "stricter (each head learns from fewer families) and faster with many families")
    ap.add_argument("--taps", default=None,
                    help="encoder blocks (comma-separated) whose maps the head reads too, glyph view only (default: "
                         f"{','.join(map(str, GLYPH_TAPS))} for meanings; 'none': the last grid only)")
    ap.add_argument("--styles", action=argparse.BooleanOptionalAction, default=None,
                    help="learn also from each icon's glyph redrawn in another style: bolder, lighter, outlined or "
                         "filled (scripts/glyph_styles.py; glyph view only; default: on for meanings, as shipped)")
    ap.add_argument("--train-only", default="",
                    help="families (comma-separated) learned from in every fold but never held out, so that a head "
                         "with more families is measured on the same held-out families as one without them")
    ap.add_argument("--without", default="",
                    help="families (comma-separated) neither learned from nor measured: the head as it would be "
                         "without them, on the same renders and cached features")
    ap.add_argument("--thresholds-from", type=Path, default=None, metavar="REPORT",
                    help="write the head with the thresholds an earlier run of the same settings chose on its "
                         "held-out families (its --report), without holding families out again")
    ap.add_argument("--report", type=Path, default=Path("runs/meanings/report.json"))
    ap.add_argument("--no-write", action="store_true", help="validate only")
    args = ap.parse_args(argv)
    if args.hidden is None:
        args.hidden = 0 if args.task == "meaning" else 512
    if args.pooled_components is None:
        args.pooled_components = 512 if args.task == "meaning" else 256
    if args.grid_components is None:
        args.grid_components = 64 if args.task == "meaning" else 32
    if args.epochs is None:
        args.epochs = 30 if args.hidden else 80
    if args.taps is None:
        args.taps = GLYPH_TAPS if args.view == "glyph" and args.task == "meaning" else ()
    else:
        try:
            args.taps = parse_taps(args.taps)
        except ValueError as e:
            ap.error(f"--taps: {e}")
    if args.taps and args.view != "glyph":
        ap.error("--taps reads glyph views: add --view glyph")
    if args.styles is None:
        args.styles = args.view == "glyph" and args.task == "meaning"
    if args.styles and args.view != "glyph":
        ap.error("--styles redraws glyph views: add --view glyph")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(2)

    checkpoint = args.checkpoint or default_checkpoint_path()
    manifest = json.loads((args.icons / "manifest.json").read_text())["images"]
    without = {f for f in args.without.split(",") if f}
    if unknown := without - {e["family"] for e in manifest}:
        ap.error(f"--without: no such family: {', '.join(sorted(unknown))}")
    entries, rows, y, fam, classes = select(manifest, args, without)
    train_only = {f for f in args.train_only.split(",") if f}  # checked here, before the long feature extraction
    if unknown := train_only - set(fam):
        ap.error(f"--train-only: no such family: {', '.join(sorted(unknown))}")
    earlier = earlier_report(args, ap, len(classes)) if args.thresholds_from is not None else None
    try:
        _, pooled, grid, tapped = extract(args.icons, checkpoint, args.view, taps=args.taps)
    except ValueError as e:  # a block the encoder has not, an encoder without blocks to tap
        ap.error(f"--taps: {e}")
    pooled, grid, tapped = pooled[rows], grid[rows], [(p[rows], g[rows]) for p, g in tapped]
    styled = None
    if args.styles:
        try:
            styled = extract_styles(args.icons, checkpoint, [e["file"] for e in entries], taps=args.taps)
        except ImportError as e:
            ap.error(f"--styles needs {e.name} (pip install '.[icons]'), or fit without it: --no-styles")
        if not len(styled[0]):
            styled = None

    head = MeaningHead.empty(classes)
    head.glyph = ({"size": GLYPH_SIZE, **({"taps": list(args.taps)} if args.taps else {})}
                  if args.view == "glyph" else None)
    grid = grid if args.features == "pooled+grid" else None
    head.fit_projections(pooled, grid, args.pooled_components, args.grid_components, tapped)
    x = head.features(pooled, grid, tapped)
    if styled is not None:  # (which icon each redrawn glyph is, its features on the same directions)
        styled = (styled[0], head.features(styled[1], styled[2] if grid is not None else None, styled[3]))
        log.info("%d icons redrawn in another style", len(styled[0]))
    log.info("%d icons, %d classes (%d meanings, %d brands), %d features, families: %s", len(y), len(classes),
             sum(c.startswith("meaning:") for c in classes), sum(c.startswith("brand:") for c in classes),
             x.shape[1], dict(Counter(fam)))

    if earlier is not None:
        report, tau, brand_tau = earlier, earlier["threshold"], earlier.get("brand_threshold")
    else:
        report, tau, brand_tau = held_out(args, x, y, fam, classes, styled, measured=~np.isin(fam, sorted(train_only)))
    if args.no_write:
        return 0
    head.hidden, head.linear = fit_head(*with_styles(x, y, np.ones(len(y), bool), styled), len(classes), args)
    head.threshold, head.brand_threshold = tau, brand_tau
    return store(args, checkpoint, head, report)


def held_out(args, x: np.ndarray, y: np.ndarray, fam: np.ndarray, classes: list[str], styled, measured: np.ndarray
             ) -> tuple[dict, float, float | None]:
    """(report, threshold, brand threshold) of heads fitted with the families ``measured`` marks held out in groups
    (the others learned from in every fold); beside the report, the answers averaged over each glyph as drawn and
    redrawn in another style (``.both.json``: measured only, the service reads the glyph as drawn)."""
    held = np.zeros((len(y), len(classes)), np.float32)
    both = held.copy()  # the mean of the answers on the glyph as drawn and on it redrawn (where it was)
    for group in family_folds(fam[measured], args.folds):
        test = np.isin(fam, group)
        t0 = time.time()
        head_of_fold = fit_head(*with_styles(x, y, ~test, styled), len(classes), args)
        held[test] = both[test] = predict(*head_of_fold, x[test])
        if styled is not None:
            which = styled[0][test[styled[0]]]
            both[which] = (held[which] + predict(*head_of_fold, styled[1][test[styled[0]]])) / 2
        log.info("left out %s: top-1 %.3f on their named icons (%.0f s)", ", ".join(group),
                 float((held[test].argmax(1) == y[test])[y[test] != 0].mean()), time.time() - t0)
    if styled is not None:
        held_out_report(argparse.Namespace(**{**vars(args), "report": args.report.with_suffix(".both.json")}),
                        both[measured], y[measured], fam[measured], classes)
    return held_out_report(args, held[measured], y[measured], fam[measured], classes)


def earlier_report(args, ap, n_classes: int) -> dict:
    """The report of an earlier run (``--thresholds-from``) whose held-out thresholds the head is written with; it
    must have learned as many classes as this run."""
    try:
        report = json.loads(args.thresholds_from.read_text())
    except (OSError, ValueError) as e:
        ap.error(f"--thresholds-from: cannot read {args.thresholds_from}: {e}")
    if report.get("classes") != n_classes or "threshold" not in report:
        ap.error(f"--thresholds-from: {args.thresholds_from} is a report of {report.get('classes')} classes, "
                 f"this head has {n_classes}: fit them with the same icons, vocabulary and settings")
    return report


def with_styles(x: np.ndarray, y: np.ndarray, train: np.ndarray, styled: tuple[np.ndarray, np.ndarray] | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(features, classes) to learn from: the icons ``train`` marks, and (``styled``: which icon, features) their
    glyphs redrawn in another style, with the same class. The held-out families' are never among them."""
    if styled is None:
        return x[train], y[train]
    which, xs = styled
    keep = train[which]
    return np.concatenate([x[train], xs[keep]]), np.concatenate([y[train], y[which[keep]]])


def family_folds(fam: np.ndarray, folds: int) -> list[list[str]]:
    """The groups of families held out together: one family each (``folds`` 0), or ``folds`` groups of about equal
    size (largest family first into the smallest group)."""
    names, counts = np.unique(fam, return_counts=True)
    if folds <= 0 or folds >= len(names):
        return [[str(f)] for f in names]
    groups: list[list[str]] = [[] for _ in range(folds)]
    sizes = [0] * folds
    for i in np.argsort(-counts, kind="stable"):
        g = sizes.index(min(sizes))
        groups[g].append(str(names[i]))
        sizes[g] += int(counts[i])
    return [sorted(g) for g in groups]


def held_out_report(args, held: np.ndarray, y: np.ndarray, fam: np.ndarray, classes: list[str]
                    ) -> tuple[dict, float, float | None]:
    """(report, threshold, brand threshold) from the held-out predictions, which are saved beside the report."""
    args.report.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.report.with_suffix(".heldout.npz"), probs=held.astype(np.float16), y=y, family=fam,
             classes=np.array(classes))  # to study thresholds without refitting
    brand = np.array([c.startswith("brand:") for c in classes])
    tau = choose_threshold(held, y, args.max_wrong, ~brand)  # meanings (chart types), then brands on their own:
    brand_tau = choose_threshold(held, y, args.max_wrong, brand) if brand.any() else None  # far surer when right
    brand_said = (held.argmax(1) != 0) & brand[held.argmax(1)] & (held.max(1) >= (brand_tau or 1.0))
    named = y != 0
    report = {"classes": len(classes), "view": args.view, "features": args.features, "threshold": tau,
              "brand_threshold": brand_tau,
              "top1_named": round(float((held.argmax(1) == y)[named].mean()), 4),
              "brands_spoken": {"spoken": int(brand_said.sum()), "right": int((brand_said & (held.argmax(1) == y)).sum()),
                                "brand_icons": int(brand[y].sum())},
              "max_wrong": args.max_wrong,
              "all_families": spoken_stats(held, y, tau, brand_tau, brand),
              "icons_only": spoken_stats(held[~brand[y]], y[~brand[y]], tau, brand_tau, brand),
              "brands_only": spoken_stats(held[brand[y] | (y == 0)], y[brand[y] | (y == 0)], tau, brand_tau, brand),
              "per_family": {f: dict(spoken_stats(held[fam == f], y[fam == f], tau, brand_tau, brand),
                                     top1_named=round(float((held[fam == f].argmax(1) == y[fam == f])[
                                         named[fam == f]].mean()), 4)) for f in np.unique(fam)}}
    report["reliability"] = reliability(held, y)
    args.report.write_text(json.dumps(report, indent=1))
    log.info("threshold %.2f (brands %s): %s; brands %s", tau, brand_tau, json.dumps(report["all_families"]),
             json.dumps(report["brands_spoken"]))
    return report, tau, brand_tau


def store(args, checkpoint: Path, head: MeaningHead, report: dict) -> int:
    """Name the classes and write the head into the checkpoint's heads file."""
    modules = args.icons / "npm" / "node_modules"
    si_titles = brand_names(modules) if (modules / "simple-icons").is_dir() else {}
    vocab = Vocabulary.load()
    head.titles = {c: vocab.get(c, title=si_titles.get(c.partition(":")[2], c.partition(":")[2])).label
                   for c in head.classes[1:]}
    heads = heads_for(checkpoint)
    setattr(heads, args.task, head)
    heads.meta[f"{args.task}_report"] = {k: report[k] for k in ("all_families", "icons_only", "brands_only",
                                                                "threshold", "brand_threshold", "brands_spoken",
                                                                "per_family", "view", "top1_named")}
    out = args.heads or heads_path(checkpoint)
    heads.save(out)
    log.info("wrote the %s head into %s", args.task, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
