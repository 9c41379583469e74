"""``alt-text audit URL``: crawl a site, check every page's images, suggest alt text, write reports.

Exit status: 0 when the audit ran (and stayed within ``--fail-on``); 3 when the findings counted by ``--fail-scope``
exceed ``--fail-on`` (so CI can tell "the site has problems" from "the audit could not run"); 1 when the audit could
not run or audited no page at all; 2 for bad options; 130 when interrupted (a partial report is written and
``--resume`` continues). Errors are one line, never a traceback.
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click

from .crawl import CrawlConfig, Crawler, CrawlState, Page, normalize_url, origin
from .crawl.pixels import PixelStore
from .report import FORMAT_NAMES, build_report, count_for_gate, format_of, write_report
from .rules import RuleOptions

log = logging.getLogger(__name__)

EXIT_OVER_THRESHOLD = 3
EXIT_INTERRUPTED = 130
DEFAULT_STATE = "alt-text-audit.state.jsonl"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("alt-text")
    except PackageNotFoundError:
        return "0.1.0"


def state_path_for(outs: tuple[str, ...]) -> Path:
    """The crawl state (an append-only journal) lives next to the (first) report: report.html ->
    report.state.jsonl."""
    return Path(outs[0]).with_suffix(".state.jsonl") if outs else Path(DEFAULT_STATE)


def load_describer(checkpoint: str | None, beam_size: int):
    """The in-process describe pipeline (tests replace this function with one that returns a fake)."""
    from server.local_describer import DescriberUnavailable
    from server.local_describer import load_describer as load

    try:
        return load(checkpoint, beam_size)
    except DescriberUnavailable as e:
        raise click.ClickException(f"{e} (give --checkpoint, --server URL or --no-suggest)") from None


def _suggester(crawler: Crawler, server_url, api_key, checkpoint, beam_size, concurrency):
    """Build the suggestion pipeline before crawling, so that a bad checkpoint or a dead service fails in a
    second, not after an hour of crawling."""
    from server.cache import NoCache, open_cache
    from server.settings import Settings

    from .suggest import (
        ImageSource,
        LocalBackend,
        ServiceBackend,
        Suggester,
        SuggestError,
    )

    try:
        cfg = Settings.from_env()
        limits = cfg.fetch_limits(test_loopback=False)  # never the service's loopback test switch
    except (TypeError, ValueError) as e:
        raise click.ClickException(f"bad ALT_TEXT_* setting: {e}") from None
    try:
        cache = open_cache(cfg.cache, cfg.cache_path, cfg.redis_url, cfg.cache_ttl)
    except Exception as e:  # noqa: BLE001 - a broken cache costs speed, not the audit
        click.echo(f"alt-text: warning: the caption cache is unavailable ({e}); continuing without it", err=True)
        cache = NoCache()
    if server_url:
        try:
            backend = ServiceBackend(server_url, api_key)
        except SuggestError as e:
            raise click.ClickException(str(e)) from None
    else:
        backend = LocalBackend(load_describer(checkpoint, beam_size))
    source = ImageSource(crawler.site, crawler.state.origins, limits, crawler.state.graphics)
    return Suggester(backend, source, cache, concurrency=concurrency)


class Progress:
    """Progress bars on stderr, only on a terminal and without --quiet: pages done (of those known so far, at most
    --max-pages), URLs queued, images, findings and the rate while crawling; then images described."""

    def __init__(self, total_pages: int, state: CrawlState, quiet: bool = False):
        self.enabled = not quiet and sys.stderr.isatty()
        self.max_pages = total_pages
        self.images, self.findings = state.images, len(state.findings)
        self.bar = self._bar(self._total(state), len(state.pages), "crawling", "page")

    def _total(self, state: CrawlState) -> int:
        return max(1, min(self.max_pages, len(state.pages) + len(state.frontier)))

    def _bar(self, total: int, initial: int, desc: str, unit: str):
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not self.enabled,
                    file=sys.stderr, dynamic_ncols=True, leave=False)

    def page(self, page: Page, state: CrawlState) -> None:
        self.images += page.images
        self.findings += page.findings
        self.bar.total = self._total(state)
        self.bar.update(1)
        self.bar.set_postfix(queued=len(state.frontier), images=self.images, findings=self.findings, refresh=False)

    def start_suggestions(self, total: int) -> None:
        self.bar.close()
        self.bar = self._bar(total, 0, "describing", "image")

    def suggested(self, n: int) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def _summary(report: dict, outs: tuple[str, ...]) -> list[str]:
    s = report["summary"]
    lines = [
        f"{'Audited' if report['complete'] else 'Partial audit:'} {s['pages_audited']} page(s) of {report['site']} "
        f"({s['urls_fetched']} URLs fetched, {s['crawl_errors']} crawl error(s)): {s['findings']} finding(s) on "
        f"{s['images']} image(s), {s['wcag_failures']} of them WCAG failures (1.1.1, 4.1.2, 2.4.4).",
        "  by severity: " + ", ".join(f"{k} {v}" for k, v in s["by_severity"].items()),
    ]
    rules = [f"{k} {v}" for k, v in sorted(s["by_rule"].items(), key=lambda kv: -kv[1]) if v]
    if rules:
        lines.append("  by rule: " + ", ".join(rules))
    for p in s["by_page"][:5]:
        lines.append(f"  {p['findings']:>4} finding(s)  {p['url']}")
    if len(s["by_page"]) > 5:
        lines.append(f"  ... and {len(s['by_page']) - 5} more page(s) with findings")
    sg = s["suggestions"]
    if sg["caption"] or sg["withheld"] or sg["decorative"] or sg["error"]:
        lines.append(f"  suggestions: {sg['caption']} described, {sg['withheld']} without a reliable description, "
                     f"{sg['decorative']} probably decorative, {sg['error']} failed")
    graphics = s["by_rule"].get("graphic-unnamed", 0)
    review = s["by_severity"].get("needs review", 0) - graphics
    if review:
        lines.append(f"  to review: {review} image judgement(s) (what the image shows against its markup; not "
                     "counted as WCAG failures)")
    if graphics:
        lines.append(f"  to review: {graphics} canvas or inline SVG graphic(s) without a name (informative or "
                     "decorative; not counted as WCAG failures)")
    if s["queued"]:
        lines.append(f"  not crawled yet: {s['queued']} URL(s) in the queue")
    skipped = {k: v for k, v in s["skipped"].items() if v}
    if skipped:
        lines.append("  not crawled: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in skipped.items()))
    if outs:
        lines.append("Report: " + ", ".join(outs))
    return lines


def _nothing_audited(state: CrawlState) -> str:
    start = state.start_url
    for p in state.pages:
        if p.url == start:
            return f"{start}: {p.error or p.status.replace('_', ' ')}"
    if any(s["url"] == start and s["reason"] == "robots" for s in state.skipped_urls):
        return f"robots.txt disallows {start}"
    return f"no HTML page found at {start}"


def _check_outs(outs: tuple[str, ...]) -> None:
    for out in outs:
        if format_of(out) is None:
            raise click.BadParameter(f"{out}: the format comes from the extension: {FORMAT_NAMES}",
                                     param_hint="--out")
        parent = Path(out).resolve().parent
        if not parent.is_dir():
            raise click.BadParameter(f"{out}: the directory {parent} does not exist", param_hint="--out")


def _load_state(path: Path, resume: bool, start_url: str) -> CrawlState | None:
    if not resume:
        if path.exists():
            click.echo(f"alt-text: note: starting a new audit; the saved one in {path} will be replaced "
                       "(use --resume to continue it)", err=True)
        return None
    try:
        state = CrawlState.load(path)
    except FileNotFoundError:
        raise click.ClickException(f"no saved audit to resume at {path}") from None
    except (OSError, ValueError) as e:
        raise click.ClickException(f"cannot resume from {path}: {e}") from None
    if state.start_url != start_url:
        raise click.ClickException(f"the audit saved in {path} is of {state.start_url}, not {start_url}")
    return state


@click.command("audit")
@click.argument("url")
@click.option("--max-pages", type=click.IntRange(1, 10_000_000), default=200, show_default=True,
              help="Stop after fetching this many URLs (pages, errors and non-HTML links alike).")
@click.option("--depth", type=click.IntRange(0, 10_000), default=10, show_default=True,
              help="Follow links at most this far from the start URL (sitemap pages count as depth 0).")
@click.option("--sitemap", default=None, metavar="URL|auto",
              help="Also audit the pages a sitemap lists; 'auto' reads robots.txt Sitemap: lines and /sitemap.xml.")
@click.option("--include", multiple=True, metavar="REGEX",
              help="Only crawl URLs matching this regular expression (repeatable; the start URL is always crawled).")
@click.option("--exclude", multiple=True, metavar="REGEX", help="Never crawl URLs matching this (repeatable).")
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Pages fetched and checked at once.")
@click.option("--delay", type=click.FloatRange(0, 600), default=0.0, show_default=True,
              help="Seconds between two requests to the site (robots.txt Crawl-delay may ask for more).")
@click.option("--timeout", type=click.FloatRange(0.1, 600), default=10.0, show_default=True,
              help="Seconds allowed for one page.")
@click.option("--out", "outs", multiple=True, type=click.Path(dir_okay=False),
              help="Write a report; the extension picks the format: .html, .json, .csv, .sarif (SARIF 2.1.0) "
                   "(repeatable).")
@click.option("--fail-on", type=click.IntRange(0), default=None, metavar="N",
              help="Exit with status 3 when more than N findings (see --fail-scope) are found.")
@click.option("--fail-scope", type=click.Choice(["wcag", "all"]), default="wcag", show_default=True,
              help="What --fail-on counts: WCAG failures (critical and serious findings) or all findings (the "
                   "image judgements to review too).")
@click.option("--server", "server_url", default=None, metavar="URL",
              help="Describe images with a running alt-text service instead of the local model.")
@click.option("--api-key", default=None, envvar="ALT_TEXT_API_KEY", help="X-API-Key for --server.")
@click.option("--resume", is_flag=True, help="Continue the interrupted audit saved next to the (first) --out.")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Model checkpoint (default: the bundled model).")
@click.option("--beam-size", type=click.IntRange(1, 20), default=3, show_default=True, help="Beam width.")
@click.option("--no-suggest", is_flag=True, help="Do not describe images (no model, no image fetches).")
@click.option("--render", is_flag=True,
              help="Audit each page as headless Chromium renders it (scripts run, open shadow roots included).")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress bars on stderr (they are only shown on a terminal anyway); the summary is printed.")
@click.option("--chromium", default="/usr/bin/chromium", show_default=True, type=click.Path(dir_okay=False),
              help="The Chromium that --render drives.")
def audit(url, max_pages, depth, sitemap, include, exclude, concurrency, delay, timeout, outs, fail_on, fail_scope,
          server_url, api_key, resume, checkpoint, beam_size, no_suggest, render, quiet, chromium) -> None:
    """Audit the images of the site at URL (WCAG 2.2 SC 1.1.1) and suggest alt text for them.

    The crawl stays on URL's origin, obeys robots.txt, and may reach private and loopback addresses: it is meant
    for a site's owner auditing their own site. Ctrl-C writes a partial report; --resume continues.

    Exit status: 0 done; 3 more findings than --fail-on; 1 the audit could not run; 2 bad options; 130 interrupted.
    """
    if no_suggest and (server_url or checkpoint):
        raise click.UsageError("--no-suggest cannot be combined with --server or --checkpoint")
    if server_url and checkpoint:
        raise click.UsageError("give --server or --checkpoint, not both")
    if server_url and normalize_url(server_url) is None:
        raise click.BadParameter(f"{server_url!r} is not an http(s) URL", param_hint="--server")
    _check_outs(outs)
    try:
        config = CrawlConfig(start_url=url, max_pages=max_pages, max_depth=depth, sitemap=sitemap,
                             include=include, exclude=exclude, concurrency=concurrency, delay=delay, timeout=timeout,
                             render=render, chromium=chromium,
                             # with suggestions, what each image's markup says, for the image judgements
                             rule_options=RuleOptions(judge_images=not no_suggest))
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if render:
        from .render import unavailable

        why = unavailable(chromium)
        if why:
            raise click.ClickException(why)
    state_path = state_path_for(outs)
    state = _load_state(state_path, resume, config.start_url)
    progress = Progress(max_pages, state or CrawlState(config.start_url, [origin(config.start_url)]), quiet)
    try:
        crawler = Crawler(config, state, state_path, on_page=progress.page)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    suggester = None if no_suggest else _suggester(crawler, server_url, api_key, checkpoint, beam_size,
                                                   concurrency)
    if suggester is None:
        from .suggest import Suggester

        suggester = Suggester(None, None)

    # One suggestion per image URL, not per finding: the findings stay on disk and the report streams them.
    described: dict = {}
    suggestion_of = None  # None until the crawl is done: every suggestion is then "pending"
    judgements = None  # the image judgements, on the images described (suggestions on)
    interrupted, failure = False, None
    try:
        crawler.run()
        urls = suggester.image_urls(crawler.state.findings, crawler.state.image_contexts)
        suggestion_of = lambda f: suggester.suggestion_for(f, described)  # noqa: E731
        progress.start_suggestions(len(urls))
        suggester.describe_urls(urls, progress.suggested, into=described)
    except KeyboardInterrupt:
        interrupted = True
    except Exception as e:  # noqa: BLE001 - a bug: keep what was found, say so in one line
        log.debug("the audit failed", exc_info=True)
        failure = e
    finally:
        progress.close()
    if suggestion_of is not None:  # interrupted while describing: the images described so far are judged
        try:
            judgements = suggester.judgements(crawler.state.image_contexts, described)
        except Exception as e:  # noqa: BLE001 - as above: the markup findings are still reported
            log.debug("judging the images failed", exc_info=True)
            failure = failure or e

    st = crawler.state
    complete = not interrupted and failure is None
    report = build_report(
        st, suggestion_of, complete=complete, user_agent=config.user_agent, version=_version(),
        finished_at=time.time(), stream=True, judgements=judgements,
        options={"max_pages": max_pages, "max_depth": depth, "sitemap": sitemap, "include": list(include),
                 "exclude": list(exclude), "concurrency": concurrency, "delay": delay, "timeout": timeout,
                 "suggestions": "off" if no_suggest else ("service" if server_url else "model"),
                 "model": getattr(suggester.backend, "version", None), "beam_size": beam_size,
                 "fail_on": fail_on, "fail_scope": fail_scope, "render": render})
    for out in outs:
        try:
            write_report(report, out, suggester.thumbnails)
        except (OSError, ValueError) as e:
            raise click.ClickException(f"cannot write {out}: {e}") from None
    for line in _summary(report, outs):
        click.echo(line)

    if interrupted:
        click.echo(f"alt-text: interrupted; {'a partial report was written and ' if outs else ''}the crawl state "
                   f"is saved in {state_path}: run the same command with --resume to continue", err=True)
        click.get_current_context().exit(EXIT_INTERRUPTED)
    if failure is not None:
        raise click.ClickException(f"the audit stopped on an internal error ({type(failure).__name__}: {failure}); "
                                   f"what was found is saved in {state_path}: --resume continues")
    st.graphics.close()
    for done in (state_path, PixelStore.path_for(state_path)):
        try:
            done.unlink()
        except FileNotFoundError:
            pass
    if report["summary"]["pages_audited"] == 0:
        raise click.ClickException(f"no page could be audited: {_nothing_audited(st)}")
    if fail_on is not None:
        counted = count_for_gate(report, fail_scope)
        if counted > fail_on:
            what = "WCAG failures" if fail_scope == "wcag" else "findings"
            click.echo(f"alt-text: {counted} {what}, more than --fail-on {fail_on}", err=True)
            click.get_current_context().exit(EXIT_OVER_THRESHOLD)
