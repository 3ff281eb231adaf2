"""The agent loop on a fake clock: triggers, drift policy, backoff, manual trigger, shutdown,
and the health endpoints."""

from __future__ import annotations

import errno
import os
from typing import Any

import attrs
import pytest
import requests

from core.helpers import gs_with
from stoker_agent.health import AgentMetrics, HealthServer
from stoker_agent.loop import AgentLoop, Interrupted, Metadata
from stoker_agent.standalone import Identity, Outcome, SyncSettings
from stoker_core.errors import TemporaryError
from stoker_core.status import SyncRecord, worth_writing
from support.agentloop import Clock, Sink, Source


@attrs.define
class FakeSync:
    results: list[str]
    calls: list[dict[str, Any]] = attrs.field(factory=list)

    def __call__(self, settings: SyncSettings, **kwargs: Any) -> Outcome:
        self.calls.append(
            {
                "dry_run": settings.dry_run,
                "commit": settings.commit,
                "full_check": settings.full_check,
                "defer_check": settings.defer_check,
                **kwargs,
            }
        )
        result = self.results.pop(0) if self.results else "InSync"
        error = "boom" if result == "Error" else ""
        record = SyncRecord(result=result, commit=settings.commit or "", error=error)
        return Outcome(attrs.evolve(record, time=f"t{len(self.calls)}"), None)


def meta(commit: str = "a" * 40, drift_policy: str = "report") -> Metadata:
    gs = gs_with(
        [{"source": "p", "destination": "projects"}], syncPeriod=60, driftPolicy=drift_policy
    )
    settings = SyncSettings(
        gatewaysync=gs,
        profile=None,
        identity=Identity(gateway_name="g"),
        repo="/repo",
        ref="main",
        data_dir="/data",
        commit=commit,
    )
    return Metadata(settings=settings)


def make_loop(source: Source, sync: FakeSync, clock: Clock) -> tuple[AgentLoop, Sink]:
    sink = Sink()
    return AgentLoop(source, sink, clock=clock, rng=lambda: 0.5, sync=sync), sink


def test_new_metadata_syncs_at_once_and_same_metadata_waits_for_the_period() -> None:
    clock, sync = Clock(), FakeSync(["Synced"])
    source = Source(meta())
    loop, sink = make_loop(source, sync, clock)
    assert loop.step() == 60
    assert len(sync.calls) == 1
    clock.now += 30
    loop.step()
    assert len(sync.calls) == 1
    source.meta = meta(commit="b" * 40)
    loop.step()
    assert [c["commit"] for c in sync.calls] == ["a" * 40, "b" * 40]
    assert [r.result for r in sink.records] == ["Synced", "InSync"]


def test_same_commit_in_another_serialisation_is_not_a_change() -> None:
    clock, sync = Clock(), FakeSync([])
    source = Source(meta())
    loop, _ = make_loop(source, sync, clock)
    loop.step()
    source.meta = meta()  # a fresh object holding equal content
    loop.step()
    assert len(sync.calls) == 1


@pytest.mark.parametrize(("policy", "dry_run"), [("report", True), ("restore", False)])
def test_periodic_resync_follows_the_drift_policy(policy: str, dry_run: bool) -> None:
    clock, sync = Clock(), FakeSync([])
    loop, _ = make_loop(Source(meta(drift_policy=policy)), sync, clock)
    loop.step()
    clock.now += 61
    loop.step()
    assert [c["dry_run"] for c in sync.calls] == [False, dry_run]


@pytest.mark.parametrize("policy", ["report", "restore"])
def test_the_drift_checks_of_the_applied_commit_ask_for_a_full_check_and_a_new_commit_does_not(
    policy: str,
) -> None:
    clock, sync = Clock(), FakeSync([])
    source = Source(meta(drift_policy=policy))
    loop, _ = make_loop(source, sync, clock)
    loop.step()  # a new commit: planned from its changes, the due check deferred
    clock.now += 61
    loop.step()  # the periodic drift check
    loop.trigger()
    loop.step()  # a sync asked for by hand of the same commit
    source.meta = meta(commit="b" * 40, drift_policy=policy)
    loop.step()
    assert [(c["full_check"], c["defer_check"]) for c in sync.calls] == [
        (False, True),
        (True, False),
        (True, True),
        (False, True),
    ]


