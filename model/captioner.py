"""The captioning model and its loading API: ``Captioner.load(path).caption(images)``.

``CaptionModel`` is the network (encoder + decoder); ``Captioner`` wraps it with the vocabulary, a device and beam
search, and is all the server and CLI need. ``Captioner.load([path_a, path_b])`` (or ``load_ensemble``) makes an
ensemble: checkpoints with the same encoder and vocabulary, whose decoders are averaged inside one beam search
while the encoder runs once per image.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from . import checkpoint
from .beam import COMBINE_MODES, Ensemble, Hypothesis, SearchConfig, beam_search
from .decoders import DecoderConfig, build_decoder
from .encoders import build_encoder, get_spec, preprocess
from .vocab import Vocabulary

log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = "weights/default.safetensors"


def default_checkpoint_path() -> Path:
    return Path(str(resources.files("model").joinpath(DEFAULT_CHECKPOINT)))


@dataclass
class ModelConfig:
    encoder: str = "efficientnet-lite0"
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    tuned_blocks: int = 0  # the encoder's last blocks (and head convolution) fine-tuned and stored: TunedTail

    def to_json(self) -> str:
        d = {"encoder": self.encoder, "decoder": self.decoder.to_dict()}
        if self.tuned_blocks:  # absent otherwise: older readers still load frozen-encoder checkpoints
            d["tuned_blocks"] = self.tuned_blocks
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        d = json.loads(text)
        return cls(encoder=d["encoder"], decoder=DecoderConfig(**d["decoder"]),
                   tuned_blocks=int(d.get("tuned_blocks", 0)))


class CaptionModel(nn.Module):
    def __init__(self, cfg: ModelConfig, pretrained_encoder: bool = True):
        super().__init__()
        self.cfg = cfg
        self.spec = get_spec(cfg.encoder)
        self.encoder = build_encoder(cfg.encoder, pretrained=pretrained_encoder, tuned_blocks=cfg.tuned_blocks)
        self.decoder = build_decoder(cfg.decoder)

    def stored_prefixes(self) -> tuple[str, ...]:
        """The state a checkpoint holds: the decoder, plus the encoder when it is trained whole (not pretrained) or
        its tuned tail; a pretrained encoder is named, its weights come from its package."""
        if self.spec.trainable:
            return "decoder.", "encoder."
        return ("decoder.", "encoder.tail.") if self.cfg.tuned_blocks else ("decoder.",)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores (``stored_prefixes``)."""
        return {k: v for k, v in self.state_dict().items() if k.startswith(self.stored_prefixes())}

    def grids(self, images: torch.Tensor, taps: tuple[int, ...] = ()) -> tuple[torch.Tensor, torch.Tensor, list]:
        """(the grid the decoder reads, the pretrained encoder's grid, the pretrained encoder's maps after the blocks
        ``taps``) of a batch: the same grid unless the encoder's tail is tuned, whose pretrained grid is what the
        encoder's ImageNet head classifies. Taps: EfficientNet-Lite encoders only (ValueError otherwise)."""
        if self.cfg.tuned_blocks:
            return self.encoder.with_pretrained(images, tuple(taps))
        grid, maps = self.pretrained_grid(images, taps)
        return grid, grid, maps

    def pretrained_grid(self, images: torch.Tensor, taps: tuple[int, ...] = ()) -> tuple[torch.Tensor, list]:
        """(the pretrained encoder's grid, its maps after the blocks ``taps``) of a batch, from one pass of the
        pretrained network alone: a tuned tail's own work is not done. Taps: EfficientNet-Lite encoders only
        (ValueError otherwise)."""
        net = self.encoder.net if self.cfg.tuned_blocks else self.encoder
        if not taps:
            return net(images), []
        if not hasattr(net, "with_taps"):
            raise ValueError(f"{self.cfg.encoder} has no block maps to tap (EfficientNet-Lite encoders only)")
        return net.with_taps(images, tuple(taps))

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(images), tokens)


@dataclass(frozen=True)
class Caption:
    text: str  # a sentence, ready for an alt attribute
    confidence: float  # geometric mean token probability, in (0, 1]
    tokens: str  # the raw lower-case words, as the metrics read them


