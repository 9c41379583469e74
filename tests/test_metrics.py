"""Metrics on hand-made strings, where the right answer is known."""
import pytest

from model import metrics

REFS = {1: ["a dog runs on the grass", "a brown dog is running"], 2: ["two children play in the snow"]}


@pytest.mark.parametrize("java", [True, False])
def test_perfect_captions_score_full_marks(java):
    if java and not metrics.java_available():
        pytest.skip("no Java runtime")
    s = metrics.score(REFS, {1: "a dog runs on the grass", 2: "two children play in the snow"}, use_java=java)
    assert s["BLEU-1"] == pytest.approx(100.0) and s["BLEU-4"] == pytest.approx(100.0, abs=0.01)
    assert s["ROUGE-L"] == pytest.approx(100.0)
    assert s["CIDEr"] > 100
    if java:
        assert s["METEOR"] > 90 and s["tokenizer"] == "ptb"
    else:
        assert s["METEOR"] is None and "Java not found" in s["tokenizer"]


def test_wrong_captions_score_low_and_partial_ones_in_between():
    bad = metrics.score(REFS, {1: "a cat sleeps", 2: "an old car"}, use_java=False)
    mid = metrics.score(REFS, {1: "a dog runs", 2: "two children play"}, use_java=False)
    good = metrics.score(REFS, {1: "a dog runs on the grass", 2: "two children play in the snow"}, use_java=False)
    for key in ("BLEU-1", "ROUGE-L", "CIDEr"):
        assert bad[key] < mid[key] < good[key], key
    assert bad["BLEU-4"] == pytest.approx(0.0, abs=1e-3)


def test_ptb_tokenisation_ignores_case_and_punctuation():
    if not metrics.java_available():
        pytest.skip("no Java runtime")
    s = metrics.score(REFS, {1: "A dog runs on the grass.", 2: "Two children play in the snow!"}, use_java=True)
    assert s["BLEU-4"] == pytest.approx(100.0, abs=0.01)


def test_dev_cider_is_unscaled_and_mismatched_ids_are_errors():
    assert metrics.cider(REFS, {1: "a dog runs on the grass", 2: "two children play in the snow"}) > 1.0
    with pytest.raises(ValueError, match="different images"):
        metrics.score(REFS, {1: "a dog"})
