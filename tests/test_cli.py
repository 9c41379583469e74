"""The ``alt-text`` command line on local files: output formats, order, and errors that exit non-zero."""
import json

import pytest
from click.testing import CliRunner

from server.cli import main
from server.describe.pipeline import RESULT_FIELDS


@pytest.fixture(scope="module")
def checkpoint(shapes_checkpoint):
    return str(shapes_checkpoint)


def _images(shapes_dataset, n):
    return [str(p) for p in sorted((shapes_dataset / "images").glob("*.png"))[:n]]


def test_file_prints_one_caption_per_image(checkpoint, shapes_dataset):
    paths = _images(shapes_dataset, 2)
    r = CliRunner().invoke(main, ["file", "--checkpoint", checkpoint, *paths])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == paths
    assert all(line.split(": ", 1)[1].endswith(".") for line in lines)
    one = CliRunner().invoke(main, ["file", "--checkpoint", checkpoint, paths[0]])
    assert one.exit_code == 0 and one.output.strip() == lines[0].split(": ", 1)[1]


def test_file_json_keeps_input_order_and_reports_bad_inputs(checkpoint, shapes_dataset, tmp_path):
    good = _images(shapes_dataset, 2)
    html = tmp_path / "page.jpg"
    html.write_text("<html><body>not an image</body></html>")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(open(good[0], "rb").read()[:60])
    inputs = [good[0], str(tmp_path / "missing.png"), str(html), good[1], str(truncated), str(tmp_path)]
    r = CliRunner().invoke(main, ["file", "--json", "--checkpoint", checkpoint, *inputs])
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert [o["input"] for o in out] == inputs
    assert list(out[0]) == ["input", *RESULT_FIELDS] and 0 < out[0]["confidence"] <= 1
    assert list(out[3]) == ["input", *RESULT_FIELDS]
    assert out[1]["error"] == "no such file"
    assert "HTML" in out[2]["error"]
    assert "damaged" in out[4]["error"] or "truncated" in out[4]["error"]
    assert "directory" in out[5]["error"]
    assert r.stderr.count("alt-text: ") == 4  # one line per failing input


def test_bad_checkpoint_is_one_line_error(shapes_dataset, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    r = CliRunner().invoke(main, ["file", "--checkpoint", str(bad), _images(shapes_dataset, 1)[0]])
    assert r.exit_code == 1
    assert "damaged or not a safetensors checkpoint" in r.output and "Traceback" not in r.output


def test_evaluate_reports_metrics_json(checkpoint, shapes_dataset, tmp_path):
    out = tmp_path / "report.json"
    r = CliRunner().invoke(main, ["evaluate", "--data", str(shapes_dataset), "--checkpoint", checkpoint,
                                  "--no-java", "--out", str(out)])
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    assert report["images"] == 4 and report["split"] == "test"
    assert set(report["metrics"]) >= {"BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr", "METEOR"}
    assert len(report["captions"]) == 4


def test_evaluate_and_train_reject_bad_datasets(tmp_path):
    r = CliRunner().invoke(main, ["evaluate", "--data", str(tmp_path)])
    assert r.exit_code == 1 and "unknown dataset layout" in r.output
    r = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run")])
    assert r.exit_code == 1 and "no such dataset directory" in r.output


def test_train_resume_without_state_is_an_error(shapes_dataset, tmp_path):
    r = CliRunner().invoke(main, ["train", "--data", str(shapes_dataset), "--out", str(tmp_path / "r"), "--resume"])
    assert r.exit_code == 1 and "no" in r.output and "resume" in r.output


@pytest.mark.parametrize("args, message", [
    (["--decoder", "gru"], "Invalid value for '--decoder'"),
    (["--encoder", "clip"], "Invalid value for '--encoder'"),
    (["--d-model", "30", "--n-heads", "8"], "must be a multiple of --n-heads"),
])
def test_train_rejects_bad_settings_before_any_work(shapes_dataset, tmp_path, args, message):
    r = CliRunner().invoke(main, ["train", "--data", str(shapes_dataset), "--out", str(tmp_path / "r"), *args])
    assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "r").exists()


def test_evaluate_checks_the_report_directory_first(shapes_dataset, tmp_path):
    r = CliRunner().invoke(main, ["evaluate", "--data", str(shapes_dataset), "--out", str(tmp_path / "no" / "r.json")])
    assert r.exit_code == 1 and "directory does not exist" in r.output


def test_serve_has_a_flag_for_every_setting_in_the_docs():
    import re

    from conftest import REPO

    doc = (REPO / "docs" / "service.md").read_text()
    table = doc[doc.index("Settings (flag of `alt-text serve`"):doc.index("## Several replicas")]
    variables = re.findall(r"`ALT_TEXT_([A-Z_]+)`", table)
    assert len(variables) >= 25
    help_text = CliRunner().invoke(main, ["serve", "--help"], terminal_width=200).output
    plural = {"API_KEYS": "api-key", "CORS_ORIGINS": "cors-origin"}
    for v in variables:
        assert "--" + plural.get(v, v.lower().replace("_", "-")) in help_text, v


def test_serve_refuses_heads_fitted_for_another_checkpoint(checkpoint, tmp_path):
    import shutil

    from model import default_checkpoint_path
    from server.describe import heads_path

    mine = tmp_path / "mine.safetensors"
    shutil.copy(checkpoint, mine)
    shutil.copy(heads_path(default_checkpoint_path()), heads_path(mine))  # the default model's heads
    r = CliRunner().invoke(main, ["serve", "--checkpoint", str(mine)])
    assert r.exit_code == 1 and "fitted for another checkpoint" in r.output and "Traceback" not in r.output
