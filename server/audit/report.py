"""The audit's reports: one JSON document (the source of truth, schema below), and CSV, HTML and SARIF views of it.

JSON is for tools (CI gates, dashboards), CSV for spreadsheets (one row per finding), HTML for the people who fix
the pages, SARIF 2.1.0 for code-scanning dashboards (GitHub code scanning and the like). Every string in a report
came from someone else's page (alt text, URLs, markup), so:

* the HTML is rendered by Jinja2 with autoescaping, links and thumbnails are only emitted for http(s) URLs
  (``javascript:`` and ``data:`` stay text), and a Content-Security-Policy meta tag allows only the report's own
  style and script (by hash) and http(s) images, as a second line of defence;
* CSV cells that a spreadsheet would run as a formula (starting with ``= + - @``, tab or CR) get a leading ``'``.

The HTML report is itself accessible, and the tests hold it to the audit's own rules: every thumbnail has an alt
that describes the image (the model's caption, else the page's own alt when it is meaningful, else what is known
about the file), unique per image, never a file name or a placeholder.
"""
from __future__ import annotations

import base64
import copy
import csv
import hashlib
import io
import itertools
import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import jinja2


from .adopt import BASES, BASIS_LABELS, adoptable
from .crawl import (AUDITED_STATUSES, ERROR_STATUSES, PAGE_STATUSES, SKIP_REASONS, CrawlState, StreamedSequence,
                    write_atomic)
from .judge import ACT, JUDGEMENTS, NEEDS_REVIEW
from .judge import WCAG as JUDGEMENT_WCAG
from .judging import Judgements
from .rules import CONTROL_RULES, GRAPHIC_RULE, ICONS, RULES, SEVERITY, WCAG, WCAG_1_1_1, suspicious_reason

REPORT_FORMAT = "alt-text-audit-report/1"
# "needs review": the image judgements (server.audit.judge), which a person confirms; never a WCAG failure here.
SEVERITIES = ("critical", "serious", "moderate", "minor", NEEDS_REVIEW)
WCAG_SEVERITIES = ("critical", "serious")  # axe's impacts of WCAG failures (1.1.1, 4.1.2, 2.4.4); the rest: heuristics
# Every rule a finding can have: the markup rules, then the image judgements (only with suggestions on).
FINDING_RULES = (*RULES, *JUDGEMENTS)
SEVERITY_OF = {**SEVERITY, **dict.fromkeys(JUDGEMENTS, NEEDS_REVIEW)}
WCAG_OF = {**WCAG, **JUDGEMENT_WCAG}
FORMATS = {".json": "json", ".csv": "csv", ".html": "html", ".htm": "html", ".sarif": "sarif"}
FORMAT_NAMES = ".html, .json, .csv or .sarif"
_DATA_JPEG = re.compile(r"data:image/jpeg;base64,[A-Za-z0-9+/]+={0,2}")  # the only data: URLs a report embeds

# ---------------------------------------------------------------------------------------------------------------
# The JSON report's schema (JSON Schema 2020-12). Tests validate every report they make against it.

_STR_OR_NULL = {"type": ["string", "null"]}
SUGGESTION_KINDS = ("caption", "name", "withheld", "decorative", "error", "none", "judgement", "pending")
_EVIDENCE = {"type": "object", "required": ["kind"],
             "description": "the describe pipeline's evidence an image judgement rests on: kind, and where they "
                            "count text (read by OCR), brand, meaning, control_name, chart_type",
             "properties": {"kind": {"type": "string"}, "text": {"type": "string"}, "brand": {"type": "object"},
                            "meaning": {"type": "object"}, "control_name": {"type": "string"},
                            "chart_type": {"type": "object"}}}
