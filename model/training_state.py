"""A training run's resumable state in one safetensors file, for cross-entropy and SCST training alike.

Tensors (weights, the optimiser's moments) are stored as they are (fp32) and everything else (step, settings,
vocabulary, the optimiser's hyper-parameters) as JSON metadata: nothing in the file is executable, unlike a pickle,
and a resumed run reads back exactly the numbers it wrote, so it continues bit for bit.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .checkpoint import aliases, unique_state

OPTIMIZER = "opt."  # tensor names "opt.<param id>.<key>" hold the optimiser's per-parameter state


def write(path: Path, tensors: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer, meta: dict[str, str],
          fmt: str) -> None:
    """Write ``tensors`` (their names must not start with "opt."), the optimiser's state and ``meta`` atomically."""
    out = {k: v.detach().cpu().contiguous() for k, v in unique_state(tensors).items()}
    opt = optimizer.state_dict()
    for pid, entries in opt["state"].items():
        for key, t in entries.items():
            out[f"{OPTIMIZER}{pid}.{key}"] = t.detach().cpu().contiguous()
    meta = {**meta, "format": fmt, "optimizer_groups": json.dumps(opt["param_groups"])}
    tmp = path.with_name(path.name + ".tmp")
    save_file(out, str(tmp), metadata=meta)
    tmp.replace(path)


def read(path: Path, fmt: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a state file of format ``fmt``; ValueError (one line) if it is not one."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != fmt:
                raise ValueError(f"{path}: not a {fmt} training state")
            return {k: f.get_tensor(k) for k in f.keys()}, meta
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path}: damaged training state ({e})") from None


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    """Put the optimiser's saved state back (the parameter groups must be the ones it was saved with)."""
    state: dict[int, dict] = {}
    for name, t in tensors.items():
        if name.startswith(OPTIMIZER):
            pid, key = name[len(OPTIMIZER):].split(".", 1)
            state.setdefault(int(pid), {})[key] = t
    groups = json.loads(meta["optimizer_groups"])
    for g in groups:
        g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def module_state(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors saved under ``prefix`` (e.g. "model."), with it removed."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def load_module(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    """Load the tensors saved under ``prefix`` into ``module``; ValueError (one line) unless they are all of its
    state but its tied aliases (which ``write`` leaves out)."""
    missing, unexpected = module.load_state_dict(module_state(tensors, prefix), strict=False)
    if set(missing) - aliases(module) or unexpected:
        raise ValueError(f"training state does not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})")
