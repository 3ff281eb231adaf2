"""Serving a WSGI app with gunicorn from inside the `stoker` process (no config file needed;
`adapters/gunicorn/gunicorn.conf.py` holds the same settings for a plain `gunicorn` run)."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication


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


def serve(app: Any, *, bind: str, cert_file: str, key_file: str, workers: int = 2) -> None:
    """Run gunicorn until it is told to stop (SIGTERM: graceful)."""
    _Application(
        app,
        {
            "bind": bind,
            "certfile": cert_file,
            "keyfile": key_file,
            "workers": workers,
            "worker_class": "sync",
            "timeout": 30,
            "graceful_timeout": 10,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
        },
    ).run()
