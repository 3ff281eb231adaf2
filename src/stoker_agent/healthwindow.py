"""The agent's health window (issue 17): what one check sees of the gateway (gateway-info, the
project list, the gateway container's restart count) and the window the agent has open. The
rules (what passes, when to check next, when the window is over) are `stoker_core.healthchecks`;
the agent loop says when a sync opens a window and when newer metadata ends it."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import attrs

from stoker_agent import oserrors
from stoker_agent.gateway import GatewayClient, GatewayError, GatewaySettings
from stoker_core import healthchecks
from stoker_core.errors import StokerError
from stoker_core.healthchecks import Findings
from stoker_core.status import HealthReport

log = logging.getLogger("stoker.agent")

CHECK_TIMEOUT = 3.0  # seconds per request: a check must not hold up newer metadata or shutdown
Restarts = Callable[[], int | None]  # the gateway container's restart count (None: unknown)


def no_restarts() -> int | None:
    """Outside a pod there is no container to count the restarts of."""
    return None


class Checker:
    """Gathers the findings of one check (each call's failure becomes its error text)."""

    def __init__(self, restarts: Restarts = no_restarts) -> None:
        self.restarts = restarts

    def findings(self, gateway: GatewaySettings, expected: frozenset[str]) -> Findings:
        """Ask the gateway now; never raises for what the gateway answers."""
        client = GatewayClient(attrs.evolve(gateway, timeout=min(gateway.timeout, CHECK_TIMEOUT)))
        try:
            info_error = projects_error = ""
            loaded: frozenset[str] = frozenset()
            try:
                client.info()
            except GatewayError as e:
                info_error = str(e)
            except OSError as e:  # the API key file
                info_error = oserrors.sentence(e)
            try:
                loaded = frozenset(client.projects())
            except GatewayError as e:
                projects_error = str(e)
            except OSError as e:
                projects_error = oserrors.sentence(e)
        finally:
            client.close()
        return Findings(
            info_error=info_error,
            projects_error=projects_error,
            loaded=loaded,
            expected=expected,
            restarts=self.restart_count(),
        )

    def restart_count(self) -> int | None:
        """The gateway container's restart count now (None: unknown, never raises)."""
        try:
            return self.restarts()
        except StokerError:  # the API server away: this check cannot see restarts
            return None


class Watch:
    """The one health window an agent has open (or had: its last report stays), on the loop's
    clock; a newer sync's window replaces it."""

    def __init__(self, checker: Checker, clock: Callable[[], float]) -> None:
        self._checker = checker
        self._clock = clock
        self.window: healthchecks.Window | None = None
        self._expected: frozenset[str] = frozenset()  # the projects its commit delivers

    def end_unless(self, key: str, length: float) -> None:
        """End the window at once unless it follows the sync `key` under a window of `length`
        (newer metadata, another profile, or no rollout any more)."""
        if self.window is not None and (self.window.key != key or not length):
            self.window = None

    def open(self, *, key: str, commit: str, length: float, projects: frozenset[str]) -> None:
        """Begin a window after the sync `key`, unless one follows it already (the drift
        checks after a sync do not begin it again)."""
        if self.window is not None and self.window.key == key:
            return
        self._expected = projects
        self.window = healthchecks.start(
            key=key,
            commit=commit,
            length=length,
            now=self._clock(),
            stamp=_stamp(),
            restarts=self._checker.restart_count(),
        )

    def check(self, gateway: GatewaySettings | None, now: float) -> tuple[bool, float]:
        """Check the gateway if a check is due: (whether one ran, seconds until the next or
        inf when the window is over or none is open)."""
        window = self.window
        if window is None or healthchecks.over(window) or gateway is None:
            return False, math.inf
        if now < window.due:
            return False, window.due - now
        findings = self._checker.findings(gateway, self._expected)
        window = healthchecks.checked(window, findings, now=self._clock(), stamp=_stamp())
        self.window = window
        if window.problem:
            log.warning("health window of %s: %s", window.commit[:12], window.problem)
        left = math.inf if healthchecks.over(window) else window.due - self._clock()
        return True, left

    def due_in(self, now: float) -> float:
        """Seconds until the open window's next check (inf: none open, or it is over)."""
        window = self.window
        if window is None or healthchecks.over(window):
            return math.inf
        return max(window.due - now, 0.0)

    def report(self) -> HealthReport | None:
        """The window as the status says it (None: no window)."""
        return None if self.window is None else healthchecks.report(self.window)


def _stamp() -> str:
    """Now, in RFC3339 (for people; the window itself runs on the monotonic clock)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
