import json
import logging

import pytest
from PIL import Image

from model.datasets import (DatasetError, detect_format, load_split, read_captions_csv, read_coco_json,
                            read_flickr_tokens, read_karpathy_json, read_split)


def _img(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(path)


def test_flickr_tokens_reports_malformed_lines_with_file_and_line(tmp_path, caplog):
    f = tmp_path / "Flickr8k.token.txt"
    f.write_text("a.jpg#0\tA dog .\nno tab here\na.jpg#1\tA dog runs .\nb.jpg#x\tbad index\n\nc.jpg#0\t \n")
    with caplog.at_level(logging.WARNING):
        caps = read_flickr_tokens(f)
    assert caps == {"a.jpg": ["A dog .", "A dog runs ."]}
    lines = [r.getMessage() for r in caplog.records]
    assert any(f"{f}:2:" in m for m in lines)
    assert any(f"{f}:4:" in m for m in lines)
    assert any(f"{f}:6:" in m for m in lines)


def test_captions_csv_handles_commas_and_bad_rows(tmp_path, caplog):
    f = tmp_path / "captions.txt"
    f.write_text('image,caption\na.jpg,"A dog, running ."\na.jpg,A cat, sitting\n,orphan caption\nb.jpg,\n')
    with caplog.at_level(logging.WARNING):
        caps = read_captions_csv(f)
    assert caps == {"a.jpg": ["A dog, running .", "A cat, sitting"]}
    assert any(f"{f}:4:" in r.getMessage() for r in caplog.records)
    assert any(f"{f}:5:" in r.getMessage() for r in caplog.records)


def test_captions_csv_without_header_is_an_error(tmp_path):
    f = tmp_path / "captions.txt"
    f.write_text("a.jpg,A dog\n")
    with pytest.raises(DatasetError, match="header"):
        read_captions_csv(f)


def test_coco_json_skips_bad_records(tmp_path, caplog):
    f = tmp_path / "captions.json"
    f.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg"}, {"file_name": "noid.jpg"}],
        "annotations": [{"image_id": 1, "caption": "A dog."}, {"image_id": 7, "caption": "orphan"},
                        {"image_id": 1}],
    }))
    with caplog.at_level(logging.WARNING):
        assert read_coco_json(f) == {"a.jpg": ["A dog."]}
    assert len(caplog.records) == 3


def test_coco_json_not_json_is_a_clear_error(tmp_path):
    f = tmp_path / "captions.json"
    f.write_text("{not json")
    with pytest.raises(DatasetError, match=r"captions.json:1: not valid JSON"):
        read_coco_json(f)


def test_karpathy_json_maps_splits(tmp_path):
    f = tmp_path / "dataset_coco.json"
    f.write_text(json.dumps({"images": [
        {"filepath": "val2014", "filename": "a.jpg", "split": "val", "sentences": [{"raw": "A dog."}]},
        {"filepath": "val2014", "filename": "b.jpg", "split": "restval", "sentences": [{"raw": "A cat."}]},
        {"filename": "c.jpg", "split": "test", "sentences": [{"raw": "A cow."}]},
        {"filename": "d.jpg", "split": "train", "sentences": []},
    ]}))
    caps, splits = read_karpathy_json(f)
    assert caps["val2014/a.jpg"] == ["A dog."]
    assert splits == {"train": ["val2014/b.jpg"], "dev": ["val2014/a.jpg"], "test": ["c.jpg"]}


def test_split_file_ignores_blanks_and_comments(tmp_path):
    f = tmp_path / "train.txt"
    f.write_text("# images\na.jpg\n\n b.jpg \n")
    assert read_split(f) == ["a.jpg", "b.jpg"]


def test_flickr_layout_skips_and_counts_missing_images(tmp_path, caplog):
    (tmp_path / "Flickr8k.token.txt").write_text("a.jpg#0\tA dog .\nb.jpg#0\tA cat .\n")
    (tmp_path / "Flickr_8k.trainImages.txt").write_text("a.jpg\nb.jpg\nc.jpg\n")
    _img(tmp_path / "images" / "a.jpg")
    assert detect_format(tmp_path) == "flickr8k"
    with caplog.at_level(logging.WARNING):
        items = load_split(tmp_path, "train")
    assert [i.name for i in items] == ["a.jpg"]
    assert items[0].captions == ("A dog .",)
    assert "1 listed image(s) missing on disk and 1 without captions" in caplog.text


def test_kaggle_layout_uses_flickr_split_files(tmp_path):
    (tmp_path / "captions.txt").write_text("image,caption\na.jpg,A dog .\n")
    (tmp_path / "Flickr_8k.devImages.txt").write_text("a.jpg\n")
    _img(tmp_path / "Images" / "a.jpg")
    assert detect_format(tmp_path) == "captions-csv"
    assert [i.name for i in load_split(tmp_path, "dev")] == ["a.jpg"]
    with pytest.raises(DatasetError, match="split file"):
        load_split(tmp_path, "test")


def test_karpathy_layout_resolves_filepath(tmp_path):
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": [
        {"filepath": "val2014", "filename": "a.jpg", "split": "test", "sentences": [{"raw": "A dog."}]}]}))
    _img(tmp_path / "val2014" / "a.jpg")
    items = load_split(tmp_path, "test")
    assert items[0].path == (tmp_path / "val2014" / "a.jpg").resolve()


def test_coco_layout(shapes_dataset):
    assert detect_format(shapes_dataset) == "coco"
    items = load_split(shapes_dataset, "train")
    assert len(items) == 8 and all(len(i.captions) == 3 for i in items)


def test_unknown_layout_and_split_are_errors(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset layout"):
        detect_format(tmp_path)
    with pytest.raises(DatasetError, match="no such dataset directory"):
        detect_format(tmp_path / "nope")
    with pytest.raises(DatasetError, match="unknown split"):
        load_split(tmp_path, "val")


def test_coco_holdout_directory_lists_its_images_in_the_manifest(tmp_path):
    anns = {"images": [{"id": i, "file_name": f"{i}.jpg"} for i in range(3)],
            "annotations": [{"id": i, "image_id": i, "caption": f"caption {i}"} for i in range(3)]}
    (tmp_path / "captions.json").write_text(json.dumps(anns))
    for i in range(3):
        _img(tmp_path / "images" / f"{i}.jpg")
    (tmp_path / "MANIFEST.tsv").write_text("filename\tsplit\twidth\theight\n0.jpg\tholdout\t8\t8\n"
                                           "1.jpg\tholdout\t8\t8\n2.jpg\tother\t8\t8\n")
    items = load_split(tmp_path, "holdout")
    assert [i.name for i in items] == ["0.jpg", "1.jpg"] and items[0].captions == ("caption 0",)
    with pytest.raises(DatasetError, match="test.txt not found"):
        load_split(tmp_path, "test")  # a holdout directory has no other split
    (tmp_path / "MANIFEST.tsv").write_text("name\n0.jpg\n")
    with pytest.raises(DatasetError, match="filename and split"):
        load_split(tmp_path, "holdout")
