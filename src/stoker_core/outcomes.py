"""What happens after an apply: one table, shared by `stoker sync` and the in-cluster agent.

The gateway's answer after files changed is reduced to a `GatewayReply`; the table maps it to
a `Verdict`. Transport errors, 401, 403, 503 and replies that are not the API's (an HTML page or
a redirect from a proxy in the way, JSON of the wrong shape) say nothing about the change itself,
so they are retried with backoff and never roll back; so is an HTTP status nothing here
explains (a rejection needs evidence, not a surprise). A finished scan after which a synced
project is missing, or a gateway that stays unhealthy past the bounded wait, means the gateway
rejected the change: roll back (when `rollbackOnFailure`), scan again, and hold that commit
until told.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence

from stoker_core.paths import RESTART_REQUIRED


class GatewayReply(enum.StrEnum):
    """The gateway's state after an apply and a scan."""

    LOADED = "loaded"  # scan done, every synced project present, gateway healthy
    NO_GATEWAY = "no-gateway"  # standalone run without --gateway-url: nothing to ask
    TRANSPORT_ERROR = "transport-error"
    UNAUTHORIZED = "unauthorized"  # 401
    FORBIDDEN = "forbidden"  # 403
    STARTING = "starting"  # 503
    NOT_THE_API = "not-the-api"  # HTML, a redirect, not JSON, or JSON of the wrong shape
    UNEXPECTED = "unexpected"  # an HTTP status the API does not answer there (400, 404…)
    PROJECT_MISSING = "project-missing"  # scan finished, a synced project did not load
    UNHEALTHY = "unhealthy"  # still unhealthy after the bounded wait


class Verdict(enum.StrEnum):
    """What the loop does next."""

    SYNCED = "Synced"
    RETRY = "Retry"  # keep the files, retry the scan with backoff
    REJECTED = "Rejected"  # roll back and hold this commit
    RESTART_REQUIRED = "RestartRequired"


VERDICTS: dict[GatewayReply, Verdict] = {
    GatewayReply.LOADED: Verdict.SYNCED,
    GatewayReply.NO_GATEWAY: Verdict.SYNCED,
    GatewayReply.TRANSPORT_ERROR: Verdict.RETRY,
    GatewayReply.UNAUTHORIZED: Verdict.RETRY,
    GatewayReply.FORBIDDEN: Verdict.RETRY,
    GatewayReply.STARTING: Verdict.RETRY,
    GatewayReply.NOT_THE_API: Verdict.RETRY,
    GatewayReply.UNEXPECTED: Verdict.RETRY,
    GatewayReply.PROJECT_MISSING: Verdict.REJECTED,
    GatewayReply.UNHEALTHY: Verdict.REJECTED,
}


def decide(reply: GatewayReply, changed: Iterable[str], *, rollback_on_failure: bool) -> Verdict:
    """Return the verdict for `reply` after changing the paths in `changed`."""
    verdict = VERDICTS[reply]
    if verdict is Verdict.REJECTED and not rollback_on_failure:
        return Verdict.RETRY
    if verdict is Verdict.SYNCED and any(RESTART_REQUIRED.matches(p) for p in changed):
        return Verdict.RESTART_REQUIRED
    return verdict


def restart_owed(*, since: float | None, started: float | None, pending: Sequence[str]) -> bool:
    """Whether a gateway still needs a restart: it lists pending restart tasks, or a
    restart-only change was applied at `since` (epoch seconds; None: none owed) and the gateway
    has not started since (`started`: when it last started, None when it cannot say: still
    owed, a restart nobody saw is not assumed)."""
    if pending:
        return True
    return since is not None and (started is None or started <= since)


def backoff_delay(failures: int, jitter: float, *, base: float = 30.0, cap: float = 300.0) -> float:
    """Seconds to wait after `failures` consecutive failures: 30 s doubling to 5 min, spread by
    ±10% (`jitter` in [0, 1) from the caller's random source) so a fleet does not retry in step."""
    if failures <= 0:
        return 0.0
    delay: float = min(base * 2.0 ** (failures - 1), cap)
    return delay * (0.9 + 0.2 * jitter)
