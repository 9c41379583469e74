"""``--out report.sarif``: SARIF 2.1.0 that code-scanning dashboards accept.

There is no network here, so the official schema cannot be fetched: MINIMAL_SARIF below is written from the OASIS
SARIF 2.1.0 specification (sections 3.13 sarifLog, 3.14 run, 3.18 tool, 3.19 toolComponent, 3.27 result,
3.28 location, 3.29 physicalLocation, 3.4 artifactLocation, 3.33 logicalLocation, 3.49 reportingDescriptor,
3.11 message, 3.12 multiformatMessageString, 3.20 invocation, 3.58 notification) for the objects the audit writes.
Like the official schema it refuses properties a section does not define (a misspelt key fails), and it requires
what the specification requires. The required fields that code scanning relies on are then checked by hand.
"""
from __future__ import annotations

import json
import re

import jsonschema
import pytest

from server.audit.crawl import CrawlState, Page
from server.audit.judge import JUDGEMENTS
from server.audit.report import (FINDING_RULES, RULES, SARIF_LEVEL, WCAG_UNDERSTANDING, build_report, format_of,
                                 to_sarif, write_report)
from server.audit.rules import check_page
from test_audit_cli import FINDINGS, run, site  # noqa: F401 - the module's local site fixture

_URI = {"type": "string", "format": "uri-reference"}
_MESSAGE = {"type": "object", "additionalProperties": False, "anyOf": [{"required": ["text"]}, {"required": ["id"]}],
            "properties": {"text": {"type": "string"}, "markdown": {"type": "string"}, "id": {"type": "string"},
                           "arguments": {"type": "array", "items": {"type": "string"}},
                           "properties": {"type": "object"}}}
_MULTIFORMAT = {"type": "object", "required": ["text"], "additionalProperties": False,
                "properties": {"text": {"type": "string"}, "markdown": {"type": "string"},
                               "properties": {"type": "object"}}}
_LEVEL = {"enum": ["none", "note", "warning", "error"]}
_ARTIFACT_LOCATION = {"type": "object", "additionalProperties": False,
                      "properties": {"uri": _URI, "uriBaseId": {"type": "string"},
                                     "index": {"type": "integer", "minimum": -1},
                                     "description": _MESSAGE, "properties": {"type": "object"}}}
_REGION = {"type": "object", "additionalProperties": False,
           "anyOf": [{"required": ["startLine"]}, {"required": ["charOffset"]}, {"required": ["byteOffset"]}],
           "properties": {k: {"type": "integer"} for k in ("startLine", "startColumn", "endLine", "endColumn",
                                                            "charOffset", "charLength", "byteOffset", "byteLength")}
           | {"snippet": {"type": "object"}, "message": _MESSAGE, "sourceLanguage": {"type": "string"},
              "properties": {"type": "object"}}}
_PHYSICAL_LOCATION = {"type": "object", "additionalProperties": False,
                      "anyOf": [{"required": ["address"]}, {"required": ["artifactLocation"]}],
                      "properties": {"artifactLocation": _ARTIFACT_LOCATION, "region": _REGION,
                                     "contextRegion": _REGION, "address": {"type": "object"},
                                     "properties": {"type": "object"}}}
_LOGICAL_LOCATION = {"type": "object", "additionalProperties": False,
                     "properties": {"name": {"type": "string"}, "index": {"type": "integer", "minimum": -1},
                                    "fullyQualifiedName": {"type": "string"}, "decoratedName": {"type": "string"},
                                    "parentIndex": {"type": "integer", "minimum": -1}, "kind": {"type": "string"},
                                    "properties": {"type": "object"}}}
_LOCATION = {"type": "object", "additionalProperties": False,
             "properties": {"id": {"type": "integer", "minimum": -1}, "physicalLocation": _PHYSICAL_LOCATION,
                            "logicalLocations": {"type": "array", "uniqueItems": True, "items": _LOGICAL_LOCATION},
                            "message": _MESSAGE, "annotations": {"type": "array"}, "relationships": {"type": "array"},
                            "properties": {"type": "object"}}}
_PROPERTY_BAG = {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True,
                                                           "items": {"type": "string"}}}}
