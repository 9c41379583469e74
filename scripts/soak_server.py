"""A soak of the service under mixed load (a benchmark, not a test).

50 concurrent clients for ``--seconds`` against `alt-text serve` on loopback, each request one of: an uncached
image URL, a base64 upload, a cached URL, or a bad input (not base64, an HTML page, a private address). Reports
requests, 5xx, lost results (a 200 without one result per image), p50/p95/p99 latency per class and the service's
resident-memory growth after a warm-up under the same load (the first batches and threads allocate what they keep).
Goals: 0 5xx, 0 lost, memory growth < 20 %, cached p50 <= 100 ms while the model is busy.

    python scripts/soak_server.py --images ../shared/data/flickr8k/images --seconds 60 --out soak_server.json
"""
from __future__ import annotations

import argparse
import base64
import json
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_server import start_service, stop_service, worker_pids  # noqa: E402
from loadgen import start_site  # noqa: E402


def rss_kb(pid: int) -> int:
    """Resident memory of a process and its descendants (gunicorn's workers and their model processes), from
    /proc."""
    total = 0
    for p in [pid, *worker_pids(pid)]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        rss = re.search(r"\nVmRSS:\s+(\d+)", status)  # none for a zombie
        total += int(rss.group(1)) if rss else 0
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", default=str(Path(__file__).resolve().parents[2] / "shared/data/flickr8k/images"))
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--warmup", type=float, default=15, help="seconds of the same load before memory is measured")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0, help="service threads (0: its default)")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--out", default="soak_server.json")
    args = ap.parse_args()

    src = Path(args.images)
    files = sorted(p.name for p in src.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    httpd, site = start_site(src)
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    proc, base = start_service(site, 16, "sqlite", args.checkpoint, workdir, threads=args.threads or 64)
    cached = [f"http://{site}/{n}" for n in files[:20]]
    for u in cached:  # answered once: from now on these come from the cache
        requests.post(base + "/v1/alt-text", json={"images": [{"url": u}]}, timeout=120)
    uploads = [base64.b64encode((src / n).read_bytes()).decode() for n in files[20:60]]
    fresh = iter(f"http://{site}/{n}" for n in files[60:])
    lock = threading.Lock()
    stats = {k: [] for k in ("uncached", "upload", "cached", "bad")}
    errors = {"5xx": 0, "lost": 0, "other": 0}
    bad = [{"data": "not base64!"}, {"data": base64.b64encode(b"<html>no</html>").decode()},
           {"url": "http://10.0.0.1/a.png"}]
    rss_boot = rss_kb(proc.pid)
    warm_until = time.monotonic() + args.warmup
    stop = warm_until + args.seconds
    rss_start = [0]

    def warmed() -> bool:
        """True once the warm-up is over; the first caller after it takes the starting memory reading."""
        if time.monotonic() < warm_until:
            return False
        with lock:
            if not rss_start[0]:
                rss_start[0] = rss_kb(proc.pid)
        return True

    def client(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop:
            kind = rng.choices(["uncached", "upload", "cached", "bad"], [3, 2, 4, 1])[0]
            with lock:
                spec = ({"url": next(fresh, rng.choice(cached))} if kind == "uncached"
                        else {"data": rng.choice(uploads)} if kind == "upload"
                        else {"url": rng.choice(cached)} if kind == "cached" else rng.choice(bad))
            t0 = time.perf_counter()
            try:
                r = requests.post(base + "/v1/alt-text", json={"images": [spec]}, timeout=120)
            except requests.RequestException:
                with lock:
                    errors["other"] += 1
                continue
            dt = 1000 * (time.perf_counter() - t0)
            if not warmed():
                continue
            with lock:
                if r.status_code >= 500:
                    errors["5xx"] += 1
                elif r.status_code == 200 and len(r.json().get("results", [])) != 1:
                    errors["lost"] += 1
                stats[kind].append(dt)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rss_end = rss_kb(proc.pid)
    rss_start = rss_start[0] or rss_boot
    stop_service(proc)
    httpd.shutdown()

    def pct(xs, q):
        return round(statistics.quantiles(xs, n=100)[q - 1], 1) if len(xs) >= 2 else None

    report = {"clients": args.clients, "seconds": args.seconds, **errors,
              "requests": sum(len(v) for v in stats.values()),
              "classes": {k: {"n": len(v), "p50_ms": pct(v, 50), "p95_ms": pct(v, 95), "p99_ms": pct(v, 99)}
                          for k, v in stats.items()},
              "rss_kb_boot": rss_boot, "rss_kb_start": rss_start, "rss_kb_end": rss_end,
              "rss_growth": round(rss_end / max(rss_start, 1) - 1, 3)}
    print(f"soak_server: {args.clients} clients for {args.seconds:.0f} s: {report['requests']} requests, "
          f"{errors['5xx']} 5xx, {errors['lost']} lost, {errors['other']} failed to connect; "
          f"memory {rss_start // 1024} -> {rss_end // 1024} MB ({100 * report['rss_growth']:+.1f} %)")
    for k, c in report["classes"].items():
        print(f"  {k:<9} n={c['n']:<6} p50 {c['p50_ms']} ms  p95 {c['p95_ms']} ms  p99 {c['p99_ms']} ms")
    Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