_JUDGEMENT_BASES = ["text", "brand", "control_name", None]
_COUNT = {"type": "integer", "minimum": 0}
_SUGGESTION = {
    "oneOf": [
        {"type": "null", "description": "not asked for (--no-suggest) or not reached (interrupted)"},
        {"type": "object", "description": "the describe pipeline's alt text for the image (as the service says it)",
         "required": ["kind", "alt", "confidence", "model", "image_kind", "caption", "hedged"],
         "additionalProperties": False,
         "properties": {"kind": {"const": "caption"},
                        "alt": {"type": "string", "minLength": 1,
                                "description": "what a listener hears: the pipeline's wording, hedged"},
                        "suggested_alt": {"type": ["string", "null"], "description": "what an author can adopt: "
                                          "the description without the hedge (null: only the kind of image)"},
                        "suggested_confidence": {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                                                 "description": "the number the wording was chosen from (null: "
                                                                "text read from the image)"},
                        "confidence_basis": {"enum": [*BASES, None], "description": "what suggested_confidence "
                                             "is: caption, concept, meaning, brand, chart_type, text"},
                        "confidence": {"type": "number", "minimum": 0, "maximum": 1}, "model": {"type": "string"},
                        "image_kind": {"type": "string"}, "caption": {"type": "string"},
                        "hedged": {"type": "boolean"}}},
        {"type": "object", "description": "the pipeline has nothing reliable to say about the image, and why",
         "required": ["kind", "alt", "reason", "message", "confidence", "model", "image_kind", "caption"],
         "additionalProperties": False,
         "properties": {"kind": {"const": "withheld"}, "alt": {"type": "null"}, "reason": {"type": "string"},
                        "message": {"type": "string"}, "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                        "model": {"type": "string"}, "image_kind": {"type": "string"},
                        "caption": {"type": "string"}}},
        {"type": "object", "description": 'the rules think the image is decorative: alt="" (or aria-hidden)',
         "required": ["kind", "alt", "message"], "additionalProperties": False,
         "properties": {"kind": {"const": "decorative"}, "alt": {"enum": ["", None]}, "message": {"type": "string"}}},
        {"type": "object", "description": "the image could not be fetched, decoded or described",
         "required": ["kind", "code", "message"], "additionalProperties": False,
         "properties": {"kind": {"const": "error"}, "code": {"type": "string"}, "message": {"type": "string"}}},
        {"type": "object", "description": "a name for a control (a button or link, an image button, or the image "
                                          "that is a control's only content) from what its icon stands for: "
                                          "the value for the attribute named",
         "required": ["kind", "name", "attribute", "message"], "additionalProperties": False,
         "properties": {"kind": {"const": "name"}, "name": {"type": "string", "minLength": 1},
                        "attribute": {"enum": ["alt", "aria-label"]}, "message": {"type": "string"},
                        "source": {"const": "markup", "description": "the name the page's code gives the icon "
                                   "(no model, no image: model and image_kind are absent); absent: from the image"},
                        "model": {"type": "string"}, "image_kind": {"type": "string"},
                        "confidence": {"type": "number", "minimum": 0, "maximum": 1,
                                       "description": "the meaning head's, for the icon's meaning or brand"}}},
        {"type": "object", "description": "no image file to describe (inline SVG, icon font, image-map area)",
         "required": ["kind", "message"], "additionalProperties": False,
         "properties": {"kind": {"const": "none"}, "message": {"type": "string"}}},
        {"type": "object", "description": "an image judgement's suggestion: the text its evidence gives (read "
                                          "from the image, a brand, a control's name), for a person to confirm",
         "required": ["kind", "suggested_alt", "suggested_confidence", "confidence_basis", "message", "model",
                      "image_kind"], "additionalProperties": False,
         "properties": {"kind": {"const": "judgement"},
                        "suggested_alt": {"type": ["string", "null"], "description": "null: the evidence gives "
                                          "no text (a chart without a title)"},
                        "suggested_confidence": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                        "confidence_basis": {"enum": _JUDGEMENT_BASES}, "message": {"type": "string"},
                        "model": {"type": "string"}, "image_kind": {"type": "string"}}},
    ]
}
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/alt-text/schemas/audit-report-1.json",
    "title": "alt-text site audit report",
    "type": "object",
    "required": ["format", "generator", "site", "started_at", "finished_at", "complete", "options", "summary",
                 "pages", "crawl_errors", "skipped_urls", "findings"],
    "additionalProperties": False,
    "properties": {
        "format": {"const": REPORT_FORMAT},
        "generator": {"type": "object", "required": ["name", "version", "user_agent"],
                      "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                                     "user_agent": {"type": "string"}}},
        "site": {"type": "string", "description": "the start URL, normalised"},
        "started_at": {"type": "string", "format": "date-time"},
        "finished_at": {"type": "string", "format": "date-time"},
        "complete": {"type": "boolean", "description": "false for a partial report (interrupted or failed)"},
        "options": {"type": "object", "description": "the crawl and suggestion settings used"},
        "summary": {
            "type": "object",
            "required": ["pages_audited", "urls_fetched", "queued", "images", "findings", "wcag_failures",
                         "crawl_errors", "by_severity", "by_rule", "by_page", "skipped", "suggestions"],
            "additionalProperties": False,
            "properties": {
                "pages_audited": {**_COUNT, "description": "HTML pages checked by the rules"},
                "urls_fetched": {**_COUNT, "description": "every URL requested, whatever the outcome"},
                "queued": {**_COUNT, "description": "URLs found but not fetched yet (a partial report)"},
                "images": {**_COUNT, "description": "image elements on the audited pages"},
                "findings": _COUNT,
                "wcag_failures": {**_COUNT, "description": "critical and serious findings: WCAG failures (1.1.1; "
                                                          "4.1.2 and 2.4.4 for unnamed buttons and links)"},
                "crawl_errors": _COUNT,
                "by_severity": {"type": "object", "required": list(SEVERITIES), "additionalProperties": False,
                                "properties": {s: _COUNT for s in SEVERITIES}},
                "by_rule": {"type": "object", "required": list(FINDING_RULES), "additionalProperties": False,
                            "properties": {r: _COUNT for r in FINDING_RULES}},
                "by_page": {"type": "array", "description": "pages with findings, most findings first",
                            "items": {"type": "object", "required": ["url", "findings", "wcag_failures"],
                                      "additionalProperties": False,
                                      "properties": {"url": {"type": "string"}, "findings": _COUNT,
                                                     "wcag_failures": _COUNT}}},
                "skipped": {"type": "object", "required": [*SKIP_REASONS, "page_limit"],
                            "additionalProperties": False,
                            "properties": {r: _COUNT for r in (*SKIP_REASONS, "page_limit")}},
                "suggestions": {"type": "object",
                                "required": list(SUGGESTION_KINDS), "additionalProperties": False,
                                "properties": {k: _COUNT for k in SUGGESTION_KINDS}},
            },
        },
        "pages": {"type": "array", "items": {
            "type": "object",
            "required": ["url", "depth", "referrer", "status", "http_status", "final_url", "content_type", "bytes",
                         "images", "findings", "elapsed_ms", "error"],
            "additionalProperties": False,
            "properties": {"url": {"type": "string"}, "depth": _COUNT, "referrer": _STR_OR_NULL,
                           "status": {"enum": list(PAGE_STATUSES)}, "http_status": {"type": ["integer", "null"]},
                           "final_url": _STR_OR_NULL, "content_type": _STR_OR_NULL, "bytes": _COUNT,
                           "images": _COUNT, "findings": _COUNT, "elapsed_ms": {"type": "number", "minimum": 0},
                           "error": _STR_OR_NULL}}},
        "crawl_errors": {"type": "array", "items": {
            "type": "object", "required": ["url", "kind", "message"],
            "properties": {"url": {"type": "string"},
                           "kind": {"enum": [*sorted(ERROR_STATUSES), "robots", "sitemap", "audit"]},
                           "message": {"type": "string"}, "http_status": {"type": ["integer", "null"]},
                           "referrer": _STR_OR_NULL}}},
        "skipped_urls": {"type": "array", "items": {
            "type": "object", "required": ["url", "reason", "referrer"], "additionalProperties": False,
            "properties": {"url": {"type": "string"}, "reason": {"enum": list(SKIP_REASONS)},
                           "referrer": _STR_OR_NULL}}},
        "findings": {"type": "array", "items": {
            "type": "object",
            "required": ["id", "page_url", "rule", "wcag", "severity", "selector", "snippet", "image_url", "message",
                         "current_alt", "decorative_candidate", "suggestion"],
            "additionalProperties": False,
            "properties": {"id": {"type": "string", "pattern": "^F[0-9]+$"}, "page_url": {"type": "string"},
                           "rule": {"enum": list(FINDING_RULES)}, "wcag": {"type": "string"},
                           "severity": {"enum": list(SEVERITIES)}, "selector": {"type": "string"},
                           "snippet": {"type": "string"}, "image_url": _STR_OR_NULL, "message": {"type": "string"},
                           "current_alt": _STR_OR_NULL, "decorative_candidate": {"type": "boolean"},
                           "icon": {"enum": [*ICONS, None], "description": "an unnamed control's only content "
                                    "(on the control's finding, its icon image's and an image button's)"},
                           "markup": {"type": ["object", "null"], "additionalProperties": {"type": "string"},
                                      "description": "what the page's code calls that icon (class, ligature, "
                                                     "symbol, file), as the service's markup field takes it"},
                           "graphic": {"enum": ["svg", "canvas"], "description": "the finding is about an inline "
                                       "svg or a canvas, not an image file: its image_url (when it has pixels) is "
                                       "the graphic's reference, the page's URL with a fragment naming it by its "
                                       "CSS selector (the W3C Selectors and States note's "
                                       "#selector(type=CssSelector,value=...)), never a data: URL"},
                           "act": {"enum": sorted(set(ACT.values())),
                                   "description": "an image judgement's W3C ACT rule"},
                           "evidence": _EVIDENCE,
                           "judgement": {
                               "type": "object", "description": "on a button-name or link-name finding whose "
                               "only content is an image marked decorative: the image judgement that it carries "
                               "information (image-informative-hidden), with the name its evidence gives",
                               "required": ["rule", "act", "wcag", "message", "suggested_alt",
                                            "suggested_confidence", "confidence_basis"],
                               "additionalProperties": False,
                               "properties": {"rule": {"enum": list(JUDGEMENTS)}, "act": {"type": "string"},
                                              "wcag": {"type": "string"}, "message": {"type": "string"},
                                              "suggested_alt": _STR_OR_NULL,
                                              "suggested_confidence": {"type": ["number", "null"]},
                                              "confidence_basis": {"enum": _JUDGEMENT_BASES}}},
                           "suggestion": _SUGGESTION}}},
    },
}