_REPORTING_DESCRIPTOR = {
    "type": "object", "required": ["id"], "additionalProperties": False,
    "properties": {"id": {"type": "string"}, "deprecatedIds": {"type": "array"}, "guid": {"type": "string"},
                   "name": {"type": "string"}, "shortDescription": _MULTIFORMAT, "fullDescription": _MULTIFORMAT,
                   "messageStrings": {"type": "object"}, "helpUri": {"type": "string", "format": "uri"},
                   "help": _MULTIFORMAT,
                   "defaultConfiguration": {"type": "object", "additionalProperties": False,
                                            "properties": {"enabled": {"type": "boolean"}, "level": _LEVEL,
                                                           "rank": {"type": "number", "minimum": -1,
                                                                    "maximum": 100},
                                                           "parameters": {"type": "object"},
                                                           "properties": {"type": "object"}}},
                   "relationships": {"type": "array"}, "properties": _PROPERTY_BAG}}
_RESULT = {
    "type": "object", "required": ["message"], "additionalProperties": False,
    "properties": {"ruleId": {"type": "string"}, "ruleIndex": {"type": "integer", "minimum": -1},
                   "rule": {"type": "object"}, "kind": {"enum": ["notApplicable", "pass", "fail", "review", "open",
                                                                 "informational"]},
                   "level": _LEVEL, "message": _MESSAGE, "analysisTarget": _ARTIFACT_LOCATION,
                   "locations": {"type": "array", "items": _LOCATION},
                   "guid": {"type": "string"}, "correlationGuid": {"type": "string"},
                   "occurrenceCount": {"type": "integer", "minimum": 1},
                   "partialFingerprints": {"type": "object", "additionalProperties": {"type": "string"}},
                   "fingerprints": {"type": "object", "additionalProperties": {"type": "string"}},
                   "relatedLocations": {"type": "array", "items": _LOCATION},
                   "baselineState": {"enum": ["new", "unchanged", "updated", "absent"]},
                   "rank": {"type": "number", "minimum": -1, "maximum": 100},
                   "fixes": {"type": "array"}, "properties": {"type": "object"}}}
_NOTIFICATION = {"type": "object", "required": ["message"], "additionalProperties": False,
                 "properties": {"locations": {"type": "array", "items": _LOCATION}, "message": _MESSAGE,
                                "level": _LEVEL, "threadId": {"type": "integer"},
                                "timeUtc": {"type": "string", "format": "date-time"},
                                "exception": {"type": "object"},
                                "descriptor": {"type": "object", "additionalProperties": False,
                                               "properties": {"id": {"type": "string"},
                                                              "index": {"type": "integer", "minimum": -1},
                                                              "guid": {"type": "string"},
                                                              "toolComponent": {"type": "object"},
                                                              "properties": {"type": "object"}}},
                                "associatedRule": {"type": "object"}, "properties": {"type": "object"}}}
MINIMAL_SARIF = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object", "required": ["version", "runs"], "additionalProperties": False,
    "properties": {
        "$schema": {"type": "string", "format": "uri"},
        "version": {"const": "2.1.0"},
        "inlineExternalProperties": {"type": "array"},
        "properties": {"type": "object"},
        "runs": {"type": ["array", "null"], "items": {
            "type": "object", "required": ["tool"], "additionalProperties": False,
            "properties": {
                "tool": {"type": "object", "required": ["driver"], "additionalProperties": False,
                         "properties": {"driver": {
                             "type": "object", "required": ["name"], "additionalProperties": False,
                             "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                                            "semanticVersion": {"type": "string"},
                                            "fullName": {"type": "string"},
                                            "informationUri": {"type": "string", "format": "uri"},
                                            "rules": {"type": "array", "uniqueItems": True,
                                                      "items": _REPORTING_DESCRIPTOR},
                                            "properties": {"type": "object"}}},
                                        "extensions": {"type": "array"}, "properties": {"type": "object"}}},
                "invocations": {"type": "array", "items": {
                    "type": "object", "required": ["executionSuccessful"], "additionalProperties": False,
                    "properties": {"executionSuccessful": {"type": "boolean"},
                                   "startTimeUtc": {"type": "string", "format": "date-time"},
                                   "endTimeUtc": {"type": "string", "format": "date-time"},
                                   "exitCode": {"type": "integer"}, "commandLine": {"type": "string"},
                                   "toolExecutionNotifications": {"type": "array", "items": _NOTIFICATION},
                                   "toolConfigurationNotifications": {"type": "array", "items": _NOTIFICATION},
                                   "properties": {"type": "object"}}}},
                "automationDetails": {"type": "object", "additionalProperties": False,
                                      "properties": {"id": {"type": "string"}, "guid": {"type": "string"},
                                                     "correlationGuid": {"type": "string"},
                                                     "description": _MESSAGE, "properties": {"type": "object"}}},
                "columnKind": {"enum": ["utf16CodeUnits", "unicodeCodePoints"]},
                "results": {"type": ["array", "null"], "items": _RESULT},
                "artifacts": {"type": "array"}, "originalUriBaseIds": {"type": "object"},
                "properties": {"type": "object"},
            }}},
    },
}

