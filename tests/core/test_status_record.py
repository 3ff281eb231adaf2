"""The agent's status record (stoker_core.status): what a fleet rollout reads of it
(`readsTargets`, `failures`, `history`, `health`), the history's bounds, and the write
throttle that must still skip a drift check saying nothing new."""

from __future__ import annotations

import json

import attrs

from stoker_core.status import (
    HISTORY_BYTES,
    HISTORY_ENTRIES,
    HealthReport,
    SyncRecord,
    remember,
    worth_writing,
)

A, B = "a" * 40, "b" * 40


def synced(commit: str, time: str, **kw: object) -> SyncRecord:
    return SyncRecord(result="Synced", commit=commit, time=time, **kw)  # type: ignore[arg-type]


def test_the_rollout_fields_are_in_the_wire_form() -> None:
    health = HealthReport(commit=A, healthy_for=12.3456, since="t0", checked_at="t1")
    record = SyncRecord(result="Synced", commit=A, reads_targets=True, failures=0, health=health)
    record = attrs.evolve(record, history=remember((), record))
    body = record.to_json()
    assert (body["readsTargets"], body["failures"]) == (True, 0)
    assert body["health"] == {
        "commit": A,
        "healthyFor": 12.346,
        "since": "t0",
        "checkedAt": "t1",
        "unhealthy": False,
        "problem": "",
    }
    assert body["history"] == [
        {
            "time": "",
            "result": "Synced",
            "commit": A,
            "added": 0,
            "modified": 0,
            "deleted": 0,
            "error": "",
        }
    ]
    assert "health" not in SyncRecord(result="Synced").to_json()  # no window watched


def test_the_history_keeps_the_last_syncs_newest_last_and_counts_not_paths() -> None:
    history: tuple = ()
    for i in range(3 * HISTORY_ENTRIES):
        paths = tuple(f"projects/p/{n}.json" for n in range(i))
        history = remember(history, synced(f"{i:040d}", f"t{i}", added=paths))
    assert len(history) == HISTORY_ENTRIES
    assert [p.time for p in history] == [f"t{i}" for i in range(20, 30)]
    assert history[-1].added == 29


def test_the_history_is_bounded_in_bytes_and_its_errors_are_cut() -> None:
    history: tuple = ()
    for i in range(HISTORY_ENTRIES):
        error = f"{i} " + "x" * 5000
        history = remember(history, SyncRecord(result="Error", commit=A, error=error, time="t"))
    assert all(len(p.error) <= 200 for p in history)
    assert len(json.dumps([p.to_json() for p in history])) <= HISTORY_BYTES


def test_a_sync_that_says_what_the_newest_entry_says_is_not_a_new_entry() -> None:
    history = remember((), synced(A, "t1", added=("projects/p/a.json",)))
    checked = remember(history, SyncRecord(result="InSync", commit=A, time="t2"))
    again = remember(checked, SyncRecord(result="InSync", commit=A, time="t3"))
    assert again == checked
    assert [p.result for p in again] == ["Synced", "InSync"]


def test_a_drift_check_that_says_nothing_new_is_still_not_written() -> None:
    def check(time: str, history: tuple) -> SyncRecord:
        record = SyncRecord(result="InSync", commit=A, time=time, reads_targets=True)
        return attrs.evolve(record, history=remember(history, record))

    first = check("t1", ())
    second = check("t2", first.history)
    assert not worth_writing(first, second, written_at=0, now=30)


def test_each_health_check_is_worth_a_write() -> None:
    health = HealthReport(commit=A, healthy_for=5, since="t0", checked_at="t1")
    first = SyncRecord(result="Synced", commit=A, health=health)
    later = attrs.evolve(first, health=attrs.evolve(health, healthy_for=10, checked_at="t2"))
    assert worth_writing(first, later, written_at=0, now=5)
