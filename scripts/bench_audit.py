"""Benchmark the site audit: pages/s for crawl + rules on a generated local site, and suggestions/s.

    python scripts/bench_audit.py                                   # 500 pages; suggestions with the bundled model
    python scripts/bench_audit.py --checkpoint runs/x/best.safetensors --images 64 --out bench_audit.json
    python scripts/bench_audit.py --no-suggest --big                  # + a 20,000-page site: memory, SIGKILL, resume

The site is generated in a temporary directory and served by ``python -m http.server`` in a child process on
127.0.0.1 (so the server does not compete with the crawler for this process's GIL). Each page has a realistic
amount of text, ~10 links and 8 images with a mix of missing, placeholder and good alt text. Reported:

* rules only: one parse, link extraction and the rules on the pages in memory (no network), as the crawler does
  it: the CPU ceiling; then the same collecting what each image's markup says for the image judgements (what
  the crawl does with suggestions on; ``--no-suggest`` does not);
* crawl + rules at concurrency 1 and ``--concurrency``: the whole crawler, HTTP included;
* the same with ``--render`` (headless Chromium at /usr/bin/chromium) on the first ``--render-pages`` pages;
* big site (``--big``, ``--big-pages``): a 20,000-page site crawled in a child process, with pages/s and resident
  memory at 1k, 5k and 20k pages; then ``alt-text audit`` is SIGKILLed at 10k pages and the time of its ``--resume``
  (replaying the journal, then crawling the rest and writing the report) is measured;
* suggestions: images fetched from the site, decoded and captioned in batches with no cache, then again with a warm
  cache. Without a checkpoint (and without the bundled model) a trivial stand-in captioner is used and the row says
  so: then only the fetch/decode/cache overhead is measured.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image, ImageDraw  # noqa: E402

from server.audit.crawl import CrawlConfig, Crawler, extract_links  # noqa: E402
from server.audit.rules import RuleOptions, audit_page, parse  # noqa: E402

WORDS = ("the quick brown fox jumps over a lazy dog while our team ships another release of the product to "
         "customers around the world every week").split()
ALTS = [None, "", "image", "IMG_{n}.jpg", "A red bicycle leaning on a brick wall", "Photo of our office",
        "Two people shaking hands at the {n} summit", None]


def make_site(root: Path, pages: int, images: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    (root / "img").mkdir(parents=True)
    for i in range(images):
        im = Image.new("RGB", (160, 120), tuple(rng.randrange(256) for _ in range(3)))
        d = ImageDraw.Draw(im)
        for _ in range(3):
            x, y = rng.randrange(120), rng.randrange(80)
            d.ellipse((x, y, x + 40, y + 40), fill=tuple(rng.randrange(256) for _ in range(3)))
        im.save(root / "img" / f"{i}.png")
    for p in range(pages):
        links = {(p + 1) % pages, (p * 7 + 3) % pages, *(rng.randrange(pages) for _ in range(8))}
        imgs = []
        for k, alt in enumerate(ALTS):
            src = f"/img/{rng.randrange(images)}.png"
            attr = "" if alt is None else f' alt="{alt.format(n=p * 10 + k)}"'
            imgs.append(f'<figure><img src="{src}"{attr}><figcaption>Figure {k}</figcaption></figure>')
        text = "".join(f"<p>{' '.join(rng.choice(WORDS) for _ in range(120))}</p>" for _ in range(8))
        nav = "".join(f'<li><a href="{"/" if n == 0 else f"/p{n}.html"}">Page {n}</a></li>' for n in sorted(links))
        body = (f'<!doctype html><html lang="en"><head><title>Page {p}</title></head><body>'
                f"<nav><ul>{nav}</ul></nav><main><h1>Page {p}</h1>{text}{''.join(imgs)}</main></body></html>")
        (root / ("index.html" if p == 0 else f"p{p}.html")).write_text(body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the benchmark site did not start")


def bench_rules(root: Path, base: str, judge_images: bool = False) -> dict:
    pages = sorted(root.glob("*.html"))
    options = RuleOptions(judge_images=judge_images)
    t0 = time.perf_counter()
    findings = contexts = 0
    for path in pages:
        soup = parse(path.read_bytes())  # parsed once, for the links and for the rules
        extract_links(soup, base + path.name)
        check = audit_page(soup, base + path.name, options)
        findings += len(check.findings)
        contexts += len(check.images_to_judge)
    dt = time.perf_counter() - t0
    name = "rules + image contexts (suggestions on; in memory)" if judge_images else "rules only (in memory)"
    return {"name": name, "pages": len(pages), "findings": findings, "image_contexts": contexts, "seconds": dt,
            "per_s": len(pages) / dt, "unit": "pages/s"}


def bench_crawl(url: str, pages: int, concurrency: int, render: bool = False) -> dict:
    cfg = CrawlConfig(start_url=url, max_pages=pages if render else pages + 10, max_depth=1000,
                      concurrency=concurrency, render=render)
    t0 = time.perf_counter()  # with render, Chromium's start (about a second) is included
    state = Crawler(cfg).run()
    dt = time.perf_counter() - t0
    audited = sum(p.status == "ok" for p in state.pages)
    return {"name": f"crawl + rules, {'--render, ' if render else ''}concurrency {concurrency}", "pages": audited,
            "findings": len(state.findings), "seconds": dt, "per_s": audited / dt, "unit": "pages/s"}


def stand_in():
    """The describe pipeline over a model that does no work: isolates fetch, decode, batching and cache overhead."""
    import numpy as np

    from server.describe import Describer, ModelOutput, Policy, Wording

    class StandIn(Describer):
        def __init__(self):
            self.captioner = SimpleNamespace(version="stand-in")
            self.heads, self.ocr, self.policy, self.wording = None, None, Policy(), Wording()
            self.namespace = "stand-in"

        def run_model(self, images):
            return [ModelOutput("A picture.", "a picture", 0.5, np.zeros(4, np.float32), None) for _ in images]

    return StandIn()


def load_describer(checkpoint: str | None, beam_size: int):
    from model import CheckpointError
    from server.describe import Describer

    try:
        return Describer.load(checkpoint, beam_size=beam_size), "model"
    except CheckpointError as e:
        if checkpoint:
            raise SystemExit(str(e))
        print(f"note: {e}; using a stand-in model", file=sys.stderr)
        return stand_in(), "stand-in (no model)"


def bench_suggest(url: str, images: int, checkpoint: str | None, beam_size: int, concurrency: int,
                  cache_dir: Path) -> list[dict]:
    from server.audit.crawl import Site, origin
    from server.audit.suggest import ImageSource, LocalBackend, Suggester
    from server.cache import NoCache, SQLiteCache
    from server.netsafe.fetch import FetchLimits

    describer, kind = load_describer(checkpoint, beam_size)
    cfg = CrawlConfig(start_url=url)
    source = ImageSource(Site(cfg), [origin(cfg.start_url)], FetchLimits())
    findings = [{"rule": "image-alt", "image_url": f"{url}img/{i}.png", "decorative_candidate": False,
                 "snippet": "<img>"} for i in range(images)]
    backend = LocalBackend(describer)
    Suggester(backend, source, NoCache(), concurrency=concurrency).suggest(findings[:2])  # warm-up (lazy init)
    rows = []
    cache = SQLiteCache(cache_dir / "bench-cache.sqlite3", ttl=3600)
    for name, c in ((f"suggestions, {kind}, cold cache", NoCache()), (f"suggestions, {kind}, filling cache", cache),
                    (f"suggestions, {kind}, warm cache", cache)):
        t0 = time.perf_counter()
        out = Suggester(backend, source, c, concurrency=concurrency).suggest(findings)
        dt = time.perf_counter() - t0
        ok = sum(s["kind"] in ("caption", "withheld") for s in out)  # described, whatever was decided
        rows.append({"name": name, "images": images, "described": ok, "seconds": dt, "per_s": ok / dt,
                     "unit": "suggestions/s"})
    return rows


def rss_mb() -> float:
    """This process's resident memory (Linux /proc; elsewhere the peak from getrusage)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_crawl(url: str, pages: int, state: str, marks: list[int], concurrency: int) -> None:
    """(child process) Crawl with the state journal on, printing one JSON line per milestone."""
    cfg = CrawlConfig(start_url=url, max_pages=pages + 10, max_depth=10_000, concurrency=concurrency)
    t0 = time.perf_counter()
    todo = sorted(marks)

    def on_page(page, st):
        n = len(st.pages)
        if todo and n >= todo[0]:
            todo.pop(0)
            print(json.dumps({"pages": n, "seconds": time.perf_counter() - t0, "rss_mb": rss_mb(),
                              "state_mb": os.path.getsize(state) / 1e6}), flush=True)

    Crawler(cfg, state_path=state, on_page=on_page).run()


