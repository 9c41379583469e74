"""The meaning head: what an icon means ("search", "close") or which brand a logo shows, from the encoder's features.

It reads what the encoder computes for every image anyway: the pooled features, and a 3x3 summary of the grid
projected onto a few principal directions (pooled features alone cannot tell a left arrow from a right one). One
linear layer over the classes of ``meanings.json`` plus "other"; fitted and validated leave-one-icon-set-out by
``scripts/fit_meanings.py`` and stored in the checkpoint's heads file. A class is said only at or above the
threshold chosen on the held-out sets.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .meanings import OTHER

GRID_COMPONENTS = 64  # principal directions of the grid cells the 3x3 summary keeps


def grid_summary(grid: torch.Tensor) -> torch.Tensor:
    """[B, S*S, C] -> [B, 9, C]: the encoder's grid averaged over a 3x3 layout (where in the image things are)."""
    b, n, c = grid.shape
    s = int(round(n ** 0.5))
    g = grid.float().transpose(1, 2).reshape(b, c, s, s)
    return torch.nn.functional.adaptive_avg_pool2d(g, 3).reshape(b, c, 9).transpose(1, 2)


def meaning_features(pooled: np.ndarray, grid9: np.ndarray | None, proj: tuple[np.ndarray, np.ndarray] | None,
                     kind: str = "pooled+grid") -> np.ndarray:
    """[B, F] features: L2-normalised pooled features, then (``pooled+grid``) the projected 3x3 grid summary."""
    p = torch.nn.functional.normalize(torch.as_tensor(pooled, dtype=torch.float32), dim=-1)
    if kind == "pooled" or proj is None or grid9 is None:
        return p.numpy()
    mean, comps = (torch.as_tensor(a, dtype=torch.float32) for a in proj)
    g = torch.nn.functional.normalize(torch.as_tensor(grid9, dtype=torch.float32), dim=-1)
    g = ((g - mean) @ comps.T).reshape(len(p), -1)
    return torch.cat([p, g], 1).numpy()


@dataclass
class MeaningHead:
    classes: list[str]  # "other", "meaning:<id>", "brand:<id>"
    features: str = "pooled+grid"
    proj_mean: np.ndarray | None = None  # [C]
    proj: np.ndarray | None = None  # [GRID_COMPONENTS, C]
    linear: object = None  # heads.Linear
    threshold: float = 1.0
    titles: dict[str, str] = field(default_factory=dict)  # class -> what is said ("Search", "GitHub")

    @classmethod
    def empty(cls, classes: list[str], features: str) -> "MeaningHead":
        assert classes[0] == OTHER
        return cls(list(classes), features)

    def fit_projection(self, pooled: np.ndarray, grid9: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        g = torch.nn.functional.normalize(torch.as_tensor(grid9, dtype=torch.float32), dim=-1).reshape(
            -1, grid9.shape[-1])
        mean = g.mean(0)
        _, _, v = torch.pca_lowrank(g - mean, q=min(GRID_COMPONENTS, *g.shape), center=False)
        self.proj_mean, self.proj = mean.numpy(), v.T.contiguous().numpy()
        return self.proj_mean, self.proj

    def probs(self, pooled: np.ndarray, grid9: np.ndarray | None) -> np.ndarray:
        """[B, K] class probabilities."""
        proj = (self.proj_mean, self.proj) if self.proj is not None else None
        x = meaning_features(pooled, grid9, proj, self.features)
        return torch.softmax(torch.as_tensor(self.linear(x)), -1).numpy()

    def top(self, pooled: np.ndarray, grid9: np.ndarray | None, k: int = 3) -> list[dict[str, float]]:
        """Per image, its ``k`` likeliest classes ("other" among them) and their probabilities, likeliest first."""
        return [{self.classes[i]: round(float(row[i]), 4) for i in np.argsort(-row)[:k]}
                for row in self.probs(pooled, grid9)]

    # -- storage, inside the heads file -------------------------------------------------------------------------

    def tensors(self) -> dict[str, np.ndarray]:
        t = self.linear.tensors("meaning")
        if self.proj is not None:
            t.update({"meaning.proj_mean": self.proj_mean, "meaning.proj": self.proj})
        return t

    def meta(self) -> dict:
        return {"classes": self.classes, "features": self.features, "threshold": self.threshold,
                "titles": self.titles}

    @classmethod
    def from_stored(cls, t: dict, meta: dict) -> "MeaningHead":
        from .heads import Linear

        return cls(list(meta["classes"]), meta["features"], t.get("meaning.proj_mean"), t.get("meaning.proj"),
                   Linear.from_tensors(t, "meaning"), float(meta["threshold"]), dict(meta.get("titles", {})))
