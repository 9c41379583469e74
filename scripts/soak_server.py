"""A soak of the service under mixed load, and a stop under that load (a benchmark, not a test).

``--clients`` closed-loop clients (one level or several, e.g. ``50,100,200``) for ``--seconds`` against
`alt-text serve --workers 1` on loopback, real photos on a loopback site, after ``--warmup`` seconds of the same
load. Each request is one of (``--mix``, percent): new URLs (1-4 images never asked before), an upload of a new
image (base64), a cached URL, or bad input (not base64, an HTML page, a private address). The clients and the site
run in one asyncio thread (scripts/loadgen.py), so the harness takes little of the two cores it shares with the
service.

A client that gets a 503 waits its Retry-After before its next request, as clients are told to.

Reported per run: requests, 5xx (HTTP 5xx, ``overloaded`` among them, and images answered with a 5xx error), lost
(a request without one result per image, or without an answer), latency p50/p99 per class, the uncached images
answered per second, and the resident memory of the master and all its descendants (after the warm-up, at the end,
the most seen) with the worker's thread count. ``--compare DIR`` runs the service of another checkout (the code
before a change) at each level too, alternating which goes first: the figures to compare are those of one run.

``--sigterm N``: then, for each side, N clients, SIGTERM to the master after ``--sigterm-after`` seconds, clients
still sending: every request written before the signal must be answered (200, or a 503), none cut; after it, each
is answered, refused with a 503, or refused at connect. Then whether any process of the service outlived its
master. Goals: 0 5xx, 0 lost, cached p50 <= 10 ms at every level, memory bounded; nothing cut or left running.

    python scripts/soak_server.py --clients 50,100,200 --seconds 60 --compare /tmp/base --sigterm 200
    python scripts/soak_server.py --seconds 60     # 50 clients, this checkout only
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import random
import re
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_server import REPO, model_counters, start_service, stop_service, worker_pids  # noqa: E402
from loadgen import Closed, _Client, _loop, start_site  # noqa: E402

KINDS = ("uncached", "upload", "cached", "bad")
BAD = [{"data": "not base64!"}, {"data": base64.b64encode(b"<html>no</html>").decode()},
       {"url": "http://10.0.0.1/a.png"}]


def proc_status(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None


def rss_kb(pid: int) -> int:
    """Resident memory of a process and its descendants (gunicorn's workers and their model processes)."""
    total = 0
    for p in [pid, *worker_pids(pid)]:
        rss = re.search(r"\nVmRSS:\s+(\d+)", proc_status(p) or "")  # none for a zombie
        total += int(rss.group(1)) if rss else 0
    return total


def worker_threads(master: int) -> int:
    """Threads of the master's direct children (the gunicorn workers)."""
    total = 0
    for p in worker_pids(master):
        status = proc_status(p) or ""
        if f"\nPPid:\t{master}\n" in status:
            total += int(re.search(r"\nThreads:\s+(\d+)", status).group(1))
    return total


def alive(pid: int) -> bool:
    status = proc_status(pid)
    return status is not None and not re.search(r"\nState:\s+[ZX]", status)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


class Plan:
    """What each request asks: the same sequence of new images for every side, so that both do the same work."""

    def __init__(self, src: Path, files: list[str], site: str, mix: list[float], seed: int = 0):
        self.src, self.site, self.mix = src, site, mix
        self.cached = [f"http://{site}/{n}" for n in files[:20]]
        self.fresh = itertools.cycle(files[20:])  # wraps only in a very long run (then some are cached: counted so)
        self.rng = random.Random(seed)

    def next(self) -> tuple[str, list[dict]]:
        kind = self.rng.choices(KINDS, self.mix)[0]
        if kind == "uncached":
            return kind, [{"url": f"http://{self.site}/{next(self.fresh)}"} for _ in range(self.rng.randint(1, 4))]
        if kind == "upload":
            return kind, [{"data": base64.b64encode((self.src / next(self.fresh)).read_bytes()).decode()}]
        if kind == "cached":
            return kind, [{"url": self.rng.choice(self.cached)}]
        return kind, [self.rng.choice(BAD)]


async def _client(base: str, plan: Plan, log: list, until: list) -> None:
    """One closed-loop client: ask, read the answer, ask again, until ``until[0]`` (monotonic) passes."""
    conn = _Client(base)
    try:
        while time.monotonic() < until[0]:
            kind, specs = plan.next()
            t_send = time.monotonic()
            try:
                status, headers, answer = await asyncio.wait_for(conn.send("/v1/alt-text", {"images": specs}), 180)
                outcome = "answered"
            except ConnectionRefusedError:
                status, headers, answer, outcome = 0, {}, {}, "refused at connect"
            except Closed:
                status, headers, answer, outcome = 0, {}, {}, "closed unanswered"
            except (asyncio.TimeoutError, OSError, asyncio.IncompleteReadError) as e:
                status, headers, answer, outcome = 0, {}, {}, f"failed: {type(e).__name__}"
            log.append((kind, len(specs), t_send, time.monotonic(), status, answer, outcome))
            if outcome != "answered":
                await asyncio.sleep(0.2)  # a stopped service: do not spin
            elif status == 503 and "retry-after" in headers:  # as clients are told to (the extension, the audit)
                await asyncio.sleep(min(float(headers["retry-after"]), max(0.0, until[0] - time.monotonic())))
    finally:
        conn.close()


def _tally(log: list, since: float, until: float) -> dict:
    """Counts and latencies of the requests answered between ``since`` and ``until``."""
    lat = {k: [] for k in KINDS}
    out = {"requests": 0, "5xx": 0, "overloaded": 0, "image_5xx": 0, "lost": 0, "uncached_images": 0,
           "image_errors": {}}
    for kind, n, t_send, t_done, status, answer, outcome in log:
        if not since <= t_done < until:
            continue
        out["requests"] += 1
        lat[kind].append(1000 * (t_done - t_send))
        if outcome != "answered":
            out["lost"] += 1
            continue
        if status >= 500:
            out["5xx"] += 1
            if answer.get("error", {}).get("code") == "overloaded":
                out["overloaded"] += 1
            continue
        results = answer.get("results")
        if status == 200 and (not isinstance(results, list) or len(results) != n):
            out["lost"] += 1
            continue
        for r in results or []:
            err = r.get("error")
            if err:
                if err.get("status", 0) >= 500:
                    out["image_5xx"] += 1
                out["image_errors"][err["code"]] = out["image_errors"].get(err["code"], 0) + 1
            elif not r.get("cached"):
                out["uncached_images"] += 1

    def pct(xs, q):
        return round(statistics.quantiles(xs, n=100)[q - 1], 1) if len(xs) >= 2 else None

    every = [x for v in lat.values() for x in v]
    out.update(p50_ms=pct(every, 50), p99_ms=pct(every, 99),
               classes={k: {"n": len(v), "p50_ms": pct(v, 50), "p95_ms": pct(v, 95), "p99_ms": pct(v, 99)}
                        for k, v in lat.items()},
               uncached_images_per_s=round(out["uncached_images"] / (until - since), 2))
    return out


def _start(tree: Path, site: str, args, workdir: Path):
    env = dict(a.split("=", 1) for a in args.set)
    return start_service(site, 16, "sqlite", args.checkpoint, workdir, threads=args.threads, tree=tree, extra_env=env)


def soak(label: str, tree: Path, clients: int, plan: Plan, site: str, args, workdir: Path) -> dict:
    """One side at one level: warm-up, then the measured window; RSS sampled every second."""
    proc, base = _start(tree, site, args, workdir)
    try:
        for u in plan.cached:  # answered once: from now on these come from the cache
            requests.post(base + "/v1/alt-text", json={"images": [{"url": u}]}, timeout=120)
        rss_boot = rss_kb(proc.pid)
        log: list = []
        t0 = time.monotonic()
        warm_until, stop = t0 + args.warmup, t0 + args.warmup + args.seconds
        until = [stop]

        async def run() -> None:
            await asyncio.gather(*(_client(base, plan, log, until) for _ in range(clients)))

        done = asyncio.run_coroutine_threadsafe(run(), _loop().loop)
        rss, threads, model = [], [], []
        while not done.done():
            time.sleep(1)
            if warm_until <= time.monotonic() <= stop:
                if not model:
                    model.append(model_counters(base))
                rss.append(rss_kb(proc.pid))
                threads.append(worker_threads(proc.pid))
        model.append(model_counters(base))
        done.result()
        report = _tally(log, warm_until, stop)
        report.update(side=label, clients=clients, seconds=args.seconds, rss_kb_boot=rss_boot,
                      rss_kb_start=rss[0] if rss else None, rss_kb_end=rss[-1] if rss else None,
                      rss_kb_max=max(rss) if rss else None, worker_threads_max=max(threads) if threads else None,
                      load_average=round(os.getloadavg()[0], 1))
        if len(model) == 2 and None not in model and model[1][1] > model[0][1]:  # where the model's time went
            (s0, n0, i0), (s1, n1, i1) = model
            report["model_busy"] = round((s1 - s0) / (time.monotonic() - warm_until), 2)
            report["mean_batch"] = round((i1 - i0) / (n1 - n0), 1)
        return report
    finally:
        stop_service(proc)


def sigterm_run(label: str, tree: Path, clients: int, plan: Plan, site: str, args, workdir: Path) -> dict:
    """N clients; SIGTERM to the master after --sigterm-after seconds, the clients still sending until it exits.
    Each request is classed by when it was written (before or after the signal) and what came back."""
    proc, base = _start(tree, site, args, workdir)
    for u in plan.cached:
        requests.post(base + "/v1/alt-text", json={"images": [{"url": u}]}, timeout=120)
    log: list = []
    until = [float("inf")]

    async def run() -> None:
        await asyncio.gather(*(_client(base, plan, log, until) for _ in range(clients)))

    done = asyncio.run_coroutine_threadsafe(run(), _loop().loop)
    seen: set[int] = set()
    t_end = time.monotonic() + args.sigterm_after
    while time.monotonic() < t_end:
        seen.update(worker_pids(proc.pid))
        time.sleep(0.25)
    t_sig = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    exited = None
    while exited is None and time.monotonic() < t_sig + 300:
        seen.update(worker_pids(proc.pid))
        exited = proc.poll()
        time.sleep(0.05)
    t_exit = time.monotonic()
    left_at_exit = sorted(p for p in seen if alive(p))
    time.sleep(1)
    left_after_1s = sorted(p for p in seen if alive(p))
    named = {p: cmdline(p) for p in left_at_exit}
    until[0] = time.monotonic()  # the clients stop once the service has gone
    done.result(timeout=240)
    for p in left_after_1s:  # leave nothing behind for the next run
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    before = [x for x in log if x[2] < t_sig]
    after = [x for x in log if x[2] >= t_sig]

    def classes(rows: list) -> dict:
        out: dict = {}
        for kind, n, t_send, t_done, status, answer, outcome in rows:
            if outcome != "answered":
                key = outcome
            elif status == 200:
                images = [r.get("error", {}).get("code") for r in answer.get("results", [])]
                key = "answered (200)" if "shutting_down" not in images else "answered (200), some images " \
                                                                             "shutting_down"
            else:
                key = f"{status} {answer.get('error', {}).get('code', '')}".strip()
            out[key] = out.get(key, 0) + 1
        return out

    in_flight = [x for x in before if x[3] >= t_sig]
    return {"side": label, "clients": clients, "exit_code": exited, "stop_seconds": round(t_exit - t_sig, 1),
            "written_before_sigterm_answered_after": classes(in_flight),
            "written_after_sigterm": classes(after),
            "cut": sum(1 for x in in_flight if x[6] != "answered"),
            "longest_in_flight_answer_s": round(max((x[3] - t_sig for x in in_flight if x[6] == "answered"),
                                                    default=0), 1),
            "processes_alive_at_master_exit": [f"{p} {named[p]}" for p in left_at_exit],
            "processes_alive_1s_later": [f"{p} {cmdline(p)}" for p in left_after_1s]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=str(REPO.parent / "shared/data/flickr8k/images"))
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--warmup", type=float, default=15, help="seconds of the same load before measuring")
    ap.add_argument("--clients", default="50", help="client levels, comma-separated (e.g. 50,100,200)")
    ap.add_argument("--mix", default="60,20,10,10", help="percent of new URLs, uploads, cached URLs, bad input")
    ap.add_argument("--threads", type=int, default=64, help="--threads of alt-text serve (its default: 64)")
    ap.add_argument("--compare", metavar="DIR", default=None, help="also run this other checkout at each level")
    ap.add_argument("--sigterm", type=int, default=0, metavar="N", help="then a SIGTERM under N clients, each side")
    ap.add_argument("--sigterm-after", type=float, default=20, help="seconds of load before the SIGTERM")
    ap.add_argument("--set", action="append", default=[], metavar="VAR=VALUE",
                    help="an environment variable for the services of both sides (e.g. ALT_TEXT_QUEUE_SECONDS=60)")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--out", default="soak_server.json")
    args = ap.parse_args()

    src = Path(args.images)
    files = sorted(p.name for p in src.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    mix = [float(x) for x in args.mix.split(",")]
    levels = [int(x) for x in args.clients.split(",")]
    sides = [("this checkout", REPO)] + ([(f"checkout {args.compare}", Path(args.compare).resolve())]
                                         if args.compare else [])
    httpd, site = start_site(src)
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    runs, stops = [], []
    try:
        for i, clients in enumerate(levels):
            for label, tree in (sides if i % 2 == 0 else sides[::-1]):  # alternate which side goes first
                r = soak(label, tree, clients, Plan(src, files, site, mix), site, args, workdir)
                runs.append(r)
                print(f"  {clients} clients, {label}: {r['requests']} requests, {r['5xx']} 5xx "
                      f"({r['overloaded']} overloaded), {r['image_5xx']} images 5xx, {r['lost']} lost, "
                      f"p50 {r['p50_ms']} p99 {r['p99_ms']} ms, cached p50 {r['classes']['cached']['p50_ms']} ms, "
                      f"{r['uncached_images_per_s']} uncached img/s, RSS {(r['rss_kb_start'] or 0) // 1024} -> "
                      f"{(r['rss_kb_end'] or 0) // 1024} MB (max {(r['rss_kb_max'] or 0) // 1024}), "
                      f"{r['worker_threads_max']} threads, model busy {r.get('model_busy')}, mean batch "
                      f"{r.get('mean_batch')}, load average {r['load_average']}", flush=True)
        if args.sigterm:
            for label, tree in sides:
                r = sigterm_run(label, tree, args.sigterm, Plan(src, files, site, mix, seed=1), site, args, workdir)
                stops.append(r)
                print(f"  SIGTERM at {args.sigterm} clients, {label}: {json.dumps(r)}", flush=True)
    finally:
        httpd.shutdown()

    print(f"soak_server: mix {args.mix} (new URLs of 1-4 images, uploads, cached, bad), {args.seconds:.0f} s after "
          f"{args.warmup:.0f} s of warm-up, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"  {'clients':>7} {'side':<28} {'requests':>8} {'5xx':>5} {'lost':>5} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'cached p50':>10} {'uncached img/s':>14} {'RSS MB start/end/max':>21} {'threads':>7}")
    for r in runs:
        rss = "/".join(str((r[k] or 0) // 1024) for k in ("rss_kb_start", "rss_kb_end", "rss_kb_max"))
        print(f"  {r['clients']:>7} {r['side'][:28]:<28} {r['requests']:>8} {r['5xx'] + r['image_5xx']:>5} "
              f"{r['lost']:>5} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['classes']['cached']['p50_ms']:>10} "
              f"{r['uncached_images_per_s']:>14} {rss:>21} {r['worker_threads_max']:>7}")
    for r in stops:
        print(f"  SIGTERM, {r['clients']} clients, {r['side']}: stopped in {r['stop_seconds']} s (exit {r['exit_code']}); "
              f"in flight at the signal: {r['written_before_sigterm_answered_after']}, {r['cut']} cut; "
              f"sent after: {r['written_after_sigterm']}; alive at the master's exit: "
              f"{r['processes_alive_at_master_exit'] or 'none'}; 1 s later: {r['processes_alive_1s_later'] or 'none'}")
    Path(args.out).write_text(json.dumps({"runs": runs, "sigterm": stops, "args": vars(args)}, indent=2))


if __name__ == "__main__":
    main()
