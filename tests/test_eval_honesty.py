"""How scripts/eval_honesty.py judges an answer: the figures the issue's honesty targets are read from."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from eval_honesty import judge  # noqa: E402


def _result(alt, kind, chart_type=None, meaning=None, text=None, caption="A dog runs."):
    return {"alt": alt, "kind": kind, "caption": caption, "text": text, "concepts": [],
            "chart_type": {"id": chart_type, "label": chart_type.capitalize(), "p": 0.9} if chart_type else None,
            "meaning": {"id": meaning, "label": meaning.capitalize(), "p": 0.95} if meaning else None, "brand": None}


@pytest.mark.parametrize("keywords, said, verdict, content", [
    (["chart", "plot", "scatter"], "scatter", "truthful", True),  # the type its keywords name: content
    (["chart", "bar", "stacked"], "line", "false", False),  # another type: false, as a wrong meaning is
    (["chart", "plot"], "line", "truthful", False),  # keywords that name no type: not judged, no content
    (["map"], "map", "truthful", True),
])
def test_a_said_chart_type_is_judged_by_the_type_its_keywords_name(keywords, said, verdict, content):
    v = judge({"kind": "chart", "keywords": keywords}, _result(f"{said.capitalize()} chart.", "chart", said))
    assert (v["verdict"], v["with_content"]) == (verdict, content)


def test_a_bare_kind_is_truthful_without_content_and_a_wrong_meaning_or_a_photo_caption_is_false():
    chart = judge({"kind": "chart", "keywords": ["chart", "bar"]}, _result("Chart.", "chart"))
    assert (chart["verdict"], chart["with_content"], chart["chart_type_right"]) == ("truthful", False, None)
    wrong = judge({"kind": "icon", "keywords": ["printer", "print"]}, _result("Icon: Search.", "icon", meaning="search"))
    assert wrong["verdict"] == "false"
    right = judge({"kind": "icon", "keywords": ["printer", "print"]}, _result("Icon: Print.", "icon", meaning="print"))
    assert (right["verdict"], right["with_content"]) == ("truthful", True)
    captioned = judge({"kind": "illustration", "keywords": ["knight"]},
                      _result("Might be: a dog runs.", "photo", caption="A dog runs."))
    assert captioned["verdict"] == "false" and captioned["caption_spoken"]


def test_ocr_time_counts_a_screenshots_title_bar_read_too():
    """The timing wrapper stands in for the describer's OCR, so it must answer every read the pipeline makes."""
    import time
    from types import SimpleNamespace

    from eval_honesty import Timed

    class SlowOcr:
        def read(self, im):
            time.sleep(0.02)
            return "text"

        def read_title_bar(self, im):
            time.sleep(0.02)
            return "Exercise — KBruch"

    describer = SimpleNamespace(ocr=SlowOcr())
    timed = Timed(describer)
    assert describer.ocr is timed
    assert timed.read(None) == "text" and timed.read_title_bar(None) == "Exercise — KBruch"
    assert timed.last >= 0.04
