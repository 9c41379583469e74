"""Training: teacher-forced cross-entropy over cached encoder features, selected by dev CIDEr.

A run directory holds everything: ``train_state.safetensors`` (weights, optimiser, schedule, step, settings:
model/training_state.py; written atomically every
``save_every`` steps and at each epoch end), ``best.safetensors`` (the checkpoint with the best dev CIDEr so far)
and ``log.jsonl`` (one line per epoch). ``resume=True`` continues exactly where the state file left off: the data
order of an epoch and every random draw depend only on (seed, epoch, step), never on how many runs it took.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import checkpoint, training_state
from .captioner import CaptionModel, ModelConfig
from .datasets import CaptionedImage, load_split
from .decoders import DecoderConfig
from .encoders import get_spec, preprocess
from .features import cached_features
from .images import load_image
from .metrics import cider
from .beam import SearchConfig, beam_search
from .vocab import Vocabulary

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    data: list[str] = field(default_factory=list)  # dataset directories (train on 'train', select on 'dev')
    out: str = "runs/default"
    encoder: str = "efficientnet-lite0"
    decoder: str = "transformer"
    d_model: int = 512
    n_layers: int = 3
    n_heads: int = 8
    hidden: int = 512
    dropout: float = 0.3
    max_len: int = 24
    min_freq: int = 3
    epochs: int = 10
    batch_size: int = 64
    lr: float = 4e-4
    weight_decay: float = 0.01
    warmup_steps: int = 500
    label_smoothing: float = 0.1
    grad_clip: float = 1.0
    flip: float = 0.5  # probability of a horizontal flip of the grid, with left/right swapped in the caption
    eval_beam: int = 3
    max_dev_images: int = 0  # 0: every dev image
    max_train_images: int = 0  # 0: every train image (a smaller number is for quick experiments)
    save_every: int = 200
    seed: int = 0
    cache_dir: str | None = None
    device: str = "auto"
    max_steps: int = 0  # stop after this global step (0: train all epochs); for tests and smoke runs


class TrainingError(RuntimeError):
    pass


TRAIN_STATE = "train_state.safetensors"
STATE_FORMAT = "alt-text/train-state"


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _check_device(device: torch.device) -> None:
    """A settings error for a CUDA device this machine lacks (both trainers' ``validate``)."""
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda: no CUDA device is available here")


def _load(cfg: TrainConfig, split: str) -> list[list[CaptionedImage]]:
    if not cfg.data:
        raise TrainingError("no dataset given: pass at least one dataset directory")
    return [load_split(root, split) for root in cfg.data]


class _Split:
    """The images of one split across datasets, their features (cached when the encoder is frozen) and captions."""

    def __init__(self, parts: list[list[CaptionedImage]], cfg, limit: int, upto: int | None = None):
        items = [it for part in parts for it in part]
        if limit:
            items = items[:limit]
        if not items:
            raise TrainingError("a split has no usable images; check the dataset paths")
        self.items = items
        self.spec = get_spec(cfg.encoder)
        self.upto = upto  # a tuned tail starts at this block: the cache holds the trunk's maps before it
        if self.spec.trainable:
            self.feats = None
        else:
            # One cache file per whole dataset split, shared by every run that uses it; a limit slices it.
            chunks = [cached_features([it.path for it in part], cfg.encoder, cfg.cache_dir, upto=upto)
                      for part in parts]
            self.feats = torch.cat(chunks)[: len(items)]

    def inputs(self, idx: torch.Tensor, model: CaptionModel, device) -> torch.Tensor:
        """Encoder grids for the images ``idx``: from the cache (through the model's tuned tail, with gradients,
        where it has one), or through the (trainable) encoder."""
        if self.feats is not None:
            x = self.feats[idx].to(device, torch.float32)
            return x if self.upto is None else model.encoder.tail(x)
        images = [load_image(self.items[i].path) for i in idx.tolist()]
        return model.encoder(preprocess(images, self.spec).to(device))


def _pad(seqs: list[list[int]], pad: int) -> torch.Tensor:
    out = torch.full((len(seqs), max(map(len, seqs))), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s)
    return out


def collate(pairs: list[tuple[int, list[int]]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(image index, token ids) pairs -> image index tensor [B] and padded tokens [B, T]."""
    return torch.tensor([p[0] for p in pairs]), _pad([p[1] for p in pairs], pad)


def _schedule(step: int, cfg: TrainConfig, total: int) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))


def _flip(feats: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor, swap: torch.Tensor) -> tuple:
    """Mirror the grids of the rows in ``mask`` and swap 'left'/'right' in their captions."""
    if not mask.any():
        return feats, tokens
    b, n, c = feats.shape
    g = int(math.isqrt(n))
    feats = feats.clone()
    feats[mask] = feats[mask].view(-1, g, g, c).flip(2).reshape(-1, n, c)
    tokens = tokens.clone()
    tokens[mask] = swap[tokens[mask]]
    return feats, tokens


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.device = _device(cfg.device)
        self.state_file = self.out / TRAIN_STATE

    def validate(self) -> None:
        """Settings errors, found before minutes of feature extraction rather than after."""
        cfg = self.cfg
        get_spec(cfg.encoder)
        if cfg.decoder not in ("transformer", "lstm"):
            raise TrainingError(f"unknown decoder {cfg.decoder!r}; choose 'transformer' or 'lstm'")
        if cfg.decoder == "transformer" and cfg.d_model % cfg.n_heads:
            raise TrainingError(f"--d-model {cfg.d_model} must be a multiple of --n-heads {cfg.n_heads}")
        if cfg.max_len < 4 or cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0:
            raise TrainingError("--max-len must be >= 4, --epochs, --batch-size and --lr positive")
        _check_device(self.device)

    def setup(self, resume: bool) -> None:
        cfg = self.cfg
        self.validate()
        self.out.mkdir(parents=True, exist_ok=True)
        saved = None
        if resume:
            if not self.state_file.is_file():
                if (self.out / "train_state.pt").is_file():
                    raise TrainingError(f"--resume: {self.out}/train_state.pt was written by an older alt-text (a "
                                        "pickle, which this version does not read); finish that run with the "
                                        "version that started it, or start it again")
                raise TrainingError(f"--resume: no {self.state_file} to resume from")
            try:
                saved = training_state.read(self.state_file, STATE_FORMAT)
            except ValueError as e:
                raise TrainingError(str(e)) from None
            stored = json.loads(saved[1]["train_config"])  # saved: (tensors, metadata)
            changed = {k: (stored.get(k), v) for k, v in asdict(cfg).items()
                       if k not in ("epochs", "max_steps", "device", "cache_dir", "save_every") and stored.get(k) != v}
            if changed:
                raise TrainingError(f"--resume with different settings than the saved run: {changed}")
        elif self.state_file.is_file():
            raise TrainingError(f"{self.out} already holds a run; pass --resume to continue it or pick another --out")

        train_parts = _load(cfg, "train")
        if saved:
            self.vocab = Vocabulary.from_json(saved[1]["vocab"])
        else:
            self.vocab = Vocabulary.build((c for part in train_parts for it in part for c in it.captions), cfg.min_freq)
        self.train = _Split(train_parts, cfg, cfg.max_train_images)
        self.dev = _Split(_load(cfg, "dev"), cfg, cfg.max_dev_images)
        v = self.vocab
        self.pairs = [(i, v.encode(c, cfg.max_len)) for i, it in enumerate(self.train.items) for c in it.captions]
        self.swap = torch.arange(len(v))
        if "left" in v.stoi and "right" in v.stoi:
            self.swap[v.stoi["left"]], self.swap[v.stoi["right"]] = v.stoi["right"], v.stoi["left"]

        spec = get_spec(cfg.encoder)
        self.model_cfg = ModelConfig(cfg.encoder, DecoderConfig(
            kind=cfg.decoder, vocab_size=len(v), feature_dim=spec.feature_dim, grid_size=spec.grid * spec.grid,
            d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads, hidden=cfg.hidden,
            dropout=cfg.dropout, max_len=cfg.max_len))
        torch.manual_seed(cfg.seed)
        # No pretrained weights to load: a frozen encoder is not run while training on cached features, and a
        # trainable one starts from scratch.
        self.model = CaptionModel(self.model_cfg, pretrained_encoder=False).to(self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        self.steps_per_epoch = math.ceil(len(self.pairs) / cfg.batch_size)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.step, self.evaluated, self.best, self.best_epoch = 0, 0, -1.0, -1
        if saved:
            tensors, meta = saved
            try:
                training_state.load_module(self.model, tensors, "model.")
            except ValueError as e:
                raise TrainingError(f"{self.state_file}: {e}") from None
            training_state.load_optimizer(self.opt, tensors, meta)
            self.step, self.evaluated = int(meta["step"]), int(meta["evaluated"])
            self.best, self.best_epoch = float(meta["best"]), int(meta["best_epoch"])
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.device.type == "cuda")

    def _save_state(self) -> None:
        meta = {"step": str(self.step), "evaluated": str(self.evaluated), "best": repr(self.best),
                "best_epoch": str(self.best_epoch), "vocab": self.vocab.to_json(),
                "train_config": json.dumps(asdict(self.cfg))}
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        training_state.write(self.state_file, tensors, self.opt, meta, STATE_FORMAT)

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.pairs), generator=g)

    def _loss(self, feats, tokens) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            logits = self.model.decoder(feats, tokens[:, :-1])
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1),
                               ignore_index=self.vocab.pad_id, label_smoothing=self.cfg.label_smoothing)

    def train_step(self, batch_pairs) -> float:
        cfg = self.cfg
        torch.manual_seed(cfg.seed * 7_919 + self.step)  # dropout and flips depend on the step alone
        idx, tokens = collate(batch_pairs, self.vocab.pad_id)
        feats = self.train.inputs(idx, self.model, self.device)
        tokens = tokens.to(self.device)
        if cfg.flip > 0:
            mask = (torch.rand(len(idx)) < cfg.flip).to(self.device)
            feats, tokens = _flip(feats, tokens, mask, self.swap.to(self.device))
        self.model.train()
        for group in self.opt.param_groups:
            group["lr"] = cfg.lr * _schedule(self.step, cfg, self.total_steps)
        loss = self._loss(feats, tokens)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.step += 1
        return loss.item()

    @torch.no_grad()
    def evaluate_dev(self) -> dict:
        self.model.eval()
        dev, v = self.dev, self.vocab
        losses, hyps = [], {}
        search = SearchConfig.for_vocab(v, self.cfg.eval_beam, max_len=self.cfg.max_len - 2)
        for s in range(0, len(dev.items), 100):
            idx = torch.arange(s, min(s + 100, len(dev.items)))
            feats = dev.inputs(idx, self.model, self.device)
            pairs = [(j, v.encode(dev.items[i].captions[0], self.cfg.max_len)) for j, i in enumerate(idx.tolist())]
            _, tokens = collate(pairs, v.pad_id)
            losses.append(float(self._loss(feats, tokens.to(self.device))))
            for i, h in zip(idx.tolist(), beam_search(self.model.decoder, feats, search)):
                hyps[i] = v.decode(h.tokens)
        refs = {i: list(it.captions) for i, it in enumerate(dev.items)}
        return {"dev_loss": sum(losses) / len(losses), "dev_cider": cider(refs, hyps),
                "samples": [hyps[i] for i in range(min(3, len(hyps)))]}

    def save_best(self, path: Path, metrics: dict) -> None:
        info = {"name": self.out.name, "train_config": asdict(self.cfg), "step": self.step, **metrics}
        checkpoint.save(path, self.model.trainable_state(),
                        {"config": self.model_cfg.to_json(), "vocab": self.vocab.to_json(), "info": info})

    def run(self, resume: bool = False) -> dict:
        self.setup(resume)
        cfg = self.cfg
        log.info("training %s/%s: %d images, %d captions, vocabulary %d, %d steps per epoch",
                 cfg.encoder, cfg.decoder, len(self.train.items), len(self.pairs), len(self.vocab),
                 self.steps_per_epoch)
        last = {}
        for epoch in range(self.evaluated, cfg.epochs):  # an epoch ends with its dev evaluation
            order = self._epoch_order(epoch)
            first = self.step - epoch * self.steps_per_epoch  # batches of this epoch already done (resume)
            t0 = time.time()
            bar = tqdm(range(first, self.steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       initial=first, total=self.steps_per_epoch, unit="step", mininterval=2)
            loss = float("nan")
            for b in bar:
                batch = order[b * cfg.batch_size : (b + 1) * cfg.batch_size].tolist()
                loss = self.train_step([self.pairs[i] for i in batch])
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                if self.step % cfg.save_every == 0:
                    self._save_state()
                if cfg.max_steps and self.step >= cfg.max_steps:
                    self._save_state()
                    bar.close()
                    return {"step": self.step, "stopped": "max_steps"}
            bar.close()
            metrics = self.evaluate_dev()
            last = {"epoch": epoch + 1, "step": self.step, "train_loss": None if math.isnan(loss) else loss,
                    "epoch_seconds": round(time.time() - t0, 1), **metrics}
            if metrics["dev_cider"] > self.best:
                self.best, self.best_epoch = metrics["dev_cider"], epoch + 1
                self.save_best(self.out / "best.safetensors", {"dev_cider": self.best, "epoch": epoch + 1})
            last["best_dev_cider"], last["best_epoch"] = self.best, self.best_epoch
            self.evaluated = epoch + 1
            with open(self.out / "log.jsonl", "a") as f:
                f.write(json.dumps(last) + "\n")
            log.info("epoch %d: dev loss %.3f, dev CIDEr %.3f (best %.3f at epoch %d) e.g. %r", epoch + 1,
                     metrics["dev_loss"], metrics["dev_cider"], self.best, self.best_epoch, metrics["samples"][0])
            self._save_state()
        return last


def train(cfg: TrainConfig, resume: bool = False) -> dict:
    return Trainer(cfg).run(resume)
