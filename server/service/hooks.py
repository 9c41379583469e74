"""gunicorn's process hooks for ``alt-text serve``: what a worker leaves behind when it exits."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def worker_exit(server, worker) -> None:
    """In the exiting worker: drain and stop the app it ran (AltTextService.close), then end the processes it
    started, so that none outlives it. A graceful stop (SIGTERM) began the drain when it arrived
    (gunicorn_app.DrainingWorker); a quick one (SIGINT, SIGQUIT) begins it here. Either way the requests the worker
    admitted finish within the graceful timeout and new ones get a 503; then the model worker, its process and the
    fetch pool stop."""
    from .gunicorn_app import _service

    service = _service(worker)
    if service is not None:
        service.close(timeout=server.cfg.graceful_timeout)
    stop_resource_tracker()


def stop_resource_tracker() -> None:
    """End multiprocessing's resource tracker, which the model's shared memory started as a child of this worker:
    left alone it exits only once it notices its parent is gone, after the master may have exited."""
    try:
        from multiprocessing import resource_tracker

        resource_tracker._resource_tracker._stop()
    except Exception as e:  # noqa: BLE001 - a private API: without it the tracker still ends on its own
        log.debug("could not stop the resource tracker: %s", e)


def child_exit(server, worker) -> None:
    """In the master: a dead worker's metric files no longer count as live (prometheus multiprocess mode)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
