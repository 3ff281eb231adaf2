"""Serving a WSGI app with gunicorn from inside the `stoker` process (no config file needed;
`adapters/gunicorn/gunicorn.conf.py` holds the same settings for a plain `gunicorn` run)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

from stoker_k8s.intake import IntakeWorker, Limits


class _Application(BaseApplication):  # type: ignore[misc]
    def __init__(self, app: Any, options: dict[str, Any]) -> None:
        self._app = app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._app


def serve(
    app: Any,
    *,
    bind: str,
    cert_file: str | None,
    key_file: str | None,
    workers: int = 2,
    threads: int = 4,
    limits: Limits | None = None,
    on_exit: Callable[[], None] | None = None,
) -> None:
    """Run gunicorn until it is told to stop (SIGTERM: graceful); TLS when given a cert.

    Always the IntakeWorker: requests are read whole, under `limits`, before a thread runs the
    app, so slow clients cannot take the `workers` × `threads` request slots (H8). `on_exit`
    runs in the main process once every worker has stopped."""
    tls = {"certfile": cert_file, "keyfile": key_file} if cert_file else {}
    worker = type("IntakeWorker", (IntakeWorker,), {"limits": limits or Limits()})
    options: dict[str, Any] = {
        "bind": bind,
        **tls,
        "workers": workers,
        "threads": threads,
        "worker_class": worker,
        "worker_connections": 1000,  # per worker, slow or idle ones included
        "keepalive": 5,  # seconds an idle kept-alive connection waits for its next request
        "timeout": 30,
        "graceful_timeout": 10,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
    }
    if on_exit is not None:
        options["on_exit"] = lambda server: on_exit()
    _Application(app, options).run()
