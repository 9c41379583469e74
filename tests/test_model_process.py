"""The model stage in a child process (server/service/model_process.py), with the tiny shapes captioner: the same
outputs as the describer in this process, early answers one by one, a killed child replaced without losing a
request, start failures in one line, and the child gone when the service closes it."""
import os
import signal
import time

import numpy as np
import pytest
from conftest import COLOURS, SHAPES, make_shape_image

from server.describe import Describer
from server.service.batcher import BatchWorker
from server.service.model_process import ModelProcess, ModelProcessError


@pytest.fixture(scope="module")
def describer(shapes_checkpoint):
    return Describer.load(shapes_checkpoint, device="cpu", use_ocr=False)


@pytest.fixture(scope="module")
def images(describer):
    return [describer.prepare(make_shape_image(c, s)) for c in list(COLOURS)[:2] for s in list(SHAPES)[:3]]


@pytest.fixture
def process(shapes_checkpoint, describer):
    runner = ModelProcess(str(shapes_checkpoint), "cpu", 3, threads=1, expect=describer.model_namespace)
    yield runner
    runner.close()


def same(a, b) -> None:
    assert (a.caption, a.words) == (b.caption, b.words)
    assert a.raw_confidence == pytest.approx(b.raw_confidence, abs=1e-4)
    np.testing.assert_allclose(a.pooled, b.pooled, atol=1e-5)
    assert (a.probs is None) == (b.probs is None)
    if a.probs is not None:
        np.testing.assert_allclose(a.probs.numpy(), b.probs.numpy(), atol=1e-5)
    assert (a.ood is None) == (b.ood is None)


def kill(process: ModelProcess) -> None:
    """SIGKILL the child, as the OOM killer would, and wait until it is reaped: its threads end a moment after its
    main thread shows as a zombie, and until then the kernel does not report it exited."""
    os.kill(process.pid, signal.SIGKILL)
    process._proc.wait(10)


def gone(pid: int, within: float = 10.0) -> bool:
    """The process has exited (a zombie that its parent has not reaped yet counts: it runs nothing)."""
    deadline = time.monotonic() + within
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def test_the_child_gives_what_the_describer_gives_here(process, describer, images):
    expected = describer.run_model(images)
    got = process(images)
    assert len(got) == len(images)
    for a, b in zip(got, expected):
        same(a, b)
    assert all(a.caption for a in got)


def test_early_answers_arrive_once_each_before_the_batch_returns(process, describer, images):
    delivered = []
    got = process(images, lambda i, out: delivered.append((i, out)))
    assert sorted(i for i, _ in delivered) == list(range(len(images)))  # each once
    for i, out in delivered:
        same(out, got[i])
    for a, b in zip(got, describer.run_model(images)):
        same(a, b)


def test_a_larger_batch_gets_a_larger_buffer(process, describer, images):
    """The shared input buffer is made for the first batch's size; a larger one needs a new buffer, which the
    child maps by name: it must read the new batch, not the old one."""
    assert len(process(images[:2])) == 2
    got = process(images * 2)
    expected = describer.run_model(images * 2)
    for a, b in zip(got, expected):
        same(a, b)


def test_a_killed_child_fails_one_batch_at_most_and_the_worker_answers_every_image(process, describer, images):
    """SIGKILL (what the OOM killer sends) of the child between batches: the batching worker's images are all
    answered, by a new child (the failed batch's images are retried one by one)."""
    first = process.pid
    kill(process)
    worker = BatchWorker(process, max_batch=len(images), max_wait_ms=200, early=True)
    try:
        futures = [worker.submit(im) for im in images]
        got = [f.result(timeout=120) for f in futures]
    finally:
        worker.stop()
    for a, b in zip(got, describer.run_model(images)):
        same(a, b)
    assert process.pid != first and process.alive() and process.starts == 2


def test_a_child_killed_during_a_batch_fails_that_batch_in_one_line(process, images):
    """Stopped (SIGSTOP) so that the batch is surely in flight, then killed: the call raises ModelProcessError,
    and the next call has a new child."""
    from concurrent.futures import ThreadPoolExecutor

    first = process.pid
    os.kill(first, signal.SIGSTOP)
    with ThreadPoolExecutor(1) as pool:
        batch = pool.submit(process, images)
        time.sleep(0.3)
        assert not batch.done()  # waiting for the stopped child
        os.kill(first, signal.SIGKILL)
        with pytest.raises(ModelProcessError, match="exited while running a batch"):
            batch.result(timeout=30)
    assert gone(first)
    assert len(process(images)) == len(images) and process.pid != first


