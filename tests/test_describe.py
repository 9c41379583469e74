"""The describe core (server/describe): decision rules, the phrasing table, evidence records, heads storage and
calibration, pixel statistics, OCR and its absence, and the cache namespace. Fast: no captioner is loaded here
(the real checkpoint's tests are in test_describe_real.py)."""
from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image, ImageDraw

from server.describe import (
    KINDS,
    Describer,
    Evidence,
    Heads,
    HeadsError,
    Policy,
    Wording,
    decide,
    phrase,
)
from server.describe import ocr as ocr_module
from server.describe.concepts import Concept, agreement, top_concepts
from server.describe.decision import trim
from server.describe.heads import Linear, calibration_features, heads_path
from server.describe.pixels import pixel_stats
from server.netsafe.images import decode_image


def evidence(kind="photo", p=0.95, confidence=0.8, ood=0.1, text=(), caption="A dog runs on the beach.", concept=None):
    probs = {k: (p if k == kind else (1 - p) / (len(KINDS) - 1)) for k in KINDS}
    concepts = [Concept(concept[0], concept[0], concept[1])] if concept else []
    return Evidence(caption=caption, raw_confidence=0.4, confidence=confidence, kind_probs=probs, ood=ood,
                    ood_threshold=0.3, concepts=concepts, text_lines=list(text), ocr="read" if text else "skipped")


def say(ev, policy=Policy(), wording=Wording()):
    d = decide(ev, policy)
    return phrase(d, ev.caption, wording), d


# -- the phrasing table: every kind of answer, in the words users hear ------------------------------------------

@pytest.mark.parametrize("ev, alt, kind, reason", [
    (evidence(confidence=0.8), "Appears to be: a dog runs on the beach.", "photo", None),
    (evidence(confidence=0.3), "Might be: a dog runs on the beach.", "photo", None),
    (evidence(confidence=0.1), None, "photo", "low_confidence"),
    (evidence(ood=0.5), None, "photo", "out_of_domain"),
    (evidence(ood=0.5, concept=("owl", 0.9)), "Might be: an owl.", "photo", None),
    (evidence(ood=0.5, concept=("owl", 0.5)), None, "photo", "out_of_domain"),
    (evidence(confidence=0.3, concept=("cat", 0.95)), "Might be: a cat.", "photo", None),
    (evidence(confidence=0.8, concept=("cat", 0.95)), "Appears to be: a dog runs on the beach.", "photo", None),
    (evidence(confidence=0.1, concept=("cat", 0.95)), "Might be: a cat.", "photo", None),
    (evidence(ood=0.5, text=["EXIT"]), "Appears to say: “EXIT”", "photo", None),
    (evidence(confidence=0.8, text=["Summer sale"]),
     "Appears to be: a dog runs on the beach. Appears to say: “Summer sale”", "photo", None),
    (evidence("text", text=["Summer sale, 30 % off"]), "Appears to say: “Summer sale, 30 % off”", "text", None),
    (evidence("text"), "Image of text.", "text", None),
    (evidence("screenshot", text=["File Edit View", "Create a New Image"]),
     "Screenshot: “Create a New Image”", "screenshot", None),  # named by its title, not by its menu bar
    (evidence("screenshot", text=["File Edit View Help"]), "Screenshot.", "screenshot", None),
    (evidence("screenshot"), "Screenshot.", "screenshot", None),
    (evidence("chart", text=["3", "Histogram of 10,000 random numbers", "0 1 2"]),
     "Chart: “Histogram of 10,000 random numbers”", "chart", None),
    (evidence("chart"), "Chart.", "chart", None),
    (evidence("chart", text=["OW", "0 5 10"]), "Chart.", "chart", None),
    (evidence("icon"), "Icon.", "icon", None),
    (evidence("logo", text=["Debian"]), "Logo: “Debian”", "logo", None),
    (evidence("logo", text=["Mastodon"]), "Logo: Mastodon.", "logo", None),  # its text names a known brand
    (evidence("chart", text=["130 120 no 100 1996 2000 2008 2008 2012 2016"]), "Chart.", "chart", None),
    (evidence("photo", p=0.5, text=["130 120 no 100", "1996 2000 2008"]), None, "unknown", "uncertain_kind"),
    (evidence("illustration"), "Illustration.", "illustration", None),
    (Evidence("A dog.", 0.4, 0.8, {"photo": 0.02, "icon": 0.57, "logo": 0.4}, 0.9, 0.3), "Icon.", "icon", None),
    (Evidence("A dog.", 0.4, 0.8, {"photo": 0.02, "icon": 0.36, "logo": 0.62}, 0.9, 0.3), "Logo.", "logo", None),
    (Evidence("A dog.", 0.4, 0.8, {"photo": 0.02, "chart": 0.57, "illustration": 0.41}, 0.9, 0.3), None,
     "unknown", "uncertain_kind"),  # charts and illustrations are no group: neither is said
    (evidence("photo", p=0.5), None, "unknown", "uncertain_kind"),
    (Evidence("A truck.", 0.4, 0.8, {"photo": 0.55, "illustration": 0.45}, 0.1, 0.3), None, "unknown",
     "uncertain_kind"),  # a non-photo kind is named only when it is likelier than photo
    (evidence("photo", p=0.5, text=["Open"]), "Appears to say: “Open”", "unknown", None),
    (Evidence("A dog.", 0.4, 0.8, {"photo": 0.05, "icon": 0.95}, 0.9, 0.3, kind_novelty={"icon": 0.77},
              kind_novelty_max={"icon": 0.61}), None, "unknown", "uncertain_kind"),  # unlike every fitted icon
    (Evidence("A dog.", 0.4, 0.8, {"photo": 0.05, "icon": 0.95}, 0.9, 0.3, kind_novelty={"icon": 0.4},
              kind_novelty_max={"icon": 0.61}), "Icon.", "icon", None),
])
def test_phrasing_table(ev, alt, kind, reason):
    text, d = say(ev)
    assert text == alt and d.kind == kind and d.reason == reason


