"""What a sync reports while it runs, for metrics: git fetches, gateway scans and Designer
sessions that hold it back. The in-cluster agent's metrics implement it (stoker_agent.health,
which needs the k8s extra); `stoker sync` observes nothing and imports no metrics library."""

from __future__ import annotations

from typing import Protocol


class Observer(Protocol):
    """Told about the steps of a sync as they happen (never raises into the sync)."""

    def fetched(self, seconds: float, *, ok: bool) -> None:
        """One git fetch from the remote took `seconds`; `ok`: it succeeded."""
        ...

    def scanned(self, seconds: float, result: str) -> None:
        """The gateway's scans and the check after them took `seconds`, ending in `result`
        (a stoker_core.outcomes.GatewayReply value)."""
        ...

    def designers(self, *, blocking: bool) -> None:
        """Open Designer sessions hold the sync back now (`blocking`), or no longer do."""
        ...


class Unobserved:
    """The Observer of a sync nobody measures."""

    def fetched(self, seconds: float, *, ok: bool) -> None:
        """Nothing to record."""

    def scanned(self, seconds: float, result: str) -> None:
        """Nothing to record."""

    def designers(self, *, blocking: bool) -> None:
        """Nothing to record."""
