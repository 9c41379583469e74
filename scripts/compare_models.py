"""Score several checkpoints on several test splits at several beam sizes, for the model card.

The encoder grids come from the feature cache (computed once per encoder and split), so trying beam 1/3/5 on
four checkpoints costs decoding time only (the cached grids were decoded by model/images.py, the service's image
path). Prints a Markdown table, with CHAIR_i / CHAIR_s (object hallucination), and writes JSON. ``--split holdout``
scores a holdout directory (../shared/data/coco_holdout): for the final report only, never to choose anything.

    python scripts/compare_models.py --data ../shared/data/flickr8k --data ../shared/data/coco \
        --checkpoint runs/a/best.safetensors --checkpoint runs/b/best.safetensors --beam 1 --beam 3 --beam 5

Each ``--ensemble a.safetensors,b.safetensors`` is one more model: the checkpoints' decoders averaged inside one beam
search (same encoder and vocabulary; ``default`` names the bundled model), scored in the same run as the single
checkpoints. A checkpoint that is missing, damaged or does not fit its ensemble stops the script before any work.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from the checkout, installed or not

from model import Captioner  # noqa: E402
from model.checkpoint import CheckpointError  # noqa: E402
from model.datasets import DatasetError, load_split  # noqa: E402
from model.encoders import UnknownEncoderError  # noqa: E402
from model.features import model_grids  # noqa: E402
from model.metrics import score  # noqa: E402


def ensemble_paths(spec: str) -> list[str | None]:
    """``a.safetensors,b.safetensors`` -> the member paths (``default``: the bundled model)."""
    paths = [p.strip() for p in spec.split(",") if p.strip()]
    if len(paths) < 2:
        raise argparse.ArgumentTypeError(f"{spec!r}: an ensemble needs two or more comma-separated checkpoints")
    return [None if p == "default" else p for p in paths]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", required=True, help="dataset directory (repeatable)")
    ap.add_argument("--checkpoint", action="append", default=[], help="checkpoint file (repeatable)")
    ap.add_argument("--ensemble", action="append", type=ensemble_paths, default=[], metavar="A,B[,C]",
                    help="comma-separated checkpoints scored as one ensemble (repeatable)")
    ap.add_argument("--combine", choices=["mean", "geometric"], default="mean",
                    help="how an ensemble averages its decoders (default: mean of probabilities)")
    ap.add_argument("--beam", action="append", type=int, default=None, help="beam size (repeatable; default 3)")
    ap.add_argument("--split", default="test", help="train, dev, test or holdout")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--no-java", action="store_true")
    ap.add_argument("--out", default="compare_models.json")
    args = ap.parse_args(argv)
    beams = args.beam or [3]
    if not args.checkpoint and not args.ensemble:
        ap.error("give at least one --checkpoint or --ensemble")

    # Load everything first: a bad file ends the run in one line before an hour of decoding, not in the middle.
    models = []
    try:
        for ckpt in args.checkpoint:
            models.append((ckpt, Captioner.load(ckpt, device="cpu", pretrained_encoder=False)))  # cached grids
        for paths in args.ensemble:
            label = ",".join(p or "default" for p in paths)
            models.append((label, Captioner.load_ensemble(paths, device="cpu", pretrained_encoder=False,
                                                          combine=args.combine)))
        splits = {root: load_split(root, args.split) for root in args.data}
    except (CheckpointError, DatasetError, UnknownEncoderError) as e:
        print(f"compare_models: {e}", file=sys.stderr)
        sys.exit(1)

    rows = []
    for ckpt, cap in models:
        for root in args.data:
            items = splits[root]
            feats = model_grids([it.path for it in items], cap.model, args.cache_dir)  # through a tuned tail
            refs = {i: list(it.captions) for i, it in enumerate(items)}
            for beam in beams:
                search = cap.search_config(beam)
                t0 = time.perf_counter()
                hyps = {}
                for s in range(0, len(items), 64):
                    chunk = feats[s : s + 64].to(torch.float32)
                    for j, c in enumerate(cap.caption_features(chunk, search)):
                        hyps[s + j] = c.tokens
                seconds = time.perf_counter() - t0
                metrics = score(refs, hyps, use_java=False if args.no_java else None)
                rows.append({"checkpoint": ckpt, "model": cap.name, "version": cap.version,
                             "members": len(cap.members), "encoder": cap.model.cfg.encoder,
                             "decoder": "+".join(d.cfg.kind for d in cap.members), "data": Path(root).name,
                             "split": args.split, "images": len(items), "beam": beam,
                             "decode_ms_per_image": round(1000 * seconds / len(items), 2), **metrics})
                r = rows[-1]
                print(f"{r['model']:<28} {r['data']:<9} beam {beam}: BLEU-4 {r['BLEU-4']:5.1f}  METEOR "
                      f"{r['METEOR'] if r['METEOR'] is not None else '-':>5}  ROUGE-L {r['ROUGE-L']:5.1f}  "
                      f"CIDEr {r['CIDEr']:5.1f}  CHAIR_i {r['CHAIR_i']:5.1f}  CHAIR_s {r['CHAIR_s']:5.1f}",
                      flush=True)

    print("\n| model | encoder | decoder | test set | beam | BLEU-1 | BLEU-4 | METEOR | ROUGE-L | CIDEr | CHAIR_i "
          "| CHAIR_s | decode ms/image |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['encoder']} | {r['decoder']} | {r['data']} ({r['images']}) | {r['beam']} | "
              f"{r['BLEU-1']} | {r['BLEU-4']} | {r['METEOR']} | {r['ROUGE-L']} | {r['CIDEr']} | {r['CHAIR_i']} | "
              f"{r['CHAIR_s']} | {r['decode_ms_per_image']} |")
    Path(args.out).write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
