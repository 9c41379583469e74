"""gunicorn's process hooks for ``alt-text serve``: what a worker leaves behind when it exits."""
from __future__ import annotations


def worker_exit(server, worker) -> None:
    """In the exiting worker: drain and stop the app it ran (AltTextService.close). Requests still in flight (a
    quick shutdown, SIGINT or SIGQUIT, does not wait for them; a graceful one waits only its graceful timeout) are
    let finish within the graceful timeout, new ones get a 503; then the model worker and the fetch pool stop."""
    app = getattr(worker, "wsgi", None)
    state = getattr(app, "extensions", {}).get("alt_text", {}) if app is not None else {}
    if state.get("service") is not None:
        state["service"].close(timeout=server.cfg.graceful_timeout)


def child_exit(server, worker) -> None:
    """In the master: a dead worker's metric files no longer count as live (prometheus multiprocess mode)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
