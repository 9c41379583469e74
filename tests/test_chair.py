"""CHAIR (object hallucination) on hand-made captions, where the right answer is known."""
import pytest

from model import metrics
from model.chair import chair, hallucinated, mentions, plural
from model.chair_synonyms import PHRASES, SYNONYMS


def categories(caption):
    return [c for _, c in mentions(caption)]


def test_the_table_has_cocos_80_categories_and_no_word_names_two():
    assert len(SYNONYMS) == 80
    owner = {}
    for category, names in SYNONYMS.items():
        assert category in names
        for name in names:
            assert owner.setdefault(name, category) == category, f"{name!r}: {owner[name]} and {category}"
    for category in SYNONYMS:
        assert categories(category) == [category]
    assert set(PHRASES.values()) - {None} <= set(SYNONYMS)


def test_synonyms_and_plurals_name_their_category():
    assert categories("A man and two women with children and people") == ["person"] * 4
    assert categories("two puppies and a dog chase the balls") == ["dog", "dog", "sports ball"]
    assert categories("knives, forks and wine glasses on the table") == ["knife", "fork", "wine glass", "dining table"]
    assert categories("buses and a taxi pass the benches") == ["bus", "car", "bench"]
    assert categories("Sheep and oxen graze; a goose.") == ["sheep", "cow", "bird"]
    assert (plural("man"), plural("bench"), plural("puppy"), plural("toy"), plural("dog")) == (
        "men", "benches", "puppies", "toys", "dogs")


def test_two_word_names_win_over_their_words():
    assert categories("a hot dog and a teddy bear") == ["hot dog", "teddy bear"]
    assert categories("a man on his cell phone by a stop sign") == ["person", "cell phone", "stop sign"]
    assert categories("hot dogs, teddy bears, cell phones, stop signs") == [
        "hot dog", "teddy bear", "cell phone", "stop sign"]
    assert categories("a dog and a bear") == ["dog", "bear"]
    assert categories("a hot-dog stand") == ["hot dog"]


def test_known_false_hits_are_avoided():
    assert categories("a baby elephant follows its mother") == ["elephant", "person"]
    assert categories("two baby giraffes") == ["giraffe"]
    assert categories("a baby animal") == []  # a baby animal is not a person, and "animal" no category
    assert categories("a baby in a crib") == ["person"]
    assert categories("a passenger train at the station") == ["train"]
    assert categories("a passenger jet on the runway") == ["airplane"]
    assert categories("the toilet seat is up") == ["toilet"]


def test_words_inside_other_words_are_not_objects():
    assert mentions("a cathedral and a dogsled in the catalogue") == []
    assert mentions("") == []


def test_hallucinated_objects_are_those_no_reference_names():
    refs = ["A cat lying on a blanket.", "A kitten sleeps on a bed."]
    # the cat close-up in tests/data: the bed is in a reference, the tennis ball in none
    assert hallucinated("A cat laying on a bed with a tennis ball in its mouth.", refs) == ["ball"]
    assert hallucinated("a kitten on a bed", refs) == []  # kitten = cat, via the synonyms
    assert hallucinated("two dogs on a couch", refs) == ["dogs", "couch"]
    assert hallucinated("a dog", []) == ["dog"]


def test_chair_i_counts_mentions_and_chair_s_counts_captions():
    refs = {1: ["a dog runs on the grass"], 2: ["a man rides a bike"], 3: ["a sunny beach"]}
    hyps = {1: "a dog and a cat on the grass with a frisbee",  # dog ok, cat and frisbee hallucinated
            2: "a man rides a bicycle",  # person, bicycle: both right
            3: "the sun sets over the sea"}  # no objects at all
    out = chair(refs, hyps)
    assert out["object_mentions"] == 5 and out["hallucinated_mentions"] == 2
    assert out["CHAIR_i"] == pytest.approx(40.0)  # 2 of 5 mentions
    assert out["CHAIR_s"] == pytest.approx(33.33)  # 1 of 3 captions
    assert out["captions_with_hallucination"] == 1


def test_every_mention_counts_and_no_objects_score_zero():
    refs = {1: ["a pizza on a plate"]}
    # pizza twice (right), table once (hallucinated): one of three mentions
    assert chair(refs, {1: "a pizza on a table with a pizza"})["CHAIR_i"] == pytest.approx(33.33)
    assert chair(refs, {1: "something on a plate"}) == {
        "CHAIR_i": 0.0, "CHAIR_s": 0.0, "object_mentions": 0, "hallucinated_mentions": 0,
        "captions_with_hallucination": 0}


def test_score_reports_chair_next_to_the_other_metrics():
    refs = {1: ["a dog runs on the grass"], 2: ["two children play in the snow"]}
    s = metrics.score(refs, {1: "A dog runs on the grass.", 2: "two children and a dog play in the snow"},
                      use_java=False)
    assert {"BLEU-4", "ROUGE-L", "CIDEr", "CHAIR_i", "CHAIR_s"} <= set(s)
    assert s["CHAIR_i"] == pytest.approx(33.33) and s["CHAIR_s"] == pytest.approx(50.0)
