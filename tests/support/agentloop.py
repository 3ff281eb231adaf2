"""Stand-ins for the agent loop's ports in the agent tests: a clock the test moves, a metadata
source the test sets, and a sink keeping every sync record the loop publishes."""

from __future__ import annotations

import attrs

from stoker_agent.loop import Metadata
from stoker_core.status import SyncRecord


@attrs.define
class Clock:
    """Seconds as the loop reads them; the test moves `now`."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@attrs.define
class Source:
    """The metadata the controller would publish: `meta`, or None while there is none yet."""

    meta: Metadata | None

    def read(self) -> Metadata | None:
        return self.meta


@attrs.define
class Sink:
    """Every sync record the loop writes, in order."""

    records: list[SyncRecord] = attrs.field(factory=list)

    def write(self, record: SyncRecord) -> None:
        self.records.append(record)
