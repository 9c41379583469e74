"""Running the service as users run it: the Flask app under gunicorn, configured from a :class:`Config`.

``alt-text serve`` parses its flags into a Config and calls :func:`run`; everything about processes, threads,
timeouts and hooks lives here, beside the app it serves.

Each worker is gunicorn's threaded worker (gthread) with ``threads + backlog`` request threads: a request that waits
for the model holds one of the ``backlog`` ones, which admission (server/service/admission.py) never lets it exceed,
so ``threads`` are always left for the requests answered without the model (a waiting thread costs about 20 KB;
docs/serving.md says why threads and not gevent). On SIGTERM the worker (:class:`DrainingWorker`) tells the service
at once, which refuses new requests while it finishes those it admitted, within the graceful timeout that
admission's bound on waiting makes long enough (``Config.graceful_timeout``).
"""
from __future__ import annotations

import atexit
import math
import os
import shutil
import tempfile
from pathlib import Path

from .config import Config


def _service(worker):
    """The AltTextService of the app a gunicorn worker runs (None before it is loaded, or without a model)."""
    app = getattr(worker, "wsgi", None)
    state = getattr(app, "extensions", {}).get("alt_text", {}) if app is not None else {}
    return state.get("service")


def _worker_class():
    from gunicorn.workers.gthread import ThreadWorker

    class DrainingWorker(ThreadWorker):
        """gthread, telling the service of a stop when it begins (gthread alone only stops accepting connections,
        and the app would hear of the stop after its graceful wait, in worker_exit): from then on the service
        answers requests on kept-alive connections with a 503 shutting_down, and /readyz with 503, while it
        finishes the requests it admitted."""

        def handle_exit(self, sig, frame):
            super().handle_exit(sig, frame)
            try:  # in a signal handler: only queue the call for the worker's loop (SimpleQueue.put is reentrant)
                self.method_queue.defer(self._begin_drain)
            except Exception:  # noqa: BLE001 - not started yet: nothing to drain
                pass

        def _begin_drain(self):
            # Close the listening sockets now, not at the end of the drain: a client that connects meanwhile is
            # refused at once instead of waiting in the kernel's queue for a worker that will never accept it.
            self.set_accept_enabled(False)
            for listener in self.sockets:
                listener.close()
            service = _service(self)
            if service is not None:
                service.begin_drain(self.cfg.graceful_timeout)

    return DrainingWorker


def connections_allowed(wanted: int, spare: int = 256) -> int:
    """How many connections a worker may hold: ``wanted``, within the open-file limit (raised to its hard limit
    if need be), less ``spare`` files for everything else (the model's socket, the cache, fetches, logs)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < wanted + spare:
            target = wanted + spare if hard == resource.RLIM_INFINITY else min(wanted + spare, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    except (ImportError, ValueError, OSError):
        return wanted
    return wanted if soft == resource.RLIM_INFINITY else max(64, min(wanted, soft - spare))


class ServeError(Exception):
    """The service cannot start (a broken checkpoint or heads file): one line for the user, before any worker forks."""


def run(cfg: Config, *, host: str, port: int, workers: int, threads: int) -> None:
    """Serve until gunicorn's master stops. Raises ServeError before forking when the model cannot load."""
    if cfg.torch_threads <= 0:  # each process its share of the cores: with early answers the request threads' work
        # overlaps the batch, and one thread per core served more than one in all (docs/benchmarks.md)
        cfg.torch_threads = max(1, (os.cpu_count() or 1) // workers)
    if cfg.load_model:  # fail here, with one line, not in every worker
        from model import default_checkpoint_path
        from model.checkpoint import CheckpointError, load

        from ..describe import HeadsError, heads_for

        path = Path(cfg.checkpoint or default_checkpoint_path())
        try:
            load(path)
            heads_for(path)  # the same check Describer.load makes in every worker, once, here
        except (CheckpointError, HeadsError) as e:
            raise ServeError(str(e)) from None

    # Only now, and before anything imports prometheus_client (it picks its value store at import): the workers,
    # forked later, write their metrics to files here, and a scrape of any one of them adds all of them up.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="alt-text-metrics-")
        atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    from gunicorn.app.base import BaseApplication

    from . import hooks
    from .app import create_app
    from .metrics import prepare_multiprocess_dir

    prepare_multiprocess_dir(os.environ["PROMETHEUS_MULTIPROC_DIR"])

    class Gunicorn(BaseApplication):
        def load_config(self):
            pool = threads + cfg.backlog  # the waiting ones (admission.py) and those that answer the others
            for k, v in {"bind": f"{host}:{port}", "workers": workers, "threads": pool,
                         # kept-alive connections beyond the threads: gthread's own default (1000) is below them
                         "worker_connections": connections_allowed(2 * pool), "worker_class": _worker_class(), "timeout": 120,
                         "graceful_timeout": math.ceil(cfg.graceful_timeout()), "accesslog": "-", "errorlog": "-",
                         "child_exit": hooks.child_exit, "worker_exit": hooks.worker_exit}.items():
                self.cfg.set(k, v)
            # gunicorn >= 25.1 opens a control socket, by default at one path for every instance of a user:
            # replicas on one host took it from each other (and whoever could reach it could change the worker
            # count); alt-text serve's flags are the way to manage it
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)

        def load(self):
            return create_app(cfg)

    Gunicorn().run()