# ---------------------------------------------------------------------------------------------------------------
# Building the report


def _graphic_element(snippet: str) -> str:
    """A graphic-unnamed finding's element, from its snippet."""
    return "canvas" if re.match(r"\s*<canvas\b", snippet or "", re.IGNORECASE) else "svg"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def crawl_errors(state: CrawlState) -> list[dict]:
    errors = [{"url": p.url, "kind": p.status, "message": p.error or p.status, "http_status": p.http_status,
               "referrer": p.referrer} for p in state.pages if p.status in ERROR_STATUSES]
    return errors + [{"url": e["url"], "kind": e["kind"], "message": e["message"], "http_status": None,
                      "referrer": None} for e in state.site_errors]


class ReportFindings(StreamedSequence):
    """The report's ``findings``: each crawl finding with its ``id`` (F1, F2, ... in order) and its ``suggestion``,
    made afresh on each iteration from the crawl's findings (a :class:`crawl.FindingStore` on disk, or any list)
    so that a report of a million findings never holds them all. With ``judgements``
    (:class:`judging.Judgements`), each page's judgement findings follow its crawl findings (those of pages without
    any, at the end), and a control finding gets the judgement attached to it. Reads like a list (``len``,
    iteration, indexing); the writers below stream it."""

    def __init__(self, findings, suggestion: Callable[[int, dict], dict | None],
                 judgements: Judgements | None = None):
        self._findings, self._suggestion, self._judgements = findings, suggestion, judgements

    def _crawl_finding(self, i: int, f: dict) -> dict:
        suggestion = self._suggestion(i, f)
        if f["rule"] == GRAPHIC_RULE:
            f = {**f, "graphic": _graphic_element(f["snippet"])}
        if self._judgements is None:
            return {**f, "suggestion": suggestion}
        extra = self._judgements.attached(f)
        suggestion = extra.pop("suggestion", suggestion)  # an unnamed graphic's: the text its pixels give
        judged = extra.get("judgement") or {}
        if judged.get("suggested_alt") and (suggestion or {}).get("kind") == "withheld":
            # The model is not sure what the icon stands for, but the image's text or brand names it.
            suggestion = {"kind": "name", "name": judged["suggested_alt"], "attribute": "aria-label",
                          "model": suggestion["model"], "image_kind": suggestion["image_kind"],
                          **({"confidence": judged["suggested_confidence"]}
                             if judged["suggested_confidence"] is not None else {}),
                          "message": f'Suggested aria-label="{judged["suggested_alt"]}", from what the image shows: '
                                     "check that it says what the control does."}
        return {**f, **extra, "suggestion": suggestion}

    def _all(self) -> Iterator[dict]:
        judged = self._judgements
        if judged is None:
            for i, f in enumerate(self._findings):
                yield self._crawl_finding(i, f)
            return
        done: set[str] = set()
        previous = None
        for i, f in enumerate(self._findings):
            if f["page_url"] != previous:
                if previous is not None and previous not in done:
                    done.add(previous)
                    yield from judged.page(previous)
                previous = f["page_url"]
            yield self._crawl_finding(i, f)
        if previous is not None and previous not in done:
            done.add(previous)
            yield from judged.page(previous)
        for page_url in judged.pages():
            if page_url not in done:
                yield from judged.page(page_url)

    def __iter__(self) -> Iterator[dict]:
        for n, f in enumerate(self._all(), 1):
            yield {"id": f"F{n}", **f}

    def __len__(self) -> int:
        return len(self._findings) + (len(self._judgements) if self._judgements is not None else 0)


