"""Self-critical sequence training: the CIDEr-D reward equals pycocoevalcap's, a step learns, runs resume exactly,
and the CLI turns bad input into one-line errors."""
import json
import random

import pytest
import torch
from click.testing import CliRunner
from conftest import SHARED_DATA
from pycocoevalcap.cider.cider import Cider
from tiny import feats, tiny_decoder

from model import Captioner, checkpoint
from model.beam import SearchConfig
from model.cider_reward import CiderD
from model.scst import SCSTConfig, SCSTTrainer, caption_stats, sample, search_mask
from model.train import TrainingError
from model.vocab import tokenize
from server.cli import main


def _pycoco(refs: dict, hyps: dict) -> tuple[float, list[float]]:
    gts = {k: [" ".join(r) for r in v] for k, v in refs.items()}
    res = {k: [" ".join(hyps[k])] for k in refs}
    score, scores = Cider().compute_score(gts, res)
    return float(score), [float(s) for s in scores]


REFS = {
    0: ["A dog runs through the grass.", "a brown dog is running on grass", "The dog plays in a field."],
    1: ["Two men ride bikes down a hill.", "two cyclists on a dirt road", "Men riding bicycles"],
    2: ["a cat sleeps on a bed", "A cat is lying on the bed with a ball.", "cat on a bed", "a sleeping cat"],
    3: ["a a a", "A child in a red shirt jumps.", "a boy jumps into the pool"],
}


@pytest.mark.parametrize("hyps", [
    {0: "a dog runs on the grass", 1: "two men ride bikes", 2: "a cat on a bed", 3: "a child jumps"},
    {0: "a cat", 1: "a dog runs through the grass", 2: "", 3: "a a a a a a"},  # wrong, empty, repetitive
    {0: "the the the the the", 1: "two men ride bikes down a hill and a dog runs through the grass", 2: "cat",
     3: "a boy in a red shirt jumps into the pool"},
])
def test_reward_equals_pycocoevalcap_with_the_same_references_for_document_frequencies(hyps):
    refs = {k: [tokenize(c) for c in v] for k, v in REFS.items()}
    hyps = {k: tokenize(h) for k, h in hyps.items()}
    mean, per_image = _pycoco(refs, hyps)
    mine = CiderD(refs).scores(list(refs), [hyps[k] for k in refs])
    assert mine == pytest.approx(per_image, rel=1e-12, abs=1e-12)
    assert sum(mine) / len(mine) == pytest.approx(mean, rel=1e-12)


@pytest.mark.skipif(not (SHARED_DATA / "flickr8k").is_dir(), reason="needs ../shared/data/flickr8k")
def test_reward_equals_pycocoevalcap_on_real_captions():
    from model.datasets import load_split

    items = load_split(SHARED_DATA / "flickr8k", "dev")[:300]
    refs = {i: [tokenize(c) for c in it.captions] for i, it in enumerate(items)}
    rng = random.Random(0)
    hyps = {i: rng.choice(refs[i] + refs[(i + 1) % len(refs)]) for i in refs}  # right and wrong captions
    _, per_image = _pycoco(refs, hyps)
    mine = CiderD(refs).scores(list(refs), [hyps[i] for i in refs])
    assert mine == pytest.approx(per_image, rel=1e-9, abs=1e-12)


def test_reward_uses_its_own_document_frequencies_and_caches_references():
    corpus = {k: [tokenize(c) for c in v] for k, v in REFS.items()}
    reward = CiderD(corpus)
    assert reward.df[("a",)] == 4 and reward.df[("dog",)] == 1
    first = reward.score(0, tokenize("a dog runs"))
    assert reward.score(0, tokenize("a dog runs")) == first and 0 in reward._cooked
    assert reward.score(0, []) == 0.0
    with pytest.raises(ValueError):
        CiderD({})


