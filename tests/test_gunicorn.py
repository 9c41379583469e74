"""The service as users run it: `alt-text serve` under gunicorn on loopback, images served by a local HTTP server.
Also the batching worker itself: concurrent submissions share forward passes and get the right answers."""
import base64
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest
import requests
from conftest import COLOURS, SHAPES, LoopbackHTTP, free_port, make_shape_image, model_processes, running_service

from model import Captioner
from server.describe import Describer
from server.service.batcher import BatchWorker

COMBOS = [(c, s) for c in COLOURS for s in SHAPES]


@pytest.fixture(scope="module")
def captioner(shapes_checkpoint):
    return Captioner.load(shapes_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def image_site(tmp_path_factory):
    """A loopback HTTP server with one PNG per colour/shape."""
    root = tmp_path_factory.mktemp("site")
    for c, s in COMBOS:
        make_shape_image(c, s).save(root / f"{c}-{s}.png")

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args):
            pass

    with LoopbackHTTP(Quiet) as http:
        yield http.host


def test_worker_batches_concurrent_images_and_answers_each_correctly(captioner):
    sizes = []
    worker = BatchWorker(captioner.caption, max_batch=8, max_wait_ms=50, on_batch=lambda n, s: sizes.append(n))
    try:
        images = [make_shape_image(c, s) for c, s in COMBOS]
        futures = [worker.submit(im) for im in images]
        got = [f.result(timeout=30).text for f in futures]
    finally:
        worker.stop()
    assert got == [c.text for c in captioner.caption(images)]
    assert max(sizes) > 1 and sum(sizes) == len(images)


def test_a_bad_image_fails_alone_not_its_batch(captioner):
    worker = BatchWorker(captioner.caption, max_batch=8, max_wait_ms=200)
    try:
        good = make_shape_image("red", "circle")
        futures = [worker.submit(x) for x in (good, "not an image", good, "nor this")]
        assert futures[0].result(timeout=30).text == futures[2].result(timeout=30).text
        for f in (futures[1], futures[3]):
            with pytest.raises(Exception):
                f.result(timeout=30)
        assert worker.submit(good).result(timeout=30).text  # the worker is still alive
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def gunicorn(shapes_checkpoint, image_site, tmp_path_factory):
    with running_service(tmp_path_factory.mktemp("log"), threads=32, checkpoint=shapes_checkpoint, device="cpu",
                         cache_path=tmp_path_factory.mktemp("cache") / "c.sqlite3",
                         test_allow_loopback=image_site, rate_limit=0, max_wait_ms=20) as base:
        yield base


def test_fifty_parallel_requests_are_all_answered_correctly(gunicorn, image_site, captioner):
    expected = {f"{c}-{s}": cap.text for (c, s), cap in
                zip(COMBOS, captioner.caption([make_shape_image(c, s) for c, s in COMBOS]))}

    def one(i):
        c, s = COMBOS[i % len(COMBOS)]
        if i % 2:  # half by URL from the local site, half as bytes
            spec = {"url": f"http://{image_site}/{c}-{s}.png"}
        else:
            buf = io.BytesIO()
            make_shape_image(c, s).save(buf, "PNG")
            spec = {"data": base64.b64encode(buf.getvalue()).decode()}
        r = requests.post(gunicorn + "/v1/alt-text", json={"images": [spec]}, timeout=60)
        return f"{c}-{s}", r.status_code, r.json()["results"][0]

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(one, range(50)))
    for name, status, result in answers:
        assert status == 200, result
        assert result["caption"] == expected[name], (name, result)
    batches = requests.get(gunicorn + "/metrics", timeout=5).text
    count = float(batches.split("alt_text_batch_size_count ")[1].split()[0])
    assert count < 50  # some requests shared a forward pass


def test_get_by_url_and_ssrf_refusal_through_gunicorn(gunicorn, image_site):
    ok = requests.get(gunicorn + "/v1/alt-text", params={"url": f"http://{image_site}/red-square.png"}, timeout=30)
    assert ok.status_code == 200 and ok.json()["results"][0]["caption"]
    again = requests.get(gunicorn + "/v1/alt-text", params={"url": f"http://{image_site}/red-square.png"}, timeout=30)
    assert again.json()["results"][0]["cached"] is True
    port = int(image_site.rsplit(":", 1)[1])
    other = f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}/x.png"  # loopback, not allow-listed
    r = requests.get(gunicorn + "/v1/alt-text", params={"url": other}, timeout=30)
    assert 400 <= r.status_code < 500 and "error" in r.json()["results"][0]


