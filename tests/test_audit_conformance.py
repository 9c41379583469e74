"""Conformance with axe-core on its own rule fixtures (../shared/conformance/axe-core/, see its README.md).

Every fixture file is wrapped in a page the way axe's runner does (``<div id="fixture">`` + the fragment) and
audited: every element axe lists as a violation must get a finding under the matching rule, and every element it
lists as a pass must get no finding at all, from any rule (heuristics beyond axe included). The same pages are
also audited end to end, as a site owner would, with ``alt-text audit URL --no-suggest`` against a local server.
Skips cleanly when ../shared is absent.

The fixtures of axe's two rules for unnamed controls (button-name, link-name) are held to the same standard. None of
their listed elements needs a browser: roles, tabindex, disabled, labels, aria-labelledby targets, value and title
are markup, and no element there is hidden or named by CSS (so nothing is listed in needs_rendering.json for them).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from server.audit.command import audit
from server.audit.rules import check_page

CONFORMANCE = Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "axe-core"
# axe's best-practice image-redundant-alt is the audit's alt-duplicates-adjacent-text; the others keep axe's ids.
RULE_FOR = {"image-redundant-alt": "alt-duplicates-adjacent-text"}
FOLDERS = sorted(p.name for p in CONFORMANCE.iterdir() if p.is_dir()) if CONFORMANCE.is_dir() else []
CONTROL_FOLDERS = ("button-name", "link-name")
IMAGE_FOLDERS = [f for f in FOLDERS if f not in CONTROL_FOLDERS]

pytestmark = pytest.mark.skipif(not FOLDERS, reason="../shared/conformance/axe-core is not available")


def fixture_page(folder: str) -> tuple[str, dict]:
    fragment = (CONFORMANCE / folder / f"{folder}.html").read_text(encoding="utf-8")
    expected = json.loads((CONFORMANCE / folder / f"{folder}.json").read_text(encoding="utf-8"))
    page = (f'<!doctype html><html lang="en"><head><title>{folder}</title></head>'
            f'<body><div id="fixture">{fragment}</div></body></html>')
    return page, expected


def _selectors(expected: dict, key: str) -> list[str]:
    out = []
    for path in expected.get(key, []):
        assert len(path) == 1, f"a selector path into frames or shadow roots: {path}"
        out.append(path[0])
    return out


def score(folder: str, findings_by_selector: dict[str, set[str]]) -> tuple[list[str], list[str]]:
    """(violations missed or found under another rule, passes with any finding), for one fixture."""
    _page, expected = fixture_page(folder)
    rule = RULE_FOR.get(folder, folder)
    missed = [s for s in _selectors(expected, "violations") if rule not in findings_by_selector.get(s, set())]
    noisy = [f"{s} {sorted(findings_by_selector[s])}" for s in _selectors(expected, "passes")
             if findings_by_selector.get(s)]
    return missed, noisy


def _by_selector(findings) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in findings:
        selector, rule = (f["selector"], f["rule"]) if isinstance(f, dict) else (f.selector, f.rule)
        out.setdefault(selector, set()).add(rule)
    return out


@pytest.mark.parametrize("folder", FOLDERS)
def test_rules_agree_with_axe_fixture(folder):
    page, _ = fixture_page(folder)
    missed, noisy = score(folder, _by_selector(check_page(page, f"http://fixture.test/{folder}.html")))
    assert not missed, f"violations not found under {RULE_FOR.get(folder, folder)}: {missed}"
    assert not noisy, f"findings on elements axe passes: {noisy}"


@pytest.mark.parametrize("folder", FOLDERS)
def test_inapplicable_elements_get_no_wcag_finding(folder):
    """axe's runner also asserts that elements in neither list get no result from the fixture's rule."""
    page, expected = fixture_page(folder)
    listed = set(_selectors(expected, "violations")) | set(_selectors(expected, "passes"))
    rule = RULE_FOR.get(folder, folder)
    extra = [f.selector for f in check_page(page, "http://fixture.test/") if f.rule == rule
             and f.selector not in listed]
    assert not extra, f"{rule} findings on elements axe finds inapplicable: {extra}"


@pytest.fixture
def fixture_site():
    """A local site serving each fixture page at /<folder>.html, linked from /."""
    from test_audit_crawl import LocalSite

    site = LocalSite()
    site.page("/", "<h1>Fixtures</h1>" + "".join(f'<a href="/{f}.html">{f}</a>' for f in FOLDERS))
    for folder in FOLDERS:
        site.routes[f"/{folder}.html"] = (200, {"Content-Type": "text/html; charset=utf-8"},
                                          fixture_page(folder)[0].encode())
    yield site
    site.close()


def test_the_numbers_of_the_readme():
    """Image rules: 57 of 57 violations found, none of the 42 passes reported; controls: 15 of 15, none of 14."""
    for folders, violations, passes in ((IMAGE_FOLDERS, 57, 42), (CONTROL_FOLDERS, 15, 14)):
        found = clean = 0
        for folder in folders:
            page, expected = fixture_page(folder)
            missed, noisy = score(folder, _by_selector(check_page(page, f"http://fixture.test/{folder}.html")))
            found += len(_selectors(expected, "violations")) - len(missed)
            clean += len(_selectors(expected, "passes")) - len(noisy)
        assert (found, clean) == (violations, passes), folders


def test_site_owner_run_agrees_with_axe(fixture_site, tmp_path, monkeypatch):
    """``alt-text audit http://127.0.0.1:PORT/ --no-suggest`` over all nine fixtures: 72 of 72, 0 of 56."""
    monkeypatch.chdir(tmp_path)
    site = fixture_site
    result = CliRunner().invoke(audit, [site.url("/"), "--no-suggest", "--out", "report.json"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    findings = report["findings"]
    violations = passes = 0
    problems = []
    for folder in FOLDERS:
        _page, expected = fixture_page(folder)
        mine = _by_selector(f for f in findings if f["page_url"] == site.url(f"/{folder}.html"))
        missed, noisy = score(folder, mine)
        violations += len(_selectors(expected, "violations")) - len(missed)
        passes += len(_selectors(expected, "passes")) - len(noisy)
        problems += [f"{folder}: missed {m}" for m in missed] + [f"{folder}: noisy {n}" for n in noisy]
    total_v = sum(len(_selectors(fixture_page(f)[1], "violations")) for f in FOLDERS)
    total_p = sum(len(_selectors(fixture_page(f)[1], "passes")) for f in FOLDERS)
    assert (violations, passes) == (total_v, total_p), problems