def test_a_non_photo_never_gets_the_photo_caption():
    for kind in KINDS[1:]:
        alt, d = say(evidence(kind, confidence=0.99))
        assert not d.say_caption and "dog" not in alt


def test_wording_and_thresholds_are_configurable():
    w = Wording(caption_sure="Probably {caption}", says="Text: {text}")
    assert say(evidence(confidence=0.8), wording=w)[0] == "Probably a dog runs on the beach."
    assert say(evidence("text", text=["Hello"]), wording=w)[0] == "Text: Hello"
    assert say(evidence(confidence=0.8), policy=Policy(withhold_below=0.9))[0] is None
    assert say(evidence(ood=0.5), policy=Policy())[1].reason == "out_of_domain"


def test_acronym_starting_a_caption_keeps_its_case():
    assert say(evidence(caption="NASA astronauts in a lab."))[0] == "Appears to be: NASA astronauts in a lab."


def test_text_is_trimmed_at_a_word_boundary():
    long = " ".join(["word"] * 80)
    assert trim(long, 30) == "word word word word word word …"
    assert len(say(evidence("text", text=[long]))[0]) < 180


def test_without_heads_the_raw_confidence_decides_hedged_and_everything_is_a_photo():
    ev = Evidence(caption="A cat.", raw_confidence=0.6, confidence=None, kind_probs={}, ood=None,
                  ood_threshold=None)
    assert ev.kind == "photo" and not ev.out_of_domain
    assert say(ev)[0] == "Might be: a cat."  # uncalibrated: never the sure wording
    ev.raw_confidence = 0.1
    assert say(ev)[0] is None


def test_evidence_round_trips_through_a_dict():
    ev = evidence("chart", text=["A title"])
    ev.concepts = [Concept("cat", "Egyptian cat", 0.81)]
    ev.pixels = pixel_stats(Image.new("RGB", (40, 30), "white"))
    again = Evidence.from_dict(ev.to_dict())
    assert again == ev and again.to_dict() == ev.to_dict()


# -- concepts -------------------------------------------------------------------------------------------------

