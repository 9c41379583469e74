"""Named-class heads: what an icon means ("search", "close") or which brand a logo shows, and which type a chart is
(bar, line, pie...), from the encoder's features. One class, ``MeaningHead``, serves both.

It reads the encoder's pooled features and a 3x3 summary of its grid, each projected onto its principal directions
(pooled features alone cannot tell a left arrow from a right one): for chart types, those the encoder computes for
every image anyway; for icon meanings, those of the image's glyph view (``glyph.py``: the icon's shape, dark on
white, whatever colours and framing the page gave it), one more encoder pass made only for images the kind head
takes for icons, logos or drawings, which also taps the maps of blocks inside the encoder (``taps``: the strokes and
shapes its ImageNet-made last layers blur; icon sets never seen are named more often with them). A linear layer
(meanings and brands) or one hidden layer (chart types) over the classes of ``meanings.json`` plus "other"; fitted
and validated leave one icon set (or plotting library) out by ``scripts/fit_meanings.py`` and stored in the
checkpoint's heads file. A class is said only at or above the
threshold chosen on the held-out sets (brands have their own: ``decision.sure_class`` applies them).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .meanings import OTHER

POOLED_COMPONENTS = 256  # principal directions of the pooled features the head reads
GRID_COMPONENTS = 32  # ... and of the grid cells, for each cell of the 3x3 summary
TAP_POOLED_COMPONENTS, TAP_GRID_COMPONENTS = 256, 32  # the same, for a tapped block's maps


def grid_summary(grid: torch.Tensor) -> torch.Tensor:
    """[B, S*S, C] -> [B, 9, C]: the encoder's grid averaged over a 3x3 layout (where in the image things are)."""
    b, n, c = grid.shape
    s = int(round(n ** 0.5))
    g = grid.float().transpose(1, 2).reshape(b, c, s, s)
    return torch.nn.functional.adaptive_avg_pool2d(g, 3).reshape(b, c, 9).transpose(1, 2)


def on_directions(x: np.ndarray, proj: tuple[np.ndarray, np.ndarray]) -> torch.Tensor:
    """Rows [..., c], L2-normalised, on principal directions ``proj`` (mean [c], directions [P, c]): [..., P]."""
    mean, comps = (torch.as_tensor(a, dtype=torch.float32) for a in proj)
    x = torch.nn.functional.normalize(torch.as_tensor(x, dtype=torch.float32), dim=-1)
    return (x - mean) @ comps.T


def principal_directions(x: torch.Tensor, q: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean [c], the first ``q`` principal directions [q, c]) of the L2-normalised rows of ``x`` [N, c]
    (randomised: seed torch for the same directions twice)."""
    x = torch.nn.functional.normalize(x, dim=-1)
    mean = x.mean(0)
    _, _, v = torch.pca_lowrank(x - mean, q=min(q, *x.shape), center=False)
    return mean.numpy(), v.T.contiguous().numpy()


def meaning_features(pooled: np.ndarray, grid9: np.ndarray | None, pooled_proj: tuple[np.ndarray, np.ndarray],
                     grid_proj: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """[B, F] features: the L2-normalised pooled features on their principal directions, then (with
    ``grid_proj``) each cell of the 3x3 grid summary on the grid cells' principal directions."""
    p = on_directions(pooled, pooled_proj)
    if grid_proj is None or grid9 is None:
        return p.numpy()
    g = on_directions(grid9, grid_proj).reshape(len(p), -1)
    return torch.cat([p, g], 1).numpy()