def test_sampling_follows_the_search_rules_and_the_step_api_agrees_with_the_full_forward():
    dec = tiny_decoder("transformer", vocab_size=24, max_len=12)
    search = SearchConfig(beam_size=1, max_len=10, min_len=3, no_end_after=tuple(range(4, 14)))
    f = feats(3)
    torch.manual_seed(0)
    tokens, forced = sample(dec, f, 4, search, pad=0)
    assert tokens.shape[0] == 12 and (tokens[:, 0] == search.bos).all()
    for row, was_forced in zip(tokens.tolist(), forced.tolist()):
        body = row[1 : row.index(search.eos)]
        assert len(body) >= search.min_len and not set(body) & set(search.banned)
        assert was_forced or body[-1] not in search.no_end_after  # never ends on a dangling word by choice
        assert all(t == 0 for t in row[row.index(search.eos) + 1 :])  # <pad> after <eos>
        assert was_forced == (len(body) == search.max_len)
    # The log-probabilities the gradient uses (one teacher-forced pass) are those the samples were drawn from.
    logits = dec(f.repeat_interleave(4, 0), tokens[:, :-1]).masked_fill(
        search_mask(tokens[:, :-1], 24, search), float("-inf"))
    logp = logits.log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)
    valid = tokens[:, 1:] != 0
    assert torch.isfinite(logp[valid]).all()
    greedy, _ = sample(dec, f, 1, search, pad=0, greedy=True)
    assert greedy.shape[0] == 3


def test_caption_stats_measure_the_side_effects():
    hyps = {0: "a dog runs on a", 1: "a a dog", 2: "a man on a bike on a bike", 3: "a cat"}
    refs = {0: ["a dog"], 1: ["a dog"], 2: ["a man on a bike"], 3: ["a dog"]}
    s = caption_stats(hyps, refs)
    assert s["mean_length"] == 4.5 and s["dangling_end"] == 25.0
    assert s["repeated_word"] == 25.0 and s["repeated_bigram"] == 25.0
    assert s["CHAIR_s"] == 25.0  # "cat" where the references say dog


def _cfg(shapes_dataset, feature_cache, init, out, **kw) -> SCSTConfig:
    base = {"data": [str(shapes_dataset)], "init": str(init), "out": str(out), "cache_dir": str(feature_cache),
            "batch_size": 4, "samples": 3, "epochs": 2, "lr": 1e-3, "save_every": 1}
    base.update(kw)
    return SCSTConfig(**base)


def _state(out) -> dict:
    return SCSTTrainer(SCSTConfig(out=str(out)))._read_state()


def test_an_scst_step_changes_the_weights(shapes_dataset, feature_cache, shapes_checkpoint, tmp_path):
    for kw in ({}, {"baseline": "greedy", "samples": 2, "xe_weight": 0.5, "entropy_weight": 0.1}):
        t = SCSTTrainer(_cfg(shapes_dataset, feature_cache, shapes_checkpoint, tmp_path / str(len(kw)), **kw))
        t.setup(resume=False)
        before = {k: v.clone() for k, v in t.model.decoder.state_dict().items()}
        numbers = t.train_step(torch.arange(4))
        assert t.step == 1 and numbers["captions"] == 4 * t.cfg.samples and 0 <= numbers["reward"]
        assert all(torch.isfinite(p).all() for p in t.model.decoder.parameters())
        changed = [k for k, v in t.model.decoder.state_dict().items() if not torch.equal(v, before[k])]
        assert "blocks.0.cross_attn.q.weight" in changed, kw


def test_the_hallucination_penalty_takes_reward_off_per_invented_object(shapes_dataset, feature_cache,
                                                                        shapes_checkpoint, tmp_path):
    plain = SCSTTrainer(_cfg(shapes_dataset, feature_cache, shapes_checkpoint, tmp_path / "p"))
    fined = SCSTTrainer(_cfg(shapes_dataset, feature_cache, shapes_checkpoint, tmp_path / "f",
                             hallucination_penalty=0.25))
    plain.setup(resume=False)
    fined.setup(resume=False)
    # The shapes' references name no COCO object: a dog and two benches are three invented mentions.
    words = [["a", "red", "square"], ["a", "dog", "on", "a", "bench", "by", "benches"]]
    a, b = plain.rewards([0, 0], words), fined.rewards([0, 0], words)
    assert b[0] == pytest.approx(a[0].item()) and b[1] == pytest.approx(a[1].item() - 0.75)
    fined.truth[0] = frozenset({"dog"})  # had a reference said dog, only the benches would cost
    assert fined.rewards([0], words[1:])[0] == pytest.approx(a[1].item() - 0.5)


