"""A bare loopback TCP server for tests of clients facing servers that misbehave: it accepts
every connection and hands it to the test's own handler, which decides what (if anything) the
client hears back."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def accepting(on_connection: Callable[[socket.socket], None]) -> Iterator[str]:
    """A loopback listener handing each connection to `on_connection`; yields its http:// URL.

    `on_connection` runs on the accept loop's thread: a handler that blocks starts a thread of
    its own. The listener is closed on exit (connections are the handler's to close)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            on_connection(conn)

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
