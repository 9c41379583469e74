"""The model stage of a service process in a child process of its own, with its own interpreter and GIL.

Why: the model's Python runs between its torch operations, dozens of times per beam-search step, and needs the GIL
each time; in a gunicorn worker the request threads (HTTP, JSON, fetching, decoding, the evidence) hold it the rest
of the time, and a single pure-Python thread beside the pipeline slows it several-fold (docs/benchmarks.md). In a
child the model waits for no request thread; only the prepared batch and the outputs cross between the two.

The prepared batch (16 images are 10 MB of floats) goes through shared memory, and only small messages through the
socket: a 10 MB message is written in many pieces, and between any two of them the worker's thread must take the GIL
back from the request threads. An image's output (caption, pooled features, ImageNet probabilities: 10 KB) comes back
as one message, which the child writes without waiting for the worker to read it.

The batching worker (:class:`~server.service.batcher.BatchWorker`) calls a :class:`ModelProcess` exactly as it calls
``Describer.run_model`` (``run(images, deliver)``), from its one thread; a lock held for the whole batch keeps
``close`` from freeing the buffer or the socket under it. A child that dies (killed, out of memory) fails the batch
it was running; the next call starts a new one, so the worker's one-by-one retry of a failed batch answers its
images. A child that cannot be started again (the file is gone, the GPU is full) fails batches at once for
RETRY_AFTER seconds, and /readyz says why. The child never outlives its worker: it asks the kernel for SIGKILL when
the thread that started it ends (PR_SET_PDEATHSIG), so a worker killed at the end of a stop takes it along. Children
are started by a thread of the ModelProcess's own, which lives until ``close``: the batching worker's thread, which
starts the replacement of a dead child, may end first.
"""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

from .batcher import WorkerStopped

log = logging.getLogger(__name__)

START_TIMEOUT = 90.0  # seconds a child may take to load the model; under gunicorn's 120 s boot timeout
STOP_TIMEOUT = 5.0
RETRY_AFTER = 10.0  # seconds after a failed start before another is tried (meanwhile batches fail at once)
ROOT = Path(__file__).resolve().parents[2]  # where ``server`` and ``model`` are imported from


class ModelProcessError(RuntimeError):
    """The child failed to start, died, or raised while running a batch (its message says which)."""