def bench_big(root: Path, url: str, pages: int, concurrency: int, tmp: Path) -> list[dict]:
    rows = []
    marks = sorted({m for m in (1000, 5000, 20_000, pages) if m <= pages})
    cmd = [sys.executable, __file__, "--child-crawl", url, "--big-pages", str(pages), "--concurrency",
           str(concurrency), "--state", str(tmp / "child.state.jsonl"), "--marks", ",".join(map(str, marks))]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    last_n, last_t = 0, 0.0
    for line in out.splitlines():
        m = json.loads(line)
        rows.append({"name": f"big site: crawl + rules + journal, at {m['pages']:,} pages", "pages": m["pages"],
                     "seconds": m["seconds"], "per_s": (m["pages"] - last_n) / (m["seconds"] - last_t),
                     "unit": "pages/s", "rss_mb": round(m["rss_mb"], 1), "state_mb": round(m["state_mb"], 1)})
        last_n, last_t = m["pages"], m["seconds"]

    # SIGKILL the real command half way, then time its --resume.
    out_json = tmp / "big.json"
    audit = [sys.executable, "-m", "server.cli", "audit", url, "--no-suggest", "--max-pages", str(pages + 10),
             "--depth", "10000", "--concurrency", str(concurrency), "--out", str(out_json)]
    journal = out_json.with_suffix(".state.jsonl")
    kill_at = pages // 2
    proc = subprocess.Popen(audit, cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None:
            time.sleep(0.2)
            if journal.exists() and journal.read_bytes().count(b'\n{"pages": [{') >= kill_at:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.wait()
    if proc.returncode != -signal.SIGKILL:
        raise SystemExit(f"the audit ended (status {proc.returncode}) before it could be killed")
    from server.audit.crawl import CrawlState

    t0 = time.perf_counter()
    saved = CrawlState.load(journal)
    load_s = time.perf_counter() - t0
    recorded = len(saved.pages)
    del saved
    t0 = time.perf_counter()
    subprocess.run([*audit, "--resume"], check=True, cwd=Path(__file__).resolve().parent.parent,
                   stdout=subprocess.DEVNULL)
    resume_s = time.perf_counter() - t0
    report = json.loads(out_json.read_text())
    rows.append({"name": f"big site: replay the journal after SIGKILL at {recorded:,}", "pages": recorded,
                 "seconds": load_s, "per_s": recorded / load_s, "unit": "pages/s"})
    rows.append({"name": f"big site: --resume after SIGKILL, {pages - recorded:,} pages + report",
                 "pages": report["summary"]["pages_audited"] - recorded, "seconds": resume_s,
                 "per_s": (report["summary"]["pages_audited"] - recorded) / resume_s, "unit": "pages/s",
                 "complete": report["complete"], "pages_audited": report["summary"]["pages_audited"]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=500)
    ap.add_argument("--images", type=int, default=64, help="distinct images on the site (and suggestions timed)")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--checkpoint", default=None, help="model for the suggestions (default: the bundled one)")
    ap.add_argument("--beam-size", type=int, default=3)
    ap.add_argument("--no-suggest", action="store_true", help="time the crawl only")
    ap.add_argument("--out", default="bench_audit.json", help="JSON results file")
    ap.add_argument("--render-pages", type=int, default=100,
                    help="pages crawled with --render (headless Chromium); 0: none")
    ap.add_argument("--big", action="store_true", help="also the big-site run (--big-pages pages; minutes)")
    ap.add_argument("--big-pages", type=int, default=20_000)
    ap.add_argument("--child-crawl", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--state", help=argparse.SUPPRESS)
    ap.add_argument("--marks", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_crawl:
        return child_crawl(args.child_crawl, args.big_pages, args.state, [int(m) for m in args.marks.split(",")],
                           args.concurrency)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "site"
        make_site(root, args.pages, args.images)
        proc, url = serve(root)
        try:
            rows = [bench_rules(root, url), bench_rules(root, url, judge_images=True)]
            for c in sorted({1, args.concurrency}):
                rows.append(bench_crawl(url, args.pages, c))
            if args.render_pages:
                from server.audit.render import unavailable

                why = unavailable()
                if why:
                    print(f"note: no --render rows: {why}", file=sys.stderr)
                else:
                    for c in sorted({1, args.concurrency}):
                        rows.append(bench_crawl(url, min(args.render_pages, args.pages), c, render=True))
            if not args.no_suggest:
                rows += bench_suggest(url, args.images, args.checkpoint, args.beam_size, args.concurrency, Path(tmp))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        if args.big:
            big = Path(tmp) / "big"
            make_site(big, args.big_pages, args.images, seed=1)
            proc, url = serve(big)
            try:
                rows += bench_big(big, url, args.big_pages, args.concurrency, Path(tmp))
            finally:
                proc.terminate()
                proc.wait(timeout=10)

    print(f"{'benchmark':<60} {'items':>6} {'seconds':>8} {'rate':>16} {'RSS MB':>7}")
    for r in rows:
        items = r.get("pages", r.get("described"))
        rss = f"{r['rss_mb']:>7.1f}" if "rss_mb" in r else ""
        print(f"{r['name']:<60} {items:>6} {r['seconds']:>8.2f} {r['per_s']:>8.1f} {r['unit']:<7} {rss}")
    result = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                          "cpus": __import__("os").cpu_count()},
              "settings": {k: v for k, v in vars(args).items() if k != "out"}, "results": rows}
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