def test_cli_url_in_process_and_through_the_service(gunicorn, image_site, shapes_checkpoint, captioner, monkeypatch):
    import json

    from click.testing import CliRunner

    from server.cli import main

    monkeypatch.setenv("ALT_TEXT_TEST_ALLOW_LOOPBACK", image_site)
    monkeypatch.setenv("ALT_TEXT_TESTING", "1")
    good = f"http://{image_site}/blue-circle.png"
    missing = f"http://{image_site}/missing.png"
    private = "http://10.0.0.1/x.png"  # refused before any packet is sent
    want = Describer(captioner).describe([make_shape_image("blue", "circle")])[0]["alt"]
    for extra in (["--checkpoint", str(shapes_checkpoint)], ["--server", gunicorn]):
        r = CliRunner().invoke(main, ["url", "--json", *extra, good, missing, private])
        assert r.exit_code == 1, r.output
        out = json.loads(r.stdout)
        assert [o["input"] for o in out] == [good, missing, private]
        assert out[0]["alt"] == want and 0 < out[0]["confidence"] <= 1
        assert "404" in out[1]["error"]
        assert out[2]["error"]
        assert r.stderr.count("alt-text: ") == 2
    one = CliRunner().invoke(main, ["url", "--checkpoint", str(shapes_checkpoint), good])
    assert one.exit_code == 0 and one.output.strip() == want


def test_cli_url_reports_an_unreachable_service():
    from click.testing import CliRunner

    from server.cli import main

    r = CliRunner().invoke(main, ["url", "--server", f"http://127.0.0.1:{free_port()}", "http://a.example/x.png"])
    assert r.exit_code == 1 and "cannot reach the service" in r.output and "Traceback" not in r.output


def test_clients_read_the_published_limits(gunicorn):
    from server.client import DEFAULT_LIMITS, service_limits

    assert service_limits(gunicorn) == {"max_images": 16, "max_body_bytes": 20_000_000}
    assert service_limits("http://127.0.0.1:9") == DEFAULT_LIMITS  # nothing answers: the defaults


def test_metrics_add_up_across_workers(shapes_checkpoint, tmp_path):
    """Two gunicorn workers, many scrapes: every scrape reports the same total, whichever worker answers it."""
    import re

    buf = io.BytesIO()
    make_shape_image("green", "circle").save(buf, "PNG")
    body = {"images": [{"data": base64.b64encode(buf.getvalue()).decode()}]}
    with running_service(tmp_path, workers=2, checkpoint=shapes_checkpoint, device="cpu", cache="none",
                         rate_limit=0) as base:
        for _ in range(12):
            assert requests.post(base + "/v1/alt-text", json=body, timeout=60).status_code == 200
        totals = set()
        for _ in range(10):
            text = requests.get(base + "/metrics", timeout=10).text
            counts = re.findall(r'^alt_text_images_total\{outcome="[a-z]+"\} (\S+)$', text, re.MULTILINE)
            totals.add(sum(float(c) for c in counts))
        assert totals == {12.0}