def test_imagenet_labels_become_plain_words():
    import torch

    probs = torch.zeros(1000)
    probs[285], probs[281], probs[207] = 0.5, 0.3, 0.2  # Egyptian cat, tabby, golden retriever
    concepts = top_concepts(probs)
    assert [(c.word, round(c.p, 2)) for c in concepts] == [("cat", 0.8), ("dog", 0.2)]
    assert agreement(concepts, "a cats sits on a sofa") == pytest.approx(0.8)
    assert agreement(concepts, "a man rides a bike") == 0
    probs = torch.zeros(1000)
    probs[513], probs[341] = 0.9, 0.1  # "cornet, horn, trumpet, trump"; "hog, pig, grunter, squealer, Sus scrofa"
    assert [c.word for c in top_concepts(probs)] == ["trumpet", "pig"]  # the familiar names, not ImageNet's first


# -- heads: storage, checkpoint binding, calibration monotone --------------------------------------------------

def _heads(rng, c=8, p=4, f=None):
    f = f or 16 + 2
    lin = lambda k, n: Linear(rng.normal(size=(k, n)).astype(np.float32), np.zeros(k, np.float32),  # noqa: E731
                              np.zeros(n, np.float32), np.ones(n, np.float32))
    cal = lin(1, 6)
    cal.weight[0, 0] = abs(cal.weight[0, 0])
    return Heads(np.zeros(c, np.float32), rng.normal(size=(p, c)).astype(np.float32),
                 rng.normal(size=(20, c)).astype(np.float32), lin(len(KINDS), f), cal,
                 {"k": 3, "kinds": list(KINDS), "n_pca": 2, "checkpoint": "abc123", "ood_threshold": 0.4})


def test_heads_round_trip_and_refuse_another_checkpoint(tmp_path):
    heads = _heads(np.random.default_rng(0))
    path = tmp_path / "m.honesty.safetensors"
    heads.save(path)
    again = Heads.load(path, checkpoint_digest="abc123")
    x = np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32)
    assert np.allclose(again.ood(x), heads.ood(x), atol=1e-3) and again.digest == heads.digest
    with pytest.raises(HeadsError, match="another checkpoint"):
        Heads.load(path, checkpoint_digest="def456")
    path.write_bytes(b"not safetensors")
    with pytest.raises(HeadsError, match="not a valid"):
        Heads.load(path)


def test_kind_novelty_is_the_distance_to_that_kinds_fitted_examples_and_is_stored(tmp_path):
    rng = np.random.default_rng(3)
    heads = _heads(rng)
    icons, charts = np.eye(8, dtype=np.float32)[:3], np.eye(8, dtype=np.float32)[5:]
    heads.kind_reference = np.concatenate([icons, charts])
    heads.kind_reference_kind = np.array([KINDS.index("icon")] * 3 + [KINDS.index("chart")] * 3)
    heads.__post_init__()
    novelty = heads.kind_novelty(np.eye(8, dtype=np.float32)[[0, 6]] * 5)  # an icon's twin, a chart's twin
    assert set(novelty) == {"icon", "chart"}
    assert novelty["icon"][0] == pytest.approx(1 - 1 / 3) and novelty["icon"][1] == pytest.approx(1.0)
    assert novelty["chart"][1] == pytest.approx(1 - 1 / 3)
    path = tmp_path / "m.honesty.safetensors"
    heads.save(path)
    again = Heads.load(path)
    assert {k: v.round(3).tolist() for k, v in again.kind_novelty(icons).items()} == \
        {k: v.round(3).tolist() for k, v in heads.kind_novelty(icons).items()}
    assert _heads(rng).kind_novelty(icons) == {}  # heads fitted without examples: nothing to check