def _suggestion_of(suggestions) -> Callable[[int, dict], dict | None]:
    if suggestions is None:
        return lambda i, f: None
    if callable(suggestions):
        return lambda i, f: suggestions(f)
    return lambda i, f: suggestions[i] if i < len(suggestions) else None


def build_report(state: CrawlState, suggestions: list[dict | None] | Callable[[dict], dict | None] | None, *,
                 options: dict, complete: bool, user_agent: str, version: str, finished_at: float,
                 stream: bool = False, judgements: Judgements | None = None) -> dict:
    """The JSON report (see SCHEMA) for a crawl state and its suggestions: None (none asked for or reached), one
    suggestion (or None) per finding, or a function of the finding (:meth:`suggest.Suggester.suggestion_for`),
    and the image judgements (:meth:`suggest.Suggester.judgements`; None: suggestions off or not reached).
    The summary is counted in one pass over the findings. ``findings`` is a list, or with ``stream`` a
    :class:`ReportFindings` that the writers stream from the crawl's store (``alt-text audit`` does that: a big
    crawl's findings are never all in memory); the files written are the same."""
    findings = ReportFindings(state.findings, _suggestion_of(suggestions), judgements)
    if not stream:
        findings = list(findings)
    by_page: dict[str, dict] = {}
    by_severity, by_rule = dict.fromkeys(SEVERITIES, 0), dict.fromkeys(FINDING_RULES, 0)
    by_kind = dict.fromkeys(SUGGESTION_KINDS, 0)
    for f in findings:
        wcag = f["severity"] in WCAG_SEVERITIES
        entry = by_page.setdefault(f["page_url"], {"url": f["page_url"], "findings": 0, "wcag_failures": 0})
        entry["findings"] += 1
        entry["wcag_failures"] += wcag
        if f["severity"] in by_severity:
            by_severity[f["severity"]] += 1
        if f["rule"] in by_rule:
            by_rule[f["rule"]] += 1
        s = f["suggestion"]
        if s is None:
            by_kind["pending"] += 1
        elif s and s["kind"] in by_kind and s["kind"] != "pending":
            by_kind[s["kind"]] += 1
    errors = crawl_errors(state)
    summary = {
        "pages_audited": sum(p.status in AUDITED_STATUSES for p in state.pages),
        "urls_fetched": len(state.pages),
        "queued": 0 if state.limit_reached else len(state.frontier),
        "images": state.images,
        "findings": len(findings),
        "wcag_failures": sum(by_severity[s] for s in WCAG_SEVERITIES),
        "crawl_errors": len(errors),
        "by_severity": by_severity,
        "by_rule": by_rule,
        "by_page": sorted(by_page.values(), key=lambda e: (-e["findings"], e["url"])),
        "skipped": {**{r: int(state.skipped.get(r, 0)) for r in SKIP_REASONS},
                    "page_limit": len(state.frontier) if state.limit_reached else 0},
        "suggestions": by_kind,
    }
    return {
        "format": REPORT_FORMAT,
        "generator": {"name": "alt-text audit", "version": version, "user_agent": user_agent},
        "site": state.start_url,
        "started_at": _iso(state.started_at),
        "finished_at": _iso(finished_at),
        "complete": complete,
        "options": options,
        "summary": summary,
        "pages": [dict(p.__dict__) for p in state.pages],
        "crawl_errors": errors,
        "skipped_urls": list(state.skipped_urls),
        "findings": findings,
    }


def count_for_gate(report: dict, scope: str) -> int:
    """What --fail-on compares with: WCAG failures (critical + serious findings), or all findings."""
    s = report["summary"]
    return s["wcag_failures"] if scope == "wcag" else s["findings"]


# ---------------------------------------------------------------------------------------------------------------
# JSON and CSV


def _json_streamed(doc: dict, lists: dict[tuple, Iterable]) -> Iterator[str]:
    """``json.dumps(doc, indent=2, ensure_ascii=False)``, piece by piece, with each list at a path of ``lists``
    (keys and indexes into ``doc``) replaced by the items of its iterable, each dumped on its own: the same text,
    without the findings (or the whole text, or the encoder's pieces of it) in memory at once."""
    shell, copied, tokens = copy.copy(doc), set(), {}
    for path, items in lists.items():
        parent = shell
        for key in path[:-1]:
            if id(parent[key]) not in copied:
                parent[key] = copy.copy(parent[key])
                copied.add(id(parent[key]))
            parent = parent[key]
        token = f"\x00{uuid.uuid4().hex}\x00"
        parent[path[-1]] = [token]
        tokens[json.dumps(token)] = items
    text = json.dumps(shell, indent=2, ensure_ascii=False)
    pos = 0
    for match in re.finditer("|".join(map(re.escape, tokens)), text):
        line = text.rindex("\n", pos, match.start()) + 1
        indent = text[line:match.start()]
        head, close = text[pos:line], "\n" + indent[:-2] + "]"  # head ends with "[\n"
        assert text.startswith(close, match.end())
        empty = True
        for item in tokens[match.group()]:
            yield (head + indent) if empty else (",\n" + indent)
            yield json.dumps(item, indent=2, ensure_ascii=False).replace("\n", "\n" + indent)
            empty = False
        yield head[:-1] + "]" if empty else close
        pos = match.end() + len(close)
    yield text[pos:]


