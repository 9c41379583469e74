"""The crawl state is an append-only journal: saving costs O(new pages), a SIGKILL loses at most the pages in
flight, a line torn by the kill is dropped, and a resumed crawl records what an uninterrupted one records."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.audit.crawl import CrawlConfig, Crawler, CrawlState, Journal
from test_audit_crawl import LocalSite, served

ROOT = Path(__file__).resolve().parent.parent
PAGES = 60


def build_chain_site(site: LocalSite, pages: int = PAGES) -> LocalSite:
    """/ links p1; each pN links pN+1, pN+2, one page off site and one excluded; each has two images."""
    site.routes["/robots.txt"] = (200, {"Content-Type": "text/plain"}, b"User-agent: *\nDisallow: /private\n")
    for n in range(pages):
        links = "".join(f'<a href="/p{k}.html">{k}</a>' for k in (n + 1, n + 2) if k < pages)
        site.page("/" if n == 0 else f"/p{n}.html",
                  f'<img src="/i{n}.png"><img src="/j{n}.png" alt="IMG_{n}.jpg">{links}'
                  f'<a href="https://elsewhere.example/{n}">x</a><a href="/private/{n}">p</a>')
    return site


@pytest.fixture(scope="module")
def chain():
    yield from served(build_chain_site)


def records(state: CrawlState) -> dict:
    pages = [{k: v for k, v in dataclasses.asdict(p).items() if k != "elapsed_ms"} for p in state.pages]
    return {"pages": pages, "findings": state.findings, "skipped": state.skipped, "skipped_urls": state.skipped_urls,
            "checked": sorted(state.checked), "seen": sorted(state.seen), "frontier": list(state.frontier),
            "origins": state.origins, "site_errors": state.site_errors, "limit_reached": state.limit_reached,
            "image_contexts": list(state.image_contexts)}


def test_saving_appends_one_line_per_page(chain, tmp_path):
    path = tmp_path / "s.jsonl"
    sizes, prefix = [], []

    def watch(page, state):
        data = path.read_bytes()
        if prefix:
            assert data.startswith(prefix[-1])  # never rewritten: only appended
        prefix.append(data)
        sizes.append(len(data))

    st = Crawler(CrawlConfig(start_url=chain.url("/"), max_depth=100, concurrency=2, timeout=2), state_path=path,
                 on_page=watch).run()
    lines = path.read_bytes().splitlines()
    assert json.loads(lines[0])["format"] == "alt-text-audit-state/2"
    assert len(lines) == 1 + 1 + 1 + len(st.pages) + 1  # header, empty snapshot, seed, one per page, the end
    growth = [b - a for a, b in zip(sizes, sizes[1:])]
    assert max(growth) < 4 * min(growth)  # O(new page): page 60 costs what page 2 cost
    assert records(CrawlState.load(path)) == records(st) and CrawlState.load(path).done


def test_sigkill_loses_only_pages_in_flight(chain, tmp_path):
    reference = Crawler(CrawlConfig(start_url=chain.url("/"), max_depth=100, concurrency=1, timeout=2)).run()
    path = tmp_path / "s.jsonl"
    code = ("import sys; from server.audit.crawl import CrawlConfig, Crawler; "
            "Crawler(CrawlConfig(start_url=sys.argv[1], max_depth=100, concurrency=3, timeout=2, delay=0.02), "
            "state_path=sys.argv[2]).run()")
    before = len(chain.log)
    proc = subprocess.Popen([sys.executable, "-c", code, chain.url("/"), str(path)], cwd=ROOT)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            if path.exists() and path.read_bytes().count(b'{"pages": [{') >= 20:
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    fetched_before = [p for _, p in chain.log[before:] if p != "/robots.txt"]

    saved = CrawlState.load(path)
    assert 20 <= len(saved.pages) < PAGES and not saved.done
    in_flight = len(fetched_before) - len(saved.pages)
    assert 0 <= in_flight <= 3  # the concurrency: nothing recorded was lost
    recorded = {p.url.removeprefix(chain.root) or "/" for p in saved.pages}
    mid = len(chain.log)
    resumed = Crawler(CrawlConfig(start_url=chain.url("/"), max_depth=100, concurrency=3, timeout=2), saved,
                      path).run()
    assert records(resumed) == records(reference)
    fetched_after = [p for _, p in chain.log[mid:] if p != "/robots.txt"]
    assert not set(fetched_after) & recorded  # no recorded page fetched again
    assert len(fetched_after) == PAGES - len(recorded)
    assert records(CrawlState.load(path)) == records(reference)


def interrupt_at(config: CrawlConfig, path: Path, pages: int) -> None:
    """Crawl with the journal at ``path`` and interrupt (Ctrl-C) once ``pages`` pages are recorded."""
    def stop(page, state):
        if len(state.pages) == pages:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Crawler(config, state_path=path, on_page=stop).run()


def test_torn_last_line_is_dropped_and_overwritten(chain, tmp_path):
    path = tmp_path / "s.jsonl"
    config = CrawlConfig(start_url=chain.url("/"), max_depth=100, concurrency=1, timeout=2)
    interrupt_at(config, path, 5)
    with open(path, "ab") as f:
        f.write(b'{"pages": [{"url": "http://half')  # a kill in the middle of a write
    saved = CrawlState.load(path)
    assert len(saved.pages) == 5
    Crawler(config, saved, path).run()
    final = CrawlState.load(path)  # the torn bytes were cut before appending
    assert final.done and len(final.pages) == PAGES
    assert b"http://half" not in path.read_bytes()


def test_damaged_and_legacy_state_files(chain, tmp_path):
    path = tmp_path / "s.jsonl"
    st = Crawler(CrawlConfig(start_url=chain.url("/"), max_depth=100, max_pages=4, timeout=2)).run()
    st.save(path)
    assert records(CrawlState.load(path)) == records(st)
    legacy = tmp_path / "old.json"  # format 1: the whole state as one JSON document, no longer read
    legacy.write_text(json.dumps({"format": "alt-text-audit-state/1", "start_url": st.start_url}))
    with pytest.raises(ValueError, match="before the journal"):
        CrawlState.load(legacy)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b"{not json}\n" + b"".join(lines[1:]))
    with pytest.raises(ValueError, match="damaged at line 2"):
        CrawlState.load(path)
    path.write_text('{"format": "alt-text-audit-state/2"}\n')
    with pytest.raises(ValueError, match="incomplete"):
        CrawlState.load(path)


def test_a_save_late_in_a_big_crawl_writes_only_the_new_page(tmp_path):
    from server.audit.crawl import Page

    st = CrawlState(start_url="http://h/", origins=["http://h"])
    st.seen.update(f"http://h/{i}" for i in range(50_000))
    st.pages = [Page(url=f"http://h/{i}", depth=1, referrer="http://h/") for i in range(20_000)]
    j = Journal(tmp_path / "s.jsonl", st)
    j.open()  # a fresh journal: one snapshot line of the whole state
    size = (tmp_path / "s.jsonl").stat().st_size
    assert size > 1_000_000
    t0 = time.perf_counter()
    for i in range(100):
        st.pages.append(Page(url=f"http://h/new{i}", depth=2, referrer="http://h/1"))
        j.see(f"http://h/new{i}")
        j.check(f"http://h/new{i}")
        j.flush()
    j.close()
    added = (tmp_path / "s.jsonl").stat().st_size - size
    assert added < 100 * 400 and time.perf_counter() - t0 < 1.0
    assert len(CrawlState.load(tmp_path / "s.jsonl").pages) == 20_100


def test_cli_refuses_a_state_file_from_before_the_journal_in_one_line(chain, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from server.audit.command import audit

    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.state.jsonl").write_text(json.dumps({"format": "alt-text-audit-state/1",
                                                        "start_url": chain.url("/")}))
    r = CliRunner().invoke(audit, [chain.url("/"), "--no-suggest", "--out", "r.json", "--resume"])
    assert r.exit_code == 1 and "before the journal" in r.output and "Traceback" not in r.output


def test_image_contexts_survive_an_interrupt_resume_and_a_fresh_save(chain, tmp_path):
    """With suggestions on, what each image's markup says is part of the state: journaled page by page, replayed,
    and rewritten by a save, so that --resume judges the images of the pages audited before the interrupt."""
    from server.audit.rules import RuleOptions

    config = CrawlConfig(start_url=chain.url("/"), max_depth=100, concurrency=2, timeout=2,
                         rule_options=RuleOptions(judge_images=True))
    reference = Crawler(config).run()
    assert len(reference.image_contexts) == 2 * PAGES
    assert {c["name"] for c in reference.image_contexts} == {None, *(f"IMG_{n}.jpg" for n in range(PAGES))}
    path = tmp_path / "s.jsonl"
    interrupt_at(config, path, 5)
    saved = CrawlState.load(path)
    assert len(saved.image_contexts) == 10
    resumed = Crawler(config, saved, path).run()
    assert records(resumed) == records(reference) == records(CrawlState.load(path))
    resumed.save(tmp_path / "copy.jsonl")
    assert records(CrawlState.load(tmp_path / "copy.jsonl")) == records(reference)
    lines = (tmp_path / "copy.jsonl").read_text().splitlines()
    assert sum('"image_contexts"' in line for line in lines) == 1  # streamed in chunks like the findings
