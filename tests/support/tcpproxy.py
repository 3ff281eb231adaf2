"""A loopback TCP proxy that can cut its connections (a real dropped connection between a
client and a server; TLS passes through untouched) or black-hole them (a silent hang: both
ends stay open and nothing arrives), for tests of watch recovery."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from types import TracebackType


class TcpProxy:
    """Forward 127.0.0.1:<port> to `upstream`; `cut()` drops every open connection,
    `down()` also refuses new ones until the block ends, and `freeze()` silently swallows
    everything on the open connections (new ones work)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0  # connections forwarded so far
        self._live: set[socket.socket] = set()
        self._frozen: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._refusing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="tcpproxy", daemon=True)

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()
        self.cut()

    def cut(self) -> int:
        """Drop every open connection (both sides, mid-stream); return how many sockets."""
        with self._lock:
            doomed = list(self._live)
            self._live.clear()
            self._frozen.clear()
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        return len(doomed)

    def freeze(self) -> int:
        """Black-hole every open connection: bytes are read and dropped, no side is closed (not
        even when the other side closes); return how many sockets."""
        with self._lock:
            self._frozen.update(self._live)
            return len(self._live)

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """Cut everything and refuse new connections inside the block."""
        with self._lock:
            self._refusing = True
        self.cut()
        try:
            yield
        finally:
            with self._lock:
                self._refusing = False

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                downstream, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                refusing = self._refusing
            if refusing:
                downstream.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                downstream.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self.accepted += 1
                self._live.update((downstream, upstream))
            for src, dst in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                if src not in self._frozen:
                    dst.sendall(chunk)
        except OSError:
            pass
        with self._lock:
            if src in self._frozen:
                return  # a silent hang: leave the other side open (cut() or the exit closes it)
            self._live.discard(src)
            self._live.discard(dst)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