def test_resume_after_a_stop_or_a_crash_ends_with_the_same_weights(shapes_dataset, feature_cache,
                                                                   shapes_checkpoint, tmp_path, monkeypatch):
    def cfg(out, **kw):
        return _cfg(shapes_dataset, feature_cache, shapes_checkpoint, tmp_path / out, **kw)

    straight = SCSTTrainer(cfg("a"))
    straight.run()
    assert straight.steps_per_epoch == 2  # 8 shapes, 4 per step: the stops below fall inside epoch 2

    assert SCSTTrainer(cfg("b", max_steps=3)).run() == {"step": 3, "stopped": "max_steps"}
    assert _state(tmp_path / "b")[1]["step"] == "3"
    SCSTTrainer(cfg("b")).run(resume=True)

    calls = {"n": 0}
    real_step = SCSTTrainer.train_step

    def crash_on_the_fourth_step(self, idx):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_step(self, idx)

    monkeypatch.setattr(SCSTTrainer, "train_step", crash_on_the_fourth_step)
    with pytest.raises(KeyboardInterrupt):
        SCSTTrainer(cfg("c", save_every=2)).run()  # the last save was at step 2: step 3 is done again
    monkeypatch.setattr(SCSTTrainer, "train_step", real_step)
    SCSTTrainer(cfg("c", save_every=2)).run(resume=True)

    a = _state(tmp_path / "a")
    for other in ("b", "c"):
        b = _state(tmp_path / other)
        assert b[1]["step"] == a[1]["step"] == "4" and set(a[0]) == set(b[0])
        for k in a[0]:
            assert torch.equal(a[0][k], b[0][k]), (other, k)
        logs = [json.loads(line) for line in (tmp_path / other / "log.jsonl").read_text().splitlines()]
        assert [e["epoch"] for e in logs] == [0, 1, 2]  # the initial model, then each epoch once
    log_a = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert logs[-1]["train_reward"] == pytest.approx(log_a[-1]["train_reward"])


def test_resume_refuses_changed_settings(shapes_dataset, feature_cache, shapes_checkpoint, tmp_path):
    SCSTTrainer(_cfg(shapes_dataset, feature_cache, shapes_checkpoint, tmp_path / "r", max_steps=1)).run()
    with pytest.raises(TrainingError, match="different settings"):
        SCSTTrainer(_cfg(shapes_dataset, feature_cache, shapes_checkpoint, tmp_path / "r", lr=1e-4)).run(resume=True)
    with pytest.raises(TrainingError, match="already holds a run"):
        SCSTTrainer(_cfg(shapes_dataset, feature_cache, shapes_checkpoint, tmp_path / "r")).run()
    with pytest.raises(TrainingError, match="holds another run"):  # a cross-entropy run's directory
        SCSTTrainer(_cfg(shapes_dataset, feature_cache, shapes_checkpoint, shapes_checkpoint.parent)).run()


def test_cli_trains_end_to_end_and_writes_a_loadable_best_checkpoint(shapes_dataset, feature_cache,
                                                                      shapes_checkpoint, tmp_path):
    out = tmp_path / "scst"
    args = ["train", "--scst", "--init", str(shapes_checkpoint), "--data", str(shapes_dataset), "--out", str(out),
            "--cache-dir", str(feature_cache), "--epochs", "2", "--batch-size", "4", "--samples", "3",
            "--lr", "1e-4", "--threads", "1"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["epoch"] == 2 and result["step"] == 4 and "dev_CHAIR_i" in result
    captioner = Captioner.load(out / "best.safetensors", device="cpu")
    assert captioner.info["scst_config"]["samples"] == 3 and captioner.info["init"]["path"] == str(shapes_checkpoint)
    assert captioner.info["train_config"]["min_freq"] == 1  # the cross-entropy recipe travels along
    base = Captioner.load(shapes_checkpoint, device="cpu")
    assert captioner.vocab.itos == base.vocab.itos and captioner.model.cfg == base.model.cfg
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert {"dev_cider", "dev_mean_length", "dev_dangling_end", "dev_repeated_word", "dev_repeated_bigram",
            "dev_CHAIR_i", "dev_CHAIR_s"} <= set(logs[0]) and "train_reward" in logs[1]
    again = CliRunner().invoke(main, args + ["--resume", "--epochs", "3"])  # one more epoch, without --init
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout.strip().splitlines()[-1])["epoch"] == 3


