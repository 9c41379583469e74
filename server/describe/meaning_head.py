"""Named-class heads: what an icon means ("search", "close") or which brand a logo shows, and which type a chart is
(bar, line, pie...), from the encoder's features. One class, ``MeaningHead``, serves both.

It reads what the encoder computes for every image anyway: the pooled features, and a 3x3 summary of the grid,
each projected onto its principal directions (pooled features alone cannot tell a left arrow from a right one). A
linear layer (meanings and brands) or one hidden layer (chart types) over the classes of ``meanings.json`` plus
"other"; fitted and validated leave one icon set (or plotting library) out by ``scripts/fit_meanings.py`` and stored
in the checkpoint's heads file. A class is said only at or above the threshold chosen on the held-out sets (brands
have their own: ``decision.sure_class`` applies them).
"""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .meanings import OTHER

POOLED_COMPONENTS = 256  # principal directions of the pooled features the head reads
GRID_COMPONENTS = 32  # ... and of the grid cells, for each cell of the 3x3 summary


def grid_summary(grid: torch.Tensor) -> torch.Tensor:
    """[B, S*S, C] -> [B, 9, C]: the encoder's grid averaged over a 3x3 layout (where in the image things are)."""
    b, n, c = grid.shape
    s = int(round(n ** 0.5))
    g = grid.float().transpose(1, 2).reshape(b, c, s, s)
    return torch.nn.functional.adaptive_avg_pool2d(g, 3).reshape(b, c, 9).transpose(1, 2)


def _project(x: np.ndarray, proj: tuple[np.ndarray, np.ndarray]) -> torch.Tensor:
    mean, comps = (torch.as_tensor(a, dtype=torch.float32) for a in proj)
    x = torch.nn.functional.normalize(torch.as_tensor(x, dtype=torch.float32), dim=-1)
    return (x - mean) @ comps.T


def _pca(x: torch.Tensor, q: int) -> tuple[np.ndarray, np.ndarray]:
    x = torch.nn.functional.normalize(x, dim=-1)
    mean = x.mean(0)
    _, _, v = torch.pca_lowrank(x - mean, q=min(q, *x.shape), center=False)
    return mean.numpy(), v.T.contiguous().numpy()


