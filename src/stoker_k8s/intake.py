"""The gunicorn worker that serves Stoker's HTTP apps: gunicorn's threaded worker, with a
reading front in its event loop so that a slow client never holds a request thread.

gunicorn's sync and gthread workers read the request, headers and body, inside the thread that
runs the app: a handful of idle or trickling connections (two for two sync workers) stop the
server (H8). Here the worker's event loop does the TLS handshake and reads each request whole,
without blocking, before any thread sees it; the thread gets the complete request and only runs
the app. Every connection has deadlines (`Limits`): the TLS handshake and the request head must
arrive within `header_timeout`, the body within `body_timeout` of the head, an idle kept-alive
connection is closed after gunicorn's `keepalive` seconds. A body declared larger than
`max_body` is refused with 413 before a byte of it is read; chunked bodies are capped alike.
What the front refuses is answered in JSON and the connection closed without a thread.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import socket
import ssl
import time
from functools import partial
from typing import Any, ClassVar

import attrs
from gunicorn import http
from gunicorn.sock import ssl_context
from gunicorn.workers.gthread import TConn, ThreadWorker

from stoker_k8s.framing import Framing, Refused

READ_SIZE = 256 * 1024  # bytes per recv in the event loop
LINGER = 2.0  # seconds a refused connection is drained so the client reads the answer
LINGER_BYTES = 4 * 1024 * 1024  # ... and at most this much of what it still sends
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
LATE = "request not received in time"  # the 408's message (docs/receiver.md quotes it)


@attrs.frozen(slots=True, kw_only=True)
class Limits:
    """Per-connection bounds of the serving front. Times in seconds, sizes in bytes."""

    header_timeout: float = 10.0  # TLS handshake + request line + headers; real clients take ms
    body_timeout: float = 20.0  # the body after its head: 1 MiB at 0.5 Mbit/s still fits
    max_head: int = 64 * 1024  # request line and headers together
    max_body: int = 1024 * 1024  # the app's own limit, so the 413 comes before the body


@attrs.define(eq=False)
class _Reading:
    """A connection whose request is still arriving."""

    conn: Any  # gunicorn's TConn
    framing: Framing
    deadline: float
    buf: bytearray = attrs.field(factory=bytearray)
    handshaking: bool = False
    idle: bool = False  # kept alive, waiting for the next request's first byte
    continued: bool = False  # `100 Continue` sent
    eof: bool = False  # the client has closed its side


@attrs.define(eq=False)
class _Closing:
    """A refused or finished connection, drained briefly so its last answer is not reset."""

    sock: Any
    deadline: float
    drained: int = 0


class _Bounded:
    """The socket as gunicorn's parser reads it: every read ends by `deadline`. The front has
    read the whole request already, so this only bounds a disagreement about where it ends."""

    def __init__(self, sock: Any, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def recv(self, size: int) -> bytes:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request not complete by its deadline")
        self._sock.settimeout(left)
        data: bytes = self._sock.recv(size)
        return data


class IntakeWorker(ThreadWorker):  # type: ignore[misc]
    """gthread with a non-blocking reading front (set `limits` on a subclass to configure)."""

    limits: ClassVar[Limits] = Limits()

    def init_process(self) -> None:
        self._reading: set[_Reading] = set()
        self._closing: set[_Closing] = set()
        self._tls: tuple[tuple[float, ...], ssl.SSLContext] | None = None
        super().init_process()

    def _context(self) -> ssl.SSLContext:
        """The TLS context, made again only when the certificate or key file changes (a renewed
        certificate counts at once; making one per connection cost ~1 ms of the event loop)."""
        stamp = tuple(os.stat(f).st_mtime for f in (self.cfg.certfile, self.cfg.keyfile))
        if self._tls is None or self._tls[0] != stamp:
            self._tls = (stamp, ssl_context(self.cfg))
        return self._tls[1]

    def accept(self, listener: socket.socket) -> None:
        """Take a new connection into the reading front (not into a thread)."""
        try:
            client, address = listener.accept()
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return
            raise
        self.nr_conns += 1
        conn = TConn(self.cfg, client, address, listener.getsockname())  # non-blocking
        handshaking = bool(self.cfg.is_ssl)
        if handshaking:
            conn.sock = self._context().wrap_socket(
                conn.sock,
                server_side=True,
                do_handshake_on_connect=False,
                suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
            )
        self._read(conn, b"", handshaking=handshaking)

    def _read(
        self, conn: Any, ahead: bytes, *, handshaking: bool = False, idle: bool = False
    ) -> None:
        """Watch `conn` until a whole request has arrived (`ahead`: what it sent already)."""
        limits = self.limits
        reading = _Reading(
            conn,
            Framing(max_head=limits.max_head, max_body=limits.max_body),
            time.monotonic() + (self.cfg.keepalive if idle else limits.header_timeout),
            bytearray(ahead),
            handshaking=handshaking,
            idle=idle,
        )
        self._reading.add(reading)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, reading))
        if ahead:
            self._advance(reading)

    def _on_readable(self, reading: _Reading, _fileobj: Any) -> None:
        sock = reading.conn.sock
        try:
            if reading.handshaking:
                sock.do_handshake()
                reading.handshaking = False
            while len(reading.buf) <= reading.framing.max_head + 2 * reading.framing.max_body:
                data = sock.recv(READ_SIZE)
                if not data:  # the client is done sending: serve what it sent, if it is whole
                    reading.eof = True
                    break
                if reading.idle:  # the next request has begun: its head is now due
                    reading.idle = False
                    reading.deadline = time.monotonic() + self.limits.header_timeout
                reading.buf += data
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            pass
        except OSError:  # reset, TLS alert, bad handshake: nothing to answer
            self._drop(reading)
            return
        self._advance(reading)

    def _advance(self, reading: _Reading) -> None:
        framing = reading.framing
        was_head = framing.head_done
        try:
            end = framing.feed(reading.buf)
        except Refused as e:
            self._refuse(reading, e.status, e.message)
            return
        if framing.head_done and not was_head:
            reading.deadline = time.monotonic() + self.limits.body_timeout
        if end is None and reading.eof:
            self._drop(reading)
            return
        if end is None:
            if framing.expects_continue and framing.wants_body and not reading.continued:
                reading.continued = True
                _send_quietly(reading.conn.sock, CONTINUE)
            return
        self._forget(reading)
        self._hand_over(reading)

    def _hand_over(self, reading: _Reading) -> None:
        """Give the complete request to a thread: gunicorn parses it from what was read."""
        conn = reading.conn
        conn.sock.setblocking(True)
        conn.initialized = conn.data_ready = True
        conn.parser = http.get_parser(self.cfg, _Bounded(conn.sock, reading.deadline), conn.client)
        conn.parser.unreader.unread(bytes(reading.buf))
        self.enqueue_req(conn)

    def handle_request(self, req: Any, conn: Any) -> bool:
        """Run the app; the answer, too, must be taken by the client within a deadline."""
        conn.sock.settimeout(self.limits.body_timeout)
        return bool(super().handle_request(req, conn))

    def finish_request(self, conn: Any, fs: Any) -> None:
        """After the app: keep the connection in the front for its next request, or close."""
        try:
            keep = bool(fs.result()) if not fs.cancelled() else False
        except Exception:
            keep = False
        if keep and self.alive:
            ahead = conn.parser.unreader.take_buffered()
            conn.sock.setblocking(False)
            self._read(conn, ahead, idle=not ahead)
            return
        self._close(conn.sock)

    def _refuse(self, reading: _Reading, status: int, message: str) -> None:
        self._forget(reading)
        body = json.dumps({"error": message}).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Bad Request')}\r\n"
            "Content-Type: application/json\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        _send_quietly(reading.conn.sock, head.encode() + body)
        self._close(reading.conn.sock)

    def _close(self, sock: Any) -> None:
        """Half-close, then drain what the client still sends (no thread, no blocking), so the
        answer is not lost to a TCP reset; `sweep` ends it after LINGER seconds at most."""
        try:
            sock.setblocking(False)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._gone(sock)
            return
        closing = _Closing(sock, time.monotonic() + LINGER)
        self._closing.add(closing)
        self.poller.register(sock, selectors.EVENT_READ, partial(self._on_drain, closing))

    def _on_drain(self, closing: _Closing, _fileobj: Any) -> None:
        try:
            data = closing.sock.recv(READ_SIZE)
        except (BlockingIOError, ssl.SSLWantReadError):
            return
        except OSError:
            data = b""
        closing.drained += len(data)
        if not data or closing.drained > LINGER_BYTES:
            self._end(closing)

    def _end(self, closing: _Closing) -> None:
        self._closing.discard(closing)
        self._unregister(closing.sock)
        self._gone(closing.sock)

    def _forget(self, reading: _Reading) -> None:
        self._reading.discard(reading)
        self._unregister(reading.conn.sock)

    def _drop(self, reading: _Reading) -> None:
        self._forget(reading)
        self._gone(reading.conn.sock)

    def _unregister(self, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(sock)

    def _gone(self, sock: Any) -> None:
        self.nr_conns -= 1
        with contextlib.suppress(OSError):
            sock.close()

    def murder_keepalived(self, force: bool = False) -> None:
        """Run from gunicorn's loop every second: end what is past its deadline; when stopping,
        the connections that have sent nothing of a request."""
        super().murder_keepalived(force)
        now = time.monotonic()
        for reading in [r for r in self._reading if r.deadline <= now or force]:
            if reading.idle or reading.handshaking:
                self._drop(reading)  # nothing was asked: nothing to answer
            else:
                self._refuse(reading, 408, LATE)
        if not self.alive:
            for reading in [r for r in self._reading if r.idle]:
                self._drop(reading)
        for closing in [c for c in self._closing if c.deadline <= now or force]:
            self._end(closing)


_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
}


def _send_quietly(sock: Any, data: bytes) -> None:
    """Best effort, never blocking: a client that does not read loses the answer, not a thread."""
    with contextlib.suppress(OSError, ssl.SSLError):
        sock.send(data)