def _invoke(*args):
    r = CliRunner().invoke(main, ["train", *args])
    assert r.exit_code != 0 and "Traceback" not in r.output, r.output
    assert isinstance(r.exception, SystemExit), r.exception  # a click error, not a crash
    return r


def test_cli_bad_input_is_a_one_line_error(shapes_dataset, feature_cache, shapes_checkpoint, tmp_path):
    data = ["--data", str(shapes_dataset), "--cache-dir", str(feature_cache)]
    r = _invoke("--scst", *data, "--out", str(tmp_path / "a"))
    assert "--scst needs --init" in r.output
    r = _invoke("--scst", "--init", str(tmp_path / "missing.safetensors"), *data, "--out", str(tmp_path / "b"))
    assert "checkpoint file not found" in r.output
    r = _invoke("--scst", "--resume", *data, "--out", str(tmp_path / "c"))
    assert "no" in r.output and "to resume from" in r.output
    r = _invoke("--scst", "--init", str(shapes_checkpoint), *data, "--out", str(tmp_path / "d"), "--d-model", "64")
    assert "--d-model: not an SCST setting" in r.output
    r = _invoke(*data, "--out", str(tmp_path / "e"), "--samples", "4")
    assert "--samples only apply with --scst" in r.output
    r = _invoke("--scst", "--init", str(shapes_checkpoint), *data, "--out", str(tmp_path / "f"), "--samples", "1")
    assert "needs --samples of at least 2" in r.output
    r = _invoke("--scst", "--init", str(shapes_checkpoint), *data, "--out", str(tmp_path / "p"),
                "--hallucination-penalty", "-0.5")
    assert "--hallucination-penalty must be >= 0" in r.output
    r = _invoke("--scst", "--init", str(shapes_checkpoint), *data, "--out", str(tmp_path / "g"), "--encoder",
                "efficientnet-lite2")
    assert "was trained on efficientnet-lite0 features" in r.output

    # A checkpoint whose vocabulary is another one than the data's (same size, other words).
    tensors, meta = checkpoint.load(shapes_checkpoint)
    words = json.loads(meta["vocab"])
    meta["vocab"] = json.dumps(words[:4] + [f"word{i}" for i in range(len(words) - 4)])
    foreign = tmp_path / "foreign.safetensors"
    checkpoint.save(foreign, tensors, {k: v for k, v in meta.items() if not k.startswith("format")}, dtype=None)
    r = _invoke("--scst", "--init", str(foreign), *data, "--out", str(tmp_path / "h"))
    assert "has another vocabulary" in r.output
    for name in "abdfgh":
        assert not (tmp_path / name / "scst_state.safetensors").exists()


