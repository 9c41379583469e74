"""The icon meaning head that reads glyphs: the glyph view takes the page's colours and framing away, and the head
(a linear head on the encoder's features of the glyph view) is stored in the heads file and runs only on images the
kind head takes for icons, logos or drawings. A random-weight encoder here; the shipped head is checked on real
icons in test_describe_real.py."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from model.encoders import ENCODERS, build_encoder, preprocess
from server.describe.glyph import glyph_view
from server.describe.heads import Heads, Linear
from server.describe.meaning_head import MeaningHead, grid_summary
from test_meanings import tiny_heads


def magnifier(size: int, ink, paper, pad: float = 0, rounded: bool = False) -> Image.Image:
    """A search glyph (a ring and a handle) as a page might show it: ``pad`` is the share of the side left empty
    around the glyph, on a button (``paper``, with rounded corners) or on a transparent background (None)."""
    s = 4 * size  # drawn large, then reduced: anti-aliased edges, as a renderer gives them
    im = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    if paper is not None:
        d.rounded_rectangle((0, 0, s - 1, s - 1), radius=s // 4 if rounded else 0, fill=paper)
    g = round(s * (1 - 2 * pad))  # the glyph's own square, centred
    o = (s - g) // 2
    d.ellipse((o + g // 8, o + g // 8, o + g * 5 // 8, o + g * 5 // 8), outline=ink, width=g // 12)
    d.line((o + g * 9 // 16, o + g * 9 // 16, o + g * 7 // 8, o + g * 7 // 8), fill=ink, width=g // 10)
    return im.resize((size, size), Image.LANCZOS)


def test_the_glyph_view_is_the_shape_whatever_the_page_drew_it_in():
    views = [np.asarray(glyph_view(im, 64).convert("L"), dtype=np.float32) for im in (
        magnifier(48, (33, 37, 41, 255), (255, 255, 255, 255)),               # dark on white
        magnifier(24, (26, 115, 232, 255), None),                             # coloured, transparent
        magnifier(40, (255, 255, 255, 255), (13, 110, 253, 255), pad=0.15, rounded=True),  # white, on a button
        magnifier(64, (55, 65, 81, 255), (238, 242, 255, 255), pad=0.2),     # on a tinted button, padded
    )]
    for v in views:
        assert v.min() < 40 and v.max() > 230  # dark strokes on white
    for v in views[1:]:
        assert np.abs(v - views[0]).mean() < 20, np.abs(v - views[0]).mean()
    flipped = np.asarray(glyph_view(magnifier(48, (0, 0, 0, 255), (255, 255, 255, 255)).transpose(
        Image.FLIP_LEFT_RIGHT), 64).convert("L"), dtype=np.float32)
    assert np.abs(flipped - views[0]).mean() > 2 * np.abs(views[1] - views[0]).mean()  # direction is kept


@pytest.mark.parametrize("image", [Image.new("RGB", (32, 32), "white"), Image.new("RGBA", (16, 16), (0, 0, 0, 0)),
                                   Image.new("RGB", (1, 1), "red")])
def test_an_image_without_ink_has_a_white_glyph_view(image):
    assert np.asarray(glyph_view(image, 32)).min() == 255


class RandomCaptioner:
    """What a glyph head needs of a Captioner, with a random-weight EfficientNet-Lite0 at 64 px (no download, fast)."""

    def __init__(self):
        torch.manual_seed(0)
        self.net = build_encoder("efficientnet-lite0", pretrained=False).eval()
        self.calls = 0

    @torch.no_grad()
    def encode_with_taps(self, images, after):
        self.calls += 1
        grid, maps = self.net.with_taps(preprocess(images, replace(ENCODERS["efficientnet-lite0"], image_size=64)),
                                        after)
        return grid.mean(1), grid, maps


def glyph_head(captioner, classes) -> MeaningHead:
    rng = np.random.default_rng(1)
    images = [magnifier(32, (0, 0, 0, 255), (255, 255, 255, 255)), magnifier(24, (200, 0, 0, 255), None)] * 4
    pooled, grid, _ = captioner.encode_with_taps(images, ())
    head = MeaningHead.empty(list(classes))
    head.glyph = {"size": 64}
    head.fit_projections(pooled.numpy(), grid_summary(grid).numpy(), 4, 2)
    dim = 4 + 9 * 2
    head.linear = Linear(rng.normal(size=(len(classes), dim)).astype(np.float32), np.zeros(len(classes), np.float32),
                         np.zeros(dim, np.float32), np.ones(dim, np.float32))
    head.threshold, head.titles = 0.5, {"meaning:search": "Search"}
    captioner.calls = 0
    return head


def test_a_glyph_head_is_stored_with_the_heads_and_predicts_the_same(tmp_path):
    captioner, classes = RandomCaptioner(), ["other", "meaning:search", "brand:github"]
    head = glyph_head(captioner, classes)
    tiny_heads(head).save(tmp_path / "h.safetensors")
    back = Heads.load(tmp_path / "h.safetensors").meaning
    assert back.reads_glyphs and back.glyph == {"size": 64} and back.classes == classes
    images = [magnifier(32, (0, 0, 0, 255), (255, 255, 255, 255)), magnifier(24, (200, 0, 0, 255), None)]
    p, q = head.glyph_probs(captioner, images), back.glyph_probs(captioner, images)
    assert p.shape == (2, 3)
    np.testing.assert_allclose(q, p, rtol=1e-5, atol=1e-6)
    top = back.top_glyphs(captioner, images[:1], k=2)[0]
    assert len(top) == 2 and set(top) <= set(classes)


def test_the_glyph_head_runs_only_where_the_kind_head_sees_an_icon_logo_or_drawing():
    from server.describe.pipeline import Describer

    captioner = RandomCaptioner()
    head = glyph_head(captioner, ["other", "meaning:search"])
    describer = Describer.__new__(Describer)  # only glyph_top, which needs the captioner
    describer.captioner = captioner
    icon = magnifier(32, (0, 0, 0, 255), (255, 255, 255, 255))
    assert describer.glyph_top(head, icon, {"photo": 0.9, "icon": 0.05, "logo": 0.05}) == {}
    assert describer.glyph_top(head, None, {"photo": 0.0, "icon": 1.0}) == {}
    assert captioner.calls == 0  # a photo costs no glyph pass
    top = describer.glyph_top(head, icon, {"photo": 0.2, "icon": 0.5, "logo": 0.3})
    assert set(top) == {"other", "meaning:search"} and captioner.calls == 1
