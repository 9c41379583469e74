"""Admission and drain (server/service/admission.py, AltTextService.begin_drain): requests answered without the
model never wait behind those that need it; beyond the backlog a request that needs the model gets a 503 with
Retry-After; a stop answers every request it admitted, and leaves no process of the service behind."""
from __future__ import annotations

import base64
import io
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from conftest import REPO, make_shape_image, running_service
from test_gunicorn import serve
from test_service import captioner, held_upstream, make_client  # noqa: F401 (fixtures)

sys.path.insert(0, str(REPO / "scripts"))
from bench_server import worker_pids  # noqa: E402

from server.service.admission import Admission, Overloaded


def png(colour="red", shape="square") -> bytes:
    buf = io.BytesIO()
    make_shape_image(colour, shape).save(buf, "PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- the rule ----------------------------------------------------------------------------------------------------

def test_admission_bounds_images_and_their_wait_and_says_when_to_come_back():
    a = Admission(backlog=20, queue_seconds=2.0)
    a.admit(30)  # an idle worker takes any request, however large
    with pytest.raises(Overloaded):
        a.admit(1)
    a.release(30)
    a.admit(16)
    a.admit(4)  # 20: the backlog, not over it
    with pytest.raises(Overloaded) as e:
        a.admit(1)
    assert e.value.retry_after == 1  # no batch measured yet
    a.release(4)
    a.release(16)
    a.admit(6)
    a.observe(1, 9.0)  # the first batch warms the model up: not a measure
    assert a.seconds_per_image is None
    a.observe(4, 1.0)  # a quarter of a second per image: 6 waiting are 1.5 s
    a.admit(2)  # 8 images: 2 s, the bound
    with pytest.raises(Overloaded) as e:
        a.admit(8)  # 16 images: 4 s
    assert e.value.retry_after == 2 and "4 s" in str(e.value)
    a.observe(1, 0.75)  # a small batch costs more per image: the pace is the recent batches' (1.75 s for 5)
    assert a.seconds_per_image == pytest.approx(0.35)
    a.release(6)
    a.release(2)
    assert (a.images, a.requests) == (0, 0)
    a.admit(100)  # idle again


# -- through the Flask test client, with the model held ---------------------------------------------------------

@pytest.fixture
def held_service(make_client):
    """An app whose model answers only when the test sets ``gate`` (its batches wait for it)."""
    gates = []

    def make(**overrides):
        app = make_client(rate_limit=0, **overrides).application
        service = app.extensions["alt_text"]["service"]
        gate, running = threading.Event(), threading.Event()
        run = service.worker.run

        def held(*args):
            running.set()
            gate.wait(60)
            return run(*args)

        service.worker.run = held
        gate.set()  # open until the test closes it
        gates.append(gate)
        return app, service, gate, running

    yield make
    for gate in gates:  # before make_client closes the services
        gate.set()


def _post(app, images):
    return app.test_client().post("/v1/alt-text", json={"images": images})


def _images_counted(app) -> float:
    text = app.test_client().get("/metrics").get_data(as_text=True)
    return sum(float(v) for v in re.findall(r'^alt_text_images_total\{outcome="[a-z]+"\} (\S+)$', text, re.MULTILINE))


def test_cached_and_invalid_images_are_answered_while_the_backlog_is_full(held_service):
    app, service, gate, running = held_service(backlog=2, max_batch=1)
    cached = {"data": b64(png("green", "circle"))}
    assert _post(app, [cached]).status_code == 200  # in the cache from now on
    gate.clear()
    waiting = ThreadPoolExecutor(2)
    first = waiting.submit(_post, app, [{"data": b64(png("red", "square"))}])
    assert running.wait(10)
    second = waiting.submit(_post, app, [{"data": b64(png("blue", "square"))}])
    for _ in range(500):  # the second is admitted and queued behind the first
        if service.admission.images == 2:
            break
        time.sleep(0.01)
    assert service.admission.images == 2
    answered = _images_counted(app)
    refused = _post(app, [{"data": b64(png("yellow", "circle"))}, cached])
    assert refused.status_code == 503 and refused.get_json()["error"]["code"] == "overloaded"
    assert int(refused.headers["Retry-After"]) >= 1
    assert _images_counted(app) == answered  # its cached image was looked up, not answered: not counted
    t0 = time.monotonic()
    hit = _post(app, [cached])
    bad = _post(app, [{"data": "not base64!"}, {"url": "http://10.0.0.1/a.png"}])
    assert time.monotonic() - t0 < 5 and not first.done() and not second.done()
    assert hit.status_code == 200 and hit.get_json()["results"][0]["cached"] is True
    assert [r["error"]["status"] for r in bad.get_json()["results"]] == [400, 403]
    assert _images_counted(app) == answered + 3  # the hit and the two errors
    gate.set()
    assert first.result(30).status_code == second.result(30).status_code == 200
    assert (service.admission.images, service.admission.requests) == (0, 0)
    assert _post(app, [{"data": b64(png("yellow", "circle"))}]).status_code == 200  # room again


def test_a_drain_answers_the_images_it_must_give_up_instead_of_cutting_their_requests(held_service, caplog):
    """The drain's end nears while one image is in the model's batch and another is queued behind it: the queued
    one is answered shutting_down, the batch's is answered when the batch ends; both requests get a 200."""
    app, service, gate, running = held_service(max_batch=1)
    gate.clear()
    pool = ThreadPoolExecutor(2)
    in_batch = pool.submit(_post, app, [{"data": b64(png("red", "circle"))}])
    assert running.wait(10)
    queued = pool.submit(_post, app, [{"data": b64(png("blue", "circle"))}])
    for _ in range(500):
        if service.admission.images == 2:
            break
        time.sleep(0.01)
    service.begin_drain(2.0)  # gives up at 1 s (half of it, at most ABANDON_BEFORE)
    assert _post(app, [{"data": b64(png("green", "square"))}]).status_code == 503  # new: refused
    answer = queued.result(10)
    assert answer.status_code == 200
    assert answer.get_json()["results"][0]["error"]["code"] == "shutting_down"
    gate.set()
    got = in_batch.result(10)
    assert got.status_code == 200 and got.get_json()["results"][0]["alt"]
    assert "Traceback" not in caplog.text


# -- through gunicorn ---------------------------------------------------------------------------------------------

def test_through_gunicorn_waiting_requests_hold_no_thread_the_cached_ones_need(shapes_checkpoint, tmp_path):
    """Two request threads and a backlog of four: four requests wait on a held upstream, and a fifth that needs
    the model is refused with a 503 and Retry-After; meanwhile twenty cached requests at once are all answered at
    once (with today's design, gthread's 64 threads, they queued behind those waiting)."""
    cached = {"data": b64(png("green", "circle"))}
    with held_upstream(png("red", "square")) as (origin, _, release), \
            running_service(tmp_path, threads=2, checkpoint=shapes_checkpoint, device="cpu", rate_limit=0,
                            backlog=4, cache_path=tmp_path / "c.sqlite3", test_allow_loopback=origin) as base:
        assert requests.post(base + "/v1/alt-text", json={"images": [cached]}, timeout=60).status_code == 200
        pool = ThreadPoolExecutor(30)
        slow = [pool.submit(requests.post, base + "/v1/alt-text",
                            json={"images": [{"url": f"http://{origin}/{i}.png"}]}, timeout=60) for i in range(4)]
        time.sleep(1.0)  # all four are on the network now, each on a thread of the backlog
        t0 = time.monotonic()
        hits = list(pool.map(lambda _: requests.post(base + "/v1/alt-text", json={"images": [cached]}, timeout=60),
                             range(20)))
        refused = requests.post(base + "/v1/alt-text", json={"images": [{"url": f"http://{origin}/x.png"}]},
                                timeout=60)
        assert time.monotonic() - t0 < 3 and not any(f.done() for f in slow)
        assert all(h.status_code == 200 and h.json()["results"][0]["cached"] for h in hits)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "overloaded"
        assert int(refused.headers["Retry-After"]) >= 1
        release.set()
        assert all(f.result().json()["results"][0]["alt"] for f in slow)


def _alive(pid: int) -> bool:
    try:
        return not re.search(r"\nState:\s+[ZX]", Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return False


def test_sigterm_drains_a_backlog_longer_than_gunicorns_default_and_leaves_no_process(shapes_checkpoint,
                                                                                       tmp_path):
    """SIGTERM while eight requests wait on an upstream that answers 11 s later (longer than the 10 s graceful timeout the service had):
    every one is answered with its alt text; a request sent meanwhile on a kept-alive connection gets a 503
    shutting_down; the master exits 0, and no process it started (worker, model process, resource tracker)
    is alive when it has."""
    with held_upstream(png("red", "square")) as (origin, _, release):
        proc, base, log = serve(tmp_path, CHECKPOINT=shapes_checkpoint, CACHE="none", TEST_ALLOW_LOOPBACK=origin,
                                FETCH_TIMEOUT=20, QUEUE_SECONDS=5)
        try:
            kept = requests.Session()
            assert kept.get(base + "/healthz", timeout=5).status_code == 200  # a kept-alive connection
            with ThreadPoolExecutor(8) as pool:
                futures = [pool.submit(requests.post, base + "/v1/alt-text",
                                       json={"images": [{"url": f"http://{origin}/{i}.png"}]}, timeout=60)
                           for i in range(8)]
                time.sleep(1.0)
                family = set(worker_pids(proc.pid))
                assert any(b"model_process" in Path(f"/proc/{p}/cmdline").read_bytes() for p in family)
                t0 = time.monotonic()
                threading.Timer(11.0, release.set).start()  # the images come 11 s after the SIGTERM
                proc.send_signal(signal.SIGTERM)
                time.sleep(0.5)
                late = kept.post(base + "/v1/alt-text", json={"images": [{"data": b64(png())}]}, timeout=30)
                answers = [f.result() for f in futures]
            assert late.status_code == 503 and late.json()["error"]["code"] == "shutting_down"
            assert late.headers["Retry-After"] == "1"
            assert [r.status_code for r in answers] == [200] * 8
            assert all(r.json()["results"][0]["alt"] for r in answers)
            assert time.monotonic() - t0 > 10  # answered after the old graceful timeout had passed
            while proc.poll() is None and time.monotonic() - t0 < 60:  # every process it starts meanwhile too
                family.update(worker_pids(proc.pid))  # (the resource tracker comes with the first batch)
                time.sleep(0.05)
            assert proc.returncode == 0
            assert [p for p in family if _alive(p)] == []
            log.seek(0)
            text = log.read()
            assert "Traceback" not in text and "still in flight" not in text
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()


def test_the_model_process_dies_with_a_worker_that_is_killed(shapes_checkpoint):
    """A worker killed outright (SIGKILL at the end of gunicorn's graceful timeout, or the OOM killer) takes its
    model process along, instead of leaving it to finish its batch after the master has gone."""
    code = ("import sys, time\n"
            "from server.service.model_process import ModelProcess\n"
            f"r = ModelProcess({str(shapes_checkpoint)!r}, 'cpu', 1, threads=1)\n"
            "print(r.pid, flush=True)\n"
            "time.sleep(120)\n")
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        child = int(worker.stdout.readline())
        assert _alive(child)
        worker.kill()
        worker.wait(10)
        for _ in range(100):
            if not _alive(child):
                break
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        if worker.poll() is None:
            worker.kill()
