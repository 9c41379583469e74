"""Throughput and latency of the service under gunicorn on loopback (a benchmark, not a test).

Starts a local image site and `alt-text serve`, then drives it with N concurrent clients, each asking for one image
URL per request:
  - uncached, batched worker (max batch 16), in --rounds rounds; each round also measures the in-process batched
    rate of the describe pipeline (what the model can do without HTTP) on the same images, back to back, in an
    order that rotates from round to round, so a machine whose load drifts (other jobs) biases neither side; the
    in-process rate is the best of: 1 and cores/workers torch threads with torch's defaults, and the service's
    thread count with the service's CPU settings (server/service/tuning.py), each in a process of its own; the
    share of it the service reaches is the median of the rounds' ratios (target >= 80 %);
  - --compare DIR runs the service of another checkout (the code before a change) in the same rounds, on the same
    images, and --variant LABEL:VAR=VALUE,... this checkout with other settings (ALT_TEXT_* or OMP_* variables):
    before and after, measured side by side;
  - batch size 1 (the batching speed-up) and cached URLs (p50 latency), once.
Also the CPU each side spent per image (the service's worker processes and their model processes, "of it, model"
the latter; the measuring process in-process; "client CPU" the clients and the image site, on the same machine,
one asyncio thread (scripts/loadgen.py) so that the harness takes little from the service it measures): work
done, which the load of other jobs on the machine changes less than it changes the rates; and, from the service's
/metrics, the share of the wall time its model threads were running a batch ("model busy", the mean over the
workers) and the mean batch size, which tell where the rest of the gap to the in-process rate goes; "model waits":
how many cores' worth of time the model processes' threads were ready to run but waiting for a core (the kernel's
schedstat), the time the worker and the clients took from them.
Targets on a 2-core CPU: batching >= 2x the throughput of batch size 1 at 16 clients; cached p50 <= 10 ms.

    python scripts/bench_server.py --images ../shared/data/flickr8k/images --out bench_server.json
    python scripts/bench_server.py --rounds 5 --compare /tmp/before   # a copy of the tree before a change
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import drive, start_site  # noqa: E402  (the lean site and clients)

REPO = Path(__file__).resolve().parents[1]
WARM = 32  # images each service is warmed up with before the rounds: two full batches at 16 clients


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(site: str, max_batch: int, cache: str, checkpoint: str | None, workdir: Path, threads: int,
                  workers: int = 1, redis_url: str | None = None, tree: Path = REPO, extra_env: dict | None = None):
    """`alt-text serve` of the checkout ``tree`` (this one by default), with ``extra_env`` on top."""
    port = free_port()
    env = dict(os.environ, ALT_TEXT_TEST_ALLOW_LOOPBACK=site, ALT_TEXT_TESTING="1", ALT_TEXT_RATE_LIMIT="0",
               ALT_TEXT_MAX_BATCH=str(max_batch), ALT_TEXT_CACHE=cache,
               ALT_TEXT_CACHE_PATH=str(workdir / f"cache-{port}.sqlite3"))
    if checkpoint:
        env["ALT_TEXT_CHECKPOINT"] = checkpoint
    if redis_url:
        env["ALT_TEXT_REDIS_URL"] = redis_url
    env.update(extra_env or {})
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = open(workdir / f"gunicorn-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--port", str(port),
                             "--threads", str(threads), "--workers", str(workers)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=tree)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if requests.get(base + "/readyz", timeout=1).status_code == 200:
                return proc, base
        except requests.RequestException:  # not listening yet, or too busy loading to answer within a second
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the service did not start; see {log.name}")


def stop_service(proc: subprocess.Popen) -> None:
    """SIGTERM, then wait longer than the service's 10 s graceful timeout (a service that needs all of it must not
    fail the run). One that does not exit even then is killed and reported, and the run keeps its numbers."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        print(f"  warning: the service (pid {proc.pid}) did not exit within 30 s of SIGTERM; killed it and its "
              "workers", file=sys.stderr, flush=True)
        for pid in worker_pids(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        proc.kill()
        proc.wait(10)


def model_counters(base: str) -> tuple[float, float, float] | None:
    """The service's model seconds, batches and images so far (its /metrics), or None where it has no such metric:
    with them a round tells how much of its time the model thread worked and how full its batches were."""
    try:
        text = requests.get(base + "/metrics", timeout=10).text
    except requests.RequestException:
        return None

    def total(name: str) -> float | None:
        values = re.findall(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)
        return sum(map(float, values)) if values else None

    got = (total("alt_text_batch_seconds_sum"), total("alt_text_batch_seconds_count"),
           total("alt_text_batch_size_sum"))
    return None if None in got else got


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
            stop_service(proc)
        redis.terminate()
        redis.wait(5)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes so far (all their threads, ended ones included), from /proc."""
    total = 0.0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return total


def runqueue_seconds(pids: list[int]) -> float:
    """Seconds the processes' live threads have spent runnable but not running (waiting for a core), from
    /proc/PID/task/*/schedstat: for the model process, the time a core was taken from one of its threads, while its
    partner in each parallel region spins at the barrier for it."""
    total = 0
    for pid in pids:
        for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                total += int(stat.read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return total / 1e9


def is_model_process(pid: int) -> bool:
    """A worker's model process (server/service/model_process.py), not its OCR or resource-tracker children."""
    try:
        return b"server.service.model_process" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def worker_pids(master: int) -> list[int]:
    """gunicorn's worker processes (the master's children) and their descendants (the model processes)."""
    parents: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            ppid = int(re.search(r"\nPPid:\t(\d+)\n", status.read_text()).group(1))
        except (OSError, AttributeError):
            continue
        parents.setdefault(ppid, []).append(int(status.parent.name))
    out, todo = [], list(parents.get(master, []))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += parents.get(pid, [])
    return out


class InProcess:
    """The in-process rate at one torch thread count, measured in a process of its own that loads the pipeline
    once and lives for the whole run: thread settings changed within one process leave OpenMP's threads in odd
    states (2 threads after 1 ran ten times slower here), and the model is loaded once, not every round.
    ``tuned``: with the service's CPU settings too (server/service/tuning.py: malloc, channels-last, GIL interval), so
    that the service's share of it is the cost of HTTP and batching alone."""

    def __init__(self, checkpoint: str | None, threads: int, tuned: bool = False):
        self.threads, self.tuned = threads, tuned
        self.label = f"in-process, {threads} torch thread{'s' if threads > 1 else ''}" + (
            ", tuned like the service" if tuned else "")
        self.proc = subprocess.Popen([sys.executable, __file__, "--in-process-worker", str(threads),
                                      *(["--tuned"] if tuned else []),
                                      *(["--checkpoint", checkpoint] if checkpoint else [])],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)

    def rate(self, paths: list[Path]) -> dict:
        self.proc.stdin.write(json.dumps([str(p) for p in paths]) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("the in-process measurement failed (see its output above)")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)


def in_process_worker(threads: int, checkpoint: str | None, tuned: bool) -> None:
    """The other end of InProcess: one JSON list of image paths per line in, one result per line out."""
    sys.path.insert(0, str(REPO))
    if tuned:
        from server.service import tuning

        tuning.keep_freed_memory()  # before torch starts any thread
        tuning.hand_the_gil_back_sooner()  # one thread here: no effect, but the same settings
    import torch

    from server.describe import Describer
    from server.netsafe.images import read_image_file

    torch.set_num_threads(threads)
    describer, warm = Describer.load(checkpoint, device="cpu"), False
    if tuned:
        tuning.channels_last_on_cpu(describer.captioner)
    for line in sys.stdin:
        paths = json.loads(line)
        if not warm:
            describer.describe([read_image_file(p) for p in paths[:16]])  # a full batch, as the service's warm-up
            warm = True
        cpu0, t0 = cpu_seconds([os.getpid()]), time.perf_counter()
        for i in range(0, len(paths), 16):
            describer.describe([read_image_file(p) for p in paths[i:i + 16]])
        dt, cpu = time.perf_counter() - t0, cpu_seconds([os.getpid()]) - cpu0
        print(json.dumps({"images": len(paths), "seconds": round(dt, 2), "images_per_s": round(len(paths) / dt, 2),
                          "cpu_ms_per_image": round(1000 * cpu / len(paths), 1), "torch_threads": threads}),
              flush=True)


def parse_variant(text: str) -> tuple[str, dict]:
    """'LABEL:VAR=VALUE,VAR=VALUE' -> (label, {VAR: VALUE})."""
    label, _, assignments = text.partition(":")
    env = dict(a.split("=", 1) for a in assignments.split(",") if "=" in a)
    if not label or not env:
        raise SystemExit(f"--variant {text!r}: expected LABEL:VAR=VALUE[,VAR=VALUE]")
    return label, env


def compared_rounds(site: str, src: Path, files: list[str], args, workdir: Path) -> dict:
    """The batched service(s) and the in-process rate, back to back in each round on the same fresh images, in an
    order that rotates from round to round."""
    services = [("this checkout", REPO, {})]
    services += [(f"checkout {tree}", Path(tree).resolve(), {}) for tree in args.compare]
    services += [(label, REPO, env) for label, env in map(parse_variant, args.variant)]
    service_threads = max(1, (os.cpu_count() or 1) // args.workers)  # what alt-text serve gives a worker
    ceilings = [InProcess(args.checkpoint, n) for n in args.ceiling_threads]
    ceilings.append(InProcess(args.checkpoint, service_threads, tuned=True))
    running = []
    try:
        for label, tree, env in services:
            proc, base = start_service(site, 16, "none", args.checkpoint, workdir, threads=args.clients * 2,
                                       workers=args.workers, tree=tree, extra_env=env)
            running.append((label, proc, base))
            # warm-up: the first full batches allocate (and fault in) what later ones reuse
            drive(base, [f"http://{site}/{n}" for n in files[:WARM]], args.clients)
        sides = ["in-process"] + [label for label, _, _ in running]
        rounds = []
        for r in range(args.rounds):
            chunk = files[WARM + r * args.count: WARM + (r + 1) * args.count]
            for name in chunk:  # every side reads them from the page cache
                (src / name).read_bytes()
            order = sides[r % len(sides):] + sides[: r % len(sides)]
            got = {"load_avg": round(os.getloadavg()[0], 2), "order": order}
            for side in order:
                if side == "in-process":  # each way; the best of them is the ceiling
                    for c in ceilings:
                        got[c.label] = c.rate([src / name for name in chunk])
                    got[side] = max((got[c.label] for c in ceilings), key=lambda x: x["images_per_s"])
                    continue
                _, proc, base = next(x for x in running if x[0] == side)
                pids, own = worker_pids(proc.pid), cpu_seconds([os.getpid()])
                children = [p for p in pids if is_model_process(p)]
                cpu0, model0, child0 = cpu_seconds(pids), model_counters(base), cpu_seconds(children)
                waited0 = runqueue_seconds(children)
                got[side] = drive(base, [f"http://{site}/{n}" for n in chunk], args.clients)
                model1 = model_counters(base)
                if model0 and model1 and model1[1] > model0[1]:  # where the rest of the time went
                    got[side]["model_busy"] = round((model1[0] - model0[0]) / got[side]["seconds"] / args.workers,
                                                    3)  # the workers' mean
                    got[side]["mean_batch"] = round((model1[2] - model0[2]) / (model1[1] - model0[1]), 1)
                got[side]["cpu_ms_per_image"] = round(1000 * (cpu_seconds(pids) - cpu0) / len(chunk), 1)
                got[side]["model_process_cpu_ms_per_image"] = round(
                    1000 * (cpu_seconds(children) - child0) / len(chunk), 1)  # 0 with the model in a thread
                got[side]["model_waiting_cores"] = round((runqueue_seconds(children) - waited0)
                                                         / got[side]["seconds"], 2)  # 0 with the model in a thread
                got[side]["client_cpu_ms_per_image"] = round(1000 * (cpu_seconds([os.getpid()]) - own) / len(chunk),
                                                             1)
            rounds.append(got)
            print(f"  round {r + 1}: " + ", ".join(f"{side} {got[side]['images_per_s']} img/s" for side in sides)
                  + f" (load average {got['load_avg']})", flush=True)
    finally:
        for _, proc, _ in running:
            stop_service(proc)
        for c in ceilings:
            c.close()
    summary = {}
    sides = sides[:1] + [c.label for c in ceilings] + sides[1:]
    for side in sides:
        summary[side] = {k: round(statistics.median(rd[side][k] for rd in rounds), 2)
                         for k in ("images_per_s", "cpu_ms_per_image")}
        if not side.startswith("in-process"):
            summary[side]["share_of_in_process"] = round(statistics.median(
                rd[side]["images_per_s"] / rd["in-process"]["images_per_s"] for rd in rounds), 3)
            summary[side]["p50_ms"] = round(statistics.median(rd[side]["p50_ms"] for rd in rounds), 1)
            for k in ("client_cpu_ms_per_image", "model_process_cpu_ms_per_image"):
                summary[side][k] = round(statistics.median(rd[side][k] for rd in rounds), 1)
            summary[side]["model_waiting_cores"] = round(statistics.median(
                rd[side]["model_waiting_cores"] for rd in rounds), 2)
            for k in ("model_busy", "mean_batch"):
                if all(k in rd[side] for rd in rounds):
                    summary[side][k] = round(statistics.median(rd[side][k] for rd in rounds), 3)
    return {"sides": sides, "rounds": rounds, "median": summary}


def main() -> None:
    if sys.argv[1:2] == ["--in-process-worker"]:  # InProcess's measuring process
        checkpoint = sys.argv[sys.argv.index("--checkpoint") + 1] if "--checkpoint" in sys.argv else None
        return in_process_worker(int(sys.argv[2]), checkpoint, "--tuned" in sys.argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=str(REPO.parent / "shared/data/flickr8k/images"),
                    help="a directory of JPEG/PNG images to serve (default: Flickr8k beside the repo)")
    ap.add_argument("--count", type=int, default=128, help="distinct images per uncached run (and per round)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the batched comparison with the in-process rate")
    ap.add_argument("--compare", metavar="DIR", action="append", default=[],
                    help="also run the service of this other checkout in the rounds (repeatable)")
    ap.add_argument("--variant", action="append", default=[], metavar="LABEL:VAR=VALUE,...",
                    help="also run this checkout with these environment variables in the rounds (repeatable)")
    ap.add_argument("--ceiling-threads", default="",
                    help="torch thread counts to measure the in-process rate at with torch's defaults, "
                         "comma-separated (default: 1 and the cores divided by the workers); it is also measured "
                         "with the service's settings; the best is the ceiling")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1, help="gunicorn processes of the service")
    ap.add_argument("--replicas", type=int, default=1,
                    help="also run this many instances sharing one redis-server, next to one instance")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--out", default="bench_server.json")
    args = ap.parse_args()

    args.ceiling_threads = sorted({int(n) for n in args.ceiling_threads.split(",") if n.strip()} or
                                  {1, max(1, (os.cpu_count() or 1) // args.workers)})
    src = Path(args.images)
    files = sorted(p.name for p in src.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    need = WARM + (args.rounds + 2) * args.count
    if len(files) < need:
        raise SystemExit(f"{src}: need at least {need} images, found {len(files)}")
    httpd, site = start_site(src)
    workdir = Path(tempfile.mkdtemp(prefix="bench-server-"))
    urls = [f"http://{site}/{name}" for name in files]
    results = {}
    load_before = os.getloadavg()
    try:
        compared = compared_rounds(site, src, files, args, workdir)
        by_rate = sorted(compared["rounds"], key=lambda rd: rd["this checkout"]["images_per_s"])
        results["batched (max batch 16)"] = by_rate[len(by_rate) // 2]["this checkout"]  # the median round's
        rest = urls[WARM + args.rounds * args.count:]  # images no round has used
        proc, base = start_service(site, 1, "none", args.checkpoint, workdir, threads=args.clients * 2,
                                   workers=args.workers)
        try:
            drive(base, rest[:4], 4)  # warm-up (first forward passes allocate)
            results["batch size 1"] = drive(base, rest[: args.count], args.clients)
        finally:
            stop_service(proc)
        if args.replicas > 1:
            results[f"{args.replicas} replicas + Redis, batched"] = replicas_run(
                site, args, workdir, rest[args.count : 2 * args.count])
        proc, base = start_service(site, 16, "sqlite", args.checkpoint, workdir, threads=args.clients * 2)
        try:
            warm = urls[:32]
            drive(base, warm, args.clients)
            results["cached, 1 client"] = drive(base, warm * 4, 1)
            results[f"cached, {args.clients} clients"] = drive(base, warm * 8, args.clients)
        finally:
            stop_service(proc)
    finally:
        httpd.shutdown()

    b, one = results["batched (max batch 16)"], results["batch size 1"]
    cached = results["cached, 1 client"]
    med = compared["median"]
    summary = {"clients": args.clients, "workers": args.workers, "runs": results,
               "batching_speedup": round(b["images_per_s"] / one["images_per_s"], 2),
               "in_process_images_per_s": med["in-process"]["images_per_s"],
               "in_process_torch_threads": args.ceiling_threads,
               "service_share_of_in_process": med["this checkout"]["share_of_in_process"],
               "compared": compared,
               "cached_p50_ms": cached["p50_ms"],
               "cached_p50_ms_under_load": results[f"cached, {args.clients} clients"]["p50_ms"],
               "cpu_count": os.cpu_count(), "load_avg_before": load_before, "load_avg_after": os.getloadavg()}
    print(f"bench_server: {args.clients} concurrent clients, one image URL per request, gunicorn on loopback, "
          f"{args.workers} worker(s), {os.cpu_count()} cores, load average {load_before[0]:.1f} -> "
          f"{summary['load_avg_after'][0]:.1f}")
    print(f"  batched, median of {args.rounds} rounds (each side on the same images in each round):")
    width = max(len(side) for side in compared["sides"])
    print(f"  {'side':<{width}} {'img/s':>8} {'share':>7} {'p50 ms':>8} {'CPU ms/img':>11} {'of it, model':>13} "
          f"{'client CPU':>11} {'model busy':>11} {'mean batch':>11} {'model waits':>12}")
    for side in compared["sides"]:
        m = med[side]
        share = m.get("share_of_in_process", m["images_per_s"] / med["in-process"]["images_per_s"])
        share = f"{100 * share:.0f} %"
        name = side if side != "in-process" else "in-process pipeline (the best)"
        busy = f"{100 * m['model_busy']:.0f} %" if "model_busy" in m else ""
        print(f"  {name:<{width}} {m['images_per_s']:>8} {share:>7} {m.get('p50_ms', ''):>8} "
              f"{m['cpu_ms_per_image']:>11} {m.get('model_process_cpu_ms_per_image', ''):>13} "
              f"{m.get('client_cpu_ms_per_image', ''):>11} {busy:>11} {m.get('mean_batch', ''):>11} "
              f"{m.get('model_waiting_cores', ''):>12}")
    print(f"  {'run':<24} {'requests':>8} {'ok':>5} {'img/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for label, r in results.items():
        print(f"  {label:<24} {r['requests']:>8} {r['ok']:>5} {r['images_per_s']:>8} {r['p50_ms']:>8} {r['p95_ms']:>8}")
    print(f"  in-process describe pipeline, batched: {summary['in_process_images_per_s']} img/s; the service reaches "
          f"{100 * summary['service_share_of_in_process']:.0f} % of it (median of the rounds' ratios; target >= 80 %)")
    print(f"  batching speed-up: {summary['batching_speedup']}x (target >= 2x); "
          f"cached p50: {summary['cached_p50_ms']} ms (target <= 10 ms), "
          f"{summary['cached_p50_ms_under_load']} ms with {args.clients} clients at once")
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
