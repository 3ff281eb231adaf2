"""The agent loop: independent of Kubernetes, fed by a metadata port, reporting to a status port.

Triggers: new metadata (commit or effective profile, compared by value), the periodic resync
(`syncPeriod`: a drift check, and a restore when `driftPolicy: restore`), and a manual trigger.
A new commit goes first: when the full check is due as it arrives, it is applied from its
changes and the resync that checks everything runs right after it.
Failures back off exponentially with jitter (30 s → 5 min) and reset on success; newer metadata
is tried at once, even during a backoff (the count stays, should it fail too); an unreachable
repository or gateway never crashes the loop. A Designer `wait` never blocks shutdown or newer
metadata (the original's bug B26): its sleep is interrupted by either.
In a pod (`boot`), syncs until the first one settles run before the gateway starts, with no
gateway API (stoker_agent.booting, stoker_core.preboot); `/startupz` waits for that.
During a rollout (the metadata carries a health window), a sync that leaves the gateway in
step at a commit opens a health window: the loop checks the gateway until it has held or
failed (stoker_core.healthchecks), publishing each check; newer metadata or shutdown ends the
window at once. Each record also carries the failed attempts in a row and the last syncs.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import attrs

from stoker_agent import oserrors
from stoker_agent.booting import Boot, listening
from stoker_agent.healthwindow import Checker, Watch
from stoker_agent.observers import Observer
from stoker_agent.standalone import Outcome, SyncSettings, digest, run_once
from stoker_core import profiles
from stoker_core.errors import Blocked, StokerError
from stoker_core.model import DriftPolicy
from stoker_core.outcomes import backoff_delay
from stoker_core.status import Past, SyncRecord, remember

log = logging.getLogger("stoker.agent")
# Results after which this commit and profile need no new attempt until something changes.
SETTLED = frozenset({"Synced", "InSync", "RestartRequired", "Rejected", "Skipped"})
STATUS_RETRY_SECONDS = 5.0  # a status the sink refused is offered again this soon
# Results after which the first sync has settled: the gateway may start (see booting).
BOOTED = SETTLED | {"DryRun"}
# Results that leave the gateway in step at the commit: a health window watches it after them
# (a backup skipped by design too: the rollout waits for it to hold like any gateway).
WATCHED = frozenset({"Synced", "InSync", "RestartRequired"})


class Interrupted(Blocked):
    """A wait was cut short by shutdown or newer metadata."""


@attrs.frozen(slots=True, kw_only=True)
class Metadata:
    """What the controller published: the GatewaySync, its resolved commit and ref."""

    settings: SyncSettings  # repo, ref, exact commit, GatewaySync, identity, gateway access
    health_window: float = 0.0  # seconds to watch the gateway after a sync (0: no rollout)

    def key(self) -> str:
        """Equal for the same commit and the same effective profile, however serialised."""
        effective = profiles.resolve(self.settings.gatewaysync.spec.sync, self.settings.profile)
        return digest(effective, self.settings.commit or self.settings.ref or "HEAD")


class MetadataSource(Protocol):
    """Where the loop learns what to sync (a ConfigMap in a cluster, files outside)."""

    def read(self) -> Metadata | None:
        """The current metadata, or None when there is none yet."""
        ...


@runtime_checkable
class Pausable(Protocol):
    """A metadata source that can tell "paused" from "nothing published yet"."""

    @property
    def paused(self) -> bool:
        """Whether the last read found the GatewaySync paused."""
        ...


class StatusSink(Protocol):
    """Where the loop reports (a status ConfigMap in a cluster, status.json outside)."""

    def write(self, record: SyncRecord) -> None:
        """Publish one sync record; a StokerError says it was not published (try again)."""
        ...


@attrs.define
class Health:
    """What /healthz, /readyz and /startupz answer."""

    started: bool = False  # the journal is recovered and the data directory is consistent
    shutting_down: bool = False
    last_record: SyncRecord | None = None
    boot: Boot = attrs.field(factory=Boot)  # /startupz also waits for the first sync

    def startup_passed(self) -> bool:
        """/startupz: the data directory is consistent and the gateway may start (its first
        sync settled, or the start-up timeout passed)."""
        return self.started and self.boot.over()


class AgentLoop:
    """One gateway's sync loop."""

    def __init__(
        self,
        metadata: MetadataSource,
        status: StatusSink,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        sync: Callable[..., Outcome] = run_once,
        period: float | None = None,
        observer: Observer | None = None,
        boot: Boot | None = None,
        checker: Checker | None = None,
    ) -> None:
        self.metadata = metadata
        self.status = status
        # boot: the gateway waits for this agent's first sync (a pod); None: it runs already.
        self.health = Health(boot=boot or Boot())
        self._clock = clock
        self._rng = rng
        self._sync = sync
        self._period = period  # overrides the profile's syncPeriod (stoker sync --interval)
        self._observer = observer  # told about fetches, scans and Designers (the metrics)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._manual = False
        self._applied_key: str | None = None
        self._failures = 0
        self._next_attempt = 0.0
        self._failed_key: str | None = None  # what the backoff holds back
        self._next_resync = 0.0
        self._current: Metadata | None = None
        self._unpublished: SyncRecord | None = None  # the sink refused it; offered again
        self._watch = Watch(checker or Checker(), clock)  # the health window
        self._attempts: tuple[str | None, int] = (None, 0)  # a key, its attempts failed in a row
        self._history: tuple[Past, ...] = ()

    # -- control from other threads (signals, HTTP) ------------------------------------------

    def stop(self) -> None:
        """Begin shutdown: readiness fails at once; the running sync finishes."""
        self.health.shutting_down = True
        self._stop.set()
        self._wake.set()

    def trigger(self) -> None:
        """Ask for a sync now, even of a held (rejected) commit."""
        self._manual = True
        self._wake.set()

    def wake(self) -> None:
        """Look at the metadata now (a watch saw it change) instead of at the next poll."""
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------------

    def run(self, poll: float = 2.0) -> None:
        """Run until stop(); wake on a trigger or every `poll` seconds to read metadata."""
        self.health.started = True
        while not self._stop.is_set():
            delay = self.step()
            self._wake.wait(timeout=min(poll, max(delay, 0.05)))
            self._wake.clear()

    def step(self) -> float:
        """One iteration; returns how long until something is due."""
        if self._unpublished is not None and not self._publish(self._unpublished):
            return STATUS_RETRY_SECONDS
        delay = self._step()
        return min(delay, STATUS_RETRY_SECONDS) if self._unpublished is not None else delay

    def _step(self) -> float:
        now = self._clock()
        try:
            meta = self.metadata.read()
        except StokerError as e:
            log.warning("reading metadata: %s", e)
            return 5.0
        if meta is None:
            if isinstance(self.metadata, Pausable) and self.metadata.paused:
                self.health.boot.settle()  # a paused GatewaySync: nothing to wait for
            return 2.0
        self._current = meta
        effective = profiles.resolve(meta.settings.gatewaysync.spec.sync, meta.settings.profile)
        period = self._period or float(effective.sync_period)
        key = meta.key()
        self._watch.end_unless(key, meta.health_window)  # newer metadata ends it at once
        if self._manual:
            return self._paced(self._attempt(meta, key, effective, period, manual=True))
        # A backoff holds back retries of what failed; newer metadata (a fix pushed, another
        # profile) is a different sync and goes at once, keeping the count if it fails too.
        if now < self._next_attempt and key == self._failed_key:
            return self._next_attempt - now
        # A due health check goes before a due drift check: the window keeps its pace.
        watched = self._check(meta, now) if key == self._applied_key else math.inf
        if key != self._applied_key or now >= self._next_resync:
            return min(
                self._paced(self._attempt(meta, key, effective, period, manual=False)), watched
            )
        return min(self._next_resync - now, period, watched)

    def _attempt(
        self,
        meta: Metadata,
        key: str,
        effective: profiles.EffectiveProfile,
        period: float,
        *,
        manual: bool,
    ) -> float:
        self._manual = False
        resync_only = key == self._applied_key and not manual
        settings = meta.settings
        if self._observer is not None:
            settings = attrs.evolve(settings, observer=self._observer)
        if not resync_only:  # a new commit first; a due full check runs right after (below)
            # A sync asked for by hand of the commit applied is a drift check: a full one.
            settings = attrs.evolve(settings, defer_check=True, full_check=key == self._applied_key)
        elif effective.drift_policy is DriftPolicy.REPORT:
            # Report drift, change nothing; the walk counts as the full check it is.
            settings = attrs.evolve(settings, dry_run=True, periodic_check=True, full_check=True)
        else:  # the drift check this resync is for: every managed file, stray files too
            settings = attrs.evolve(settings, full_check=True)
        boot = self.health.boot
        if not boot.over() and settings.gateway and listening(settings.gateway.url):
            log.info("the gateway runs already (the agent restarted beside it): no pre-boot sync")
            boot.settle()
        if not boot.over():  # the gateway has not started: no API to ask (stoker_core.preboot)
            settings = attrs.evolve(settings, gateway=None, before_boot=boot.hold)
        try:
            outcome = self._sync(
                settings, honour_rejections=not manual, sleep=self._interruptible_sleep
            )
        except OSError as e:
            # The machine, not the input (a full or read-only volume): report it and back off
            # like any failed sync, rather than end the agent with a traceback.
            outcome = Outcome(SyncRecord(result="Error", error=oserrors.sentence(e)), None)
        finally:
            boot.release()
        if settings.before_boot is not None and outcome.record.result in BOOTED:
            boot.settle()
        self._publish(self._reported(meta, key, settings, outcome))
        self._next_resync = self._clock() + period
        if outcome.record.result == "Error":
            self._failures += 1
            self._failed_key = key
            delay = backoff_delay(self._failures, self._rng())
            self._next_attempt = self._clock() + delay
            log.warning("sync failed (%s); retrying in %.0fs", outcome.record.error, delay)
            return delay
        self._failures = 0
        self._next_attempt = 0.0
        if outcome.record.result in SETTLED and not settings.dry_run:
            self._applied_key = key
        if outcome.check_deferred and self._applied_key == key:
            self._next_resync = self._clock()  # the full check that was due, now it is applied
            return 0.0
        return period

    def _reported(
        self, meta: Metadata, key: str, settings: SyncSettings, outcome: Outcome
    ) -> SyncRecord:
        """The sync's record with what the loop knows beside it: the attempts of this sync
        failed in a row, the last syncs, and the health window it opens or continues."""
        record = outcome.record
        if not record.commit and settings.commit:  # it failed before it had fetched the commit
            record = attrs.evolve(record, commit=settings.commit)
        failing, count = self._attempts
        failed = (count + 1 if failing == key else 1) if record.result == "Error" else 0
        self._attempts = (key, failed)
        self._history = remember(self._history, record)
        self._open_window(meta, key, settings, outcome)
        health = self._watch.report()
        reported = attrs.evolve(record, failures=failed, history=self._history, health=health)
        self.health.last_record = reported
        return reported

    def _open_window(
        self, meta: Metadata, key: str, settings: SyncSettings, outcome: Outcome
    ) -> None:
        """Begin watching the gateway after a sync that left it in step at a new commit (one
        window per sync: the drift checks that follow do not begin it again; the first that
        finds it in step does when there was none, after a pre-boot sync or a window
        published for a commit the gateway already had)."""
        record = outcome.record
        in_step = record.result in WATCHED or record.skip == "backup"
        reached = settings.gateway is not None  # not a pre-boot sync: the gateway runs
        if not (meta.health_window and in_step and reached):
            return
        plan = outcome.plan
        self._watch.open(
            key=key,
            commit=record.commit or settings.commit or "",
            length=meta.health_window,
            projects=frozenset(plan.projects()) if plan is not None else frozenset(),
        )

    def _paced(self, delay: float) -> float:
        """`delay`, or sooner when a health window (one the sync just opened) has a check due
        first: the loop sleeps for what a step returns."""
        return min(delay, self._watch.due_in(self._clock()))

    def _check(self, meta: Metadata, now: float) -> float:
        """Check the gateway if the health window's check is due, and publish what it found;
        returns how long until the next check (inf: none). Never after shutdown began."""
        if self._stop.is_set():
            return math.inf
        ran, left = self._watch.check(meta.settings.gateway, now)
        last = self.health.last_record
        if ran and last is not None:
            self.health.last_record = attrs.evolve(last, health=self._watch.report())
            self._publish(self.health.last_record)
        return left

    def _publish(self, record: SyncRecord) -> bool:
        """Hand `record` to the status sink; if it fails (the API server is away), keep it to
        offer again: an unreachable status store never stops the syncing."""
        try:
            self.status.write(record)
        except StokerError as e:
            log.warning("publishing the status: %s; retrying in %.0fs", e, STATUS_RETRY_SECONDS)
            self._unpublished = record
            return False
        self._unpublished = None
        return True

    def _interruptible_sleep(self, seconds: float) -> None:
        """Sleep for a Designer wait, cut short by shutdown or newer metadata (B26)."""
        deadline = self._clock() + seconds
        before = self._current.key() if self._current else None
        while self._clock() < deadline:
            if self._stop.wait(timeout=min(1.0, max(0.0, deadline - self._clock()))):
                raise Interrupted("shutting down")
            latest = self.metadata.read()
            if latest is not None and before is not None and latest.key() != before:
                raise Interrupted("newer metadata arrived")