SITE = "https://example.com/"
HTML = """<!doctype html><html><body><main>
<img src="/a.png"><img src="/b.png" alt="IMG_0001.jpg"><img src="/c.png" alt="A dog">
<svg role="img"><circle r="3"></circle></svg><p><img src="/d.png" alt="image"></p>
</main></body></html>"""


def _report(complete=True, suggestions=None):
    st = CrawlState(start_url=SITE, origins=["https://example.com"])
    st.findings = [dict(f.__dict__) for f in check_page(HTML, SITE + "p%C3%A9ge?x=1")]
    st.pages = [Page(url=SITE + "p%C3%A9ge?x=1", depth=0, referrer=None, images=5, findings=len(st.findings)),
                Page(url=SITE + "gone", depth=1, referrer=SITE, status="http_error", http_status=404,
                     error="HTTP 404")]
    return build_report(st, suggestions, options={}, complete=complete, user_agent="t", version="9.9",
                        finished_at=st.started_at + 1)


# An absolute URI (RFC 3986): ASCII, no space, none of "<>\\^`{|}.
_RFC3986 = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[!#-;=?-\[\]_a-z~]+")


def _uris(node, key=None):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _uris(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _uris(v, key)
    elif key in ("uri", "helpUri", "$schema"):
        yield node


def _validate(log: dict) -> None:
    jsonschema.Draft7Validator(MINIMAL_SARIF, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER).validate(log)
    # jsonschema checks "uri" only with an optional package: check the URIs here (RFC 3986, absolute).
    for uri in _uris(log):
        assert _RFC3986.fullmatch(uri), uri


def test_minimal_schema_refuses_what_the_spec_refuses():
    good = json.loads(to_sarif(_report()))
    _validate(good)
    for breaking in (lambda d: d.update(version="2.0.0"), lambda d: d["runs"][0]["tool"]["driver"].pop("name"),
                     lambda d: d["runs"][0]["results"][0].update(level="critical"),
                     lambda d: d["runs"][0]["results"][0].update(ruleID="image-alt"),
                     lambda d: d["runs"][0]["results"][0]["locations"][0]["physicalLocation"].update(region={}),
                     lambda d: d["runs"][0]["results"][0].pop("message")):
        bad = json.loads(json.dumps(good))
        breaking(bad)
        with pytest.raises(jsonschema.ValidationError):
            _validate(bad)


def test_sarif_carries_rule_wcag_page_and_selector():
    report = _report()
    log = json.loads(to_sarif(report))
    _validate(log)
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-schema-2.1.0.json")
    (run_,) = log["runs"]
    driver = run_["tool"]["driver"]
    assert driver["name"] == "alt-text audit" and driver["version"] == "9.9"
    assert [r["id"] for r in driver["rules"]] == list(FINDING_RULES) == [*RULES, *JUDGEMENTS]
    controls = ("button-name", "link-name")  # name, role, value (4.1.2) and link purpose (2.4.4), not 1.1.1
    for rule in driver["rules"]:
        if rule["id"] in JUDGEMENTS or rule["id"] == "graphic-unnamed":  # to review: a note, with its ACT rule
            assert rule["defaultConfiguration"]["level"] == "note" and "needs-review" in rule["properties"]["tags"]
            assert rule["helpUri"].startswith("https://www.w3.org/WAI/standards-guidelines/act/rules/")
            assert ("1.4.5" if rule["id"] == "image-of-text" else "1.1.1") in rule["fullDescription"]["text"]
        elif rule["id"] in controls:
            assert "4.1.2" in rule["fullDescription"]["text"] and "wcag412" in rule["properties"]["tags"]
            assert "1.1.1" not in rule["fullDescription"]["text"]
        else:
            assert rule["helpUri"] == WCAG_UNDERSTANDING == \
                "https://www.w3.org/WAI/WCAG22/Understanding/non-text-content.html"
            assert "1.1.1" in rule["fullDescription"]["text"] and "wcag111" in rule["properties"]["tags"]
        assert rule["shortDescription"]["text"]
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
    assert {r["id"]: r["defaultConfiguration"]["level"] for r in driver["rules"]}["image-alt"] == "error"
    assert "best-practice" in driver["rules"][list(RULES).index("alt-suspicious-filename")]["properties"]["tags"]

    results = run_["results"]
    assert len(results) == len(report["findings"]) == 4  # a.png, IMG_0001.jpg, the svg, "image"
    for res, f in zip(results, report["findings"]):
        assert res["ruleId"] == f["rule"] and driver["rules"][res["ruleIndex"]]["id"] == f["rule"]
        assert res["level"] == SARIF_LEVEL[f["severity"]]
        assert res["message"]["text"].startswith(f["message"]) and f["selector"] in res["message"]["text"]
        (loc,) = res["locations"]
        assert loc["physicalLocation"]["artifactLocation"]["uri"] == f["page_url"] == SITE + "p%C3%A9ge?x=1"
        assert loc["logicalLocations"][0]["fullyQualifiedName"] == f["selector"]
        assert loc["logicalLocations"][0]["kind"] == "element"
        assert res["properties"]["snippet"] == f["snippet"] and res["properties"]["wcag"] == f["wcag"]
        assert res["properties"]["findingId"] == f["id"]
    assert [r["level"] for r in results] == ["error", "warning", "error", "warning"]
    fingerprints = [r["partialFingerprints"]["altTextAudit/v1"] for r in results]
    assert len(set(fingerprints)) == len(fingerprints)
    assert fingerprints == [r["partialFingerprints"]["altTextAudit/v1"]
                            for r in json.loads(to_sarif(_report()))["runs"][0]["results"]]  # stable across runs

    (inv,) = run_["invocations"]
    assert inv["executionSuccessful"] is True
    (note,) = inv["toolExecutionNotifications"]
    assert note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == SITE + "gone"
    assert "HTTP 404" in note["message"]["text"]


def test_partial_audit_and_suggestions():
    n = len(_report()["findings"])
    suggestions = [{"kind": "caption", "alt": "A red square.", "confidence": 0.8, "model": "m", "image_kind": "photo",
                    "caption": "a red square", "hedged": False},
                   {"kind": "withheld", "alt": None, "confidence": 0.1, "message": "not reliable"}] + [None] * (n - 2)
    log = json.loads(to_sarif(_report(complete=False, suggestions=suggestions)))
    _validate(log)
    assert log["runs"][0]["invocations"][0]["executionSuccessful"] is False
    first, second = log["runs"][0]["results"][:2]
    assert first["properties"]["suggestedAlt"] == "A red square." and first["properties"]["confidence"] == 0.8
    assert "suggestedAlt" not in second["properties"]  # never what the service would withhold
    assert second["properties"]["suggestionKind"] == "withheld"


def test_cli_writes_sarif(site, tmp_path):  # noqa: F811
    assert format_of("report.sarif") == "sarif" and format_of("REPORT.SARIF") == "sarif"
    r = run(site.url("/"), "--no-suggest", "--out", tmp_path / "r.sarif", "--out", tmp_path / "r.json")
    assert r.exit_code == 0, r.output
    log = json.loads((tmp_path / "r.sarif").read_text(encoding="utf-8"))
    _validate(log)
    report = json.loads((tmp_path / "r.json").read_text())
    assert len(log["runs"][0]["results"]) == FINDINGS == len(report["findings"])
    uris = {res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for res in log["runs"][0]["results"]}
    assert uris == {f["page_url"] for f in report["findings"]}
    r = run(site.url("/"), "--no-suggest", "--out", tmp_path / "r.sariff")
    assert r.exit_code == 2 and ".sarif" in r.output


def test_write_report_sarif_roundtrip(tmp_path):
    write_report(_report(), tmp_path / "x.sarif")
    _validate(json.loads((tmp_path / "x.sarif").read_text(encoding="utf-8")))
