"""Benchmark the site audit: pages/s for crawl + rules on a generated local site, and suggestions/s.

    python scripts/bench_audit.py                                   # 500 pages; suggestions with the bundled model
    python scripts/bench_audit.py --checkpoint runs/x/best.safetensors --images 64 --out bench_audit.json

The site is generated in a temporary directory and served by ``python -m http.server`` in a child process on
127.0.0.1 (so the server does not compete with the crawler for this process's GIL). Each page has a realistic
amount of text, ~10 links and 8 images with a mix of missing, placeholder and good alt text. Reported:

* rules only: one parse, link extraction and the rules on the pages in memory (no network), as the crawler does
  it: the CPU ceiling;
* crawl + rules at concurrency 1 and ``--concurrency``: the whole crawler, HTTP included;
* suggestions: images fetched from the site, decoded and captioned in batches with no cache, then again with a warm
  cache. Without a checkpoint (and without the bundled model) a trivial stand-in captioner is used and the row says
  so: then only the fetch/decode/cache overhead is measured.
"""
from __future__ import annotations

import argparse
import json
import platform
import random
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
from server.audit.rules import audit_page, parse  # noqa: E402

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


def bench_rules(root: Path, base: str) -> dict:
    pages = sorted(root.glob("*.html"))
    t0 = time.perf_counter()
    findings = 0
    for path in pages:
        soup = parse(path.read_bytes())  # parsed once, for the links and for the rules
        extract_links(soup, base + path.name)
        findings += len(audit_page(soup, base + path.name).findings)
    dt = time.perf_counter() - t0
    return {"name": "rules only (in memory)", "pages": len(pages), "findings": findings, "seconds": dt,
            "per_s": len(pages) / dt, "unit": "pages/s"}


def bench_crawl(url: str, pages: int, concurrency: int) -> dict:
    cfg = CrawlConfig(start_url=url, max_pages=pages + 10, max_depth=1000, concurrency=concurrency)
    t0 = time.perf_counter()
    state = Crawler(cfg).run()
    dt = time.perf_counter() - t0
    audited = sum(p.status == "ok" for p in state.pages)
    return {"name": f"crawl + rules, concurrency {concurrency}", "pages": audited, "findings": len(state.findings),
            "seconds": dt, "per_s": audited / dt, "unit": "pages/s"}


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
    from server.cache import NoCache, SQLiteCache
    from server.fetch import FetchLimits

    from server.audit.suggest import ImageSource, LocalBackend, Suggester
    from server.audit.crawl import Site, origin

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=500)
    ap.add_argument("--images", type=int, default=64, help="distinct images on the site (and suggestions timed)")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--checkpoint", default=None, help="model for the suggestions (default: the bundled one)")
    ap.add_argument("--beam-size", type=int, default=3)
    ap.add_argument("--no-suggest", action="store_true", help="time the crawl only")
    ap.add_argument("--out", default="bench_audit.json", help="JSON results file")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "site"
        make_site(root, args.pages, args.images)
        proc, url = serve(root)
        try:
            rows = [bench_rules(root, url)]
            for c in sorted({1, args.concurrency}):
                rows.append(bench_crawl(url, args.pages, c))
            if not args.no_suggest:
                rows += bench_suggest(url, args.images, args.checkpoint, args.beam_size, args.concurrency, Path(tmp))
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    print(f"{'benchmark':<50} {'items':>6} {'seconds':>8} {'rate':>10}")
    for r in rows:
        items = r.get("pages", r.get("described"))
        print(f"{r['name']:<50} {items:>6} {r['seconds']:>8.2f} {r['per_s']:>8.1f} {r['unit']}")
    result = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                          "cpus": __import__("os").cpu_count()},
              "settings": {k: v for k, v in vars(args).items() if k != "out"}, "results": rows}
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
