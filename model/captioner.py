"""The captioning model and its loading API: ``Captioner.load(path).caption(images)``.

``CaptionModel`` is the network (encoder + decoder); ``Captioner`` wraps it with the vocabulary, a device and beam
search, and is all the server and CLI need.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from . import checkpoint
from .beam import Hypothesis, SearchConfig, beam_search
from .decoders import DecoderConfig, build_decoder
from .encoders import build_encoder, get_spec, preprocess
from .vocab import Vocabulary

log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = "weights/default.safetensors"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_checkpoint_path() -> Path:
    return Path(str(resources.files("model").joinpath(DEFAULT_CHECKPOINT)))


@dataclass
class ModelConfig:
    encoder: str = "efficientnet-lite0"
    decoder: DecoderConfig = field(default_factory=DecoderConfig)

    def to_json(self) -> str:
        return json.dumps({"encoder": self.encoder, "decoder": self.decoder.to_dict()})

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        d = json.loads(text)
        return cls(encoder=d["encoder"], decoder=DecoderConfig(**d["decoder"]))


class CaptionModel(nn.Module):
    def __init__(self, cfg: ModelConfig, pretrained_encoder: bool = True):
        super().__init__()
        self.cfg = cfg
        self.spec = get_spec(cfg.encoder)
        self.encoder = build_encoder(cfg.encoder, pretrained=pretrained_encoder)
        self.decoder = build_decoder(cfg.decoder)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: the decoder, plus the encoder only when it is trained (not pretrained)."""
        prefixes = ("decoder.", "encoder.") if self.spec.trainable else ("decoder.",)
        return {k: v for k, v in self.state_dict().items() if k.startswith(prefixes)}

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(images), tokens)


@dataclass(frozen=True)
class Caption:
    text: str  # a sentence, ready for an alt attribute
    confidence: float  # geometric mean token probability, in (0, 1]
    tokens: str  # the raw lower-case words, as the metrics read them


def to_sentence(words: str) -> str:
    return (words[:1].upper() + words[1:] + ".") if words else ""


class Captioner:
    """Loaded model + vocabulary on one device. ``caption`` is thread-compatible but not thread-safe: give each
    thread its own, or serialise calls (the server's batching worker does)."""

    def __init__(self, model: CaptionModel, vocab: Vocabulary, device: str | torch.device | None = None,
                 info: dict | None = None, name: str = "custom"):
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

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | torch.device | None = None,
             pretrained_encoder: bool = True) -> "Captioner":
        """Load a checkpoint file (the bundled default model when ``path`` is None)."""
        path = Path(path) if path else default_checkpoint_path()
        tensors, meta = checkpoint.load(path)
        try:
            cfg = ModelConfig.from_json(meta["config"])
            vocab = Vocabulary.from_json(meta["vocab"])
        except (KeyError, ValueError, TypeError) as e:
            raise checkpoint.CheckpointError(f"{path}: checkpoint metadata is incomplete or invalid ({e})") from None
        model = CaptionModel(cfg, pretrained_encoder=pretrained_encoder)
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        tied = {"decoder.head.weight"} if cfg.decoder.kind == "transformer" else set()
        missing = [k for k in missing if not k.startswith("encoder.") or model.spec.trainable]
        if set(missing) - tied or unexpected:
            raise checkpoint.CheckpointError(
                f"{path}: weights do not match the model config (missing {sorted(set(missing) - tied)[:5]}, "
                f"unexpected {unexpected[:5]})")
        info = json.loads(meta.get("info", "{}"))
        captioner = cls(model, vocab, device=device, info=info, name=info.get("name", path.stem))
        captioner.version = f"{captioner.name}-{_file_digest(path)[:12]}"
        return captioner

    @torch.no_grad()
    def encode(self, images: list[Image.Image]) -> torch.Tensor:
        x = preprocess(images, self.model.spec).to(self.device, self.dtype)
        return self.model.encoder(x)

    @torch.no_grad()
    def caption_features(self, feats: torch.Tensor, search: SearchConfig) -> list[Caption]:
        hyps = beam_search(self.model.decoder, feats.to(self.device, self.dtype), search)
        return [self._to_caption(h) for h in hyps]

    def prepare(self, image: Image.Image) -> torch.Tensor:
        """One image resized and normalised for the encoder ([3, S, S], CPU): work a caller can do on its own
        thread, so that a batching worker runs only the network."""
        return preprocess([image], self.model.spec)[0]

    @torch.no_grad()
    def caption_and_pool(self, images: list, search: SearchConfig) -> tuple[list[Caption], torch.Tensor]:
        """Captions and the mean-pooled encoder features [B, C] (fp32, CPU) of one batch, from one encoder pass:
        the pooled vector is what callers compare images by and classify them with. ``images`` are PIL images or
        tensors from ``prepare``."""
        if images and isinstance(images[0], torch.Tensor):
            feats = self.model.encoder(torch.stack(images).to(self.device, self.dtype))
        else:
            feats = self.encode(images)
        return self.caption_features(feats, search), feats.float().mean(1).cpu()

    def _to_caption(self, h: Hypothesis) -> Caption:
        words = self.vocab.decode(h.tokens)
        return Caption(to_sentence(words), round(h.confidence, 4), words)

    def search_config(self, beam_size: int = 3, **kw) -> SearchConfig:
        room = self.model.cfg.decoder.max_len - 2  # positions the decoder has, less <bos> and <eos>
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
