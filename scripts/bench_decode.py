"""Decoding speed of the captioner (a benchmark, not a test).

(a) Batched beam search (images x beams in one decoder call per step, cached keys/values) against the naive
    reference (one hypothesis at a time, whole prefix re-run every step): the captions must be identical.
(b) End-to-end time per image, split into image loading, encoder and decoding.
(c) The same photos through the whole describe pipeline (safe decoder, pixel statistics, the model pass with the
    ImageNet head and out-of-domain score, kind and calibration heads, OCR where text is likely, decision and
    wording), measured in the same run as (b): the ratio is the cost of honesty on photos.
(d) With ``--ensemble A,B``: the same as (b) for the ensemble of those checkpoints (one encoder pass per image, the
    decoders averaged inside one beam search), in the same rounds as (b), so the ratio to the single model is
    measured side by side; and (a)'s check that its batched search equals the naive reference.

    python scripts/bench_decode.py --data ../shared/data/flickr8k --images 32 --out bench_decode.json
    python scripts/bench_decode.py --ensemble default,runs/scst-lite0/best.safetensors --out bench_ensemble.json
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from the checkout, installed or not

from model import Captioner  # noqa: E402
from model.beam import beam_search, reference_beam_search  # noqa: E402
from model.datasets import load_split  # noqa: E402
from model.images import load_image  # noqa: E402


def _timed(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/flickr8k"),
                    help="dataset directory whose test images are used")
    ap.add_argument("--checkpoint", default=None, help="default: the bundled model")
    ap.add_argument("--images", type=int, default=32, help="images for the end-to-end timing")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--beam", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--ensemble", default=None, metavar="A,B[,C]",
                    help="also time this ensemble (comma-separated checkpoints, 'default' = the bundled model) "
                         "next to --checkpoint")
    ap.add_argument("--combine", choices=["mean", "geometric"], default="mean")
    ap.add_argument("--skip-describe", action="store_true", help="leave out (c), the describe pipeline")
    ap.add_argument("--out", default="bench_decode.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cap = Captioner.load(args.checkpoint, device="cpu")
    ens = None
    if args.ensemble:
        members = [None if p.strip() == "default" else p.strip() for p in args.ensemble.split(",") if p.strip()]
        if len(members) < 2:
            ap.error("--ensemble needs two or more comma-separated checkpoints")
        from model.checkpoint import CheckpointError

        try:
            ens = Captioner.load_ensemble(members, device="cpu", combine=args.combine)
        except CheckpointError as e:
            ap.exit(1, f"bench_decode: {e}\n")
    items = load_split(args.data, "test")[: max(args.images, args.batch)]
    paths = [it.path for it in items]
    search = cap.search_config(args.beam)
    dec = cap.model.decoder

    # (a) batched vs reference on one batch
    def load(ps):
        return [load_image(p) for p in ps]  # the one image path of training, evaluation and serving

    feats = cap.encode(load(paths[: args.batch]))
    t_batched, fast = _timed(lambda: beam_search(dec, feats, search), args.repeats)
    t_ref, slow = _timed(lambda: reference_beam_search(dec, feats, search), 1)
    same = [h.tokens for h in fast] == [h.tokens for h in slow]
    if ens is not None:
        e_search = ens.search_config(args.beam)
        t_e_batched, e_fast = _timed(lambda: beam_search(ens.decoder, feats, e_search), args.repeats)
        e_slow = reference_beam_search(ens.decoder, feats, e_search)
        e_same = [h.tokens for h in e_fast] == [h.tokens for h in e_slow]

    # (b) end to end, in batches; (c) the describe pipeline on the same photos, everything included. The two run
    # interleaved, --repeats times each, and the fastest round of each counts: a noisy machine slows both alike.
    from server.describe import Describer
    from server.netsafe.images import read_image_file

    describer = None if args.skip_describe else Describer.load(args.checkpoint, device="cpu", beam_size=args.beam)
    n = len(paths)

    def captioning(c=cap, cfg=search) -> tuple[float, float, float]:
        t_load = t_enc = t_dec = 0.0
        for s in range(0, n, args.batch):
            t = time.perf_counter()
            ims = load(paths[s : s + args.batch])
            t_load += time.perf_counter() - t
            t = time.perf_counter()
            f, _ = c.encode_and_pool(ims)  # the encoder pass every surface pays (a tuned tail's pretrained twin too)
            t_enc += time.perf_counter() - t
            t = time.perf_counter()
            c.caption_features(f, cfg)
            t_dec += time.perf_counter() - t
        return t_load, t_enc, t_dec

    def describing() -> tuple[float, int]:
        t_pipe, ocr_runs = 0.0, 0
        for s in range(0, n, args.batch):
            t = time.perf_counter()
            results = describer.describe([read_image_file(str(p)) for p in paths[s : s + args.batch]])
            t_pipe += time.perf_counter() - t
            ocr_runs += sum(r["ocr"] == "read" for r in results)
        return t_pipe, ocr_runs

    rounds_b, rounds_c, rounds_d = [], [], []
    for _ in range(args.repeats):
        rounds_b.append(captioning())
        if ens is not None:
            rounds_d.append(captioning(ens, e_search))
        if describer is not None:
            rounds_c.append(describing())
    t_load, t_enc, t_dec = min(rounds_b, key=sum)
    total = t_load + t_enc + t_dec

    result = {
        "model": cap.name, "decoder": cap.model.cfg.decoder.kind, "encoder": cap.model.cfg.encoder,
        "device": "cpu", "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "batch": args.batch, "beam": args.beam,
        "a_batched_ms_per_batch": round(1000 * t_batched, 1), "a_reference_ms_per_batch": round(1000 * t_ref, 1),
        "a_speedup": round(t_ref / t_batched, 1), "a_identical_captions": same,
        "b_images": n, "b_load_ms_per_image": round(1000 * t_load / n, 2),
        "b_encoder_ms_per_image": round(1000 * t_enc / n, 2), "b_decode_ms_per_image": round(1000 * t_dec / n, 2),
        "b_total_ms_per_image": round(1000 * total / n, 2), "b_decode_share": round(t_dec / total, 3),
    }
    rows = [
        ("(a) batched beam search, ms / batch", result["a_batched_ms_per_batch"]),
        ("(a) naive reference, ms / batch", result["a_reference_ms_per_batch"]),
        ("(a) speed-up (target >= 10x)", f"{result['a_speedup']}x"),
        ("(a) identical captions", same),
        ("(b) image load, ms / image", result["b_load_ms_per_image"]),
        ("(b) encoder, ms / image", result["b_encoder_ms_per_image"]),
        ("(b) decoding, ms / image", result["b_decode_ms_per_image"]),
        ("(b) total, ms / image", result["b_total_ms_per_image"]),
        ("(b) decoding share (target <= 30%)", f"{100 * result['b_decode_share']:.1f}%"),
    ]
    if describer is not None:
        t_pipe, ocr_runs = min(rounds_c)
        result.update({
            "c_describe_ms_per_image": round(1000 * t_pipe / n, 2), "c_ratio_to_b": round(t_pipe / total, 3),
            "c_ocr_share": round(ocr_runs / n, 3), "c_pipeline": describer.namespace,
        })
        rows += [
            ("(c) describe pipeline, ms / image", result["c_describe_ms_per_image"]),
            ("(c) pipeline / (b) (target <= 1.10)", result["c_ratio_to_b"]),
            ("(c) photos that needed OCR", f"{100 * result['c_ocr_share']:.1f}%"),
        ]
    if ens is not None:
        e_load, e_enc, e_dec = min(rounds_d, key=sum)
        e_total = e_load + e_enc + e_dec
        result.update({
            "d_ensemble": ens.name, "d_version": ens.version, "d_members": len(ens.members),
            "d_combine": ens.ensemble.combine,
            "d_batched_ms_per_batch": round(1000 * t_e_batched, 1), "d_identical_to_reference": e_same,
            "d_load_ms_per_image": round(1000 * e_load / n, 2), "d_encoder_ms_per_image": round(1000 * e_enc / n, 2),
            "d_decode_ms_per_image": round(1000 * e_dec / n, 2), "d_total_ms_per_image": round(1000 * e_total / n, 2),
            "d_decode_ratio_to_b": round(e_dec / t_dec, 3), "d_total_ratio_to_b": round(e_total / total, 3),
        })
        rows += [
            (f"(d) ensemble of {len(ens.members)}: batched search, ms / batch", result["d_batched_ms_per_batch"]),
            ("(d) ensemble: batched = naive reference", e_same),
            ("(d) ensemble: encoder, ms / image", result["d_encoder_ms_per_image"]),
            ("(d) ensemble: decoding, ms / image", result["d_decode_ms_per_image"]),
            ("(d) ensemble: total, ms / image", result["d_total_ms_per_image"]),
            ("(d) ensemble / single, decoding", result["d_decode_ratio_to_b"]),
            ("(d) ensemble / single, total (issue 9: <= 1.15)", result["d_total_ratio_to_b"]),
        ]
    print(f"bench_decode: {result['encoder']} + {result['decoder']}, batch {args.batch}, beam {args.beam}, "
          f"{result['threads']} CPU threads")
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