def serve(log_dir: Path, **settings):
    """`alt-text serve --port P` on the CPU, in testing mode, configured by ALT_TEXT_<SETTING> variables, once
    /readyz answers: (process, base URL, log file). For the tests that signal the master themselves."""
    import os
    import subprocess
    import sys
    import time

    from conftest import REPO

    env = dict(os.environ, ALT_TEXT_DEVICE="cpu", ALT_TEXT_RATE_LIMIT="0", ALT_TEXT_TESTING="1",
               **{f"ALT_TEXT_{k}": str(v) for k, v in settings.items()})
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = open(log_dir / "gunicorn.log", "w+")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--port", str(port)], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if requests.get(base + "/readyz", timeout=1).status_code == 200:
                break
        except requests.RequestException:  # not listening yet, or still loading the model (the request waits)
            time.sleep(0.1)
    return proc, base, log


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_shutdown_lets_requests_in_flight_finish(shapes_checkpoint, tmp_path, signame):
    """SIGTERM (graceful) or SIGINT (Ctrl-C: gunicorn's quick shutdown, which does not wait for requests) with
    requests in flight (slow upstreams): each is answered with its alt text, none with an error, and the service
    exits as soon as they are (well within its graceful timeout). The app drains before it stops its model thread
    and fetch pool; it used to cancel them, and requests still in flight got internal errors."""
    import signal
    import time
    from http.server import BaseHTTPRequestHandler

    body = io.BytesIO()
    make_shape_image("red", "square").save(body, "PNG")

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self):
            time.sleep(1.5)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body.getvalue())))
            self.end_headers()
            self.wfile.write(body.getvalue())

        def log_message(self, *args):
            pass

    upstream = LoopbackHTTP(Slow)
    origin = upstream.host
    proc, base, log = serve(tmp_path, CHECKPOINT=shapes_checkpoint, CACHE="none", TEST_ALLOW_LOOPBACK=origin)
    try:
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(requests.post, base + "/v1/alt-text",
                                   json={"images": [{"url": f"http://{origin}/{i}.png"}]}, timeout=30)
                       for i in range(6)]
            time.sleep(0.5)  # all six are waiting on the slow upstream now
            children = model_processes(proc.pid)
            assert len(children) == 1  # the worker's model runs in a process of its own
            t0 = time.monotonic()
            proc.send_signal(getattr(signal, signame))
            answers = [f.result() for f in futures]
        assert [r.status_code for r in answers] == [200] * 6
        assert [r.json()["results"][0].get("error") for r in answers] == [None] * 6
        assert all(r.json()["results"][0]["alt"] for r in answers)
        proc.wait(15)
        assert time.monotonic() - t0 < 12 and proc.returncode == 0
        assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]  # it ended with its worker
        log.seek(0)
        text = log.read()
        assert "Traceback" not in text
        assert "Control socket listening" not in text  # replicas on one host would share one (see server/cli.py)
    finally:
        if proc.poll() is None:
            proc.kill()
        upstream.close()
        log.close()


def test_the_worker_waits_only_for_images_that_are_on_their_way():
    import time

    batches = []
    coming = [0]
    worker = BatchWorker(lambda items: [batches.append(list(items)) or i for i in items], max_batch=8,
                         max_wait_ms=2000, coming=lambda: coming[0])
    try:
        t0 = time.monotonic()
        assert worker.submit("alone").result(timeout=5) == "alone"
        assert time.monotonic() - t0 < 1.0  # nothing else coming: no 2 s wait
        coming[0] = 1  # another image is being decoded: the worker waits for it
        first = worker.submit("a")
        time.sleep(0.2)
        second = worker.submit("b")
        coming[0] = 0
        assert first.result(timeout=5) == "a" and second.result(timeout=5) == "b"
        assert batches[-1] == ["a", "b"]
    finally:
        worker.stop()


