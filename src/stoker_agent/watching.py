"""`stoker sync --watch`: the in-cluster agent's own loop, fed by files instead of the API.

Metadata is the GatewaySync file at the commit the ref names now (resolved again at every
poll), so a new commit is synced at once; the periodic resync follows `driftPolicy` (report by
default: drift is listed, not undone); failures back off. Each sync prints one result line and
writes `DIR/.stoker/status.json`, as a single `stoker sync` does.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import attrs

from stoker_agent.loop import AgentLoop, Metadata
from stoker_agent.standalone import Outcome, SyncSettings, current_commit, run_once
from stoker_core.errors import StokerError
from stoker_core.status import SyncRecord

Show = Callable[[Outcome], None]


class RefSource:
    """The loop's metadata: the GatewaySync at the ref's current commit."""

    def __init__(self, settings: SyncSettings) -> None:
        self._settings = settings

    def read(self) -> Metadata:
        """Resolve the ref again (`git ls-remote`, or the local repository)."""
        try:
            commit: str | None = current_commit(self._settings)
        except StokerError:
            commit = None  # the sync fails on the same ref, and its result line says why
        return Metadata(settings=attrs.evolve(self._settings, commit=commit))


class PrintingSink:
    """Prints one line per sync; the sync itself has written status.json."""

    def __init__(self, show: Show) -> None:
        self._show = show
        self._shown: SyncRecord | None = None

    def sync(self, settings: SyncSettings, **kwargs: Any) -> Outcome:
        """One sync (run_once), shown as it ends."""
        outcome = run_once(settings, **kwargs)
        self._show(outcome)
        self._shown = outcome.record
        return outcome

    def write(self, record: SyncRecord) -> None:
        """Show a record no sync showed (a machine error the loop turned into one); the loop
        adds what it counts (failures, history) to a sync's record before it comes here."""
        if attrs.evolve(record, failures=0, history=(), health=None) != self._shown:
            self._show(Outcome(record, None))


def keep_syncing(settings: SyncSettings, period: float, show: Show) -> None:
    """Sync until SIGTERM or Ctrl-C; a sync in progress finishes first."""
    sink = PrintingSink(show)
    loop = AgentLoop(RefSource(settings), sink, sync=sink.sync, period=period)
    signal.signal(signal.SIGTERM, lambda *_: loop.stop())
    signal.signal(signal.SIGINT, lambda *_: loop.stop())
    loop.run(poll=period)
