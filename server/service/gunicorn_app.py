"""Running the service as users run it: the Flask app under gunicorn, configured from a :class:`Config`.

``alt-text serve`` parses its flags into a Config and calls :func:`run`; everything about processes, threads,
timeouts and hooks lives here, beside the app it serves.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from .config import Config


class ServeError(Exception):
    """The service cannot start (a broken checkpoint or heads file): one line for the user, before any worker forks."""


def run(cfg: Config, *, host: str, port: int, workers: int, threads: int) -> None:
    """Serve until gunicorn's master stops. Raises ServeError before forking when the model cannot load."""
    if cfg.torch_threads <= 0:  # each process its share of the cores: with early answers the request threads' work
        # overlaps the batch, and 2 threads on 2 cores served 10-16 % more images/s than 1 (bench_server, idle)
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
            for k, v in {"bind": f"{host}:{port}", "workers": workers, "threads": threads,
                         "worker_class": "gthread", "timeout": 120, "graceful_timeout": 10,
                         "accesslog": "-", "errorlog": "-", "child_exit": hooks.child_exit,
                         "worker_exit": hooks.worker_exit}.items():
                self.cfg.set(k, v)
            # gunicorn >= 25.1 opens a control socket, by default at one path for every instance of a user:
            # replicas on one host took it from each other (and whoever could reach it could change the worker
            # count); alt-text serve's flags are the way to manage it
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)

        def load(self):
            return create_app(cfg)

    Gunicorn().run()