def tap_summary(maps: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A tapped block's [B, h*w, c] maps as (mean [B, c], 3x3 summary [B, 9, c]): what the head reads of them."""
    return maps.mean(1).numpy(), grid_summary(maps).numpy()


def head_inputs(captioner, images: list, taps: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray, list]:
    """What a head reads of ``images`` (PIL, or tensors ``prepare`` made), from one pass of the pretrained encoder:
    pooled features [B, C], the grid's 3x3 summary [B, 9, C] and, per tapped block, its ``tap_summary``."""
    pooled, grid, maps = captioner.encode_with_taps(images, taps)
    return pooled.numpy(), grid_summary(grid).numpy(), [tap_summary(m) for m in maps]


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
    glyph: dict | None = None  # {"size": S, "taps": [block...]}: reads glyph views (glyph.py), not the page
    tap_projs: list = field(default_factory=list)  # per tapped block: (pooled_proj, grid_proj), as the two above

    @property
    def reads_glyphs(self) -> bool:
        return self.glyph is not None

    @classmethod
    def empty(cls, classes: list[str]) -> "MeaningHead":
        assert classes[0] == OTHER
        return cls(list(classes))

    @property
    def taps(self) -> tuple[int, ...]:
        """The encoder blocks whose maps the head reads besides the last grid (glyph heads only)."""
        return tuple((self.glyph or {}).get("taps", ()))

    def fit_projections(self, pooled: np.ndarray, grid9: np.ndarray | None, pooled_components: int = POOLED_COMPONENTS,
                        grid_components: int = GRID_COMPONENTS, taps: list = ()) -> None:
        """Principal directions of the features (and of each tapped block's ``taps``: [(mean, 3x3 summary)])."""
        def pca(p, g, pc, gc):
            cells = None if g is None else torch.as_tensor(g, dtype=torch.float32).reshape(-1, g.shape[-1])
            return (principal_directions(torch.as_tensor(p, dtype=torch.float32), pc),
                    None if cells is None else principal_directions(cells, gc))

        self.pooled_proj, self.grid_proj = pca(pooled, grid9, pooled_components, grid_components)
        self.tap_projs = [pca(p, g, TAP_POOLED_COMPONENTS, TAP_GRID_COMPONENTS) for p, g in taps]

    def features(self, pooled: np.ndarray, grid9: np.ndarray | None, taps: list = ()) -> np.ndarray:
        assert len(taps) == len(self.tap_projs), "the tapped blocks' features, one (mean, summary) per tap"
        return np.concatenate([meaning_features(pooled, grid9, self.pooled_proj, self.grid_proj),
                               *(meaning_features(p, g, *proj) for (p, g), proj in zip(taps, self.tap_projs))], 1)

    def probs(self, pooled: np.ndarray, grid9: np.ndarray | None, taps: list = ()) -> np.ndarray:
        """[B, K] class probabilities."""
        x = self.features(pooled, grid9, taps)
        if self.hidden is not None:
            x = torch.nn.functional.gelu(torch.as_tensor(self.hidden(x))).numpy()
        return torch.softmax(torch.as_tensor(self.linear(x)), -1).numpy()

    def top(self, pooled: np.ndarray, grid9: np.ndarray | None, k: int = 3) -> list[dict[str, float]]:
        """Per image, its ``k`` likeliest classes ("other" among them) and their probabilities, likeliest first."""
        return self._top(self.probs(pooled, grid9), k)

    def _top(self, probs: np.ndarray, k: int) -> list[dict[str, float]]:
        return [{self.classes[i]: round(float(row[i]), 4) for i in np.argsort(-row)[:k]} for row in probs]

    def glyph_probs(self, captioner, images: list) -> np.ndarray:
        """[B, K] class probabilities of images (PIL) through their glyph views: one more encoder pass."""
        from .glyph import glyph_view

        return self.probs(*head_inputs(captioner, [glyph_view(im, self.glyph["size"]) for im in images], self.taps))

    def top_glyphs(self, captioner, images: list, k: int = 3) -> list[dict[str, float]]:
        """As ``top``, for a head that reads glyphs."""
        return self._top(self.glyph_probs(captioner, images), k)

    # -- storage, inside the heads file -------------------------------------------------------------------------

    def tensors(self, prefix: str = "meaning") -> dict[str, np.ndarray]:
        t = self.linear.tensors(prefix)
        if self.hidden is not None:
            t.update(self.hidden.tensors(f"{prefix}.hidden"))
        t.update({f"{prefix}.pooled_mean": self.pooled_proj[0], f"{prefix}.pooled_proj": self.pooled_proj[1]})
        if self.grid_proj is not None:
            t.update({f"{prefix}.grid_mean": self.grid_proj[0], f"{prefix}.grid_proj": self.grid_proj[1]})
        for block, (pp, gp) in zip(self.taps, self.tap_projs):
            t.update({f"{prefix}.tap{block}.pooled_mean": pp[0], f"{prefix}.tap{block}.pooled_proj": pp[1],
                      f"{prefix}.tap{block}.grid_mean": gp[0], f"{prefix}.tap{block}.grid_proj": gp[1]})
        return t

    def meta(self) -> dict:
        return {"classes": self.classes, "threshold": self.threshold, "titles": self.titles,
                "brand_threshold": self.brand_threshold, **({"glyph": self.glyph} if self.glyph else {})}

    @classmethod
    def from_stored(cls, t: dict, meta: dict, prefix: str = "meaning") -> "MeaningHead":
        from .heads import Linear

        grid = (t[f"{prefix}.grid_mean"], t[f"{prefix}.grid_proj"]) if f"{prefix}.grid_proj" in t else None
        hidden = Linear.from_tensors(t, f"{prefix}.hidden") if f"{prefix}.hidden.weight" in t else None
        glyph = dict(meta["glyph"]) if meta.get("glyph") else None
        taps = [((t[f"{prefix}.tap{b}.pooled_mean"], t[f"{prefix}.tap{b}.pooled_proj"]),
                 (t[f"{prefix}.tap{b}.grid_mean"], t[f"{prefix}.tap{b}.grid_proj"]))
                for b in (glyph or {}).get("taps", ())]
        return cls(list(meta["classes"]), (t[f"{prefix}.pooled_mean"], t[f"{prefix}.pooled_proj"]), grid,
                   Linear.from_tensors(t, prefix), float(meta["threshold"]), dict(meta.get("titles", {})), hidden,
                   meta.get("brand_threshold"), glyph, taps)
