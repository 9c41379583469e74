"""Training on a tiny dataset of coloured shapes: it learns, it resumes exactly, checkpoints round-trip."""
import json

import pytest
import torch
from safetensors.torch import save_file

from model import Captioner, CheckpointError
from model.train import Trainer, TrainingError, _flip
from tiny import tiny_train_config




def test_a_tiny_batch_is_overfitted(shapes_dataset, feature_cache, tmp_path):
    cfg = tiny_train_config(shapes_dataset, tmp_path / "run", feature_cache, label_smoothing=0.0, flip=0.0,
                            warmup_steps=1)
    t = Trainer(cfg)
    t.setup(resume=False)
    batch = t.pairs[:8]
    t.total_steps = 1_000_000  # keep the learning rate flat
    losses = [t.train_step(batch) for _ in range(150)]
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])


def _final_weights(out):
    """The run's saved step, weights and optimiser moments, read as a resumed run reads them."""
    from model.train import STATE_FORMAT, TRAIN_STATE
    from model.training_state import module_state, read

    tensors, meta = read(out / TRAIN_STATE, STATE_FORMAT)
    return {"step": int(meta["step"]), "model": module_state(tensors, "model."),
            "optimizer": module_state(tensors, "opt.")}


def test_resume_continues_at_the_right_step_and_matches_an_uninterrupted_run(shapes_dataset, feature_cache,
                                                                              tmp_path):
    straight = tiny_train_config(shapes_dataset, tmp_path / "a", feature_cache)
    Trainer(straight).run()
    interrupted = tiny_train_config(shapes_dataset, tmp_path / "b", feature_cache, max_steps=5)
    assert Trainer(interrupted).run() == {"step": 5, "stopped": "max_steps"}
    assert _final_weights(tmp_path / "b")["step"] == 5
    resumed = Trainer(tiny_train_config(shapes_dataset, tmp_path / "b", feature_cache))
    resumed.run(resume=True)
    a, b = _final_weights(tmp_path / "a"), _final_weights(tmp_path / "b")
    assert a["step"] == b["step"] == resumed.steps_per_epoch * 4
    for part in ("model", "optimizer"):
        assert a[part].keys() == b[part].keys() and a[part]
        for k in a[part]:
            assert torch.allclose(a[part][k], b[part][k], atol=1e-6), (part, k)
    logs = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in logs] == [1, 2, 3, 4]  # every epoch evaluated exactly once across both runs


def test_resume_refuses_changed_settings_and_missing_state(shapes_dataset, feature_cache, tmp_path):
    Trainer(tiny_train_config(shapes_dataset, tmp_path / "r", feature_cache, max_steps=2)).run()
    with pytest.raises(TrainingError, match="different settings"):
        Trainer(tiny_train_config(shapes_dataset, tmp_path / "r", feature_cache, lr=1e-3)).run(resume=True)
    with pytest.raises(TrainingError, match="already holds a run"):
        Trainer(tiny_train_config(shapes_dataset, tmp_path / "r", feature_cache)).run()
    with pytest.raises(TrainingError, match="no .* to resume"):
        Trainer(tiny_train_config(shapes_dataset, tmp_path / "none", feature_cache)).run(resume=True)


def test_the_training_state_is_safetensors_and_an_old_pickled_one_is_a_clear_error(shapes_dataset, feature_cache,
                                                                                    tmp_path):
    from safetensors import safe_open

    from model.train import TRAIN_STATE

    Trainer(tiny_train_config(shapes_dataset, tmp_path / "r", feature_cache, max_steps=2)).run()
    with safe_open(str(tmp_path / "r" / TRAIN_STATE), framework="pt") as f:  # not a pickle: nothing executable
        assert f.metadata()["format"] == "alt-text/train-state" and f.metadata()["step"] == "2"
    old = tmp_path / "old"
    old.mkdir()
    torch.save({"step": 1}, old / "train_state.pt")  # what versions before 2026-12-01 wrote
    with pytest.raises(TrainingError, match="older alt-text"):
        Trainer(tiny_train_config(shapes_dataset, old, feature_cache)).run(resume=True)
    (tmp_path / "r" / TRAIN_STATE).write_bytes(b"garbage")
    with pytest.raises(TrainingError, match="damaged training state"):
        Trainer(tiny_train_config(shapes_dataset, tmp_path / "r", feature_cache)).run(resume=True)


def test_flip_mirrors_the_grid_and_swaps_left_and_right():
    feats = torch.arange(2 * 4 * 1, dtype=torch.float).view(2, 4, 1)  # two 2x2 grids
    tokens = torch.tensor([[1, 7, 8, 2], [1, 7, 8, 2]])
    swap = torch.arange(10)
    swap[7], swap[8] = 8, 7
    f, t = _flip(feats, tokens, torch.tensor([True, False]), swap)
    assert f[0, :, 0].tolist() == [1, 0, 3, 2] and torch.equal(f[1], feats[1])
    assert t.tolist() == [[1, 8, 7, 2], [1, 7, 8, 2]]


@pytest.fixture(scope="module")
def trained(shapes_checkpoint):
    return shapes_checkpoint


def test_checkpoint_round_trip_gives_the_same_captions(trained, shapes_dataset):
    from PIL import Image

    images = [Image.open(p) for p in sorted((shapes_dataset / "images").glob("*.png"))[:4]]
    a = Captioner.load(trained, device="cpu")
    b = Captioner.load(trained, device="cpu")
    assert a.caption(images) == b.caption(images)
    assert all(c.text and c.text[0].isupper() and c.text.endswith(".") for c in a.caption(images))
    info = a.info
    assert info["train_config"]["decoder"] == "transformer" and info["dev_cider"] >= 0


def test_damaged_or_foreign_checkpoints_are_clear_errors(trained, tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        Captioner.load(tmp_path / "missing.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(trained.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="damaged"):
        Captioner.load(truncated)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="damaged"):
        Captioner.load(junk)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not an alt-text captioner checkpoint"):
        Captioner.load(foreign)
