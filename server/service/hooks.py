"""gunicorn's process hooks for ``alt-text serve``: what a worker leaves behind when it exits."""
from __future__ import annotations


def worker_exit(server, worker) -> None:
    """In the exiting worker: stop the model worker and the fetch pool of the app it ran."""
    app = getattr(worker, "wsgi", None)
    state = getattr(app, "extensions", {}).get("alt_text", {}) if app is not None else {}
    if state.get("service") is not None:
        state["service"].close()


def child_exit(server, worker) -> None:
    """In the master: a dead worker's metric files no longer count as live (prometheus multiprocess mode)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