class ModelProcess:
    """``run(images, deliver=None) -> outputs`` of ``Describer.run_model``, run in a child process.

    ``checkpoint``, ``device`` and ``beam_size`` are those of the parent's describer (the child loads the same
    model, without OCR, which the request threads run); ``threads`` is the child's torch thread count (0: torch's
    default). ``expect`` (the parent describer's ``model_namespace``) must be the child's: a checkpoint replaced on
    disk between the two loads would otherwise cache one model's answers under the other's name. ``wait=False``
    starts the child and returns: the caller loads its own copy meanwhile, then calls ``wait_ready``.

    The child is a plain ``python -m server.service.model_process`` with a socket to its parent, not a
    multiprocessing process: spawn would import the worker's main module again (torch with it, before the child
    could set its threads), and the environment is the worker's own but for OMP_THREAD_LIMIT, which the worker's OCR
    lowered to 1 for Tesseract (inherited, it ran the model on one core)."""

    def __init__(self, checkpoint: str | None, device: str | None, beam_size: int, threads: int = 0,
                 expect: str | None = None, start_timeout: float = START_TIMEOUT, wait: bool = True):
        checkpoint = str(Path(checkpoint).resolve()) if checkpoint else None  # the child's working directory differs
        self.settings = {"checkpoint": checkpoint, "device": device, "beam_size": beam_size, "threads": threads}
        self.expect, self.start_timeout = expect, start_timeout
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._pending = None  # (proc, conn) launched, not yet ready
        self._lock = threading.Lock()  # held for a whole batch (or start): close() waits for it
        self._closed = False
        self._broken = False  # its socket failed: dead or dying, whatever poll() says yet
        self._shm, self._batch = None, None  # the shared input buffer and a tensor over it
        self.starts = 0
        self.device = None  # where the child runs the model, as it says when ready
        self.start_error: str | None = None  # why the last start failed (until one succeeds)
        self._retry_at = 0.0  # after a failed start, calls fail at once until then (no model load per image)
        # the thread that starts every child: a child dies with the thread that started it (die_with_parent)
        self._starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alt-text-model-starter")
        self._launch()
        if wait:
            self.wait_ready()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and not self._broken and self._proc.poll() is None

    @staticmethod
    def _environment() -> dict:
        from ..describe.ocr import OMP_THREAD_LIMIT_BEFORE

        env = dict(os.environ)
        env.pop("OMP_THREAD_LIMIT", None)
        if OMP_THREAD_LIMIT_BEFORE is not None:
            env["OMP_THREAD_LIMIT"] = OMP_THREAD_LIMIT_BEFORE
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the child counts nothing: the worker's metrics are the truth
        return env

    def _launch(self) -> None:
        self._starter.submit(self._spawn).result()

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            proc = subprocess.Popen([sys.executable, "-m", "server.service.model_process", str(theirs.fileno()),
                                     str(os.getpid())],
                                    pass_fds=(theirs.fileno(),), env=self._environment(), stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        conn = Connection(ours.detach())
        self._pending = (proc, conn)
        try:
            conn.send(self.settings)
        except OSError:
            pass  # it died at once: wait_ready says so

    def wait_ready(self, expect: str | None = None) -> None:
        """Wait for the launched child to load the model; ModelProcessError (one line) if it does not, or if it
        loaded another than ``expect`` (a ``model_namespace``; kept for the restarts)."""
        if expect is not None:
            self.expect = expect
        proc, conn = self._pending
        self._pending = None
        try:
            if not conn.poll(self.start_timeout):
                raise ModelProcessError(f"the model process did not start within {self.start_timeout:.0f} s")
            kind, detail = conn.recv()
        except (EOFError, OSError):
            try:
                code = proc.wait(5)
            except subprocess.TimeoutExpired:
                code = None
            kind, detail = "error", f"the model process exited while starting (exit code {code})"
        except ModelProcessError as e:
            kind, detail = "error", str(e)
        if kind == "ready":
            namespace, self.device = detail
            if self.expect is not None and namespace != self.expect:
                kind, detail = "error", (f"the model process loaded another model ({namespace}) than the service "
                                         f"({self.expect}); was the checkpoint replaced while starting?")
        if kind != "ready":
            _end(proc, conn)
            self.start_error, self._retry_at = detail, time.monotonic() + RETRY_AFTER
            raise ModelProcessError(detail)
        self._proc, self._conn, self._broken = proc, conn, False
        self.starts += 1
        self.start_error = None
        log.info("model process %d ready", proc.pid)

    def __call__(self, images: list, deliver: Callable | None = None) -> list:
        with self._lock:  # the whole batch: close() must not free the buffer or the socket under it
            if self._closed:
                raise WorkerStopped("the model process has been stopped")
            if not self.alive():  # it died after the last batch, or the last start failed
                if self._proc is not None:
                    log.warning("the model process %d has exited (code %s); starting another", self._proc.pid,
                                self._proc.returncode)
                    _end(self._proc, self._conn)
                    self._proc = self._conn = None
                    self._free_input()  # a new child, a new buffer
                if time.monotonic() < self._retry_at:
                    raise ModelProcessError(f"the model process is not running: {self.start_error}")
                self._launch()
                self.wait_ready()
            return self._run(images, deliver)

    def _run(self, images: list, deliver: Callable | None) -> list:
        import torch

        conn = self._conn
        batch = self._input(len(images), tuple(images[0].shape), images[0].dtype)
        torch.stack(images, out=batch[: len(images)])
        try:
            conn.send(("run", self._shm.name, tuple(batch.shape), str(batch.dtype).removeprefix("torch."),
                       len(images), deliver is not None))
            outputs: list = [None] * len(images)
            while True:
                kind, *rest = conn.recv()
                if kind == "one":  # one image's output, before the batch ends (early answers)
                    i, out = rest
                    outputs[i] = _tensors(out)
                    deliver(i, outputs[i])
                elif kind == "end":
                    return [_tensors(out) for out in rest[0]] if rest[0] is not None else outputs
                else:  # "error": the batch raised in the child, which goes on serving
                    raise ModelProcessError(rest[0])
        except (EOFError, OSError) as e:  # the child died mid-batch: this batch fails, the next call restarts it
            self._broken = True
            raise ModelProcessError(f"the model process exited while running a batch ({type(e).__name__})") from None
        except BaseException:  # e.g. deliver raised: the batch's remaining messages are unread, so this child's
            self._broken = True  # stream cannot be trusted for the next batch; a new child starts clean
            raise

    def _input(self, n: int, shape: tuple, dtype):
        """A tensor over shared memory that holds at least ``n`` images of this shape and dtype (made anew, and
        the old one unlinked, when a batch does not fit: the child maps the new one by name with the next batch)."""
        import torch

        batch = self._batch
        if batch is not None and batch.shape[0] >= n and tuple(batch.shape[1:]) == shape and batch.dtype == dtype:
            return batch
        capacity = max(n, batch.shape[0] if batch is not None else 0)
        self._free_input()
        size = capacity * torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
        self._shm = SharedMemory(create=True, size=size)
        try:  # reserve the pages now: a full /dev/shm would otherwise kill the worker (SIGBUS) at the first write
            if hasattr(os, "posix_fallocate") and hasattr(self._shm, "_fd"):
                os.posix_fallocate(self._shm._fd, 0, size)
        except OSError as e:
            self._free_input()
            raise ModelProcessError(f"no room for a {size / 1e6:.0f} MB batch in shared memory (/dev/shm: "
                                    f"{e.strerror}); give the container more (docker run --shm-size)") from None
        self._batch = torch.frombuffer(self._shm.buf, dtype=dtype).view(capacity, *shape)
        return self._batch

    def _free_input(self) -> None:
        if self._shm is not None:
            self._batch = None  # the tensor's hold on the buffer, before it is closed
            self._shm.close()
            self._shm.unlink()
            self._shm = None

    def close(self, timeout: float = STOP_TIMEOUT) -> None:
        """Refuse further batches; let the batch in flight end (``timeout`` seconds at most), then end the child.
        A batch still running after that is cut short: the child is killed (its caller gets ModelProcessError) and
        the buffer it may still write is left to the resource tracker."""
        self._closed = True
        if self._lock.acquire(timeout=timeout):
            try:
                if self._pending is not None:
                    _end(*self._pending, timeout)
                    self._pending = None
                if self._proc is not None:
                    _end(self._proc, self._conn, timeout)
                    self._proc = self._conn = None
                self._free_input()
            finally:
                self._lock.release()
        elif self._proc is not None:
            log.warning("the model process %d was still running a batch after %.0f s; killing it", self._proc.pid,
                        timeout)
            self._proc.kill()
        self._starter.shutdown(wait=False)


def _plain(out):
    """A ModelOutput with its probabilities as a numpy array: a torch tensor sent through a multiprocessing pipe
    moves to shared memory of its own and its file descriptor is handed over by a round trip, for every image."""
    import dataclasses

    return out if out.probs is None else dataclasses.replace(out, probs=out.probs.numpy())


def _tensors(out):
    """The ModelOutput as the describer makes it (the other way from ``_plain``)."""
    import dataclasses

    import torch

    return out if out.probs is None else dataclasses.replace(out, probs=torch.from_numpy(out.probs))


def _end(proc: subprocess.Popen, conn: Connection, timeout: float = STOP_TIMEOUT) -> None:
    try:
        conn.send(None)
    except (OSError, ValueError):
        pass
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    conn.close()


def _attach(name: str) -> SharedMemory:
    """The parent's buffer, which the parent alone unlinks: Python < 3.13 registers an attached segment with this
    process's resource tracker too, which would unlink it when this process ends (bpo-38119)."""
    try:
        return SharedMemory(name=name, track=False)
    except TypeError:
        from multiprocessing import resource_tracker

        shm = SharedMemory(name=name)
        resource_tracker.unregister(shm._name, "shared_memory")
        return shm


def die_with_parent(parent: int | None) -> None:
    """Linux: be killed when the parent's thread that started this process ends (the worker exits, or is killed
    at the end of a stop); otherwise this process would finish its batch, and outlive the service's master. Exits
    at once if the parent is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            return
    if parent is not None and os.getppid() != parent:
        os._exit(0)


def main(fd: int, parent: int | None = None) -> None:
    """The child: get its settings, load the describer, say "ready" with its namespace, then run each batch it is
    sent until it gets None or its socket closes (the worker exited, however it ended)."""
    import signal

    die_with_parent(parent)
    # Ctrl-C and a service manager's SIGTERM reach the whole process group: the worker drains its requests and then
    # closes this process; until then it must keep serving the batches of those requests.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(fd)
    try:
        settings = conn.recv()
    except (EOFError, OSError):
        return
    logging.basicConfig(level=logging.INFO, format="[model process %(process)d] %(levelname)s %(name)s: %(message)s")
    from . import tuning

    tuning.keep_freed_memory()  # before torch starts any thread
    import torch

    if settings["threads"] > 0:
        torch.set_num_threads(settings["threads"])
    try:
        from ..describe import Describer

        describer = Describer.load(settings["checkpoint"], device=settings["device"],
                                   beam_size=settings["beam_size"], use_ocr=False)
        tuning.channels_last_on_cpu(describer.captioner)
    except BaseException as e:  # noqa: BLE001 - whatever it is, the parent gets one line, not a hung socket
        _reply(conn, ("error", f"the model process could not load the model: {type(e).__name__}: {e}"))
        return
    tuning.freeze_loaded_objects()
    _reply(conn, ("ready", (describer.model_namespace, str(describer.captioner.device))))
    shm = None
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        _, name, shape, dtype, n, stream = msg
        images = []
        try:
            if shm is None or shm.name != name:  # the parent made a new buffer (a larger batch): map that one
                if shm is not None:
                    shm.close()
                    shm = None
                shm = _attach(name)
            images = list(torch.frombuffer(shm.buf, dtype=getattr(torch, dtype)).view(*shape)[:n])
            if stream:
                describer.run_model(images, lambda i, out: conn.send(("one", i, _plain(out))))
                conn.send(("end", None))
            else:
                conn.send(("end", [_plain(out) for out in describer.run_model(images)]))
        except OSError as e:
            if isinstance(e, (BrokenPipeError, ConnectionError)):
                return  # the worker is gone: nobody is waiting for this batch
            _reply(conn, ("error", f"{type(e).__name__}: {e}"))
        except Exception as e:  # noqa: BLE001 - the parent's batch fails with this message; the child serves on
            _reply(conn, ("error", f"{type(e).__name__}: {e}"))
        del images  # views of the buffer: it can be closed when the next batch needs another


def _reply(conn: Connection, message) -> None:
    try:
        conn.send(message)
    except OSError:
        pass  # the worker is gone; the next recv ends this process


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None)
