"""Beam search, batched over images x beams: one decoder call per step for the whole batch.

Finished hypotheses stay in the beam and can only be extended by <eos> at no cost, so every image keeps exactly
``beam_size`` rows and the batch never has to be re-packed. Scores are summed log-probabilities; the final choice
is length-normalised (score / length ** length_penalty). The confidence of a caption is the geometric mean of its
token probabilities, exp(mean log-probability): a number in (0, 1] callers can threshold on.

``reference_beam_search`` is the same algorithm done the straightforward way (one hypothesis at a time, the whole
prefix re-run every step); the benchmark and the tests check the two give identical captions.

``Ensemble`` makes several decoders over the same encoder grid look like one decoder to both searches: each member
keeps its own state, and every step yields the members' averaged next-token distribution.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .decoders import State, expand_static


# Words a caption must not end on ("a man riding a"): CIDEr optimisation learns such endings, and a listener cannot
# guess what was cut off.
DANGLING = frozenset({"a", "an", "the", "of", "with", "on", "in", "and"})


@dataclass(frozen=True)
class SearchConfig:
    beam_size: int = 3
    max_len: int = 20  # generated words, <eos> excluded
    min_len: int = 3
    length_penalty: float = 0.7
    no_repeat_ngram: int = 3  # 0 disables
    bos: int = 1
    eos: int = 2
    banned: tuple[int, ...] = (0, 1, 3)  # <pad>, <bos>, <unk> are never generated
    no_end_after: tuple[int, ...] = ()  # <eos> never follows these (the DANGLING words), unless out of room

    @classmethod
    def for_vocab(cls, vocab, beam_size: int = 3, **kw) -> SearchConfig:
        """Settings with ``vocab``'s special ids: <pad>, <bos> and <unk> are never generated, and no caption ends
        on a DANGLING word."""
        kw.setdefault("no_end_after", tuple(sorted(vocab.stoi[w] for w in DANGLING if w in vocab.stoi)))
        return cls(beam_size=beam_size, bos=vocab.bos_id, eos=vocab.eos_id,
                   banned=(vocab.pad_id, vocab.bos_id, vocab.unk_id), **kw)


def ends_dangling(last: torch.Tensor, cfg: SearchConfig) -> torch.Tensor:
    """Which of the prefixes whose last tokens are ``last`` may not end now (they end on a DANGLING word)."""
    if not cfg.no_end_after:
        return torch.zeros_like(last, dtype=torch.bool)
    return torch.isin(last, torch.tensor(cfg.no_end_after, device=last.device))


@dataclass(frozen=True)
class Hypothesis:
    tokens: list[int]  # generated ids, without <bos>, with <eos> if it ended
    log_prob: float  # sum of token log-probabilities
    length: int  # tokens counted for normalisation (words + <eos>)

    @property
    def confidence(self) -> float:
        return float(torch.tensor(self.log_prob / max(self.length, 1)).exp())


COMBINE_MODES = ("mean", "geometric")


class Ensemble(nn.Module):
    """Several decoders that read the same encoder grid and share one vocabulary, searched as one decoder.

    It has the decoder step API (``init_state``, ``step``, ``forward``), so ``beam_search`` and
    ``reference_beam_search`` run it unchanged: member ``i``'s static and dynamic tensors live in the same state
    dicts under the prefix ``"{i}."``, so the search expands, reorders and shrinks every member's incremental state
    (the Transformers' self-attention caches, the LSTMs' h and c) together with the beams. The outputs are
    normalised log-probabilities, not logits (``returns_log_probs``): the search uses them as they are.

    ``combine="mean"`` (the default) gives log((p_1 + ... + p_M) / M), the log of the mean of the members'
    softmaxes: the predictive distribution of an equal mixture of the members. It is the default because the beam
    score and the caption confidence (the geometric mean of token probabilities, which the describe pipeline
    calibrates and thresholds) are read as probabilities, and a mixture of the members' distributions is still the
    probability of something: if each member is calibrated, so is their mixture, and a word only one member finds
    likely keeps half that probability. The mean of log-probabilities (``combine="geometric"``, renormalised: a
    product of experts) is not a mixture: it is sharper where the members agree, and a near-zero probability from
    one member vetoes a word whatever the others say. It is kept as an option because it can score as well or
    better (default + SCST, issue 9: it did, by about one CIDEr point); its confidences need their own calibration.
    The mean is computed as m + log(mean(exp(log p_i - m))) with m the members' maximum per token, so an ensemble of
    identical members reproduces the single member's log-probabilities bit for bit.
    """

    returns_log_probs = True

    def __init__(self, decoders: Sequence[nn.Module], combine: str = "mean"):
        super().__init__()
        if len(decoders) < 2:
            raise ValueError("an ensemble needs at least two decoders")
        if combine not in COMBINE_MODES:
            raise ValueError(f"unknown combine mode {combine!r}; choose one of: {', '.join(COMBINE_MODES)}")
        self.members = nn.ModuleList(decoders)
        self.combine = combine

    def combined(self, logits: list[torch.Tensor]) -> torch.Tensor:
        """Members' logits [..., V] each -> the combined log-probabilities [..., V] (fp32)."""
        logp = torch.stack([F.log_softmax(x.float(), dim=-1) for x in logits])  # [M, ..., V]
        if self.combine == "geometric":
            return F.log_softmax(logp.mean(0), dim=-1)
        top = logp.max(0).values
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # a token every member rules out
        return top + (logp - top).exp().mean(0).log()

    @staticmethod
    def _split(state: State, i: int) -> State:
        prefix = f"{i}."
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

    def init_state(self, feats) -> tuple[State, State]:
        static, dynamic = {}, {}
        for i, member in enumerate(self.members):
            s, d = member.init_state(feats)
            static.update({f"{i}.{k}": v for k, v in s.items()})
            dynamic.update({f"{i}.{k}": v for k, v in d.items()})
        return static, dynamic

    def step(self, tokens, static: State, dynamic: State) -> tuple[torch.Tensor, State]:
        logits, new = [], {}
        for i, member in enumerate(self.members):
            out, d = member.step(tokens, self._split(static, i), self._split(dynamic, i))
            logits.append(out)
            new.update({f"{i}.{k}": v for k, v in d.items()})
        return self.combined(logits), new

    def forward(self, feats, tokens):
        """Combined log-probabilities [B, T, V] for whole prefixes (teacher forcing; the naive search uses it)."""
        return self.combined([member(feats, tokens) for member in self.members])