def meaning_features(pooled: np.ndarray, grid9: np.ndarray | None, pooled_proj: tuple[np.ndarray, np.ndarray],
                     grid_proj: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """[B, F] features: the L2-normalised pooled features on their principal directions, then (with
    ``grid_proj``) each cell of the 3x3 grid summary on the grid cells' principal directions."""
    p = _project(pooled, pooled_proj)
    if grid_proj is None or grid9 is None:
        return p.numpy()
    g = _project(grid9, grid_proj).reshape(len(p), -1)
    return torch.cat([p, g], 1).numpy()


class GlyphNet(nn.Module):
    """The icon meaning head that reads glyphs: the pretrained encoder's last blocks and head convolution, tuned on
    glyph views of rendered icons (``glyph.py``), then the pooled map and a 2x2 summary of it (where the strokes
    are: a left arrow is not a right one) into one linear layer. It starts from the map the frozen trunk gives
    (``Captioner.trunk_maps``), so only these blocks are its own."""

    CELLS = 64  # channels of each 2x2 cell summary

    def __init__(self, encoder: nn.Module, split: int, classes: int, dropout: float = 0.0):
        super().__init__()
        self.blocks = copy.deepcopy(encoder._blocks[split:])
        self.conv_head, self.bn = copy.deepcopy(encoder._conv_head), copy.deepcopy(encoder._bn1)
        width = self.conv_head.out_channels
        self.cells = nn.Conv2d(width, self.CELLS, 1)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(width + 4 * self.CELLS, classes)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.modules():  # batch-norm statistics stay the pretrained ones (as in encoders.TunedTail)
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = block(h)
        g = torch.nn.functional.relu6(self.bn(self.conv_head(h)))
        cells = torch.nn.functional.adaptive_avg_pool2d(self.cells(g), 2).flatten(1)
        return self.out(self.drop(torch.cat([g.mean((2, 3)), cells], 1)))


@dataclass
class MeaningHead:
    classes: list[str]  # "other", "meaning:<id>", "brand:<id>"
    pooled_proj: tuple[np.ndarray, np.ndarray] | None = None  # ([C], [P, C]) principal directions of pooled features
    grid_proj: tuple[np.ndarray, np.ndarray] | None = None  # ([C], [G, C]) of grid cells; None: pooled only
    linear: object = None  # heads.Linear: the output layer
    threshold: float = 1.0
    titles: dict[str, str] = field(default_factory=dict)  # class -> what is said ("Search", "GitHub")
    hidden: object = None  # heads.Linear before a GELU, or None: a linear head
    brand_threshold: float | None = None  # what a brand class needs ("brand:..."), when it differs from threshold
    glyph: dict | None = None  # {"split", "size"}: reads glyph views through GlyphNet, not the page's features
    net_state: dict[str, np.ndarray] | None = None  # GlyphNet's tensors
    _net: GlyphNet | None = field(default=None, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def reads_glyphs(self) -> bool:
        return self.glyph is not None

    @classmethod
    def empty(cls, classes: list[str]) -> "MeaningHead":
        assert classes[0] == OTHER
        return cls(list(classes))

    def fit_projections(self, pooled: np.ndarray, grid9: np.ndarray | None, pooled_components: int = POOLED_COMPONENTS,
                        grid_components: int = GRID_COMPONENTS) -> None:
        self.pooled_proj = _pca(torch.as_tensor(pooled, dtype=torch.float32), pooled_components)
        self.grid_proj = None if grid9 is None else _pca(
            torch.as_tensor(grid9, dtype=torch.float32).reshape(-1, grid9.shape[-1]), grid_components)

    def features(self, pooled: np.ndarray, grid9: np.ndarray | None) -> np.ndarray:
        return meaning_features(pooled, grid9, self.pooled_proj, self.grid_proj)

    def probs(self, pooled: np.ndarray, grid9: np.ndarray | None) -> np.ndarray:
        """[B, K] class probabilities."""
        x = self.features(pooled, grid9)
        if self.hidden is not None:
            x = torch.nn.functional.gelu(torch.as_tensor(self.hidden(x))).numpy()
        return torch.softmax(torch.as_tensor(self.linear(x)), -1).numpy()

    def top(self, pooled: np.ndarray, grid9: np.ndarray | None, k: int = 3) -> list[dict[str, float]]:
        """Per image, its ``k`` likeliest classes ("other" among them) and their probabilities, likeliest first."""
        return [{self.classes[i]: round(float(row[i]), 4) for i in np.argsort(-row)[:k]}
                for row in self.probs(pooled, grid9)]

    def glyph_net(self, captioner) -> GlyphNet:
        """The GlyphNet, built on first use from the captioner's encoder (its architecture) and the stored tensors."""
        with self._lock:
            if self._net is None:
                net = GlyphNet(captioner.pretrained_encoder(), self.glyph["split"], len(self.classes))
                net.load_state_dict({k: torch.as_tensor(v.astype(np.float32)) for k, v in self.net_state.items()})
                self._net = net.float().eval().requires_grad_(False)
            return self._net

    def glyph_probs(self, captioner, images: list) -> np.ndarray:
        """[B, K] class probabilities of images (PIL) through their glyph views."""
        from .glyph import glyph_view

        views = [glyph_view(im, self.glyph["size"]) for im in images]
        maps = captioner.trunk_maps(views, self.glyph["size"], self.glyph["split"])
        with torch.inference_mode():
            return torch.softmax(self.glyph_net(captioner)(maps), -1).numpy()

    def top_glyphs(self, captioner, images: list, k: int = 3) -> list[dict[str, float]]:
        """As ``top``, for a head that reads glyphs."""
        return [{self.classes[i]: round(float(row[i]), 4) for i in np.argsort(-row)[:k]}
                for row in self.glyph_probs(captioner, images)]

    # -- storage, inside the heads file -------------------------------------------------------------------------

    def tensors(self, prefix: str = "meaning") -> dict[str, np.ndarray]:
        if self.reads_glyphs:  # fp16: the tuned blocks are most of the heads file
            return {f"{prefix}.net.{k}": np.asarray(v, dtype=np.float16) for k, v in self.net_state.items()}
        t = self.linear.tensors(prefix)
        if self.hidden is not None:
            t.update(self.hidden.tensors(f"{prefix}.hidden"))
        t.update({f"{prefix}.pooled_mean": self.pooled_proj[0], f"{prefix}.pooled_proj": self.pooled_proj[1]})
        if self.grid_proj is not None:
            t.update({f"{prefix}.grid_mean": self.grid_proj[0], f"{prefix}.grid_proj": self.grid_proj[1]})
        return t

    def meta(self) -> dict:
        return {"classes": self.classes, "threshold": self.threshold, "titles": self.titles,
                "brand_threshold": self.brand_threshold, **({"glyph": self.glyph} if self.glyph else {})}

    @classmethod
    def from_stored(cls, t: dict, meta: dict, prefix: str = "meaning") -> "MeaningHead":
        from .heads import Linear

        if meta.get("glyph"):
            state = {k[len(prefix) + 5:]: v for k, v in t.items() if k.startswith(f"{prefix}.net.")}
            return cls(list(meta["classes"]), threshold=float(meta["threshold"]), titles=dict(meta.get("titles", {})),
                       brand_threshold=meta.get("brand_threshold"), glyph=dict(meta["glyph"]), net_state=state)
        grid = (t[f"{prefix}.grid_mean"], t[f"{prefix}.grid_proj"]) if f"{prefix}.grid_proj" in t else None
        hidden = Linear.from_tensors(t, f"{prefix}.hidden") if f"{prefix}.hidden.weight" in t else None
        return cls(list(meta["classes"]), (t[f"{prefix}.pooled_mean"], t[f"{prefix}.pooled_proj"]), grid,
                   Linear.from_tensors(t, prefix), float(meta["threshold"]), dict(meta.get("titles", {})), hidden,
                   meta.get("brand_threshold"))
