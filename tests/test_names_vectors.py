"""The shared vectors of meaningless names (tests/vectors/names.json): the audit's rule here, the extension's
mirror in extension/tests/pure-logic.test.mjs (node --test), so the two surfaces cannot drift apart."""
import json
from pathlib import Path

import pytest

from server.audit.rules import suspicious_reason

CASES = json.loads((Path(__file__).parent / "vectors" / "names.json").read_text(encoding="utf-8"))["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_audit_agrees_with_the_shared_vectors(case):
    assert suspicious_reason(case["name"]) == case["audit"]


def test_the_extension_runs_the_same_vectors():
    text = (Path(__file__).parents[1] / "extension" / "tests" / "pure-logic.test.mjs").read_text()
    assert "tests/vectors/names.json" in text
