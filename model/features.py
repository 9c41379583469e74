"""Encoder grid features computed once and cached on disk (fp16), so training a decoder over a frozen encoder
costs minutes per epoch on a 2-core CPU instead of re-running the encoder on every image every epoch.

The cache is a plain ``.npy`` file (read with ``allow_pickle=False``) beside a JSON index of the image paths.
Extraction writes in chunks and records how far it got, so an interrupted run picks up where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .encoders import build_encoder, get_spec, preprocess
from .images import IMAGE_PATH_VERSION, load_image

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "alt-text" / "features"


class _Images(Dataset):
    def __init__(self, paths, spec):
        self.paths, self.spec = paths, spec

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        try:
            return preprocess([load_image(self.paths[i])], self.spec)[0]
        except (OSError, ValueError, SyntaxError) as e:  # one damaged file must not end an hour-long extraction
            log.warning("%s: unreadable image (%s); its features are zeros", self.paths[i], e)
            s = self.spec.image_size
            return torch.zeros(3, s, s)


def _trunk_shape(encoder: str, upto: int) -> tuple[int, ...]:
    spec = get_spec(encoder)
    net = build_encoder(encoder, pretrained=False)
    with torch.no_grad():
        return tuple(net.trunk(torch.zeros(1, 3, spec.image_size, spec.image_size), upto).shape[1:])


def cached_features(paths: list[Path], encoder: str, cache_dir: str | Path | None = None,
                    batch_size: int = 32, device: str = "cpu", workers: int = 1,
                    upto: int | None = None) -> torch.Tensor:
    """[N, grid, C] fp16 features of ``paths`` (in order), computed now or read from the cache. With ``upto``, the
    EfficientNet-Lite trunk's [N, C, H, W] map before block ``upto`` instead: where a tuned tail starts."""
    spec = get_spec(encoder)
    paths = [str(Path(p).resolve()) for p in paths]
    # The image path's version is in the key: features decoded some other way are never reused.
    where = [] if upto is None else [f"trunk-{upto}"]
    key = hashlib.sha1("\n".join([encoder, *where, IMAGE_PATH_VERSION, *paths]).encode()).hexdigest()[:16]
    root = Path(cache_dir or default_cache_dir()) / encoder
    root.mkdir(parents=True, exist_ok=True)
    data_file, index_file = root / f"{key}.npy", root / f"{key}.json"
    if upto is None:
        shape = (len(paths), spec.grid * spec.grid, spec.feature_dim)
    else:
        shape = (len(paths), *_trunk_shape(encoder, upto))

    done = 0
    if index_file.is_file() and data_file.is_file():
        index = json.loads(index_file.read_text())
        done = index["done"] if index.get("paths") == paths else 0
    if done < len(paths):
        mode = "r+" if done else "w+"
        arr = np.lib.format.open_memmap(data_file, mode=mode, dtype=np.float16, shape=shape)
        net = build_encoder(encoder).to(device)
        loader = DataLoader(_Images(paths[done:], spec), batch_size=batch_size, num_workers=workers)
        with torch.no_grad(), tqdm(total=len(paths), initial=done, desc=f"features {encoder}", unit="img") as bar:
            for x in loader:
                x = x.to(device)
                f = (net(x) if upto is None else net.trunk(x, upto)).to("cpu", torch.float16).numpy()
                arr[done : done + len(f)] = f
                done += len(f)
                if done % (batch_size * 20) < batch_size or done == len(paths):
                    arr.flush()
                    index_file.write_text(json.dumps({"encoder": encoder, "done": done, "paths": paths}))
                bar.update(len(f))
        arr.flush()
        del arr
        index_file.write_text(json.dumps({"encoder": encoder, "done": done, "paths": paths}))
    arr = np.load(data_file, mmap_mode="r", allow_pickle=False)
    if arr.shape != shape:
        raise ValueError(f"{data_file}: cached features have shape {arr.shape}, expected {shape}; delete the file")
    return torch.from_numpy(np.array(arr))  # into memory: training indexes it at random


@torch.no_grad()
def model_grids(paths: list[Path], model, cache_dir: str | Path | None = None, batch_size: int = 100) -> torch.Tensor:
    """The [N, grid, C] grids a ``CaptionModel``'s decoder reads for ``paths``: the cached features of its frozen
    encoder, or, when its tail is tuned, the cached trunk maps run through the tuned tail (fp32, CPU)."""
    if not model.cfg.tuned_blocks:
        return cached_features(paths, model.cfg.encoder, cache_dir).float()
    maps = cached_features(paths, model.cfg.encoder, cache_dir, upto=model.encoder.split)
    tail = model.encoder.tail
    w = next(tail.parameters())
    return torch.cat([tail(maps[s : s + batch_size].to(w.device, w.dtype)).float().cpu()
                      for s in range(0, len(maps), batch_size)])
