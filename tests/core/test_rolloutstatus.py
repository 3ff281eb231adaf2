"""`status.rollout` as the controller writes it and the rollout events read from two of them
(stoker_core.rolloutstatus, issue 17): each step start and finish, approval, halt, rollback and
completion said once, whatever the passes between; who approved a gate kept for its commit."""

from __future__ import annotations

from typing import Any

import attrs

from stoker_core import rolloutstatus
from stoker_core.rolloutstate import COMPLETE, Halt, State
from stoker_core.rolloutstatus import Event, events, record
from stoker_core.vocabulary import Reason

OLD, NEW, NEWER = "a" * 40, "b" * 40, "c" * 40
STEPS = ["test", "lines", "unselected"]


def written(state: State, **extra: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"awaiting": "", "by": {}, "ignored": (), "since": 100.0}
    return record(state, **{**options, **extra})


def said(old: dict[str, Any] | None, new: dict[str, Any], rollback: bool = False) -> list[Event]:
    return events(old, new, steps=STEPS, rollback=rollback)


MOVING = State(commit=NEW, baseline=OLD, moved=("gw-0",), started=(10.0,))


def test_the_record_is_the_state_and_what_people_read() -> None:
    shown = written(MOVING, awaiting="step:lines", by={"rollout": "alice", "x": "y"})
    assert shown["commit"] == NEW
    assert shown["pendingCommit"] == NEW
    assert shown["awaiting"] == "step:lines"
    assert shown["approvedBy"] == {}  # only gates the state counts as approved
    assert "halted" not in shown  # the API server would prune a null
    approved = written(attrs.evolve(MOVING, approvals=("rollout",)), by={"rollout": "alice"})
    assert approved["approvedBy"] == {"rollout": "alice"}
    done = written(attrs.evolve(MOVING, step=COMPLETE))
    assert done["pendingCommit"] == ""
    many = written(MOVING, ignored=[f"approval {i} " + "x" * 300 for i in range(20)])
    assert len(many["ignored"]) == rolloutstatus.IGNORED
    assert all(len(text) <= 200 for text in many["ignored"])


def test_a_step_start_and_finish_are_each_said_once() -> None:
    first = written(MOVING)
    assert said(None, first) == [
        Event(reason=Reason.ROLLOUT_STEP_STARTED, message=f"commit {NEW[:12]}: step 1/3 test "
              "started")
    ]  # fmt: skip
    assert said(first, first) == []  # the same pass again (a restart): nothing new
    done = written(attrs.evolve(MOVING, finished=(20.0,), started=(10.0, 20.0), step=1))
    assert [e.reason for e in said(first, done)] == [
        Reason.ROLLOUT_STEP_STARTED,
        Reason.ROLLOUT_STEP_DONE,
    ]
    assert said(done, done) == []


def test_a_newer_commit_says_its_own_first_step() -> None:
    old = written(attrs.evolve(MOVING, started=(10.0, 20.0), finished=(20.0,), step=1))
    newer = written(State(commit=NEWER, baseline=OLD, started=(30.0,)))
    assert [e.message for e in said(old, newer)] == [f"commit {NEWER[:12]}: step 1/3 test started"]


def test_an_approval_names_who_approved_it() -> None:
    waiting = written(State(commit=NEW, baseline=OLD), awaiting="rollout")
    approved = written(
        attrs.evolve(MOVING, approvals=("rollout",)), by={"rollout": "alice@plant.example"}
    )
    found = said(waiting, approved)
    assert (
        Event(
            reason=Reason.ROLLOUT_APPROVED,
            message=f"rollout approved for commit {NEW[:12]} by alice@plant.example",
        )
        in found
    )
    assert said(approved, approved) == []


def test_a_halt_is_a_warning_said_once_and_a_rollback_too() -> None:
    halt = Halt(gateway="gw-1", commit=NEW, error="project rejected", at=30.0)
    halted = written(attrs.evolve(MOVING, halted=halt, moved=()))
    found = said(written(MOVING), halted, rollback=True)
    assert [(e.reason, e.warning) for e in found] == [
        (Reason.ROLLOUT_HALTED, True),
        (Reason.ROLLOUT_ROLLED_BACK, True),
    ]
    assert "gw-1" in found[0].message
    assert "project rejected" in found[0].message
    assert said(halted, halted, rollback=True) == []


def test_completion_is_said_once_and_a_settled_record_says_nothing() -> None:
    complete = written(attrs.evolve(MOVING, step=COMPLETE, started=(10.0,), finished=(20.0,)))
    found = said(written(attrs.evolve(MOVING, started=(10.0,), finished=(20.0,))), complete)
    assert [e.reason for e in found] == [Reason.ROLLOUT_COMPLETE]
    assert said(complete, complete) == []
    settled = written(State.settled(OLD))
    assert said(None, settled) == []
    assert said(settled, settled) == []


def test_a_new_ignored_approval_is_a_warning_once() -> None:
    before = written(MOVING, ignored=["approval.stoker.io/rollout is a plain commit SHA"])
    after = written(
        MOVING,
        ignored=[
            "approval.stoker.io/rollout is a plain commit SHA",
            "approval.stoker.io/step.lines carries a stamp that does not verify",
        ],
    )
    assert said(before, after) == [
        Event(
            reason=Reason.APPROVAL_IGNORED,
            message="approval.stoker.io/step.lines carries a stamp that does not verify",
            warning=True,
        )
    ]


def test_what_a_record_carries_over_is_kept_for_its_commit_only() -> None:
    old = written(attrs.evolve(MOVING, approvals=("rollout",)), by={"rollout": "alice"})
    assert rolloutstatus.carried(old, MOVING, 500.0) == (100.0, {"rollout": "alice"})
    assert rolloutstatus.carried(old, State(commit=NEWER), 500.0) == (500.0, {})
    damaged = {**old, "since": "yesterday", "approvedBy": ["alice"]}
    assert rolloutstatus.carried(damaged, MOVING, 500.0) == (500.0, {})


def test_a_resumed_commit_says_its_steps_again() -> None:
    halt = Halt(gateway="gw-1", commit=NEW, error="project rejected", at=30.0)
    halted = written(attrs.evolve(MOVING, started=(10.0, 20.0), finished=(20.0,), halted=halt))
    resumed = written(
        attrs.evolve(MOVING, started=(40.0, 40.0), finished=(40.0,), step=1, approvals=("resume",)),
        by={"resume": "bob"},
    )
    found = [e.reason for e in said(halted, resumed)]
    assert found.count(Reason.ROLLOUT_STEP_STARTED) == 2
    assert found.count(Reason.ROLLOUT_STEP_DONE) == 1
    assert Reason.ROLLOUT_APPROVED in found
