import pytest

from model.vocab import SPECIALS, Vocabulary, tokenize


def test_tokenize_lowercases_and_drops_punctuation():
    assert tokenize("A Dog's ball, in 2 parks!") == ["a", "dog's", "ball", "in", "2", "parks"]


def test_build_applies_min_frequency_and_orders_by_count():
    v = Vocabulary.build(["a dog runs", "a dog sits", "a cat"], min_freq=2)
    assert v.itos[: len(SPECIALS)] == list(SPECIALS)
    assert v.itos[len(SPECIALS):] == ["a", "dog"]  # 'a' x3 before 'dog' x2; single words cut


def test_encode_decode_round_trip():
    v = Vocabulary.build(["a dog runs on the grass"] * 3)
    ids = v.encode("A dog runs on the grass.")
    assert ids[0] == v.bos_id and ids[-1] == v.eos_id
    assert v.decode(ids) == "a dog runs on the grass"


def test_unknown_words_and_truncation():
    v = Vocabulary.build(["a dog"] * 3)
    assert v.encode("a zebra") == [v.bos_id, v.stoi["a"], v.unk_id, v.eos_id]
    ids = v.encode("a dog a dog a dog", max_len=4)
    assert len(ids) == 4 and ids[-1] == v.eos_id


def test_decode_stops_at_eos_and_skips_specials():
    v = Vocabulary.build(["a dog"] * 3)
    assert v.decode([v.bos_id, v.stoi["dog"], v.pad_id, v.eos_id, v.stoi["a"]]) == "dog"


def test_json_round_trip_and_rejects_foreign_json():
    v = Vocabulary.build(["a dog runs"] * 3)
    w = Vocabulary.from_json(v.to_json())
    assert w.itos == v.itos and w.stoi == v.stoi
    with pytest.raises(ValueError):
        Vocabulary.from_json('["dog", "cat"]')
    with pytest.raises(ValueError):
        Vocabulary.from_json('{"a": 1}')
