"""Taking the gateway's scan locks so that a lock an earlier run left (it crashed, or failed
before its scan) never blocks the next run, while a lock anyone else holds always does.

The gateway names a lock's holder only by actor, the API token's user, which a manual run with
the same token shares; the API has no field for a per-run token. So each lock Stoker takes is
recorded in `DIR/.stoker/scan-locks.json` with what the gateway granted (actor and grant time,
which identify that lock) and the run that took it (`stoker_core.scanlocks`). A held lock that
matches the record is ours: it is released the only way the API offers, a scan of that kind
(the tree is consistent here: any interrupted transaction was recovered before planning), and
taken again with a full hold time. A lost answer to our own request is recognised too: a lock
of our actor granted after that request was sent. Anything else blocks, naming the holder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence

from stoker_agent.datadirs import STATE_DIR, ApplyError, read_state_file, write_state_file
from stoker_agent.gateway import GatewayClient, GatewayLockHeld, GatewayUnavailable
from stoker_core.errors import Blocked
from stoker_core.scanlocks import (
    RECORD_LIMIT,
    HeldLock,
    LockRecord,
    parse_records,
    records_json,
    taken_by_unanswered_attempt,
)
from stoker_core.scans import KINDS

log = logging.getLogger("stoker.sync")
RECORD_FILE = f"{STATE_DIR}/scan-locks.json"
HOLD_SECONDS = 120  # a sync's apply fits well within it; the scan after it releases the lock
TRIES = 4  # requests per lock: a retry after a dropped answer, a release and a re-take
BACKOFF = 0.5  # seconds before the first retry, doubling


class ScanLocks:
    """The scan locks of one run on one data directory."""

    def __init__(
        self,
        client: GatewayClient,
        data_dir: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.path = os.path.join(data_dir, RECORD_FILE)
        self.run = uuid.uuid4().hex  # this run's token, kept with each lock it takes
        self._sleep, self._clock = sleep, clock

    def take_all(self, kinds: Sequence[str] = KINDS) -> bool:
        """Take the lock of each of `kinds` (all of them: the project and the config lock);
        False when the gateway offers no scan lock."""
        taken = [self.take(kind) for kind in kinds]  # each asked, whatever the first said
        return all(taken)

    def take(self, kind: str) -> bool:
        """Hold off `kind` scans while files change; False when the gateway has no scan lock."""
        sent: float | None = None  # when a request whose answer was lost was first sent
        for attempt in range(1, TRIES + 1):
            started = self._clock()
            try:
                held = self.client.acquire_lock(kind, HOLD_SECONDS)
            except GatewayUnavailable as e:
                if not e.transient or attempt == TRIES:
                    raise
                sent = started if sent is None else sent
                self._sleep(BACKOFF * 2 ** (attempt - 1))
                continue
            except GatewayLockHeld:
                held = self.client.held_lock(kind)
                if held is None:
                    continue  # released meanwhile (or a scan was running): ask again
                if sent is not None and taken_by_unanswered_attempt(
                    held,
                    actor=self.client.token_name(),
                    hold_seconds=HOLD_SECONDS,
                    since_attempt=self._clock() - sent,
                ):
                    log.info("the %s scan lock our unanswered request took is held: kept", kind)
                elif self._recorded(kind, held):
                    self._release(kind, held)
                    continue
                else:
                    raise self._blocked(kind, held) from None
            if held is None:
                return False
            self._remember(kind, held)
            return True
        raise Blocked(
            f"the gateway's {kind} scan lock could not be taken in {TRIES} tries (a scan kept "
            "running, or a lock an earlier Stoker run left was not released by its scan); "
            f"sync again later: a lock expires within {HOLD_SECONDS}s"
        )

    def _release(self, kind: str, held: HeldLock) -> None:
        record = self._records().get(kind)
        log.info(
            "the %s scan lock is the one Stoker run %s took and left (%.0fs left): releasing it "
            "with a scan and taking it again",
            kind,
            record.run if record else "?",
            held.remaining,
        )
        self.client.scan(kind)

    def _blocked(self, kind: str, held: HeldLock) -> Blocked:
        holder = held.actor[:80]  # the gateway's word: cut
        return Blocked(
            f"the gateway's {kind} scan lock is held by {holder!r}, but not by this Stoker "
            f"(no Stoker run on this data directory took it), {held.remaining:.0f}s left: "
            "another client, or a manual run with the same API token, is changing the gateway; "
            "sync again once it has scanned or its lock has expired"
        )

    def _recorded(self, kind: str, held: HeldLock) -> bool:
        record = self._records().get(kind)
        return record is not None and record.names(held)

    def _records(self) -> dict[str, LockRecord]:
        """The record, read without following a link; absent or unreadable is empty."""
        with contextlib.suppress(OSError, ValueError, ApplyError):
            text = read_state_file(self.path, RECORD_LIMIT)
            return parse_records(text) if text else {}
        return {}

    def _remember(self, kind: str, held: HeldLock) -> None:
        records = self._records()
        records[kind] = LockRecord(actor=held.actor, timestamp=held.timestamp, run=self.run)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        write_state_file(self.path, records_json(records))
