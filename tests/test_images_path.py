"""One image path: training, feature caching, evaluation and the service decode images the same way."""
import io
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from model.encoders import get_spec, preprocess
from model.images import load_image
from server.netsafe.images import decode_image

REPO = Path(__file__).resolve().parent.parent


def _jpeg_rotated(w=40, h=20) -> bytes:
    """A landscape JPEG whose EXIF says 'rotate 90° to view' (orientation 6): viewed, it is portrait."""
    im = Image.new("RGB", (w, h), (200, 30, 30))
    im.paste((30, 30, 200), (0, 0, w // 2, h))  # left half blue, so the rotation is visible
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif, quality=95)
    return buf.getvalue()


def _png_transparent() -> bytes:
    im = Image.new("RGBA", (32, 32), (0, 0, 0, 0))  # fully transparent black
    im.paste((0, 128, 0, 255), (8, 8, 24, 24))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def test_exif_orientation_is_applied():
    im = load_image(_jpeg_rotated())
    assert im.mode == "RGB" and im.size == (20, 40)
    with Image.open(io.BytesIO(_jpeg_rotated())) as raw:  # what training used to see
        assert raw.convert("RGB").size == (40, 20)


def test_transparency_becomes_white_not_black():
    im = load_image(_png_transparent())
    assert im.mode == "RGB" and im.getpixel((0, 0)) == (255, 255, 255) and im.getpixel((16, 16)) == (0, 128, 0)


def test_large_images_are_reduced_to_1024_and_animations_give_their_first_frame():
    buf = io.BytesIO()
    Image.new("RGB", (2048, 1024), (10, 20, 30)).save(buf, "JPEG")
    assert load_image(buf.getvalue()).size == (1024, 512)
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    assert load_image(buf.getvalue()).getpixel((8, 8)) == (255, 0, 0)


@pytest.mark.parametrize("data", [_jpeg_rotated(), _png_transparent()], ids=["exif-jpeg", "rgba-png"])
def test_files_bytes_and_the_service_decoder_give_the_same_pixels(data, tmp_path):
    path = tmp_path / "image"
    path.write_bytes(data)
    served = decode_image(data)
    for im in (load_image(path), load_image(str(path)), load_image(data)):
        assert im.size == served.size and im.tobytes() == served.tobytes()
    # the service keeps its records for the describe pipeline
    assert served.info["alt_text_source"]["width"] == served.width


def test_feature_caching_and_evaluation_decode_through_load_image(tmp_path, monkeypatch):
    import model.evaluate as evaluate
    from model.features import _Images

    path = tmp_path / "rotated.jpg"
    path.write_bytes(_jpeg_rotated())
    spec = get_spec("efficientnet-lite0")
    x = _Images([str(path)], spec)[0]
    assert torch.equal(x, preprocess([load_image(path)], spec)[0])
    with Image.open(path) as raw:
        assert not torch.equal(x, preprocess([raw.convert("RGB")], spec)[0])  # the rotation reaches the encoder

    seen = []
    monkeypatch.setattr(evaluate, "load_image", lambda p: seen.append(p) or load_image(p))

    class FakeCaptioner:
        def search_config(self, beam):
            return None

        def encode(self, images):
            return images

        def caption_features(self, images, search):
            return [type("C", (), {"tokens": f"{im.width}x{im.height}"}) for im in images]

    from model.datasets import CaptionedImage

    out = evaluate.caption_items(FakeCaptioner(), [CaptionedImage(path, ("a caption",))], progress=False)
    assert seen == [path] and out == ["20x40"]


def test_no_other_code_in_model_opens_images():
    """Every image the model sees is decoded by model/images.py (server/netsafe/images.py opens only to check)."""
    for py in (REPO / "model").glob("*.py"):
        if py.name != "images.py":
            assert not re.search(r"Image\.open\(|\.convert\(\"RGB\"\)", py.read_text()), py.name
