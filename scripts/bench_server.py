"""Throughput and latency of the service under gunicorn on loopback (a benchmark, not a test).

Starts a local image site and `alt-text serve`, then drives it with N concurrent clients, each asking for one image
URL per request:
  - uncached, batched worker (max batch 16) vs batch size 1;
  - cached (every URL answered before): p50 latency;
  - next to them, in the same run, the in-process batched rate of the describe pipeline on the same images (what
    the model can do without HTTP): the service should reach >= 80 % of it.
Targets on a 2-core CPU: batching >= 2x the throughput of batch size 1 at 16 clients; cached p50 <= 10 ms.

    python scripts/bench_server.py --images ../shared/data/flickr8k/images --out bench_server.json
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def start_site(directory: Path) -> tuple[ThreadingHTTPServer, str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(directory)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"127.0.0.1:{httpd.server_address[1]}"


def start_service(site: str, max_batch: int, cache: str, checkpoint: str | None, workdir: Path, threads: int,
                  workers: int = 1, redis_url: str | None = None):
    port = free_port()
    env = dict(os.environ, ALT_TEXT_TEST_ALLOW_LOOPBACK=site, ALT_TEXT_TESTING="1", ALT_TEXT_RATE_LIMIT="0",
               ALT_TEXT_MAX_BATCH=str(max_batch), ALT_TEXT_CACHE=cache,
               ALT_TEXT_CACHE_PATH=str(workdir / f"cache-{port}.sqlite3"))
    if checkpoint:
        env["ALT_TEXT_CHECKPOINT"] = checkpoint
    if redis_url:
        env["ALT_TEXT_REDIS_URL"] = redis_url
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = open(workdir / f"gunicorn-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--port", str(port),
                             "--threads", str(threads), "--workers", str(workers)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if requests.get(base + "/readyz", timeout=1).status_code == 200:
                return proc, base
        except requests.ConnectionError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the service did not start; see {log.name}")


def drive(base: str | list[str], urls: list[str], clients: int) -> dict:
    """Each client sends its share of the URLs one request at a time (round-robin over several bases, as a load
    balancer would); returns throughput and latencies."""
    session_local = threading.local()
    bases = [base] if isinstance(base, str) else base

    def one(job):
        i, url = job
        s = getattr(session_local, "s", None) or requests.Session()
        session_local.s = s
        t = time.perf_counter()
        r = s.post(bases[i % len(bases)] + "/v1/alt-text", json={"images": [{"url": url}]}, timeout=120)
        dt = time.perf_counter() - t
        res = r.json()["results"][0]
        return dt, "error" not in res, res.get("cached", False)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        out = list(pool.map(one, enumerate(urls)))
    wall = time.perf_counter() - t0
    lat = sorted(x[0] for x in out)
    return {"requests": len(out), "ok": sum(x[1] for x in out), "cached": sum(x[2] for x in out),
            "seconds": round(wall, 2), "images_per_s": round(len(out) / wall, 2),
            "p50_ms": round(1000 * statistics.median(lat), 1),
            "p95_ms": round(1000 * lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1)}


def replicas_run(site: str, args, workdir: Path, urls: list[str]) -> dict:
    """Uncached throughput of ``args.replicas`` instances sharing one redis-server (cache and rate limit)."""
    import shutil

    exe = shutil.which("redis-server")
    if not exe:
        raise SystemExit("--replicas needs redis-server (apt-get install redis-server)")
    port = free_port()
    redis = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = []
    try:
        time.sleep(0.5)
        for _ in range(args.replicas):
            procs.append(start_service(site, 16, "redis", args.checkpoint, workdir, threads=args.clients * 2,
                                       workers=args.workers, redis_url=f"redis://127.0.0.1:{port}/0"))
        bases = [b for _, b in procs]
        drive(bases, urls[:4], 4)
        return drive(bases, urls[4:], args.clients)
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(10)
        redis.terminate()
        redis.wait(5)


def in_process_rate(paths: list[Path], checkpoint: str | None, batch: int = 16) -> dict:
    """Images/s of the describe pipeline in this process, batched, safe decoding included."""
    sys.path.insert(0, str(REPO))
    from server.describe import Describer
    from server.netsafe.images import read_image_file

    describer = Describer.load(checkpoint, device="cpu")
    describer.describe([read_image_file(str(p)) for p in paths[:4]])  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(paths), batch):
        describer.describe([read_image_file(str(p)) for p in paths[i:i + batch]])
    dt = time.perf_counter() - t0
    return {"images": len(paths), "seconds": round(dt, 2), "images_per_s": round(len(paths) / dt, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=str(REPO.parent / "shared/data/flickr8k/images"),
                    help="a directory of JPEG/PNG images to serve (default: Flickr8k beside the repo)")
    ap.add_argument("--count", type=int, default=128, help="distinct images per uncached run")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1, help="gunicorn processes of the service")
    ap.add_argument("--replicas", type=int, default=1,
                    help="also run this many instances sharing one redis-server, next to one instance")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--out", default="bench_server.json")
    args = ap.parse_args()

    src = Path(args.images)
    files = sorted(p.name for p in src.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if len(files) < 2 * args.count:
        raise SystemExit(f"{src}: need at least {2 * args.count} images, found {len(files)}")
    httpd, site = start_site(src)
    workdir = Path(tempfile.mkdtemp(prefix="bench-server-"))
    urls = [f"http://{site}/{name}" for name in files]
    results = {}
    # The ceiling: the same pipeline without HTTP, in this process, before any service starts (one at a time).
    ceiling = in_process_rate([src / name for name in files[: args.count]], args.checkpoint)
    try:
        # Different images for the two uncached runs, so neither helps the other through the OS page cache.
        for label, batch, chunk in (("batched (max batch 16)", 16, urls[: args.count]),
                                    ("batch size 1", 1, urls[args.count : 2 * args.count])):
            proc, base = start_service(site, batch, "none", args.checkpoint, workdir, threads=args.clients * 2,
                                       workers=args.workers)
            try:
                drive(base, chunk[:4], 4)  # warm-up (first forward passes allocate)
                results[label] = drive(base, chunk, args.clients)
            finally:
                proc.terminate()
                proc.wait(10)
        if args.replicas > 1:
            results[f"{args.replicas} replicas + Redis, batched"] = replicas_run(
                site, args, workdir, urls[2 * args.count : 3 * args.count])
        proc, base = start_service(site, 16, "sqlite", args.checkpoint, workdir, threads=args.clients * 2)
        try:
            warm = urls[:32]
            drive(base, warm, args.clients)
            results["cached, 1 client"] = drive(base, warm * 4, 1)
            results[f"cached, {args.clients} clients"] = drive(base, warm * 8, args.clients)
        finally:
            proc.terminate()
            proc.wait(10)
    finally:
        httpd.shutdown()

    b, one = results["batched (max batch 16)"], results["batch size 1"]
    cached = results["cached, 1 client"]
    summary = {"clients": args.clients, "runs": results,
               "batching_speedup": round(b["images_per_s"] / one["images_per_s"], 2),
               "in_process_images_per_s": ceiling["images_per_s"],
               "service_share_of_in_process": round(b["images_per_s"] / ceiling["images_per_s"], 3),
               "cached_p50_ms": cached["p50_ms"],
               "cached_p50_ms_under_load": results[f"cached, {args.clients} clients"]["p50_ms"],
               "cpu_count": os.cpu_count()}
    print(f"bench_server: {args.clients} concurrent clients, one image URL per request, gunicorn on loopback")
    print(f"  {'run':<24} {'requests':>8} {'ok':>5} {'img/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for label, r in results.items():
        print(f"  {label:<24} {r['requests']:>8} {r['ok']:>5} {r['images_per_s']:>8} {r['p50_ms']:>8} {r['p95_ms']:>8}")
    print(f"  in-process describe pipeline, batched: {ceiling['images_per_s']} img/s; the service reaches "
          f"{100 * summary['service_share_of_in_process']:.0f} % of it (target >= 80 %)")
    print(f"  batching speed-up: {summary['batching_speedup']}x (target >= 2x); "
          f"cached p50: {summary['cached_p50_ms']} ms (target <= 10 ms), "
          f"{summary['cached_p50_ms_under_load']} ms with {args.clients} clients at once")
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
