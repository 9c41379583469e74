"""Tiny randomly-initialised models for fast unit tests."""
import torch

from model.decoders import DecoderConfig, build_decoder


def tiny_config(kind: str, vocab_size: int = 24, feature_dim: int = 16, grid: int = 4, max_len: int = 12):
    return DecoderConfig(kind=kind, vocab_size=vocab_size, feature_dim=feature_dim, grid_size=grid * grid,
                         d_model=32, n_layers=2, n_heads=4, hidden=32, dropout=0.0, max_len=max_len)


def tiny_decoder(kind: str, seed: int = 0, **kw):
    torch.manual_seed(seed)
    return build_decoder(tiny_config(kind, **kw)).eval()


def feats(batch: int, grid: int = 4, dim: int = 16, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, grid * grid, dim, generator=g)


def tiny_train_config(data, out, cache, **kw):
    """A TrainConfig for a model that trains in seconds on the shapes dataset."""
    from model.train import TrainConfig

    base = dict(data=[str(data)], out=str(out), cache_dir=str(cache), d_model=32, n_layers=1, n_heads=2,
                hidden=32, dropout=0.0, batch_size=8, epochs=4, warmup_steps=2, lr=3e-3, save_every=2,
                min_freq=1, max_len=10)
    base.update(kw)
    return TrainConfig(**base)