def test_a_batchs_model_signals_are_each_images_own_and_give_the_same_evidence(shapes_checkpoint):
    """run_model makes the evidence's model-only inputs for a whole batch; gather makes them for one image when
    they are missing. Either way an image gets the same evidence."""
    import torch

    from model import Captioner
    from server.describe import Describer, ModelOutput
    from server.describe.pipeline import model_signals
    from server.describe.pixels import pixel_stats

    rng = np.random.default_rng(5)
    heads = _heads(rng)
    heads.kind_reference = np.eye(8, dtype=np.float32)[:6]
    heads.kind_reference_kind = np.array([KINDS.index("icon")] * 3 + [KINDS.index("chart")] * 3)
    heads.__post_init__()
    probs = torch.softmax(torch.as_tensor(rng.normal(size=(5, 1000)) * 3, dtype=torch.float32), -1)
    probs[2, 916] = 5.0  # a screenshot's cue: "web site"
    probs = probs / probs.sum(1, keepdim=True)
    pooled = rng.normal(size=(5, 8)).astype(np.float32)
    batch = model_signals(probs, pooled, heads)
    for i in range(5):
        alone = model_signals(probs[i:i + 1], pooled[i:i + 1], heads)[0]
        assert [c.to_dict() for c in batch[i].concepts] == [c.to_dict() for c in alone.concepts]
        assert batch[i].top_p == alone.top_p and batch[i].cues == alone.cues
        assert batch[i].entropy == pytest.approx(alone.entropy, rel=1e-6)
        np.testing.assert_allclose(batch[i].projected, alone.projected, rtol=1e-5, atol=1e-6)
        assert batch[i].kind_novelty == pytest.approx(alone.kind_novelty, rel=1e-5)
    assert batch[2].cues["screen"] > 0.5 and set(batch[0].kind_novelty) == {"icon", "chart"}
    assert model_signals(None, pooled, heads)[0].top_p is None  # no ImageNet head: concepts and the rest empty

    describer = Describer(Captioner.load(shapes_checkpoint, device="cpu"), heads)
    pixels = pixel_stats(Image.new("RGB", (40, 30), "white"))
    for i in range(5):
        out = ModelOutput("A cat.", "a cat", 0.6, pooled[i], probs[i], None)
        with_signals = ModelOutput("A cat.", "a cat", 0.6, pooled[i], probs[i], None, batch[i])
        assert describer.gather(pixels, with_signals, None).to_dict() == describer.gather(pixels, out, None).to_dict()


def test_the_kind_head_reads_tapped_blocks_from_the_batchs_one_pass(shapes_checkpoint, tmp_path):
    """Heads that read the mean maps of blocks inside the encoder get them from run_model's one pass (in the
    ModelOutput, so they survive the model process's pipe), store their directions, and give the same evidence
    whether gather has the batch's signals or makes them for one image."""
    from model import Captioner
    from server.describe import Describer, ModelOutput
    from server.describe.pixels import pixel_stats

    rng = np.random.default_rng(7)
    heads = _heads(rng, c=1280, f=16 + 2 + 3 + 3)  # 3 directions of each of two blocks
    heads.kind_taps = [(b, (rng.normal(size=c).astype(np.float32), rng.normal(size=(3, c)).astype(np.float32)))
                       for b, c in ((10, 112), (14, 192))]
    path = tmp_path / "m.honesty.safetensors"
    heads.save(path)
    heads = Heads.load(path)
    assert heads.tap_blocks == (10, 14) and heads.meta["kind_taps"] == [10, 14]
    captioner = Captioner.load(shapes_checkpoint, device="cpu")
    describer = Describer(captioner, heads)
    assert describer.taps == (10, 14) and Describer(captioner).taps == ()
    ims = [Image.new("RGB", (64, 48), c) for c in ("white", "red", "navy")]
    ImageDraw.Draw(ims[0]).ellipse((10, 10, 40, 40), fill="black")
    outs = describer.run_model(ims)
    _, _, maps = captioner.encode_with_taps(ims, (10, 14))
    for i, out in enumerate(outs):
        assert [m.shape for m in out.taps] == [(112,), (192,)]
        for got, m in zip(out.taps, maps):
            np.testing.assert_allclose(got, m[i].mean(0).numpy(), atol=1e-4)
        assert out.signals.taps.shape == (6,)
        alone = ModelOutput(out.caption, out.words, out.raw_confidence, out.pooled, out.probs, out.ood, None, out.taps)
        pixels = pixel_stats(ims[i])
        assert describer.gather(pixels, alone, None).to_dict() == describer.gather(pixels, out, None).to_dict()
    assert len({tuple(o.signals.taps.round(4)) for o in outs}) == 3  # each image's own
    plain = ModelOutput("A cat.", "a cat", 0.6, outs[0].pooled, outs[0].probs, None)  # no taps for heads that read them
    with pytest.raises(HeadsError, match=r"reads blocks \[10, 14\]: got 0"):
        describer.gather(pixels, plain, None)


