"""Slow clients for the serving tests and the load test: idle connections and connections that
trickle a request head or body one byte at a time, held open against a server. A connection
the server ends is opened again, as an attacker would, so the pressure never lets up; how many
the server ended is counted (its deadlines at work)."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
import time
from pathlib import Path
from types import TracebackType

import attrs

KINDS = ("idle", "head", "body")


@attrs.define(eq=False)
class _Slow:
    kind: str
    sock: socket.socket
    first: bytes  # sent whole once connected (and TLS is up), then one byte per interval
    handshaking: bool = False


class SlowClients:
    """`count` connections of each kind in KINDS to `host:port` (TLS when `ca` is given)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ca: Path | None,
        path: str,
        count: int,
        interval: float = 0.5,
    ) -> None:
        self.host, self.port, self.path, self.count = host, port, path, count
        self.interval = interval
        self.ended = 0  # connections the server closed
        self._context = ssl.create_default_context(cafile=str(ca)) if ca else None
        self._conns: list[_Slow] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SlowClients:
        self._conns = [self._open(kind) for kind in KINDS for _ in range(self.count)]
        settle = time.monotonic() + 3  # their first bytes now (a stalled server: not all)
        while any(c.handshaking or c.first for c in self._conns) and time.monotonic() < settle:
            for conn in self._conns:
                if conn.handshaking or conn.first:
                    self._alive(conn)
            time.sleep(0.05)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for conn in self._conns:
            conn.sock.close()

    def _open(self, kind: str) -> _Slow:
        """Connect; what a trickling kind sends at once goes out once TLS is up (see _alive)."""
        sock = socket.create_connection((self.host, self.port), timeout=10)
        sock.setblocking(False)
        if kind != "idle" and self._context is not None:
            sock = self._context.wrap_socket(
                sock, server_hostname=self.host, do_handshake_on_connect=False
            )
        head = f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\n"
        first = {
            "idle": "",
            "head": f"{head}X-Slow: ",
            "body": f"{head}Content-Type: application/json\r\nContent-Length: 65536\r\n\r\n{{",
        }[kind]
        return _Slow(kind, sock, first.encode(), handshaking=isinstance(sock, ssl.SSLSocket))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for i, conn in enumerate(self._conns):
                if self._stop.is_set():
                    return
                if self._alive(conn):
                    continue
                self.ended += 1
                conn.sock.close()
                with contextlib.suppress(OSError):  # the server may be refusing for a moment
                    self._conns[i] = self._open(conn.kind)

    def _alive(self, conn: _Slow) -> bool:
        """Whether the server still holds `conn`; a trickling one gets its next byte."""
        try:
            if conn.handshaking:
                conn.sock.do_handshake()  # type: ignore[attr-defined]
                conn.handshaking = False
            readable, _, _ = select.select([conn.sock], [], [], 0)
            if readable and not _drain(conn.sock):
                return False
            if conn.first:
                conn.first = conn.first[conn.sock.send(conn.first) :]
            elif conn.kind != "idle":
                conn.sock.send(b"a" if conn.kind == "head" else b" ")
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return True
        except OSError:
            return False
        return True


def _drain(sock: socket.socket) -> bool:
    """Read what the server sent (an error answer, say); False when it has closed."""
    try:
        return bool(sock.recv(65536))
    except (ssl.SSLWantReadError, BlockingIOError):
        return True