def test_tuning_the_encoder_tail_trains_only_the_tail_and_ships_it(shapes_dataset, feature_cache,
                                                                  shapes_checkpoint, tmp_path):
    from model.datasets import load_split
    from model.features import model_grids
    from model.images import load_image

    t = SCSTTrainer(_cfg(shapes_dataset, feature_cache, shapes_checkpoint, tmp_path / "t", tune_encoder_blocks=1,
                         epochs=1))
    t.setup(resume=False)
    enc = t.model.encoder
    assert t.train.feats.shape[1:] == (192, 7, 7)  # Lite0's trunk before its last block, cached
    tail0 = {k: v.clone() for k, v in enc.tail.state_dict().items()}
    net0 = {k: v.clone() for k, v in enc.net.state_dict().items()}
    assert torch.equal(tail0["_conv_head.weight"], net0["_conv_head.weight"])  # starts as the pretrained tail
    t.train_step(torch.arange(4))
    assert not torch.equal(enc.tail.state_dict()["_conv_head.weight"], tail0["_conv_head.weight"])
    assert all(torch.equal(v, net0[k]) for k, v in enc.net.state_dict().items())  # the pretrained net stays
    SCSTTrainer(_cfg(shapes_dataset, feature_cache, shapes_checkpoint, tmp_path / "t2", tune_encoder_blocks=1,
                     epochs=1)).run()

    best = tmp_path / "t2" / "best.safetensors"
    tensors, meta = checkpoint.load(best)
    assert json.loads(meta["config"])["tuned_blocks"] == 1
    assert {k for k in tensors if not k.startswith("decoder.")} == {f"encoder.tail.{k}" for k in tail0}
    tuned = Captioner.load(best, device="cpu")
    plain = Captioner.load(shapes_checkpoint, device="cpu")
    items = load_split(shapes_dataset, "dev")[:3]
    images = [load_image(it.path) for it in items]
    # Serving (whole encoder) and evaluation (cached trunk + tail) give the same grid: one image path.
    served = tuned.encode(images)
    cached = model_grids([it.path for it in items], tuned.model, feature_cache)
    assert torch.allclose(served, cached, atol=2e-2), (served - cached).abs().max()
    assert not torch.allclose(served, plain.encode(images), atol=1e-3)
    # The describe pipeline's pooled vector stays the pretrained encoder's (its ImageNet head reads it).
    search = tuned.search_config(1)
    _, pooled = tuned.caption_and_pool(images, search)
    _, plain_pooled = plain.caption_and_pool(images, search)
    assert torch.allclose(pooled, plain_pooled, atol=1e-4)

    # A tuned checkpoint is continued with its tail tuned, never with frozen cached features.
    with pytest.raises(TrainingError, match="--tune-encoder-blocks 1"):
        SCSTTrainer(_cfg(shapes_dataset, feature_cache, best, tmp_path / "u")).setup(resume=False)
    with pytest.raises(checkpoint.CheckpointError, match="different trained weights"):
        Captioner.load([shapes_checkpoint, best], device="cpu")


def test_a_tuned_run_resumes_with_the_same_weights(shapes_dataset, feature_cache, shapes_checkpoint, tmp_path):
    def cfg(out, **kw):
        return _cfg(shapes_dataset, feature_cache, shapes_checkpoint, tmp_path / out, tune_encoder_blocks=2, **kw)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the convolutions' threaded backward adds up in a varying order (~1e-11 apart)
    try:
        SCSTTrainer(cfg("a")).run()
        SCSTTrainer(cfg("b", max_steps=3)).run()
        SCSTTrainer(cfg("b")).run(resume=True)
    finally:
        torch.set_num_threads(threads)
    a, b = _state(tmp_path / "a")[0], _state(tmp_path / "b")[0]
    assert set(a) == set(b) and any(k.startswith("tail._blocks.1.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_rejects_a_tail_the_encoder_does_not_have(shapes_dataset, feature_cache, shapes_checkpoint, tmp_path):
    data = ["--data", str(shapes_dataset), "--cache-dir", str(feature_cache), "--init", str(shapes_checkpoint)]
    r = _invoke("--scst", *data, "--out", str(tmp_path / "a"), "--tune-encoder-blocks", "17")
    assert "tuned blocks must be 1..16" in r.output
    r = _invoke("--scst", *data, "--out", str(tmp_path / "b"), "--tune-encoder-blocks", "-1")
    assert "--tune-encoder-blocks must be >= 0" in r.output
    r = _invoke(*data[:4], "--out", str(tmp_path / "c"), "--tune-encoder-blocks", "1")
    assert "--tune-encoder-blocks only apply with --scst" in r.output


def test_a_checkpoint_that_claims_a_tail_its_encoder_lacks_is_a_checkpoint_error(shapes_checkpoint, tmp_path):
    tensors, meta = checkpoint.load(shapes_checkpoint)
    config = json.loads(meta["config"])
    config["tuned_blocks"] = 99
    meta["config"] = json.dumps(config)
    bad = tmp_path / "bad.safetensors"
    checkpoint.save(bad, tensors, {k: v for k, v in meta.items() if not k.startswith("format")}, dtype=None)
    with pytest.raises(checkpoint.CheckpointError, match="tuned blocks must be 1..16"):
        Captioner.load(bad, device="cpu")