def test_calibration_is_monotone_in_the_raw_confidence():
    heads = _heads(np.random.default_rng(2))
    raws = np.linspace(0.05, 0.95, 19)
    p = heads.acceptable(np.stack([calibration_features(r, 9, 0.2, 0.5, 0.2, 0.9) for r in raws]))
    assert np.all(np.diff(p) >= 0)


def _fit_script():
    import importlib.util
    import sys
    from pathlib import Path

    scripts = Path(__file__).resolve().parents[1] / "scripts"
    sys.path.insert(0, str(scripts))  # as when run: the scripts beside it (fit_meanings) import by name
    spec = importlib.util.spec_from_file_location("fit_honesty", scripts / "fit_honesty.py")
    fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit)
    return fit


def test_the_kind_heads_grouped_cross_validation_holds_whole_packages_out():
    """fit_honesty's kind_cv: each package is judged by a head fitted without it. Kinds told apart by one
    feature are named right for every package; a kind whose look differs in every package is not learned from the
    others, and its images are named wrongly or not at all, never right."""
    import argparse

    fit = _fit_script()
    rng = np.random.default_rng(4)
    icon, chart = KINDS.index("icon"), KINDS.index("chart")
    rows, y, packages = [], [], []
    for p in range(10):  # ten packages of icons, ten of charts, photos: one feature each, plus noise
        for kind, col in ((icon, 0), (chart, 1), (0, 2)):
            for _ in range(12):
                x = rng.normal(0, 0.1, 6)
                x[col] += 3
                rows.append(x), y.append(kind), packages.append(f"{KINDS[kind]}-{p}")
    for p in range(5):  # illustrations, each package drawn in its own way (its own feature)
        for _ in range(12):
            x = rng.normal(0, 0.1, 6)
            x[3 + p % 3] += 3 * (1 if p < 3 else -1)
            rows.append(x), y.append(KINDS.index("illustration")), packages.append(f"art-{p}")
    base, y, packages = np.array(rows, np.float32), np.array(y), np.array(packages)
    taps = [rng.normal(size=(len(y), 8)).astype(np.float32)]  # a tapped block that says nothing
    unusual = np.zeros(len(y), bool)
    unusual[y == 0] = np.arange((y == 0).sum()) % 10 == 0
    args = argparse.Namespace(seed=0, kind_tap_pca=4, kind_l2=1e-3)
    cv = fit.kind_cv(base, taps, y, packages, unusual, args)
    assert cv["packages"] == 35 and cv["nonphotos"] == 300 and cv["kind_min"] == 0.7
    assert cv["train_photos_likeliest_photo"] == 1.0 and cv["unusual_photos_likeliest_photo"] == 1.0
    assert cv["unusual_photos_named_a_kind"] == 0.0
    # icons and charts (240 of 300) all right; none of the illustrations, whose looks the other packages never had
    assert cv["nonphoto_named_right"] == 0.8 and cv["nonphoto_likeliest_right"] == 0.8


def test_fitting_keeps_the_raw_confidence_weight_non_negative():
    fit = _fit_script()
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    y = (x[:, 0] < 0).astype(float)  # the label *falls* with feature 0: unconstrained, its weight is negative
    lin = fit.fit_linear(x, y, 1, l2=1e-3, class_weight=False, monotone=0)
    assert lin.weight[0, 0] >= 0
    free = fit.fit_linear(x, y, 1, l2=1e-3, class_weight=False)
    assert free.weight[0, 0] < 0