def test_failures_back_off_exponentially_and_success_resets() -> None:
    clock, sync = Clock(), FakeSync(["Error", "Error", "Error", "Synced", "Error"])
    loop, _ = make_loop(Source(meta()), sync, clock)
    delays = [loop.step()]
    for _ in range(2):
        clock.now += delays[-1] - 1
        assert loop.step() == pytest.approx(1)  # still backing off: no attempt
        clock.now += 1
        delays.append(loop.step())
    assert delays == [pytest.approx(30), pytest.approx(60), pytest.approx(120)]
    clock.now += 120
    assert loop.step() == 60  # success: back to the period
    loop.trigger()
    assert loop.step() == pytest.approx(30)  # the next failure starts again at 30 s


def test_each_record_counts_the_attempts_of_its_commit_that_failed_in_a_row() -> None:
    clock, sync = Clock(), FakeSync(["Error", "Error", "Error", "Synced"])
    source = Source(meta())
    loop, sink = make_loop(source, sync, clock)
    loop.step()
    clock.now += 30
    loop.step()
    source.meta = meta(commit="b" * 40)  # another commit: a count of its own
    loop.step()
    clock.now += 120  # the backoff went on counting (see below); the report did not
    loop.step()
    assert [(r.commit[0], r.failures) for r in sink.records] == [
        ("a", 1),
        ("a", 2),
        ("b", 1),
        ("b", 0),  # a success: none
    ]


def test_an_error_before_the_commit_was_fetched_names_the_commit_it_was_for() -> None:
    # a rollout counts the failures of a commit: an unreachable repository fails the target
    def unfetched(settings: SyncSettings, **_: Any) -> Outcome:
        return Outcome(SyncRecord(result="Error", error="cannot fetch"), None)

    clock, sink = Clock(), Sink()
    AgentLoop(Source(meta()), sink, clock=clock, rng=lambda: 0.5, sync=unfetched).step()
    assert (sink.records[0].commit, sink.records[0].failures) == ("a" * 40, 1)


def test_each_record_carries_the_last_syncs_and_a_quiet_drift_check_is_not_rewritten() -> None:
    clock, sync = Clock(), FakeSync(["Error", "Error", "Synced"])
    loop, sink = make_loop(Source(meta(drift_policy="report")), sync, clock)
    for delay in (0, 30, 60, 61, 61):  # two failures, the sync, two drift checks
        clock.now += delay
        loop.step()
    assert [p.result for p in sink.records[-1].history] == ["Error", "Synced", "InSync"]
    assert [p.time for p in sink.records[-1].history] == ["t1", "t3", "t4"]
    first_check, second_check = sink.records[-2:]
    assert not worth_writing(first_check, second_check, written_at=0, now=61)


def test_newer_metadata_is_tried_at_once_even_during_a_backoff() -> None:
    clock, sync = Clock(), FakeSync(["Error", "Error", "Synced"])
    source = Source(meta())
    loop, _ = make_loop(source, sync, clock)
    assert loop.step() == pytest.approx(30)
    clock.now += 5
    assert loop.step() == pytest.approx(25)  # the same commit waits out its backoff
    source.meta = meta(commit="b" * 40)  # a fix is pushed
    assert loop.step() == pytest.approx(60)  # tried at once; failed again: the count went on
    clock.now += 5
    assert loop.step() == pytest.approx(55)
    assert [c["commit"] for c in sync.calls] == ["a" * 40, "b" * 40]
    source.meta = meta(commit="c" * 40)
    assert loop.step() == 60  # success: back to the period
    assert [c["commit"] for c in sync.calls][-1] == "c" * 40


