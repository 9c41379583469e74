"""The small models the describe pipeline fits per captioner checkpoint and stores beside it.

``scripts/fit_honesty.py`` fits them on the training and dev splits (never the test sets) and writes
``<checkpoint>.honesty.safetensors`` next to the checkpoint; the file names the checkpoint's digest, so a head
fitted for one model is never used with another. Three heads, all linear, all evaluated in microseconds:

* **out of domain**: how unlike the captioner's training images an image is: 1 - the mean cosine similarity of its
  pooled encoder features to its ``k`` nearest training images (full features: a PCA space of 128-256 dimensions
  separated out-of-domain photos far worse, AUROC 0.81-0.93 against 0.997 on the dev set);
* **kind**: photo, text, screenshot, chart, icon, logo or illustration, from pixel statistics, the ImageNet
  classifier's type cues, the out-of-domain score, the PCA-projected features and (``kind_taps``) the mean of the
  maps of blocks inside the encoder, each on its own principal directions, from the same pass: those blocks still
  see strokes and flat fills, which the last layers, made for ImageNet's classes, blur into "some object" (an unusual
  photo, a coin, the moon, was taken for a drawing far less often with them) (multinomial logistic regression);
* **familiar kind**: how unlike the fitted non-photos of each kind an image is (the same nearest-neighbour score
  against the kind classifier's own training images). A linear classifier extrapolates with confidence: a galaxy
  on black sky came out "icon" at 0.9, though it is nothing like any icon it learned from. The kind is named only
  when the image is no farther from that kind's examples than the fitted examples themselves were from the other
  packages' examples of it (``kind_novelty_max``, measured leave-one-package-out when fitting);
* **meaning** and **chart** (optional, ``scripts/fit_meanings.py``): what an icon means or which brand a logo
  shows, and a chart's type (``meaning_head.py``);
* **calibration**: the probability that the caption is acceptable, from the raw token confidence, caption length,
  agreement with the classifier, out-of-domain score and P(photo) (logistic regression, monotone in the raw
  confidence: a more confident model is never judged less trustworthy, all else equal).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from .meaning_head import MeaningHead, on_directions

KINDS = ("photo", "text", "screenshot", "chart", "icon", "logo", "illustration")
NAMED_HEADS = ("meaning", "chart")  # optional MeaningHead fields, stored under these prefixes
SUFFIX = ".honesty.safetensors"


class HeadsError(ValueError):
    pass


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


def heads_path(checkpoint: str | Path) -> Path:
    p = Path(checkpoint)
    return p.with_name(p.name.removesuffix(".safetensors") + SUFFIX)


def heads_for(checkpoint: str | Path) -> "Heads | None":
    """The heads fitted for ``checkpoint`` (checked against its digest), None when it has none. Raises HeadsError
    for a damaged file or one fitted for another checkpoint."""
    from model.checkpoint import file_digest

    path = heads_path(checkpoint)
    return Heads.load(path, checkpoint_digest=file_digest(Path(checkpoint))) if path.is_file() else None


@dataclass
class Linear:
    """Standardise, then an affine map: logits = ((x - mean) / std) @ weight.T + bias."""

    weight: np.ndarray  # [K, F]
    bias: np.ndarray  # [K]
    mean: np.ndarray  # [F]
    std: np.ndarray  # [F]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        # In torch, not numpy: numpy's BLAS threads spin after each call and, beside the model's own threads,
        # slowed the next forward pass measurably on two cores.
        w, b, mean, std = (_t(getattr(self, k)) for k in ("weight", "bias", "mean", "std"))
        return (((_t(x) - mean) / std) @ w.T + b).numpy()

    def tensors(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.{k}": getattr(self, k).astype(np.float32) for k in ("weight", "bias", "mean", "std")}

    @classmethod
    def from_tensors(cls, t: dict, prefix: str) -> "Linear":
        return cls(*(t[f"{prefix}.{k}"] for k in ("weight", "bias", "mean", "std")))


def softmax(z: np.ndarray) -> np.ndarray:
    return torch.softmax(_t(z), -1).numpy()


def sigmoid(z):
    return torch.sigmoid(_t(z)).numpy()


@dataclass
class Heads:
    pca_mean: np.ndarray  # [C] of L2-normalised pooled features
    pca: np.ndarray  # [P, C]: the kind classifier sees the first n_pca components
    reference: np.ndarray  # [R, C] L2-normalised pooled features of training images
    kind: Linear
    calibration: Linear
    meta: dict = field(default_factory=dict)  # checkpoint digest, k, thresholds, feature names, fit report
    kind_reference: np.ndarray | None = None  # [N, C] L2-normalised pooled features of the kind-train non-photos
    kind_reference_kind: np.ndarray | None = None  # [N] their kinds, as indices into KINDS
    meaning: "MeaningHead | None" = None  # icon meanings and brands (scripts/fit_meanings.py); None: not fitted
    chart: "MeaningHead | None" = None  # chart types (scripts/fit_meanings.py --task chart); None: not fitted
    kind_taps: list = field(default_factory=list)  # [(block, (mean [c], directions [P, c]))] the kind head reads

    # -- features ----------------------------------------------------------------------------------------------

    def __post_init__(self):
        self._torch = {k: _t(getattr(self, k)) for k in ("pca_mean", "pca", "reference")}  # see Linear.__call__
        self._kind_columns = {}  # kind index -> the columns of its fitted examples (made once, not per image)
        if self.kind_reference is not None:
            self._torch["kind_reference"] = _t(self.kind_reference)
            for i in range(1, len(KINDS)):
                cols = np.flatnonzero(self.kind_reference_kind == i)
                if len(cols):
                    self._kind_columns[i] = torch.as_tensor(cols)

    def project(self, pooled: np.ndarray) -> np.ndarray:
        x = torch.nn.functional.normalize(_t(pooled), dim=-1)
        return ((x - self._torch["pca_mean"]) @ self._torch["pca"].T).numpy()

    def ood(self, pooled: np.ndarray) -> np.ndarray:
        """[B] out-of-domain scores in [0, 2]: about 0.4-0.5 for everyday photos, more for anything else."""
        sims = torch.nn.functional.normalize(_t(pooled), dim=-1) @ self._torch["reference"].T
        k = min(int(self.meta.get("k", 5)), sims.shape[1])
        return (1.0 - sims.topk(k, dim=1).values.mean(1)).numpy()

    def kind_novelty(self, pooled: np.ndarray) -> dict[str, np.ndarray]:
        """Non-photo kind -> [B] novelty: 1 - mean cosine similarity to the ``k`` nearest fitted examples of that
        kind ({} for heads fitted without them)."""
        if self.kind_reference is None:
            return {}
        sims = torch.nn.functional.normalize(_t(pooled), dim=-1) @ self._torch["kind_reference"].T
        out = {}
        for i, cols in self._kind_columns.items():
            k = min(int(self.meta.get("k", 5)), len(cols))
            out[KINDS[i]] = (1.0 - sims[:, cols].topk(k, dim=1).values.mean(1)).numpy()
        return out

    @property
    def tap_blocks(self) -> tuple[int, ...]:
        """The encoder blocks whose mean maps the kind head reads (``project_taps``); () for none."""
        return tuple(b for b, _ in self.kind_taps)

    def project_taps(self, means: list[np.ndarray]) -> np.ndarray:
        """[B, sum P]: each tapped block's mean map ([B, c], in ``tap_blocks`` order), L2-normalised, on its
        principal directions."""
        if len(means) != len(self.kind_taps):
            raise HeadsError(f"the kind head reads blocks {list(self.tap_blocks)}: got {len(means)} maps")
        return torch.cat([on_directions(m, proj) for m, (_, proj) in zip(means, self.kind_taps)], -1).numpy()

    def kind_probs(self, features: np.ndarray) -> np.ndarray:
        return softmax(self.kind(features))

    def acceptable(self, features: np.ndarray) -> np.ndarray:
        return sigmoid(self.calibration(features)[..., 0])

    @property
    def digest(self) -> str:
        return str(self.meta.get("digest", ""))[:12]

    # -- storage -----------------------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        tensors = {"pca_mean": self.pca_mean, "pca": self.pca, "reference": self.reference,
                   **self.kind.tensors("kind"), **self.calibration.tensors("calibration")}
        if self.kind_reference is not None:
            tensors.update(kind_reference=self.kind_reference, kind_reference_kind=self.kind_reference_kind)
        for block, (mean, directions) in self.kind_taps:
            tensors.update({f"kind.tap{block}.mean": mean, f"kind.tap{block}.directions": directions})
        meta = {k: v for k, v in self.meta.items() if k != "kind_taps"}
        if self.kind_taps:
            meta["kind_taps"] = list(self.tap_blocks)
        for name in NAMED_HEADS:
            meta.pop(name, None)
            if getattr(self, name) is not None:
                tensors.update(getattr(self, name).tensors(name))
                meta[name] = getattr(self, name).meta()
        self.meta = meta
        dtypes = {"reference": np.float16, "kind_reference": np.float16, "kind_reference_kind": np.int64}
        tensors = {k: np.ascontiguousarray(v, dtype=dtypes.get(k, np.float32)) for k, v in tensors.items()}
        body = json.dumps(self.meta, sort_keys=True)
        meta = dict(self.meta, digest=hashlib.sha256(body.encode() + b"".join(
            v.tobytes() for _, v in sorted(tensors.items()))).hexdigest())
        save_file(tensors, str(path), metadata={"honesty": json.dumps(meta, sort_keys=True)})
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(path, 0o666 & ~umask)  # safetensors writes a private temporary file: give it the usual mode
        self.meta = meta

    @classmethod
    def load(cls, path: str | Path, checkpoint_digest: str | None = None) -> "Heads":
        try:
            t = load_file(str(path))
            from safetensors import safe_open

            with safe_open(str(path), "np") as f:
                meta = json.loads((f.metadata() or {})["honesty"])
            kref = t["kind_reference"].astype(np.float32) if "kind_reference" in t else None
            named = {n: MeaningHead.from_stored(t, meta[n], n) if n in meta else None for n in NAMED_HEADS}
            taps = [(int(b), (t[f"kind.tap{b}.mean"], t[f"kind.tap{b}.directions"])) for b in meta.get("kind_taps", ())]
            heads = cls(t["pca_mean"], t["pca"], t["reference"].astype(np.float32),
                        Linear.from_tensors(t, "kind"), Linear.from_tensors(t, "calibration"), meta,
                        kref, t.get("kind_reference_kind"), **named, kind_taps=taps)
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error type for damaged files
            raise HeadsError(f"{path}: not a valid honesty heads file ({type(e).__name__}: {e})") from None
        if checkpoint_digest and meta.get("checkpoint") and meta["checkpoint"] != checkpoint_digest:
            raise HeadsError(f"{path} was fitted for another checkpoint ({meta['checkpoint'][:12]}, not "
                             f"{checkpoint_digest[:12]}): run scripts/fit_honesty.py for this one")
        if tuple(meta.get("kinds", ())) != KINDS:
            raise HeadsError(f"{path}: its kinds {meta.get('kinds')} are not {list(KINDS)}")
        return heads


# -- the feature vectors, one definition for fitting and for serving ----------------------------------------------

PIXEL_FEATURES = ("log_aspect", "log_short_side", "log_long_side", "transparent", "equal_neighbours",
                  "distinct_colours", "top_colour", "white", "saturation", "edges")
CUE_FEATURES = ("cue_screen", "cue_document", "cue_drawing", "top_p", "entropy")


def kind_features(pixels, cues: dict[str, float], top_p: float, entropy: float, ood: float,
                  projected: np.ndarray, n_pca: int, taps: np.ndarray | None = None) -> np.ndarray:
    """One image's kind-head input; ``taps``: its ``Heads.project_taps`` row, for heads that read block taps."""
    w, h = max(pixels.width, 1), max(pixels.height, 1)
    base = [math.log(w / h), math.log(min(w, h)), math.log(max(w, h)), pixels.transparent,
            pixels.equal_neighbours, pixels.distinct_colours, pixels.top_colour, pixels.white, pixels.saturation,
            pixels.edges, cues["screen"], cues["document"], cues["drawing"], top_p, entropy, ood]
    parts = [np.asarray(base, dtype=np.float32), projected[:n_pca].astype(np.float32)]
    return np.concatenate(parts + ([] if taps is None else [np.asarray(taps, dtype=np.float32)]))


CALIBRATION_FEATURES = ("logit_raw_confidence", "words", "agreement", "top_p", "ood", "p_photo")


def calibration_features(raw_confidence: float, words: int, agreement: float, top_p: float, ood: float,
                         p_photo: float) -> np.ndarray:
    c = min(max(raw_confidence, 1e-4), 1 - 1e-4)
    return np.asarray([math.log(c / (1 - c)), words, agreement, top_p, ood, p_photo], dtype=np.float32)
