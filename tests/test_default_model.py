"""Integration: the shipped default checkpoint captions real photographs (skipped only if the file is absent)."""
import json

import pytest
from click.testing import CliRunner
from PIL import Image

from model import Captioner, default_checkpoint_path
from model.chair import hallucinated, mentions
from server.cli import main
from conftest import REPO, SHARED_DATA

pytestmark = pytest.mark.skipif(not default_checkpoint_path().is_file(), reason="default checkpoint not present")
PHOTOS = sorted((REPO / "tests" / "data").glob("*.jpg"))


@pytest.fixture(scope="module")
def captioner():
    return Captioner.load(device="cpu")


def test_default_checkpoint_is_small_and_self_describing(captioner):
    assert default_checkpoint_path().stat().st_size <= 40 * 1024 * 1024
    assert captioner.model.cfg.encoder == "efficientnet-lite0"
    assert len(captioner.vocab) > 1000


def test_captions_real_photos(captioner):
    images = [Image.open(p) for p in PHOTOS]
    caps = captioner.caption(images, beam_size=3)
    assert len(caps) == len(PHOTOS)
    for c in caps:
        assert 3 <= len(c.tokens.split()) <= 22
        assert c.text[0].isupper() and c.text.endswith(".")
        assert 0 < c.confidence <= 1
    # The cat photo is called a cat, and no other COCO object is named (default-1 invented "a bed" and "a tennis
    # ball" on it; default-2 and -3 were fine-tuned against naming objects that are not there). default-3's sentence
    # still adds "a toy in the grass", which CHAIR's 80 objects do not cover: the CLI test below checks that the
    # pipeline does not say it.
    cat = caps[[p.name for p in PHOTOS].index("cat.jpg")].tokens
    assert "cat" in cat.split(), cat
    assert [c for _, c in mentions(cat)] and hallucinated(cat, ["a cat"]) == [], cat


def test_batched_equals_one_by_one_with_the_real_model(captioner):
    images = [Image.open(p) for p in PHOTOS]
    batched = [c.tokens for c in captioner.caption(images)]
    single = [captioner.caption([im])[0].tokens for im in images]
    assert batched == single


def test_cli_file_uses_the_default_model_and_says_only_what_is_true():
    r = CliRunner().invoke(main, ["file", "--json", *map(str, PHOTOS)])
    assert r.exit_code == 0, r.output
    out = {o["input"].rsplit("/", 1)[-1]: o for o in json.loads(r.output)}
    assert list(out) == [p.name for p in PHOTOS]
    # The cat close-up: the captioner's sentence is unsure ("a cat is playing with a toy in the grass"); what is
    # said is only the cat, which the image classifier confirms.
    assert out["cat.jpg"]["alt"] == "Might be: a cat." and out["cat.jpg"]["hedged"]
    # An espresso and a rocket launch are unlike the training photos: their false captions ("a red car is sitting
    # on a wall", "a brown dog is standing in the air") are not spoken.
    for name in ("coffee.jpg", "rocket.jpg"):
        assert out[name]["alt"] is None and out[name]["reason"] == "out_of_domain", out[name]
    # The astronaut's caption is a guess ("a man is standing on a football"), and said as one.
    assert out["astronaut.jpg"]["alt"].startswith("Might be: ") and out["astronaut.jpg"]["hedged"]


@pytest.mark.skipif(not (SHARED_DATA / "flickr8k").is_dir(), reason="Flickr8k not present")
def test_scores_on_a_slice_of_flickr8k_test(captioner):
    from model.datasets import load_split
    from model.evaluate import evaluate

    report = evaluate(captioner, load_split(SHARED_DATA / "flickr8k", "test")[:100], use_java=False, progress=False)
    assert report["metrics"]["BLEU-1"] > 45 and report["metrics"]["CIDEr"] > 25