def iter_json(report: dict) -> Iterator[str]:
    yield from _json_streamed(report, {("summary", "by_page"): report["summary"]["by_page"],
                                       ("pages",): report["pages"], ("crawl_errors",): report["crawl_errors"],
                                       ("findings",): report["findings"]})
    yield "\n"


def to_json(report: dict) -> str:
    return "".join(iter_json(report))


CSV_COLUMNS = ("id", "page_url", "rule", "severity", "wcag", "image_url", "current_alt", "suggestion",
               "suggested_alt", "confidence", "decorative_candidate", "suggestion_error", "message", "selector",
               "snippet", "confidence_basis", "spoken_alt", "act", "evidence", "judgement")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str | int | float:
    """Numbers as numbers; text that a spreadsheet would evaluate as a formula is prefixed with an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return value
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def iter_csv(report: dict, rows_per_piece: int = 500) -> Iterator[str]:
    """One row per finding, columns CSV_COLUMNS, a few hundred rows per piece. suggested_alt is what an author can
    adopt (:func:`adopt.adoptable`: a description without the listener's hedge, or a control's name: the suggestion
    column says which), confidence the number it rests on and confidence_basis what that number is; spoken_alt the
    pipeline's alt as a listener hears it. An image judgement's row has its ACT rule in act and its evidence as
    compact JSON; a control finding with a judgement attached has that judgement's ACT rule, evidence and message
    (judgement)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for n, f in enumerate(report["findings"], 1):
        s = f["suggestion"] or {}
        kind = s.get("kind", "")
        adopt = adoptable(s) or {}
        judged = f.get("judgement") or {}
        evidence = f.get("evidence")
        writer.writerow([_cell(v) for v in (
            f["id"], f["page_url"], f["rule"], f["severity"], f["wcag"], f["image_url"], f["current_alt"], kind,
            adopt.get("text"), adopt.get("confidence"),
            f["decorative_candidate"], s.get("message") if kind in ("error", "withheld") else None, f["message"],
            f["selector"],
            f["snippet"], adopt.get("basis"), s.get("alt") if kind == "caption" else None,
            f.get("act") or judged.get("act"),
            json.dumps(evidence, ensure_ascii=False, separators=(",", ":")) if evidence is not None else None,
            judged.get("message"))])
        if n % rows_per_piece == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def to_csv(report: dict) -> str:
    """One row per finding, columns CSV_COLUMNS."""
    return "".join(iter_csv(report))


# ---------------------------------------------------------------------------------------------------------------
# HTML


def safe_url(url: str | None) -> str | None:
    """The URL if it is safe as an href or img src (http or https, nothing odd in it), else None."""
    if not url or not re.match(r"https?://", url, re.I) or re.search(r"[\x00-\x20\x7f\"'<>`\\]", url):
        return None
    return url


def quoted(text: str) -> str:
    """“text”, unless the text has double quotes of its own: then as it is (quotes never nest)."""
    return text if any(q in text for q in "“”\"„«»") else f"“{text}”"


def basis_note(adopt: dict) -> str:
    """The number a suggestion rests on, said with what it is: "caption confidence 62%", "icon meaning 97%",
    "text read from the image"."""
    label = BASIS_LABELS.get(adopt.get("basis") or "", "confidence")
    p = adopt.get("confidence")
    return label if p is None else f"{label} {round(100 * p)}%"