def _check_same_encoder(first: Path, a: CaptionModel, other: Path, b: CaptionModel) -> None:
    """An ensemble's decoders must all read the grid of one encoder: same name and, where the encoder (or its tuned
    tail) is trained with the decoder and so stored in the checkpoint, the same weights."""
    if a.cfg.encoder != b.cfg.encoder:
        raise checkpoint.CheckpointError(
            f"{other}: cannot ensemble with {first}: it reads {b.cfg.encoder} features, {first.name} reads "
            f"{a.cfg.encoder} (an ensemble shares one encoder)")
    ea = {k: v for k, v in a.trainable_state().items() if k.startswith("encoder.")}
    eb = {k: v for k, v in b.trainable_state().items() if k.startswith("encoder.")}
    if ea.keys() != eb.keys() or not all(torch.equal(ea[k].float(), eb[k].float()) for k in ea):
        tuned = (f" (tuned blocks: {b.cfg.tuned_blocks} and {a.cfg.tuned_blocks})"
                 if a.cfg.tuned_blocks or b.cfg.tuned_blocks else "")
        raise checkpoint.CheckpointError(
            f"{other}: cannot ensemble with {first}: both read {a.cfg.encoder}, but with different trained "
            f"weights{tuned}; an ensemble shares one encoder")


def _check_same_vocab(first: Path, a: Vocabulary, other: Path, b: Vocabulary) -> None:
    if a.itos == b.itos:
        return
    common = min(len(a), len(b))
    diff = next((i for i, (x, y) in enumerate(zip(a.itos, b.itos)) if x != y), common)
    at = (f"id {diff} is {b.itos[diff]!r} in {other.name}, {a.itos[diff]!r} in {first.name}" if diff < common
          else f"the first {common} agree")
    raise checkpoint.CheckpointError(
        f"{other}: cannot ensemble with {first}: the vocabularies differ ({other.name} has {len(b)} words, "
        f"{first.name} {len(a)}; {at}); an ensemble averages distributions over one vocabulary")


def to_sentence(words: str) -> str:
    return (words[:1].upper() + words[1:] + ".") if words else ""