def test_the_worker_waits_for_the_clients_of_the_batch_it_just_answered():
    """Closed-loop clients: four are answered by a batch while four others queued behind it; the four answered come
    back 50 ms later. With a return wait they join the queued four; without, the half batches alternate."""
    import threading
    import time

    def run_with(return_wait: float) -> list[int]:
        sizes = []

        def run(items):
            time.sleep(0.4)  # the model's time for the batch: the return wait is a share of it
            sizes.append(len(items))
            return items

        submitted = [0]  # the first four start together: "coming" until all four are in
        worker = BatchWorker(run, max_batch=8, max_wait_ms=1000, coming=lambda: submitted[0] < 4,
                             return_wait=return_wait)

        def client(name: str, delay: float) -> None:
            time.sleep(delay)
            for _ in range(3):  # ask, wait for the answer, come back 50 ms later
                future = worker.submit(name)
                submitted[0] += 1
                future.result(timeout=10)
                time.sleep(0.05)

        try:
            threads = [threading.Thread(target=client, args=(f"c{i}", 0 if i < 4 else 0.1)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(20)
        finally:
            worker.stop()
        return sizes

    assert run_with(0.0)[:4] == [4, 4, 4, 4]  # the first four, then the four that queued behind them, in turn
    waited = run_with(0.25)  # 100 ms of waiting covers the 50 ms return
    assert waited[:3] == [4, 8, 8], waited


def test_early_answers_reach_their_requests_before_the_batch_ends_and_survive_a_later_failure():
    """``early=True``: an image delivered by ``run`` is answered at once, while the batch goes on; if the batch then
    fails, the answered image keeps its answer and only the others are retried one by one."""
    delivered, go = threading.Event(), threading.Event()
    calls = []

    def run(items, deliver):
        calls.append(list(items))
        if len(items) == 1:  # the one-by-one retry
            return [f"alone {items[0]}"]
        deliver(0, f"early {items[0]}")
        delivered.set()
        go.wait(30)
        if "boom" in items:
            raise RuntimeError("a bad image in the batch")
        return [f"late {i}" for i in items]

    worker = BatchWorker(run, max_batch=3, max_wait_ms=200, coming=lambda: 3 - len(submitted), early=True)
    submitted: list = []
    try:
        for x in "abc":
            submitted.append(worker.submit(x))
        assert delivered.wait(10)
        assert submitted[0].result(timeout=5) == "early a"  # answered while the batch still runs
        assert not submitted[1].done() and not submitted[2].done()
        go.set()
        assert [f.result(timeout=5) for f in submitted[1:]] == ["late b", "late c"]

        delivered.clear()
        go.clear()
        submitted = []
        for x in ["d", "boom", "e"]:
            submitted.append(worker.submit(x))
        assert delivered.wait(10)
        go.set()
        assert [f.result(timeout=5) for f in submitted] == ["early d", "alone boom", "alone e"]
        assert calls[-2:] == [["boom"], ["e"]]  # "d" was answered: not run again
    finally:
        worker.stop()


def test_service_limits_ignore_answers_that_are_not_limits(monkeypatch):
    from server import client

    class Answer:
        status_code = 200

        def json(self):
            return ["not", "limits"]

    monkeypatch.setattr(client.requests, "get", lambda *a, **kw: Answer())
    assert client.service_limits("http://example.invalid") == client.DEFAULT_LIMITS


def test_an_over_limit_body_is_a_413_through_gunicorn_with_or_without_a_length(gunicorn):
    """Declared too long (Content-Length) or found too long while read (chunked): the same 413 JSON error, from
    the one check that runs before the rate limiter reads the body."""
    big = b'{"images": [{"data": "' + b"A" * 20_000_001 + b'"}]}'

    def chunks():
        for i in range(0, len(big), 1 << 20):
            yield big[i:i + (1 << 20)]

    for body in (big, chunks()):
        r = requests.post(gunicorn + "/v1/alt-text", data=body, headers={"Content-Type": "application/json"},
                          timeout=60)
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "body_too_large"


def test_a_stopping_worker_captions_what_it_was_given_and_refuses_more():
    """stop() (at worker exit) lets the images already queued be captioned: their requests are still waiting."""
    import time

    from server.service.batcher import WorkerStopped

    busy, go = threading.Event(), threading.Event()

    def run(items):
        busy.set()
        go.wait(30)
        return [f"said {i}" for i in items]

    worker = BatchWorker(run, max_batch=1, max_wait_ms=0)
    first = worker.submit("a")
    assert busy.wait(10)  # the worker is in its first forward pass; these queue behind it
    queued = [worker.submit(x) for x in "bcd"]
    stopper = threading.Thread(target=worker.stop, kwargs={"timeout": 30})
    stopper.start()
    for _ in range(1000):
        if worker._stopped.is_set():
            break
        time.sleep(0.01)
    with pytest.raises(WorkerStopped):
        worker.submit("late")
    go.set()
    stopper.join(30)
    assert [f.result(timeout=5) for f in [first, *queued]] == ["said a", "said b", "said c", "said d"]
    assert not worker._thread.is_alive()


def test_a_model_process_that_cannot_load_stops_the_service_with_one_line(shapes_checkpoint, tmp_path):
    """The worker's model process fails to load (here: CUDA asked for on a machine without it): the service stops
    at start with that reason in one line and gunicorn's "failed to boot", not a traceback per worker."""
    import os
    import subprocess
    import sys

    import torch

    from conftest import REPO

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    env = dict(os.environ, ALT_TEXT_CHECKPOINT=str(shapes_checkpoint), ALT_TEXT_DEVICE="cuda",
               ALT_TEXT_CACHE="none")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    r = subprocess.run([sys.executable, "-m", "server.cli", "serve", "--port", str(free_port())], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "the model process could not load the model" in out and "Traceback" not in out, out[-3000:]