def test_a_given_period_overrides_the_profiles_sync_period() -> None:
    # `stoker sync --watch --interval 5s` on a profile whose syncPeriod is 60 s.
    clock, sync = Clock(), FakeSync(["Synced"])
    loop = AgentLoop(Source(meta()), Sink(), clock=clock, rng=lambda: 0.5, sync=sync, period=5)
    assert loop.step() == 5
    clock.now += 5
    loop.step()
    assert [c["dry_run"] for c in sync.calls] == [False, True]  # the resync: a drift check


def test_manual_trigger_syncs_even_a_held_commit() -> None:
    clock, sync = Clock(), FakeSync(["Rejected"])
    loop, _ = make_loop(Source(meta()), sync, clock)
    loop.step()
    loop.step()
    assert len(sync.calls) == 1
    loop.trigger()
    loop.step()
    assert [c["honour_rejections"] for c in sync.calls] == [True, False]


def test_a_designer_wait_is_cut_short_by_shutdown_or_newer_metadata_b26() -> None:
    source = Source(meta())
    loop, _ = make_loop(source, FakeSync([]), Clock())
    loop.step()
    source.meta = meta(commit="c" * 40)
    with pytest.raises(Interrupted, match="newer metadata"):
        loop._interruptible_sleep(300)
    loop.stop()
    with pytest.raises(Interrupted, match="shutting down"):
        loop._interruptible_sleep(300)


def test_health_endpoints_follow_startup_and_shutdown() -> None:
    loop, _ = make_loop(Source(None), FakeSync([]), Clock())
    metrics = AgentMetrics()
    server = HealthServer(loop.health, metrics, host="127.0.0.1", port=0).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        assert requests.get(f"{base}/startupz", timeout=5).status_code == 503
        loop.health.started = True
        assert requests.get(f"{base}/startupz", timeout=5).status_code == 200
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
        loop.stop()
        ready = requests.get(f"{base}/readyz", timeout=5)
        assert (ready.status_code, ready.text.strip()) == (503, "shutting down")
        metrics.observe(SyncRecord(result="Synced", profile="default", added=("a",)))
        text = requests.get(f"{base}/metrics", timeout=5).text
        assert 'stoker_agent_sync_total{profile="default",result="Synced"} 1.0' in text
        assert 'stoker_agent_files_changed{profile="default"} 1.0' in text
    finally:
        server.stop()


@attrs.define
class FlakySink(Sink):
    """A status store that refuses writes while `down` (an API server out of reach)."""

    down: bool = True

    def write(self, record: SyncRecord) -> None:
        if self.down:
            raise TemporaryError("writing the status ConfigMap: the API server did not answer")
        super().write(record)


def test_a_status_store_out_of_reach_neither_stops_the_loop_nor_loses_the_record() -> None:
    clock, sync = Clock(), FakeSync(["Synced"])
    sink = FlakySink()
    loop = AgentLoop(Source(meta()), sink, clock=clock, rng=lambda: 0.5, sync=sync)
    assert loop.step() == pytest.approx(5)  # synced; the status is offered again soon
    assert loop.step() == pytest.approx(5)  # still out of reach: nothing synced again
    assert len(sync.calls) == 1
    assert sink.records == []
    sink.down = False
    assert loop.step() == 60
    assert [r.result for r in sink.records] == ["Synced"]
    assert len(sync.calls) == 1


def test_a_full_disk_is_reported_and_retried_not_a_crash() -> None:
    clock, sink = Clock(), Sink()
    outcomes: list[Outcome | OSError] = [
        OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/.stoker/txn/new/0"),
        Outcome(SyncRecord(result="Synced"), None),
    ]

    def sync(settings: SyncSettings, **kwargs: Any) -> Outcome:
        next_one = outcomes.pop(0)
        if isinstance(next_one, OSError):
            raise next_one
        return next_one

    loop = AgentLoop(Source(meta()), sink, clock=clock, rng=lambda: 0.5, sync=sync)
    assert loop.step() == pytest.approx(30)  # backs off like any failed sync
    [record] = sink.records
    assert record.result == "Error"
    assert record.error.startswith("/data/.stoker/txn/new/0: No space left on device; free")
    clock.now += 30
    assert loop.step() == 60
    assert [r.result for r in sink.records] == ["Error", "Synced"]