def _log_probs(decoder, out: torch.Tensor) -> torch.Tensor:
    """A decoder's step output as fp32 log-probabilities: plain decoders give logits, an ``Ensemble`` gives
    log-probabilities already (normalising them again would only add rounding)."""
    return out if getattr(decoder, "returns_log_probs", False) else F.log_softmax(out.float(), dim=-1)


def _constrain(logp, tokens, finished, step: int, cfg: SearchConfig):
    """Apply the search rules to a [N, V] block of log-probabilities for N hypotheses with prefixes ``tokens``."""
    logp = logp.clone()
    logp[:, list(cfg.banned)] = float("-inf")
    if step < cfg.min_len:
        logp[:, cfg.eos] = float("-inf")
    logp[ends_dangling(tokens[:, -1], cfg), cfg.eos] = float("-inf")
    if step >= cfg.max_len:  # out of room: every hypothesis ends here
        logp[:, : cfg.eos] = float("-inf")
        logp[:, cfg.eos + 1 :] = float("-inf")
        logp[:, cfg.eos] = logp[:, cfg.eos].clamp(min=-1e4)  # even if min_len or a ban forbade it
    n = cfg.no_repeat_ngram
    if n == 1:  # no word twice
        logp.scatter_(1, tokens, float("-inf"))
    elif n and tokens.shape[1] >= n:  # prefix includes <bos>, which never repeats, so it is harmless here
        windows = tokens.unfold(1, n, 1)  # [N, W, n]
        match = (windows[:, :, :-1] == tokens[:, None, 1 - n:]).all(-1)  # [N, W]
        rows, cols = match.nonzero(as_tuple=True)
        logp[rows, windows[rows, cols, -1]] = float("-inf")
    done = finished.nonzero(as_tuple=True)[0]
    if len(done):
        logp[done] = float("-inf")
        logp[done, cfg.eos] = 0.0
    return logp


