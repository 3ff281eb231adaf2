"""Whose scan lock is it: the record of locks Stoker took, and a lock its lost request took."""

from __future__ import annotations

import pytest

from stoker_core.outcomes import VERDICTS, GatewayReply, Verdict
from stoker_core.scanlocks import (
    HeldLock,
    LockRecord,
    parse_records,
    records_json,
    taken_by_unanswered_attempt,
)

HELD = HeldLock(actor="stoker", remaining=100, timestamp=1_700_000_000_123)


def test_H14_a_lock_is_ours_only_when_the_record_names_that_very_lock() -> None:
    record = LockRecord(actor="stoker", timestamp=HELD.timestamp, run="r1")
    assert parse_records(records_json({"projects": record})) == {"projects": record}
    assert record.names(HELD)
    assert not record.names(HeldLock(actor="stoker", remaining=100, timestamp=1))  # a new lock
    assert not record.names(HeldLock(actor="operator", remaining=1, timestamp=HELD.timestamp))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[1, 2]",
        '{"projects": "stoker"}',
        '{"projects": {"actor": "stoker", "timestamp": "soon", "run": "r"}}',
        '{"projects": {"actor": "stoker", "timestamp": 1e999, "run": "r"}}',
        '{"projects": {"actor": "stoker", "timestamp": true, "run": "r"}}',
        '{"projects": {"actor": "stoker", "timestamp": 5}}',
    ],
)
def test_H14_a_damaged_or_foreign_lock_record_owns_nothing(text: str) -> None:
    assert parse_records(text) == {}


def test_a_lock_reply_of_the_wrong_shape_is_no_lock() -> None:
    assert HeldLock.from_reply({"actor": "stoker", "remaining": 5, "timestamp": 9}) == HeldLock(
        actor="stoker", remaining=5.0, timestamp=9
    )
    bodies: list[object] = [None, [], {"actor": 1, "remaining": 5, "timestamp": 9}, {"actor": "s"}]
    for body in bodies:
        assert HeldLock.from_reply(body) is None


def test_H14_a_lock_our_lost_request_took_is_recognised_by_its_age_and_actor() -> None:
    young = HeldLock(actor="stoker", remaining=119, timestamp=5)  # granted 1 s ago
    old = HeldLock(actor="stoker", remaining=60, timestamp=5)  # granted 60 s ago
    other = HeldLock(actor="operator", remaining=119, timestamp=5)

    def ours(held: HeldLock) -> bool:  # our request was sent 1.5 s ago, its answer lost
        return taken_by_unanswered_attempt(
            held, actor="stoker", hold_seconds=120, since_attempt=1.5
        )

    assert ours(young)
    assert not ours(old)
    assert not ours(other)


def test_H14_a_reply_that_is_not_the_apis_is_retried_never_a_rejection() -> None:
    assert VERDICTS[GatewayReply.NOT_THE_API] is Verdict.RETRY