class Captioner:
    """Loaded model + vocabulary on one device. ``caption`` is thread-compatible but not thread-safe: give each
    thread its own, or serialise calls (the server's batching worker does).

    ``extra_decoders`` (optional) are more decoders over ``model``'s encoder and ``vocab``: with any, beam search
    runs an ``Ensemble`` of ``model.decoder`` and them (``combine``: see ``model.beam.Ensemble``). ``self.decoder``
    is what the search runs: ``model.decoder`` itself for a single model."""

    def __init__(self, model: CaptionModel, vocab: Vocabulary, device: str | torch.device | None = None,
                 info: dict | None = None, name: str = "custom", extra_decoders: Sequence[nn.Module] = (),
                 combine: str = "mean"):
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        # Half precision is safe for this model on a GPU; CPUs run fp16 matmuls slowly, so they get fp32.
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.model = model.to(self.device, self.dtype).eval()
        self.vocab = vocab
        self.info = info or {}
        self.name = name
        self.version = name  # Captioner.load makes it unique per checkpoint file: caches key on it
        self.ensemble: Ensemble | None = None
        if extra_decoders:
            extra = [d.to(self.device, self.dtype).eval() for d in extra_decoders]
            self.ensemble = Ensemble([self.model.decoder, *extra], combine=combine)

    @property
    def decoder(self) -> nn.Module:
        """What beam search runs: ``model.decoder`` itself for a single model, else the ``Ensemble``."""
        return self.model.decoder if self.ensemble is None else self.ensemble

    @property
    def members(self) -> list[nn.Module]:
        """The decoders beam search averages (one for a single model)."""
        return [self.model.decoder] if self.ensemble is None else list(self.ensemble.members)

    @classmethod
    def load(cls, path: str | Path | Sequence[str | Path] | None = None, device: str | torch.device | None = None,
             pretrained_encoder: bool = True, combine: str = "mean") -> Captioner:
        """Load a checkpoint file (the bundled default model when ``path`` is None). A list or tuple of paths loads
        an ensemble (``load_ensemble``); a list of one path is that single model, exactly as if given alone."""
        if isinstance(path, (list, tuple)):
            if len(path) != 1:
                return cls.load_ensemble(path, device=device, pretrained_encoder=pretrained_encoder,
                                         combine=combine)
            path = path[0]
        model, vocab, info, name, version = cls._read(path, pretrained_encoder)
        captioner = cls(model, vocab, device=device, info=info, name=name)
        captioner.version = version
        return captioner

    @classmethod
    def load_ensemble(cls, paths: Sequence[str | Path | None], device: str | torch.device | None = None,
                      pretrained_encoder: bool = True, combine: str = "mean") -> Captioner:
        """An ensemble of two or more checkpoints (None: the bundled default model) that share the encoder and the
        vocabulary; a CheckpointError says which file differs and how. The encoder is the first checkpoint's and
        runs once per image; each decoder keeps its own state inside the one batched beam search, whose next-token
        distribution is the mean of the members' (``combine``; see ``model.beam.Ensemble``). The version joins the
        members' versions, so an ensemble never shares cache entries with any of its members."""
        paths = list(paths)
        if len(paths) < 2:
            raise checkpoint.CheckpointError(f"an ensemble needs at least two checkpoints (got {len(paths)})")
        if combine not in COMBINE_MODES:
            raise ValueError(f"unknown combine mode {combine!r}; choose one of: {', '.join(COMBINE_MODES)}")
        model, vocab, info, name, version = cls._read(paths[0], pretrained_encoder)
        first = Path(paths[0]) if paths[0] else default_checkpoint_path()
        names, versions, extra = [name], [version], []
        members = [{"path": str(first), "name": name, "version": version, "info": info}]
        for p in paths[1:]:
            # Only the decoder is kept: a frozen encoder is built untrained (cheap) and dropped.
            other, other_vocab, other_info, other_name, other_version = cls._read(p, pretrained_encoder=False)
            where = Path(p) if p else default_checkpoint_path()
            _check_same_encoder(first, model, where, other)
            _check_same_vocab(first, vocab, where, other_vocab)
            extra.append(other.decoder)
            names.append(other_name)
            versions.append(other_version)
            members.append({"path": str(where), "name": other_name, "version": other_version, "info": other_info})
        suffix = "" if combine == "mean" else f"~{combine}"
        info = {"name": "+".join(names) + suffix, "ensemble": members, "combine": combine}
        captioner = cls(model, vocab, device=device, info=info, name=info["name"], extra_decoders=extra,
                        combine=combine)
        captioner.version = "+".join(versions) + suffix
        return captioner

    @staticmethod
    def _read(path: str | Path | None, pretrained_encoder: bool) -> tuple[CaptionModel, Vocabulary, dict, str, str]:
        """The network, vocabulary, info, name and version of one checkpoint file (or a CheckpointError)."""
        path = Path(path) if path else default_checkpoint_path()
        tensors, meta = checkpoint.load(path)
        try:
            cfg = ModelConfig.from_json(meta["config"])
            vocab = Vocabulary.from_json(meta["vocab"])
        except (KeyError, ValueError, TypeError) as e:
            raise checkpoint.CheckpointError(f"{path}: checkpoint metadata is incomplete or invalid ({e})") from None
        try:
            model = CaptionModel(cfg, pretrained_encoder=pretrained_encoder)
        except ValueError as e:  # e.g. a tuned tail the encoder cannot have
            raise checkpoint.CheckpointError(f"{path}: {e}") from None
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        tied = checkpoint.aliases(model)
        stored = model.stored_prefixes()
        missing = [k for k in missing if k.startswith(stored)]
        if set(missing) - tied or unexpected:
            raise checkpoint.CheckpointError(
                f"{path}: weights do not match the model config (missing {sorted(set(missing) - tied)[:5]}, "
                f"unexpected {unexpected[:5]})")
        info = json.loads(meta.get("info", "{}"))
        name = info.get("name", path.stem)
        return model, vocab, info, name, f"{name}-{checkpoint.file_digest(path)[:12]}"

    @torch.no_grad()
    def encode(self, images: list[Image.Image]) -> torch.Tensor:
        return self.model.encoder(self._batch(images))

    @torch.no_grad()
    def caption_features(self, feats: torch.Tensor, search: SearchConfig,
                         on_caption: Callable[[int, Caption], None] | None = None) -> list[Caption]:
        """One caption per grid; ``on_caption(i, caption)`` hears of each as soon as its search ends."""
        captions: list[Caption | None] = [None] * feats.shape[0]

        def done(i: int, h: Hypothesis) -> None:
            captions[i] = self._to_caption(h)
            if on_caption is not None:
                on_caption(i, captions[i])

        beam_search(self.decoder, feats.to(self.device, self.dtype), search, on_done=done)
        return captions

    def prepare(self, image: Image.Image) -> torch.Tensor:
        """One image resized and normalised for the encoder ([3, S, S], CPU): work a caller can do on its own
        thread, so that a batching worker runs only the network."""
        return preprocess([image], self.model.spec)[0]

    def _batch(self, images: list) -> torch.Tensor:
        """The encoder's input batch on its device: PIL images, or tensors ``prepare`` made."""
        if images and isinstance(images[0], torch.Tensor):
            return torch.stack(images).to(self.device, self.dtype)
        return preprocess(images, self.model.spec).to(self.device, self.dtype)

    @torch.no_grad()
    def encode_and_pool(self, images: list, with_grid: bool = False, taps: tuple[int, ...] = ()
                        ) -> tuple[torch.Tensor, ...]:
        """The grids the decoder reads and the mean-pooled pretrained encoder features [B, C] (fp32, CPU) of one
        batch, from one encoder pass: the pooled vector is what callers compare images by and classify them with
        (the encoder's ImageNet head), so it stays the pretrained encoder's when the tail is tuned. ``images`` are
        PIL images or tensors from ``prepare``. ``with_grid`` adds the pretrained grid itself [B, S*S, C] (fp32, CPU),
        for heads that need to know where things are; ``taps`` (with the grid) adds the list of the pretrained
        maps after those blocks, [B, h*w, c] each (fp32, CPU), from the same pass."""
        feats, pretrained, maps = self.model.grids(self._batch(images), tuple(taps))
        pretrained = pretrained.float()
        if taps:
            return feats, pretrained.mean(1).cpu(), pretrained.cpu(), [m.float().cpu() for m in maps]
        if with_grid:
            return feats, pretrained.mean(1).cpu(), pretrained.cpu()
        return feats, pretrained.mean(1).cpu()

    @torch.no_grad()
    def encode_with_taps(self, images: list, after: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, list]:
        """(mean-pooled features [B, C], grid [B, S*S, C], the maps after the encoder blocks ``after`` [B, h*w, c])
        of the pretrained encoder (fp32, CPU), from one pass, for the same ``images`` as ``encode_and_pool``.
        Taps: EfficientNet-Lite encoders only (``CaptionModel.pretrained_grid``)."""
        grid, maps = self.model.pretrained_grid(self._batch(images), after)
        grid = grid.float().cpu()
        return grid.mean(1), grid, [m.float().cpu() for m in maps]

    def caption_and_pool(self, images: list, search: SearchConfig) -> tuple[list[Caption], torch.Tensor]:
        """Captions and pooled features of one batch (``encode_and_pool``, then the beam search)."""
        feats, pooled = self.encode_and_pool(images)
        return self.caption_features(feats, search), pooled

    def _to_caption(self, h: Hypothesis) -> Caption:
        words = self.vocab.decode(h.tokens)
        return Caption(to_sentence(words), round(h.confidence, 4), words)

    def search_config(self, beam_size: int = 3, **kw) -> SearchConfig:
        room = self.model.cfg.decoder.max_len - 2  # positions the decoder has, less <bos> and <eos>
        if self.ensemble is not None:  # the shortest member's
            room = min(d.cfg.max_len for d in self.ensemble.members) - 2
        kw["max_len"] = min(kw.get("max_len") or room, room)
        return SearchConfig.for_vocab(self.vocab, beam_size, **kw)

    def caption(self, images: list[Image.Image], beam_size: int = 3, batch_size: int = 32, **search) -> list[Caption]:
        """One caption per image, in order. Extra keywords (max_len, min_len, length_penalty, no_repeat_ngram)
        tune the beam search."""
        if beam_size < 1:
            raise ValueError("beam_size must be at least 1")
        cfg = self.search_config(beam_size, **search)
        out: list[Caption] = []
        for i in range(0, len(images), batch_size):
            out.extend(self.caption_features(self.encode(images[i : i + batch_size]), cfg))
        return out