def _select(scores, logp, groups: int, k: int):
    """Top-k continuations per image: returns new scores [G, k], source rows [G*k] and new tokens [G*k]."""
    vocab = logp.shape[-1]
    cand = (scores.view(-1, 1) + logp).view(groups, k * vocab)
    top, idx = cand.topk(k, dim=1)
    rows = (torch.arange(groups, device=idx.device)[:, None] * k + idx // vocab).view(-1)
    return top, rows, (idx % vocab).view(-1)


def _finish(tokens, scores, lengths, groups: int, k: int, cfg: SearchConfig) -> list[Hypothesis]:
    norm = scores.view(-1) / lengths.clamp(min=1).float() ** cfg.length_penalty
    best = norm.view(groups, k).argmax(dim=1) + torch.arange(groups, device=norm.device) * k
    out = []
    for r in best.tolist():
        seq = tokens[r, 1:].tolist()
        if cfg.eos in seq:
            seq = seq[: seq.index(cfg.eos) + 1]
        out.append(Hypothesis(seq, float(scores.view(-1)[r]), int(lengths[r])))
    return out


def _start(groups: int, k: int, device, cfg: SearchConfig):
    tokens = torch.full((groups * k, 1), cfg.bos, dtype=torch.long, device=device)
    scores = torch.zeros(groups, k, device=device)
    scores[:, 1:] = float("-inf")  # all beams start identical: expand only the first one at step 0
    finished = torch.zeros(groups * k, dtype=torch.bool, device=device)
    lengths = torch.zeros(groups * k, dtype=torch.long, device=device)
    return tokens, scores, finished, lengths


def _advance(tokens, finished, lengths, rows, new, cfg: SearchConfig):
    was_finished = finished[rows]
    return (torch.cat([tokens[rows], new[:, None]], dim=1),
            was_finished | (new == cfg.eos),
            lengths[rows] + (~was_finished).long())


@torch.no_grad()
def beam_search(decoder, feats: torch.Tensor, cfg: SearchConfig,
                on_done: Callable[[int, Hypothesis], None] | None = None) -> list[Hypothesis]:
    """Best hypothesis for each of the B images whose encoder grids are ``feats`` [B, N, C]. ``decoder`` is one
    decoder or an ``Ensemble`` of several.

    An image whose beams have all ended leaves the batch at once, so short captions do not pay for long ones; and
    ``on_done(image, hypothesis)`` hears of it then, before the longer captions of the batch end (a service can
    answer that image's client while the search goes on).
    """
    groups, k = feats.shape[0], cfg.beam_size
    static, dynamic = decoder.init_state(feats)
    static = expand_static(static, k)
    dynamic = {name: v.repeat_interleave(k, dim=0) for name, v in dynamic.items()}
    tokens, scores, finished, lengths = _start(groups, k, feats.device, cfg)
    active = torch.arange(groups)  # which image each group of k rows belongs to
    results: list[Hypothesis | None] = [None] * groups
    for step in range(cfg.max_len + 1):  # the last step forces <eos>: every image is done after it
        g = len(active)
        logits, dynamic = decoder.step(tokens[:, -1], static, dynamic)
        logp = _constrain(_log_probs(decoder, logits), tokens, finished, step, cfg)
        scores, rows, new = _select(scores, logp, g, k)
        tokens, finished, lengths = _advance(tokens, finished, lengths, rows, new, cfg)
        done = finished.view(g, k).all(dim=1)
        if not done.any():
            dynamic = {name: v.index_select(0, rows) for name, v in dynamic.items()}
            continue
        done_rows = _rows(done.nonzero(as_tuple=True)[0], k)
        hyps = _finish(tokens[done_rows], scores[done], lengths[done_rows], int(done.sum()), k, cfg)
        for image, h in zip(active[done].tolist(), hyps):
            results[image] = h
            if on_done is not None:
                on_done(image, h)
        keep = (~done).nonzero(as_tuple=True)[0]
        if not len(keep):
            break
        keep_rows = _rows(keep, k)
        tokens, finished, lengths, scores = tokens[keep_rows], finished[keep_rows], lengths[keep_rows], scores[keep]
        dynamic = {name: v.index_select(0, rows[keep_rows]) for name, v in dynamic.items()}
        static = {name: v.index_select(0, keep_rows) for name, v in static.items()}  # beams share it: no reorder
        active = active[keep]
    return results


def _rows(group_idx: torch.Tensor, k: int) -> torch.Tensor:
    """Row indices of the given groups of k rows."""
    return (group_idx[:, None] * k + torch.arange(k, device=group_idx.device)).view(-1)


@torch.no_grad()
def reference_beam_search(decoder, feats: torch.Tensor, cfg: SearchConfig) -> list[Hypothesis]:
    """The same search, done naively: per image, per hypothesis, the decoder re-reads the whole prefix."""
    out = []
    k = cfg.beam_size
    for i in range(feats.shape[0]):
        one = feats[i : i + 1]
        tokens, scores, finished, lengths = _start(1, k, feats.device, cfg)
        for step in range(cfg.max_len + 1):
            logits = torch.cat([decoder(one, tokens[j : j + 1])[:, -1] for j in range(k)])
            logp = _constrain(_log_probs(decoder, logits), tokens, finished, step, cfg)
            scores, rows, new = _select(scores, logp, 1, k)
            tokens, finished, lengths = _advance(tokens, finished, lengths, rows, new, cfg)
            if finished.all():
                break
        out.extend(_finish(tokens, scores, lengths, 1, k, cfg))
    return out


@torch.no_grad()
def greedy_decode(decoder, feats: torch.Tensor, max_len: int, eos: int = 2, bos: int = 1) -> list[list[int]]:
    """Plain argmax decoding over the full prefix, with no search rules but the length cap (``max_len`` words,
    then the caption ends): the yardstick for beam size 1."""
    tokens = torch.full((feats.shape[0], 1), bos, dtype=torch.long, device=feats.device)
    for _ in range(max_len):
        nxt = decoder(feats, tokens)[:, -1].argmax(-1)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        if (tokens == eos).any(1).all():
            break
    seqs = []
    for row in tokens[:, 1:].tolist():
        seqs.append(row[: row.index(eos) + 1] if eos in row else row + [eos])
    return seqs
