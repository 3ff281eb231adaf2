"""The gateway's start, as the agent sees it: until its first sync has settled, or the start-up
timeout has passed, the gateway container has not started (the kubelet waits for the agent's
`/startupz`), so syncs run pre-boot: no gateway API (see stoker_core.preboot).

The timeout never ends the window in the middle of a pre-boot write: `hold` is taken right
before the first file changes (after the fetch, which is what may take long) and refused once
the window is over, and the window does not end while it is held, so the gateway never boots
on a half-applied tree.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from stoker_core.errors import Blocked

log = logging.getLogger("stoker.agent")


class TooLate(Blocked):
    """The start-up timeout passed before the pre-boot write began: the gateway may be starting."""


class Boot:
    """Whether the gateway may have started. `timeout` None or 0: it has (outside a pod)."""

    def __init__(
        self, timeout: float | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._deadline = None if timeout is None else clock() + timeout
        self._timeout = timeout
        self._over = timeout is None or timeout <= 0  # 0: the gateway does not wait
        self._held = False
        self._lock = threading.Lock()

    def over(self) -> bool:
        """Whether the pre-boot window has ended (for good): the first sync settled, or the
        timeout passed while no pre-boot write was under way."""
        with self._lock:
            return self._ended()

    def settle(self) -> None:
        """The first sync settled (applied, found nothing to do, or must not write)."""
        with self._lock:
            self._over = True

    def hold(self) -> None:
        """Called right before a pre-boot write changes the first file: keep the window open
        until `release`, or raise TooLate when it has already ended."""
        with self._lock:
            if self._ended():
                raise TooLate(
                    "the start-up timeout passed before the first sync could write: the gateway "
                    "is starting on the files it has; the next sync applies the commit with a scan"
                )
            self._held = True

    def release(self) -> None:
        """The pre-boot write is over (done or failed)."""
        with self._lock:
            self._held = False

    def _ended(self) -> bool:
        if not self._over and not self._held and self._clock() >= (self._deadline or 0.0):
            self._over = True
            log.warning(
                "the first sync did not finish within the start-up timeout (%.0fs): the gateway "
                "starts on the files it has; the agent keeps trying, with a scan",
                self._timeout or 0.0,
            )
        return self._over


def listening(url: str, timeout: float = 1.0) -> bool:
    """Whether something accepts connections at the gateway's address: then the gateway runs
    already (this agent was restarted beside it) and there is no pre-boot window. Only a
    connect, never a request: nothing before boot waits for a gateway's answer."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "localhost", port), timeout=timeout):
            return True
    except OSError:
        return False