def _comparable(text: str) -> str:
    """As the rules compare alt texts (case, punctuation and spacing do not matter)."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def _shorten(text: str, limit: int = 140) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def _file_label(url: str, decorative: bool) -> str:
    parts = urlsplit(url)
    name = parts.path.rstrip("/").rsplit("/", 1)[-1][:60]
    host = parts.hostname or "the site"
    lead = "Probably decorative" if decorative else "Not described yet"
    return f"{lead}: {name} from {host}" if name else f"{lead}, from {host}"


class _ImageAlt:
    """What :func:`thumbnail_alts` needs to know about one image URL, gathered one finding at a time: the first
    caption and the first page alt that say something, and whether every suggestion called it decorative."""

    __slots__ = ("url", "caption", "alt", "decorative")

    def __init__(self, url: str):
        self.url, self.caption, self.alt, self.decorative = url, None, None, True

    def add(self, f: dict) -> None:
        s = f["suggestion"] or {}
        self.decorative = self.decorative and s.get("kind") == "decorative"
        if self.caption is not None:
            return
        said = s.get("alt") if s.get("kind") == "caption" else \
            s.get("suggested_alt") if s.get("kind") == "judgement" else None  # the image's text, brand or name
        if said:  # the pipeline's words (a caption already hedged as it decided)
            candidate = _shorten(said)
            if suspicious_reason(candidate) is None:
                self.caption = candidate
                return
        alt = (f["current_alt"] or "").strip()
        if self.alt is None and alt and suspicious_reason(_shorten(alt)) is None:
            self.alt = _shorten(alt)

    def describing(self) -> str:
        """The best honest description of the image: the model's caption, else a meaningful alt the page already
        has, else what is known about the file."""
        if self.caption is not None:
            return self.caption
        if self.alt is not None:
            return self.alt
        label = _file_label(self.url, self.decorative)
        return label if suspicious_reason(label) is None else "Not described yet"


def _unique_alts(groups: dict[str, _ImageAlt]) -> dict[str, str]:
    alts = {url: group.describing() for url, group in groups.items()}
    urls_by_text: dict[str, list[str]] = {}
    for url, alt in alts.items():
        urls_by_text.setdefault(_comparable(alt), []).append(url)
    for urls in urls_by_text.values():
        if len(urls) > 1:
            for k, url in enumerate(urls, 1):
                alts[url] = f"{alts[url]} (image {k} of {len(urls)} like it)"
    return alts


def _add_thumbnail(groups: dict[str, _ImageAlt], f: dict, embedded: Mapping[str, str] | None = None) -> None:
    # A graphic's image_url names its page, not an image: only its embedded thumbnail is shown.
    if f["image_url"] in embedded if embedded is not None else (safe_url(f["image_url"]) and not f.get("graphic")):
        group = groups.get(f["image_url"])
        if group is None:
            group = groups[f["image_url"]] = _ImageAlt(f["image_url"])
        group.add(f)


def thumbnail_alts(findings: Iterable[dict]) -> dict[str, str]:
    """One alt per thumbnailed image URL: describing, and unique (two different images never share one, which
    the audit's own alt-duplicate-different-images rule would flag). One pass; memory per image URL, not per
    finding."""
    groups: dict[str, _ImageAlt] = {}
    for f in findings:
        _add_thumbnail(groups, f)
    return _unique_alts(groups)


def _templates() -> dict[str, str]:
    folder = resources.files("server.audit").joinpath("templates")
    return {name: folder.joinpath(name).read_text(encoding="utf-8")
            for name in ("report.html", "report.css", "report.js")}


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


RULE_TITLES = {
    "image-alt": "Image without a text alternative",
    "input-image-alt": "Image button without a text alternative",
    "area-alt": "Image-map link without a text alternative",
    "role-img-alt": 'Element with role="img" without a name',
    "svg-img-alt": "SVG image without a name",
    "object-alt": "Embedded object without a text alternative",
    "button-name": "Button without a name",
    "link-name": "Link without a name",
    "alt-suspicious-filename": "Alt text looks like a file name",
    "alt-placeholder": "Alt text is a placeholder",
    "alt-stopwords-only": "Alt text has almost no meaningful words",
    "alt-redundant-prefix": "Alt text starts by saying it is an image",
    "alt-too-long": "Alt text is too long",
    "alt-duplicate-different-images": "Same alt text on different images",
    "alt-duplicates-adjacent-text": "Alt text repeats the text next to it",
    "graphic-unnamed": "Canvas or inline SVG without a name (to review)",
    "image-informative-hidden": "Informative image hidden from screen readers (to review)",
    "image-name-contradicts-text": "Name contradicts the image's text (to review)",
    "image-of-text": "Image of text (WCAG 1.4.5, to review)",
}
EVIDENCE_LABELS = {"kind": "kind", "text": "text read", "brand": "logo", "meaning": "icon meaning",
                   "control_name": "name for a control", "chart_type": "chart type"}


def evidence_items(evidence: dict | None) -> list[tuple[str, str]]:
    """An image judgement's evidence as (label, value) pairs for people: a brand, meaning or chart type with the
    head's probability."""
    out = []
    for key, value in (evidence or {}).items():
        if isinstance(value, dict):
            label = value.get("name") or value.get("label") or value.get("id") or ""
            p = value.get("p")
            value = f"{label} ({round(100 * p)}%)" if isinstance(p, (int, float)) else str(label)
        out.append((EVIDENCE_LABELS.get(key, key), str(value)))
    return out


class _FindingsByPage:
    """``findings_by_page.items()`` for the template: (page URL, that page's findings) in order of first
    appearance. The crawl records a page's findings together, so the pages are streamed one at a time; findings of
    one page scattered among others' (a hand-made state) are grouped in memory instead."""

    def __init__(self, findings: Iterable[dict], contiguous: bool):
        self.findings, self.contiguous = findings, contiguous

    def items(self) -> Iterator[tuple[str, list[dict]]]:
        if not self.contiguous:
            grouped: dict[str, list[dict]] = {}
            for f in self.findings:
                grouped.setdefault(f["page_url"], []).append(f)
            yield from grouped.items()
            return
        for page_url, items in itertools.groupby(self.findings, key=lambda f: f["page_url"]):
            yield page_url, list(items)


def iter_html(report: dict, thumbnails: Mapping[str, str] | None = None) -> Iterator[str]:
    """The report for people: summary, findings per page with thumbnails and copyable suggestions, rendered
    piece by piece (two passes over the findings: thumbnails and page order first, then the tables).
    With ``thumbnails`` (image URL -> a data: URL of a small JPEG, :attr:`suggest.Suggester.thumbnails`, as
    ``alt-text audit`` writes it) the previews are those, embedded, and no other: the report loads nothing from
    anywhere, so it can be mailed or archived. Without, the http(s) images are linked."""
    embedded = None if thumbnails is None else \
        {url: data for url, data in thumbnails.items() if _DATA_JPEG.fullmatch(data)}
    parts = _templates()
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["safe_url"] = safe_url
    env.filters["percent"] = lambda x: f"{round(100 * x)}%"
    env.filters["adoptable"] = adoptable
    env.filters["quoted"] = quoted
    env.filters["basis"] = basis_note
    env.filters["evidence"] = evidence_items
    template = env.from_string(parts["report.html"])
    page_ids: dict[str, str] = {}
    groups: dict[str, _ImageAlt] = {}
    contiguous, previous = True, None
    for f in report["findings"]:
        url = f["page_url"]
        if url != previous:
            if url in page_ids:
                contiguous = False
            else:
                page_ids[url] = f"page-{len(page_ids) + 1}"
            previous = url
        _add_thumbnail(groups, f, embedded)
    yield from template.generate(
        r=report, s=report["summary"], css=parts["report.css"], js=parts["report.js"],
        csp=("default-src 'none'; img-src http: https: data:; style-src " + _csp_hash(parts["report.css"])
             + "; script-src " + _csp_hash(parts["report.js"]) + "; base-uri 'none'; form-action 'none'"),
        findings_by_page=_FindingsByPage(report["findings"], contiguous), page_ids=page_ids,
        thumbs=_unique_alts(groups), embedded=embedded or {}, severities=SEVERITIES, severity_of=SEVERITY_OF,
        rule_titles=RULE_TITLES,
        skip_reasons={"off_site": "links to other sites", "excluded": "excluded by --include/--exclude",
                      "robots": "disallowed by robots.txt", "depth_limit": "deeper than --depth",
                      "page_limit": "left in the queue at --max-pages"},
    )


def to_html(report: dict, thumbnails: Mapping[str, str] | None = None) -> str:
    return "".join(iter_html(report, thumbnails))


# ---------------------------------------------------------------------------------------------------------------
# SARIF 2.1.0 (OASIS; https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html)

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
WCAG_UNDERSTANDING = "https://www.w3.org/WAI/WCAG22/Understanding/non-text-content.html"
AXE_RULES = frozenset({"image-alt", "input-image-alt", "area-alt", "role-img-alt", "svg-img-alt", "object-alt"})
SARIF_LEVEL = {"critical": "error", "serious": "error", "moderate": "warning", "minor": "note", NEEDS_REVIEW: "note"}
_SARIF_HELP = {
    True: "Fails WCAG 2.2 Success Criterion 1.1.1 Non-text Content (level A), as axe-core's {rule} rule reports it: "
          "give the element a text alternative that serves the same purpose, or mark it decorative (alt=\"\").",
    False: "Best practice for WCAG 2.2 Success Criterion 1.1.1 Non-text Content (level A): the element has a name, "
           "but it does not serve a listener as a text alternative should. Never reported where axe-core passes.",
}
# The unnamed controls: the criteria they fail, axe's tags for them, the Understanding page, what the name says.
_CONTROL_SARIF = {
    "button-name": ("Success Criterion 4.1.2 Name, Role, Value", ["wcag2a", "wcag412"],
                    "https://www.w3.org/WAI/WCAG22/Understanding/name-role-value.html", "what the button does"),
    "link-name": ("Success Criteria 2.4.4 Link Purpose (In Context) and 4.1.2 Name, Role, Value",
                  ["wcag2a", "wcag244", "wcag412"],
                  "https://www.w3.org/WAI/WCAG22/Understanding/link-purpose-in-context.html", "where the link goes"),
}


GRAPHIC_ACT = "e88epe"  # the W3C ACT rule of the unnamed graphics (rules.GRAPHIC_RULE)
# The image judgements: what each says, the criterion's axe-style tags.
_JUDGEMENT_SARIF = {
    "image-informative-hidden": (("the image is hidden from screen readers (alt=\"\", role none or presentation, "
                                  "aria-hidden), but the describe pipeline's evidence says it carries information: "
                                  "text read from it, a logo, a chart, or an icon that is a control's only content"),
                                 ["wcag2a", "wcag111"]),
    "image-name-contradicts-text": (("the text read from the image (OCR) is missing from its name, which says "
                                     "nothing, or shares no word with it"), ["wcag2a", "wcag111"]),
    "image-of-text": (("the image is mostly text: real text styled with CSS is better (it can be resized, "
                       "restyled, translated and searched); while it is an image, its alt should say the same text"),
                      ["wcag2aa", "wcag145"]),
}


def _sarif_help(rule: str) -> tuple[str, list[str], str, str]:
    """(full description, tags, Understanding URL, its link text) for a rule."""
    if rule in _JUDGEMENT_SARIF:
        what, tags = _JUDGEMENT_SARIF[rule]
        url = f"https://www.w3.org/WAI/standards-guidelines/act/rules/{ACT[rule]}/"
        text = (f"Needs review, against {JUDGEMENT_WCAG[rule]} (ACT rule {ACT[rule]}): {what}. A judgement on the "
                "image's pixels, which a person confirms; never counted as a WCAG failure.")
        return text, ["accessibility", *tags, JUDGEMENT_WCAG[rule], "needs-review"], url, f"ACT rule {ACT[rule]}"
    if rule == GRAPHIC_RULE:
        url = f"https://www.w3.org/WAI/standards-guidelines/act/rules/{GRAPHIC_ACT}/"
        text = (f"Needs review, against {WCAG_1_1_1} (ACT rule {GRAPHIC_ACT}): a canvas or an inline svg without a "
                "role has no accessible name, so assistive technologies skip it. If it carries information, give it "
                'role="img" and a name (aria-label; an svg: a <title> child); if it is decorative, '
                'aria-hidden="true". Never counted as a WCAG failure.')
        return text, ["accessibility", "wcag2a", "wcag111", WCAG_1_1_1, "needs-review"], url, \
            f"ACT rule {GRAPHIC_ACT}"
    if rule in _CONTROL_SARIF:
        criteria, tags, url, purpose = _CONTROL_SARIF[rule]
        text = (f"Fails WCAG 2.2 {criteria} (level A), as axe-core's {rule} rule reports it: give the control a "
                f"name (its text, an aria-label, or an alt on its only image) that says {purpose}.")
        return text, ["accessibility", *tags, WCAG[rule]], url, f"Understanding {criteria.split(' and ')[0]}"
    text = _SARIF_HELP[rule in AXE_RULES].format(rule=rule)
    tags = ["accessibility", "wcag2a", "wcag111", "WCAG 2.2 SC 1.1.1"]
    tags += [] if rule in AXE_RULES else ["best-practice"]
    return text, tags, WCAG_UNDERSTANDING, "Understanding SC 1.1.1 Non-text Content"


def sarif_rules() -> list[dict]:
    """One reportingDescriptor per rule, in FINDING_RULES order (results point at them by ruleIndex)."""
    out = []
    for rule in FINDING_RULES:
        to_review = rule in JUDGEMENTS or rule == GRAPHIC_RULE
        wcag = rule in AXE_RULES or rule in CONTROL_RULES or to_review
        severity = SEVERITY_OF[rule]
        text, tags, url, link_text = _sarif_help(rule)
        out.append({
            "id": rule,
            "name": "".join(w.capitalize() for w in rule.split("-")),
            "shortDescription": {"text": RULE_TITLES[rule]},
            "fullDescription": {"text": text},
            "helpUri": url,
            "help": {"text": f"{text} See {url}", "markdown": f"{text} See [{link_text}]({url})."},
            "defaultConfiguration": {"level": SARIF_LEVEL[severity]},
            "properties": {"tags": tags,
                           "precision": "high" if wcag and not to_review else "medium", "problem.severity":
                               {"error": "error", "warning": "warning", "note": "recommendation"}[
                                   SARIF_LEVEL[severity]],
                           "impact": severity, "wcag": WCAG_OF[rule] if wcag else f"{WCAG_1_1_1}, best practice"},
        })
    return out


def _fingerprint(*parts: str | None) -> str:
    return hashlib.sha256("\x1f".join(p or "" for p in parts).encode("utf-8")).hexdigest()[:32]


def _sarif_result(f: dict, rule_index: dict[str, int]) -> dict:
    s = f["suggestion"] or {}
    props = {"findingId": f["id"], "impact": f["severity"], "wcag": f["wcag"], "selector": f["selector"],
             "snippet": f["snippet"], "imageUrl": f["image_url"], "currentAlt": f["current_alt"],
             "decorativeCandidate": f["decorative_candidate"]}
    if s.get("kind") == "name":
        props["suggestedName"], props["suggestedAttribute"], props["suggestionKind"] = s["name"], s["attribute"], "name"
    elif s.get("kind") in ("caption", "decorative", "judgement"):  # only what the pipeline says (see to_csv)
        adopt = adoptable(s) or {}
        if adopt.get("text") is not None:
            props["suggestedAlt"] = adopt["text"]
        props["suggestionKind"] = s["kind"]
        if s["kind"] == "caption":
            props["spokenAlt"] = s["alt"]
        if adopt.get("confidence") is not None:
            props["confidence"], props["confidenceBasis"] = adopt["confidence"], adopt["basis"]
    elif s:
        props["suggestionKind"] = s["kind"]
    for key, prop in (("act", "act"), ("evidence", "evidence"), ("judgement", "judgement")):
        if f.get(key) is not None:
            props[prop] = f[key]
    return {
        "ruleId": f["rule"],
        "ruleIndex": rule_index[f["rule"]],
        "level": SARIF_LEVEL[f["severity"]],
        "message": {"text": f"{f['message']} Element: {f['selector']}"},
        "locations": [{
            # A page is not a file with lines: the page URL is the artifact, the CSS selector the logical location
            # (a region would need a line number, which an HTML parser's tree does not keep).
            "physicalLocation": {"artifactLocation": {"uri": f["page_url"]}},
            "logicalLocations": [{"name": f["selector"].rsplit(" > ", 1)[-1], "fullyQualifiedName": f["selector"],
                                  "kind": "element"}],
        }],
        "partialFingerprints": {"altTextAudit/v1": _fingerprint(f["page_url"], f["rule"], f["selector"],
                                                                f["image_url"])},
        "properties": props,
    }


def iter_sarif(report: dict) -> Iterator[str]:
    """One run, one result per finding (streamed); crawl errors are the invocation's tool execution
    notifications."""
    rules = sarif_rules()
    rule_index = {r["id"]: i for i, r in enumerate(rules)}
    gen = report["generator"]
    notifications = [{"level": "warning", "message": {"text": f"{e['url']}: {e['message']}"},
                      "descriptor": {"id": f"crawl-{e['kind']}"},
                      "locations": [{"physicalLocation": {"artifactLocation": {"uri": e["url"]}}}]}
                     for e in report["crawl_errors"]]
    log = {
        "$schema": SARIF_SCHEMA_URI,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": {"name": gen["name"], "version": gen["version"], "semanticVersion": gen["version"],
                                "rules": rules}},
            "invocations": [{"executionSuccessful": bool(report["complete"]),
                             "startTimeUtc": report["started_at"], "endTimeUtc": report["finished_at"],
                             "toolExecutionNotifications": notifications}],
            "automationDetails": {"id": f"alt-text-audit/{urlsplit(report['site']).netloc}/"},
            "columnKind": "utf16CodeUnits",
            "results": [],  # streamed below
            "properties": {"site": report["site"], "complete": report["complete"],
                           "summary": {k: report["summary"][k] for k in (
                               "pages_audited", "urls_fetched", "images", "findings", "wcag_failures",
                               "crawl_errors")}},
        }],
    }
    yield from _json_streamed(log, {
        ("runs", 0, "invocations", 0, "toolExecutionNotifications"): notifications,
        ("runs", 0, "results"): (_sarif_result(f, rule_index) for f in report["findings"])})
    yield "\n"


def to_sarif(report: dict) -> str:
    return "".join(iter_sarif(report))


STREAMS = {"json": iter_json, "csv": iter_csv, "html": iter_html, "sarif": iter_sarif}


def format_of(path: str | Path) -> str | None:
    return FORMATS.get(Path(path).suffix.lower())


def write_report(report: dict, path: str | Path, thumbnails: Mapping[str, str] | None = None) -> None:
    """Write in the format the extension names (.json, .csv, .html/.htm, .sarif), atomically, streamed: the
    findings are read back from the crawl's store as the file is written, never held all at once. The HTML
    report embeds ``thumbnails`` (see :func:`iter_html`)."""
    fmt = format_of(path)
    if fmt is None:
        raise ValueError(f"{path}: the report format comes from the extension: {FORMAT_NAMES}")
    write_atomic(path, iter_html(report, thumbnails) if fmt == "html" else STREAMS[fmt](report))