def test_close_ends_the_child(shapes_checkpoint, describer):
    runner = ModelProcess(str(shapes_checkpoint), "cpu", 3, threads=1)
    pid = runner.pid
    runner.close()
    assert gone(pid) and not runner.alive()


def test_a_checkpoint_that_does_not_load_is_one_line(tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelProcessError, match="could not load the model") as e:
        ModelProcess(str(bad), "cpu", 3, threads=1)
    assert "\n" not in str(e.value)


def test_another_model_than_the_services_is_refused(shapes_checkpoint):
    with pytest.raises(ModelProcessError, match="another model"):
        ModelProcess(str(shapes_checkpoint), "cpu", 3, threads=1, expect="some-other-model:beam3")


def test_the_child_does_not_inherit_the_ocr_thread_limit(monkeypatch, shapes_checkpoint):
    """The worker's OCR sets OMP_THREAD_LIMIT=1 for Tesseract; inherited, the model ran on one core of two."""
    from server.describe import ocr

    monkeypatch.setattr(ocr, "OMP_THREAD_LIMIT_BEFORE", None)
    monkeypatch.setenv("OMP_THREAD_LIMIT", "1")
    assert "OMP_THREAD_LIMIT" not in ModelProcess._environment()
    monkeypatch.setattr(ocr, "OMP_THREAD_LIMIT_BEFORE", "3")  # an operator's own limit stays
    assert ModelProcess._environment()["OMP_THREAD_LIMIT"] == "3"


def test_close_waits_for_the_batch_in_flight_and_refuses_later_ones(process, images):
    """close() during a batch (a worker stopping under load) must not free the buffer or the socket under it: the
    batch ends with its outputs, and a later call is refused as a stopped worker (a 503 for its request)."""
    from concurrent.futures import ThreadPoolExecutor

    from server.service.batcher import WorkerStopped

    pid = process.pid
    os.kill(pid, signal.SIGSTOP)  # so that the batch is surely in flight when close() begins
    with ThreadPoolExecutor(2) as pool:
        batch = pool.submit(process, images)
        time.sleep(0.3)
        closing = pool.submit(process.close, 30)
        time.sleep(0.3)
        assert not closing.done()  # it waits for the batch
        os.kill(pid, signal.SIGCONT)
        assert len(batch.result(timeout=60)) == len(images)
        closing.result(timeout=60)
    assert gone(pid)
    with pytest.raises(WorkerStopped):
        process(images)


def test_a_failed_restart_fails_batches_at_once_for_a_while(process, images, monkeypatch):
    """When the model cannot be loaded again (the file is gone, the GPU is full), each batch must not pay for
    another load: calls fail at once with the reason until the retry time."""
    monkeypatch.setitem(process.settings, "checkpoint", "/nonexistent/model.safetensors")
    kill(process)
    with pytest.raises(ModelProcessError, match="could not load"):
        process(images)
    t0 = time.monotonic()
    with pytest.raises(ModelProcessError, match="not running: the model process could not load"):
        process(images)
    assert time.monotonic() - t0 < 1.0  # no second load
    assert process.start_error and not process.alive()


def test_readyz_says_when_the_model_process_cannot_start(process, images, shapes_checkpoint, tmp_path, monkeypatch):
    """A load balancer must stop sending images to a worker whose model cannot be loaded again; once it loads,
    the worker is ready again."""
    from model import Captioner
    from server.service.app import create_app
    from server.service.config import Config

    app = create_app(Config(cache_path=str(tmp_path / "c.sqlite3"), load_model=False),
                     captioner=Captioner.load(shapes_checkpoint, device="cpu"))
    service = app.extensions["alt_text"]["service"]
    service.runner = process  # as create_app wires it for a worker that loads its model
    client = app.test_client()
    try:
        assert client.get("/readyz").status_code == 200
        monkeypatch.setitem(process.settings, "checkpoint", "/nonexistent/model.safetensors")
        kill(process)
        with pytest.raises(ModelProcessError):
            process(images)
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "could not load the model" in ready.get_json()["reason"]
        monkeypatch.setitem(process.settings, "checkpoint", str(shapes_checkpoint))
        process._retry_at = 0.0  # the retry time has come
        assert len(process(images)) == len(images)
        assert client.get("/readyz").status_code == 200
    finally:
        service.close()


def test_a_failing_delivery_does_not_leave_the_next_batch_reading_the_last_ones_answers(process, describer, images):
    """If delivering an early answer raises, the batch's other messages are still on the socket: the next batch
    must not read them as its own (it gets a new child instead)."""
    def deliver(i, out):
        raise RuntimeError("a delivery that fails")

    with pytest.raises(RuntimeError):
        process(images[:3], deliver)
    got = process(images[3:])
    for a, b in zip(got, describer.run_model(images[3:])):
        same(a, b)
