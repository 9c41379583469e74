"""Beam search: beam 1 is greedy, batching changes nothing, the fast search equals the naive reference."""
import pytest
import torch

from model.beam import SearchConfig, _constrain, beam_search, greedy_decode, reference_beam_search
from tiny import feats, tiny_decoder

PLAIN = dict(min_len=0, no_repeat_ngram=0, banned=())


@pytest.mark.parametrize("kind", ["transformer", "lstm"])
def test_beam_one_equals_greedy(kind):
    dec, f = tiny_decoder(kind), feats(5)
    hyps = beam_search(dec, f, SearchConfig(beam_size=1, max_len=10, **PLAIN))
    assert [h.tokens for h in hyps] == greedy_decode(dec, f, max_len=10)


@pytest.mark.parametrize("kind", ["transformer", "lstm"])
@pytest.mark.parametrize("beam", [1, 3, 5])
def test_batched_equals_one_by_one(kind, beam):
    dec, f = tiny_decoder(kind), feats(6)
    cfg = SearchConfig(beam_size=beam, max_len=10)
    batched = beam_search(dec, f, cfg)
    single = [beam_search(dec, f[i : i + 1], cfg)[0] for i in range(6)]
    assert [h.tokens for h in batched] == [h.tokens for h in single]
    assert [h.log_prob for h in batched] == pytest.approx([h.log_prob for h in single], abs=1e-4)


@pytest.mark.parametrize("kind", ["transformer", "lstm"])
def test_batched_equals_naive_reference(kind):
    dec, f = tiny_decoder(kind), feats(4)
    cfg = SearchConfig(beam_size=3, max_len=10)
    assert [h.tokens for h in beam_search(dec, f, cfg)] == [h.tokens for h in reference_beam_search(dec, f, cfg)]


def test_wider_beam_never_scores_worse_on_raw_log_prob_for_one_step_captions():
    # With max_len 1 every hypothesis is one word + forced end: a wider beam sees a superset of candidates.
    dec, f = tiny_decoder("transformer"), feats(4)
    narrow = beam_search(dec, f, SearchConfig(beam_size=1, max_len=1, length_penalty=0.0, **PLAIN))
    wide = beam_search(dec, f, SearchConfig(beam_size=5, max_len=1, length_penalty=0.0, **PLAIN))
    assert all(w.log_prob >= n.log_prob - 1e-5 for w, n in zip(wide, narrow))


def test_search_rules_min_length_banned_tokens_and_length_cap():
    dec, f = tiny_decoder("transformer"), feats(4)
    cfg = SearchConfig(beam_size=3, max_len=8, min_len=5, banned=(0, 1, 3))
    for h in beam_search(dec, f, cfg):
        words = [t for t in h.tokens if t != cfg.eos]
        assert 5 <= len(words) <= 8
        assert not set(words) & {0, 1, 3}
        assert 0 < h.confidence <= 1


def test_no_repeat_ngram_blocks_the_completing_token():
    tokens = torch.tensor([[1, 5, 6, 7, 5]])  # <bos> 5 6 7 5: emitting 6 would repeat the bigram "5 6"
    logp = torch.zeros(1, 10)
    out = _constrain(logp, tokens, torch.tensor([False]), step=4, cfg=SearchConfig(no_repeat_ngram=2, banned=()))
    assert out[0, 6] == float("-inf")
    assert (out[0, [5, 7, 8]] == 0).all()


def test_no_repeat_ngram_holds_in_full_search():
    dec, f = tiny_decoder("lstm"), feats(6)
    for h in beam_search(dec, f, SearchConfig(beam_size=3, max_len=10, no_repeat_ngram=2)):
        bigrams = list(zip(h.tokens, h.tokens[1:]))
        assert len(bigrams) == len(set(bigrams))


def test_finished_hypotheses_only_extend_with_eos():
    logp = torch.randn(2, 10)
    out = _constrain(logp, torch.tensor([[1, 4], [1, 2]]), torch.tensor([False, True]), step=5,
                     cfg=SearchConfig(banned=()))
    assert out[1, 2] == 0 and torch.isinf(out[1, [0, 1, 3, 4, 5]]).all()
    assert torch.equal(out[0], logp[0])


def test_no_repeat_unigram_means_no_word_twice():
    dec, f = tiny_decoder("transformer"), feats(4)
    for h in beam_search(dec, f, SearchConfig(beam_size=3, max_len=8, no_repeat_ngram=1)):
        words = [t for t in h.tokens if t != 2]
        assert len(words) == len(set(words))


def test_no_caption_ends_on_a_dangling_word_unless_out_of_room():
    from model.vocab import Vocabulary

    cfg = SearchConfig.for_vocab(Vocabulary(["a", "dog", "on", "the", "grass"]))
    assert sorted(cfg.no_end_after) == [4, 6, 7]  # "a", "on", "the"
    tokens = torch.tensor([[1, 4, 5, 6, 7], [1, 4, 5, 6, 8]])  # "a dog on the" / "a dog on grass"
    out = _constrain(torch.zeros(2, 9), tokens, torch.tensor([False, False]), step=4, cfg=cfg)
    assert out[0, cfg.eos] == float("-inf") and out[1, cfg.eos] == 0
    last = _constrain(torch.zeros(2, 9), tokens, torch.tensor([False, False]), step=cfg.max_len, cfg=cfg)
    assert torch.isfinite(last[:, cfg.eos]).all()  # out of room: it ends anyway
    # In a full search with every word dangling, captions run to the length cap.
    dec, f = tiny_decoder("transformer"), feats(4)
    rule = SearchConfig(beam_size=3, max_len=6, min_len=1, no_end_after=tuple(range(4, 40)))
    for h in beam_search(dec, f, rule):
        assert len(h.tokens) == 7 or h.tokens[-2] not in rule.no_end_after
    assert [h.tokens for h in beam_search(dec, f, rule)] == [h.tokens for h in reference_beam_search(dec, f, rule)]
