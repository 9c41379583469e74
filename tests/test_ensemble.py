"""Decoder ensembles inside the batched beam search: an ensemble of one model with itself is that model, the
per-step distribution is the mean of the members', mismatched checkpoints are refused, and the CLIs take them."""
import importlib.util
import json

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from conftest import REPO
from PIL import Image
from tiny import feats, tiny_config, tiny_decoder

from model import Captioner, beam, checkpoint
from model.beam import Ensemble, SearchConfig, beam_search, reference_beam_search
from model.captioner import ModelConfig
from model.checkpoint import CheckpointError
from model.decoders import build_decoder
from model.encoders import get_spec
from model.vocab import Vocabulary
from server.cli import main

WORDS = ["a", "red", "blue", "green", "square", "circle", "on", "white", "one", "big", "small", "the", "of",
         "with", "and", "dog", "cat", "man", "ball", "grass"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: more threads only add synchronisation, which costs seconds on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _sharpen(dec):
    """Random tiny decoders are almost uniform (weights of std 0.02): scale the output layer so members disagree
    clearly and the mean of probabilities is far from the mean of log-probabilities."""
    with torch.no_grad():
        if dec.cfg.kind == "transformer":
            dec.tok_emb.weight.mul_(8)  # tied: the output layer too
        else:
            dec.out.weight.mul_(15)
    return dec


def _decoder(kind="transformer", seed=0):
    return _sharpen(tiny_decoder(kind, seed=seed))


def _save(path, seed, kind="transformer", words=WORDS, encoder="efficientnet-lite0", name=None):
    """A tiny random checkpoint over a real (frozen, not stored) encoder's grid."""
    spec = get_spec(encoder)
    vocab = Vocabulary(words)
    cfg = ModelConfig(encoder=encoder, decoder=tiny_config(kind, vocab_size=len(vocab), feature_dim=spec.feature_dim,
                                                           grid=spec.grid))
    torch.manual_seed(seed)
    dec = _sharpen(build_decoder(cfg.decoder))
    checkpoint.save(path, {f"decoder.{k}": v for k, v in dec.state_dict().items()},
                    {"config": cfg.to_json(), "vocab": vocab.to_json(), "info": {"name": name or path.stem}},
                    dtype=None)
    return path


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ensemble")
    return {"a": _save(d / "a.safetensors", 0), "b": _save(d / "b.safetensors", 1),
            "lstm": _save(d / "lstm.safetensors", 2, kind="lstm"),
            "words": _save(d / "words.safetensors", 3, words=WORDS[:-1] + ["tree"]),
            "short": _save(d / "short.safetensors", 4, words=WORDS[:-2]),
            "lite2": _save(d / "lite2.safetensors", 5, encoder="efficientnet-lite2")}


def _load(paths, **kw):
    return Captioner.load(paths, device="cpu", pretrained_encoder=False, **kw)


def _grid(batch, seed=1):
    return feats(batch, grid=7, dim=1280, seed=seed)


# --- the search ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["transformer", "lstm"])
@pytest.mark.parametrize("beam_size", [1, 3])
def test_ensemble_of_a_decoder_with_itself_is_that_decoder_bit_for_bit(kind, beam_size):
    dec, f = _decoder(kind), feats(6)
    cfg = SearchConfig(beam_size=beam_size, max_len=10)
    alone, twice = beam_search(dec, f, cfg), beam_search(Ensemble([dec, dec]), f, cfg)
    assert [h.tokens for h in twice] == [h.tokens for h in alone]
    assert [h.log_prob for h in twice] == [h.log_prob for h in alone]  # exact, not approximate
    assert [h.confidence for h in twice] == [h.confidence for h in alone]


@pytest.mark.parametrize("kinds", [("transformer", "transformer"), ("transformer", "lstm"),
                                   ("lstm", "transformer", "transformer")])
@torch.no_grad()
def test_per_step_distribution_is_the_mean_of_the_members(kinds, monkeypatch):
    """Inside the batched search (each member's cache reordered with the beams), every step's distribution over the
    next word is exactly the mean of what each member alone says for that prefix, re-read from scratch."""
    members = [_decoder(kind, seed=i) for i, kind in enumerate(kinds)]
    ens = Ensemble(members)
    seen, real = [], beam._constrain

    def spy(logp, tokens, finished, step, cfg):
        seen.append((logp.clone(), tokens.clone()))
        return real(logp, tokens, finished, step, cfg)

    monkeypatch.setattr(beam, "_constrain", spy)
    cfg = SearchConfig(beam_size=3, max_len=8)
    gap = 0.0
    for image in range(2):  # one image per search: every row of a step belongs to it
        seen.clear()
        f = feats(2)[image : image + 1]
        beam_search(ens, f, cfg)
        assert len(seen) >= 4
        for logp, tokens in seen:
            grid = f.expand(tokens.shape[0], -1, -1)
            probs = torch.stack([F.softmax(m(grid, tokens)[:, -1].float(), -1) for m in members])
            torch.testing.assert_close(logp.exp(), probs.mean(0), atol=1e-6, rtol=1e-5)
            geometric = F.softmax(probs.log().mean(0), -1)
            gap = max(gap, float((geometric - probs.mean(0)).abs().max()))
    assert gap > 1e-2  # the members disagree enough that the check tells mean of probs from mean of log-probs


@torch.no_grad()
def test_confidence_is_computed_from_the_combined_distribution():
    members = [_decoder("transformer", 0), _decoder("lstm", 1)]
    ens, f = Ensemble(members), feats(4)
    cfg = SearchConfig(beam_size=3, max_len=8)
    for i, h in enumerate(beam_search(ens, f, cfg)):
        prefix = torch.tensor([[cfg.bos, *h.tokens[:-1]]])
        logp = ens(f[i : i + 1], prefix)[0]  # combined log-probabilities at every position
        total = float(logp.gather(1, torch.tensor(h.tokens)[:, None]).sum())
        assert h.log_prob == pytest.approx(total, abs=1e-4)
        assert h.confidence == pytest.approx(float(torch.tensor(total / h.length).exp()), abs=1e-5)


@pytest.mark.parametrize("kinds", [("transformer", "transformer"), ("lstm", "transformer")])
def test_batched_ensemble_equals_the_naive_reference(kinds):
    ens, f = Ensemble([_decoder(k, seed=i) for i, k in enumerate(kinds)]), feats(5)
    cfg = SearchConfig(beam_size=3, max_len=10)
    fast, slow = beam_search(ens, f, cfg), reference_beam_search(ens, f, cfg)
    assert [h.tokens for h in fast] == [h.tokens for h in slow]
    assert [h.log_prob for h in fast] == pytest.approx([h.log_prob for h in slow], abs=1e-4)
    batched = [beam_search(ens, f[i : i + 1], cfg)[0].tokens for i in range(5)]
    assert [h.tokens for h in fast] == batched


@torch.no_grad()
def test_geometric_combination_is_the_renormalised_mean_of_log_probs():
    members = [_decoder("transformer", 0), _decoder("transformer", 1)]
    f, tokens = feats(2), torch.tensor([[1, 5, 6], [1, 7, 8]])
    logps = torch.stack([F.log_softmax(m(f, tokens).float(), -1) for m in members])
    geo = Ensemble(members, combine="geometric")(f, tokens)
    torch.testing.assert_close(geo, F.log_softmax(logps.mean(0), -1))
    mean = Ensemble(members)(f, tokens)
    torch.testing.assert_close(mean, torch.logsumexp(logps, 0) - torch.log(torch.tensor(2.0)))
    assert not torch.allclose(mean, geo, atol=1e-3)
    with pytest.raises(ValueError, match="combine"):
        Ensemble(members, combine="max")
    with pytest.raises(ValueError, match="at least two"):
        Ensemble(members[:1])


# --- loading -------------------------------------------------------------------------------------------------------

def test_loaded_self_ensemble_captions_exactly_like_the_model(ckpts):
    one, two = _load(ckpts["a"]), _load([ckpts["a"], ckpts["a"]])
    assert two.ensemble is not None and len(two.members) == 2 and one.ensemble is None
    f = _grid(5)
    for beam_size in (1, 3):
        cfg = one.search_config(beam_size)
        assert two.search_config(beam_size) == cfg
        assert two.caption_features(f, cfg) == one.caption_features(f, cfg)  # text, confidence and tokens
    images = [Image.new("RGB", (64, 48), c) for c in [(200, 30, 30), (20, 20, 220)]]
    assert two.caption(images) == one.caption(images)  # through the (shared, once-run) encoder


def test_a_list_of_one_checkpoint_is_the_single_model(ckpts):
    single, listed = _load(ckpts["a"]), _load([ckpts["a"]])
    assert listed.ensemble is None and listed.decoder is listed.model.decoder
    assert listed.version == single.version and listed.name == single.name
    f = _grid(3)
    assert listed.caption_features(f, listed.search_config(3)) == single.caption_features(f, single.search_config(3))


def test_two_different_models_give_the_search_over_their_mean(ckpts):
    ens, a, b = _load([ckpts["a"], ckpts["lstm"]]), _load(ckpts["a"]), _load(ckpts["lstm"])
    assert [type(m).__name__ for m in ens.members] == ["TransformerDecoder", "LSTMDecoder"]
    f, cfg = _grid(6), ens.search_config(3)
    expected = beam_search(Ensemble([a.model.decoder, b.model.decoder]), f, cfg)
    assert [c.tokens for c in ens.caption_features(f, cfg)] == [ens.vocab.decode(h.tokens) for h in expected]
    assert ens.info["combine"] == "mean" and [m["path"] for m in ens.info["ensemble"]] == [str(ckpts["a"]),
                                                                                          str(ckpts["lstm"])]


def test_the_version_names_every_member_and_differs_from_each(ckpts):
    a, b = _load(ckpts["a"]), _load(ckpts["b"])
    ab, aa = _load([ckpts["a"], ckpts["b"]]), _load([ckpts["a"], ckpts["a"]])
    geo = _load([ckpts["a"], ckpts["b"]], combine="geometric")
    versions = {a.version, b.version, ab.version, aa.version, geo.version}
    assert len(versions) == 5
    assert ab.version == f"{a.version}+{b.version}" and ab.name == "a+b"
    assert Captioner.load_ensemble([ckpts["a"], ckpts["b"]], device="cpu", pretrained_encoder=False).version \
        == ab.version


def test_mismatched_vocabulary_is_refused_with_a_clear_error(ckpts):
    with pytest.raises(CheckpointError, match=r"words.safetensors: cannot ensemble with .*a.safetensors: the "
                                              r"vocabularies differ \(words.safetensors has 24 words, a.safetensors "
                                              r"24; id 23 is 'tree' in words.safetensors, 'grass' in a.safetensors\)"):
        _load([ckpts["a"], ckpts["words"]])
    with pytest.raises(CheckpointError, match=r"short.safetensors has 22 words, a.safetensors 24; the first 22 "
                                              r"agree"):
        _load([ckpts["a"], ckpts["short"]])


def test_mismatched_encoder_is_refused_with_a_clear_error(ckpts):
    with pytest.raises(CheckpointError, match="reads efficientnet-lite2 features, a.safetensors reads "
                                              "efficientnet-lite0 .*shares one encoder"):
        _load([ckpts["a"], ckpts["lite2"]])


def test_missing_or_too_few_checkpoints_are_refused(ckpts, tmp_path):
    with pytest.raises(CheckpointError, match="missing.safetensors: checkpoint file not found"):
        _load([ckpts["a"], tmp_path / "missing.safetensors"])
    with pytest.raises(CheckpointError, match="at least two"):
        Captioner.load_ensemble([ckpts["a"]], device="cpu", pretrained_encoder=False)


# --- command lines -------------------------------------------------------------------------------------------------

def test_cli_evaluate_takes_an_ensemble(ckpts, shapes_dataset, tmp_path):
    out = tmp_path / "report.json"
    r = CliRunner().invoke(main, ["evaluate", "--data", str(shapes_dataset), "--checkpoint", str(ckpts["a"]),
                                  "--checkpoint", str(ckpts["b"]), "--no-java", "--out", str(out)])
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    assert report["ensemble"] == [str(ckpts["a"]), str(ckpts["b"])] and report["combine"] == "mean"
    assert report["model"] == "a+b" and "+" in report["version"] and len(report["captions"]) == 4


@pytest.mark.parametrize("other, message", [
    ("words", "the vocabularies differ"), ("lite2", "shares one encoder"), ("missing", "checkpoint file not found")])
def test_cli_evaluate_refuses_a_bad_ensemble_in_one_line(ckpts, shapes_dataset, other, message, tmp_path):
    path = ckpts.get(other, tmp_path / "missing.safetensors")
    r = CliRunner().invoke(main, ["evaluate", "--data", str(shapes_dataset), "--checkpoint", str(ckpts["a"]),
                                  "--checkpoint", str(path), "--no-java"])
    assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output, r.output
    assert isinstance(r.exception, SystemExit)


def _compare_models():
    spec = importlib.util.spec_from_file_location("compare_models", REPO / "scripts" / "compare_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_compare_models_scores_an_ensemble_next_to_a_single_model(ckpts, shapes_dataset, feature_cache, tmp_path):
    out = tmp_path / "rows.json"
    _compare_models()(["--data", str(shapes_dataset), "--checkpoint", str(ckpts["a"]), "--ensemble",
                       f"{ckpts['a']},{ckpts['b']}", "--cache-dir", str(feature_cache), "--no-java",
                       "--out", str(out)])
    rows = json.loads(out.read_text())
    assert [(r["model"], r["members"], r["decoder"]) for r in rows] == [
        ("a", 1, "transformer"), ("a+b", 2, "transformer+transformer")]
    assert rows[0]["version"] != rows[1]["version"] and all(r["images"] == 4 for r in rows)


@pytest.mark.parametrize("which, message", [
    ("words", "the vocabularies differ"), ("lite2", "shares one encoder"), ("missing", "checkpoint file not found"),
    ("single", "two or more comma-separated checkpoints")])
def test_compare_models_refuses_a_bad_ensemble_before_any_work(ckpts, shapes_dataset, which, message, capsys,
                                                               tmp_path):
    other = ckpts.get(which, tmp_path / "missing.safetensors")
    spec = str(ckpts["a"]) if which == "single" else f"{ckpts['a']},{other}"
    with pytest.raises(SystemExit) as e:
        _compare_models()(["--data", str(shapes_dataset), "--ensemble", spec, "--out", str(tmp_path / "x.json")])
    assert e.value.code not in (0, None)
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x.json").exists()
