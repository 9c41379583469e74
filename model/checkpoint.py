"""One self-contained checkpoint file: safetensors weights + JSON metadata (config, vocabulary, training facts).

safetensors cannot run code when read, so a checkpoint from a stranger is as safe to open as an image. The frozen
pretrained encoder is named, not stored: its weights come from its own package, which keeps the shipped file small.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

FORMAT = "alt-text/captioner"
FORMAT_VERSION = "1"


class CheckpointError(ValueError):
    """The file is missing, damaged, or not one of ours."""


def file_digest(path: str | Path) -> str:
    """The SHA-256 of a checkpoint file: what heads fitted for it and cached results name it by."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def unique_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop aliases of tensors already present (tied embeddings): safetensors refuses shared storage."""
    seen, out = set(), {}
    for name, t in state.items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if key in seen:
            continue
        seen.add(key)
        out[name] = t
    return out


def aliases(module: torch.nn.Module) -> set[str]:
    """The names in ``module``'s state that ``unique_state`` leaves out (tied weights, e.g. a decoder's output head
    sharing its embedding): a saved state may lack exactly these, and loading its twin fills them."""
    state = module.state_dict()
    return set(state) - set(unique_state(state))


def save(path: str | Path, state: dict[str, torch.Tensor], metadata: dict[str, object],
         dtype: torch.dtype | None = torch.float16) -> None:
    """Write atomically (temp file + rename) so a crash never leaves a half-written checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, t in unique_state(state).items():
        t = t.detach().to("cpu")
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        tensors[name] = t.contiguous()
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION}
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()})
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.chmod(0o644)  # safetensors creates it private; a checkpoint is meant to be shared
    tmp.replace(path)


def load(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a checkpoint, or a CheckpointError that says what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"{path}: not an alt-text captioner checkpoint (no '{FORMAT}' metadata)")
            if meta.get("format_version") != FORMAT_VERSION:
                raise CheckpointError(f"{path}: checkpoint format version {meta.get('format_version')!r} "
                                      f"is not supported (this version reads {FORMAT_VERSION})")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: damaged or not a safetensors checkpoint ({e})") from None
    return tensors, meta