def test_refitting_reads_a_checkpoint_whose_heads_were_fitted_for_another(shapes_checkpoint, tmp_path, monkeypatch):
    """A new checkpoint in place of the old one (as when a default ships) still has the old heads beside it: the
    pipeline refuses them, and the fitting script, which replaces them, loads the model without them."""
    import shutil
    import sys

    ckpt = tmp_path / "m.safetensors"
    shutil.copy(shapes_checkpoint, ckpt)
    _heads(np.random.default_rng(0)).save(heads_path(ckpt))  # fitted for checkpoint "abc123"
    with pytest.raises(HeadsError, match="another checkpoint"):
        Describer.load(ckpt, device="cpu", use_ocr=False)
    fit = _fit_script()
    loaded = []
    real = fit.captioner_only
    monkeypatch.setattr(fit, "captioner_only", lambda path, taps=(): loaded.append(real(path, taps)) or loaded[-1])
    monkeypatch.setattr(sys, "argv", ["fit_honesty.py", "--checkpoint", str(ckpt), "--data", str(tmp_path / "none"),
                                      "--kinds", str(tmp_path / "none.json"), "--cache-dir", str(tmp_path / "cache")])
    from model.datasets import DatasetError

    with pytest.raises(DatasetError, match="no such dataset"):  # it stops at the data, after loading the model
        fit.main()
    assert len(loaded) == 1 and loaded[0].heads is None and loaded[0].taps == (10, 14, 15)  # --kind-taps' default
    out = loaded[0].run_model([Image.new("RGB", (64, 64), "red")])
    assert out[0].caption and out[0].pooled.ndim == 1 and [m.shape for m in out[0].taps] == [(112,), (192,), (320,)]


@pytest.mark.parametrize("taps, says", [("10,99", r"no block \[99\] to tap"), ("ten", "separated by commas")])
def test_fitting_refuses_blocks_the_encoder_has_not(shapes_checkpoint, tmp_path, monkeypatch, capsys, taps, says):
    import sys

    fit = _fit_script()
    monkeypatch.setattr(sys, "argv", ["fit_honesty.py", "--checkpoint", str(shapes_checkpoint), "--data",
                                      str(tmp_path), "--kinds", str(tmp_path / "none.json"), "--kind-taps", taps])
    with pytest.raises(SystemExit) as e:
        fit.main()
    assert e.value.code == 2
    assert re.search(f"--kind-taps: .*{says}", capsys.readouterr().err)


# -- pixels and the decoder's record of the source --------------------------------------------------------------

def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def test_decoder_records_size_and_transparency_for_the_evidence():
    icon = Image.new("RGBA", (2000, 1000), (0, 0, 0, 0))
    ImageDraw.Draw(icon).ellipse((500, 200, 1500, 800), fill=(200, 30, 30, 255))
    im = decode_image(_png(icon))
    stats = pixel_stats(im)
    assert max(im.size) == 1024 and (stats.width, stats.height) == (2000, 1000)
    assert 0.7 < stats.transparent < 0.82 and stats.equal_neighbours > 0.9 and stats.distinct_colours < 0.05


def test_photo_statistics_differ_from_a_flat_graphic():
    rng = np.random.default_rng(0)
    noisy = Image.fromarray((rng.normal(128, 30, (200, 300, 3))).clip(0, 255).astype(np.uint8))
    s = pixel_stats(noisy)
    assert s.equal_neighbours < 0.05 and s.distinct_colours > 0.5 and s.transparent == 0


# -- OCR ----------------------------------------------------------------------------------------------------------

def test_missing_tesseract_is_reported_not_fatal():
    assert ocr_module.available("/nonexistent/tesseract") is False


needs_tesseract = pytest.mark.skipif(not ocr_module.available(), reason="Tesseract is not installed")


@needs_tesseract
def test_ocr_reads_a_rendered_banner():
    from PIL import ImageFont

    banner = Image.new("RGB", (640, 120), "white")
    font = ImageFont.load_default(size=48)
    ImageDraw.Draw(banner).text((20, 30), "Summer sale today", fill="black", font=font)
    read = ocr_module.Ocr().read(banner)
    assert read.text == "Summer sale today" and read.words == 3


def _window(title: str, grey_title: bool = True) -> Image.Image:
    """A screenshot of a window: a title bar in a small grey font on grey, a menu bar, a toolbar and a form."""
    from PIL import ImageFont

    font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    small, normal = ImageFont.truetype(font, 12), ImageFont.truetype(font, 14)
    im = Image.new("RGB", (780, 620), (239, 240, 241))
    d = ImageDraw.Draw(im)
    d.rectangle((0, 0, 780, 30), fill=(222, 224, 226))
    d.text((390, 15), title, fill=(120, 120, 120) if grey_title else "black", font=small, anchor="mm")
    d.text((12, 40), "File     Settings     Help", fill="black", font=normal)
    d.text((12, 80), "New      Back      Arithmetic      Comparison      Conversion", fill="black", font=normal)
    for i, label in enumerate(("Mixed number:", "Number of terms:", "Maximum denominator:")):
        d.text((30, 160 + 40 * i), label, fill="black", font=normal)
    return im


@needs_tesseract
def test_a_screenshots_window_title_is_read_from_its_title_bar():
    """The whole image's read drops a title bar's small grey font; its top strip read on its own finds it, and only
    the words in the separator's row: not the menus and the toolbar below."""
    ocr = ocr_module.Ocr()
    assert ocr.read_title_bar(_window("Exercise — KBruch")) == "Exercise — KBruch"
    assert ocr.read_title_bar(_window("Configure - KHangMan", grey_title=False)) == "Configure - KHangMan"
    assert ocr.read_title_bar(_window("KBruch")) == ""  # no "document — application": no title read here
    assert ocr.read_title_bar(Image.new("RGB", (300, 200), "white")) == ""


def test_a_title_is_the_run_of_words_beside_a_separator_in_its_row():
    from server.describe.ocr import _title_around_separator as title

    row = [(10, 10, 60, 12, "Exercise"), (76, 14, 10, 3, "—"), (92, 10, 50, 12, "KBruch"), (400, 10, 30, 12, "x")]
    below = [(10, 40, 20, 12, "File"), (40, 40, 40, 12, "Settings")]
    assert title(sorted(row + below)) == "Exercise — KBruch"
    assert title(sorted(below + [(300, 10, 10, 3, "—")])) == ""  # a dash alone is no title
    assert title([]) == ""


@needs_tesseract
def test_ocr_invents_no_text_on_a_text_free_photo():
    from pathlib import Path

    from server.netsafe.images import read_image_file

    for name in ("cat.jpg", "coffee.jpg"):
        assert ocr_module.Ocr().read(read_image_file(str(Path(__file__).parent / "data" / name))).lines == []


@pytest.mark.parametrize("version_known", [False, True], ids=["version-unchecked", "version-cached"])
def test_an_ocr_failure_reads_as_no_text(monkeypatch, caplog, version_known):
    """A Tesseract that is present but broken (here /bin/false, which fails every call): the OCR step reads as no
    text, whether or not pytesseract has already cached a Tesseract version. Unchecked, its version check runs the
    broken command first and raises CalledProcessError; cached (by an earlier read in the process), the read itself
    fails with TesseractError. pytesseract caches the version on get_tesseract_version._result (its run_once); the
    test sets that cache itself, so neither case depends on which tests ran before."""
    pytesseract = pytest.importorskip("pytesseract")
    from packaging.version import Version

    get_version = pytesseract.pytesseract.get_tesseract_version
    assert hasattr(get_version, "_result"), "pytesseract no longer caches the version on _result; update this test"
    # restored after the test (monkeypatch), so that later tests keep whatever a real Tesseract cached
    monkeypatch.setattr(get_version, "_result", Version("5.3.0") if version_known
                        else get_version)  # run_once's "nothing cached yet" marker is the wrapper itself
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", pytesseract.pytesseract.tesseract_cmd)
    o = ocr_module.Ocr(command="/bin/false")
    with caplog.at_level("WARNING", logger=ocr_module.__name__):
        read = o.read(Image.new("RGB", (50, 50)))
    assert read.lines == [] and read.words == 0 and read.text == ""
    failures = [type(r.args[0]).__name__ for r in caplog.records if r.getMessage().startswith("OCR failed")]
    assert failures == ["TesseractError" if version_known else "CalledProcessError"], caplog.text

