"""Approvals (stoker_core.approvals, issue 17): gate and annotation key, the webhook's stamp, and
what the controller counts: only a stamp made for this object, this gate and this commit with
the key; anything else is ignored with a sentence. Hostile values are bounded and parsed once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stoker_core import approvals, rollouts
from stoker_core.approvals import key, verified

SECRET = b"k" * 32
NEW, OLD = "b" * 40, "a" * 40
SITE = {"namespace": "plant", "name": "site", "uid": "uid-1"}


def stamped(gate: str, commit: str = NEW, by: str = "alice", **where: str) -> str:
    at = "2026-12-06T10:00:00Z"
    return approvals.stamp(SECRET, **{**SITE, **where}, gate=gate, commit=commit, by=by, at=at)


def check(annotations: dict[str, Any], commit: str = NEW, secret: bytes = SECRET) -> Any:
    return verified(annotations, key=secret, commit=commit, **SITE)


@pytest.mark.parametrize(
    ("gate", "annotation"),
    [
        ("rollout", "approval.stoker.io/rollout"),
        ("resume", "approval.stoker.io/resume"),
        ("step:test", "approval.stoker.io/step.test"),
        ("pause:line-1", "approval.stoker.io/pause.line-1"),
    ],
)
def test_a_gate_and_its_annotation_key_map_both_ways(gate: str, annotation: str) -> None:
    assert key(gate) == annotation
    assert approvals.gate_of(annotation) == gate


@pytest.mark.parametrize(
    "annotation",
    [
        "stoker.io/rollout",
        "approval.stoker.io/",
        "approval.stoker.io/step.",
        "approval.stoker.io/x",
    ],
)
def test_a_key_that_names_no_gate_is_no_gate(annotation: str) -> None:
    assert approvals.gate_of(annotation) == ""


def test_the_rollout_gate_is_the_one_the_decision_awaits() -> None:
    assert approvals.ROLLOUT_GATE == rollouts.ROLLOUT_GATE


def test_a_step_name_too_long_for_an_annotation_key_is_said_before_writing() -> None:
    assert approvals.too_long("step:" + "a" * 58) == ""
    message = approvals.too_long("pause:" + "a" * 58)
    assert "at most 57 characters" in message


def test_a_stamp_made_by_the_webhook_verifies_and_names_who_approved() -> None:
    seen = check({key("rollout"): stamped("rollout"), key("step:test"): stamped("step:test")})
    assert seen.gates == {"rollout", "step:test"}
    assert seen.by == {"rollout": "alice", "step:test": "alice"}
    assert seen.ignored == ()


def test_a_plain_sha_written_by_hand_is_ignored_with_a_sentence() -> None:
    seen = check({key("rollout"): NEW})
    assert seen.gates == frozenset()
    assert seen.ignored == (
        "approval.stoker.io/rollout is a plain commit SHA: ignored (written while the approval "
        "webhook was bypassed, or damaged); approve again with stoker approve",
    )


def test_a_stamp_copied_from_another_gatewaysync_is_ignored() -> None:
    for other in ({"name": "other"}, {"namespace": "elsewhere"}, {"uid": "uid-2"}):
        seen = check({key("rollout"): stamped("rollout", **other)})
        assert seen.gates == frozenset(), other
        assert "does not verify for this GatewaySync" in seen.ignored[0]


def test_a_stamp_moved_to_another_gate_is_ignored() -> None:
    seen = check({key("step:lines"): stamped("step:test")})
    assert seen.gates == frozenset()
    assert "does not verify" in seen.ignored[0]


def test_a_stamp_edited_to_another_commit_or_user_is_ignored() -> None:
    for field, value in (("commit", NEW), ("by", "mallory"), ("at", "2030-01-01T00:00:00Z")):
        record = json.loads(stamped("rollout", commit=OLD))
        record[field] = value
        seen = check({key("rollout"): json.dumps(record)})
        assert seen.gates == frozenset(), field
        assert "does not verify" in seen.ignored[0]


def test_a_true_stamp_of_another_commit_counts_only_for_that_commit() -> None:
    annotations = {key("rollout"): stamped("rollout", commit=OLD)}
    assert check(annotations, commit=OLD).gates == {"rollout"}
    seen = check(annotations, commit=NEW)
    assert seen.gates == frozenset()
    assert seen.ignored == (
        f"approval.stoker.io/rollout approves commit {OLD[:12]}, not {NEW[:12]}: ignored",
    )


def test_a_stamp_made_with_another_key_is_ignored() -> None:
    seen = check({key("rollout"): stamped("rollout")}, secret=b"other key")
    assert seen.gates == frozenset()
    assert "does not verify" in seen.ignored[0]


def test_without_the_key_nothing_verifies_and_each_approval_says_why() -> None:
    seen = check({key("rollout"): stamped("rollout")}, secret=b"")
    assert seen.gates == frozenset()
    assert seen.ignored == (
        "approval.stoker.io/rollout cannot be checked: the approval key Secret could not be read",
    )


@pytest.mark.parametrize(
    "value",
    [
        "{",
        "{}",
        "[]",
        '{"commit": 1, "by": "a", "at": "b", "sig": "c"}',
        json.dumps({"commit": "not a sha", "by": "a", "at": "b", "sig": "c"}),
        json.dumps({"commit": NEW, "by": "a", "at": "b", "sig": "c", "more": "d"}),
        "{" + "[" * 5000,
        '{"a":' + "[" * 2000 + "]" * 40,
        '{"commit": "' + "b" * 5000 + '"}',
    ],
)
def test_a_damaged_or_oversized_value_is_ignored_with_a_sentence(value: str) -> None:
    seen = check({key("rollout"): value})
    assert seen.gates == frozenset()
    assert seen.ignored == (
        "approval.stoker.io/rollout is not a stamp the webhook wrote: ignored (written while "
        "the approval webhook was bypassed, or damaged); approve again with stoker approve",
    )


def test_a_value_that_is_no_string_is_ignored() -> None:
    seen = check({key("rollout"): {"commit": NEW}})
    assert seen.gates == frozenset()
    assert len(seen.ignored) == 1


def test_other_annotations_are_not_read_and_unknown_approval_keys_are_said() -> None:
    seen = check({"stoker.io/requested-ref": "main", "approval.stoker.io/bogus": NEW})
    assert seen.gates == frozenset()
    assert seen.ignored == (
        "approval.stoker.io/bogus names no approval gate (rollout, resume, step.NAME, "
        "pause.NAME): ignored",
    )


def test_reading_is_bounded_in_the_number_of_approval_annotations() -> None:
    many = {f"approval.stoker.io/step.s{i}": NEW for i in range(1000)}
    seen = check(many)
    assert len(seen.ignored) == approvals.MAX_READ + 1
    assert seen.ignored[-1] == "more than 64 approval annotations: the rest are ignored"


@given(st.text(max_size=300))
def test_no_value_raises_and_none_counts_without_the_key(value: str) -> None:
    seen = check({key("rollout"): value})
    assert seen.gates == frozenset()


def test_changed_lists_additions_and_changes_but_not_removals() -> None:
    old = {key("rollout"): NEW, key("step:a"): OLD, "other": "x"}
    new = {key("rollout"): NEW, key("step:a"): NEW, key("resume"): OLD, "other": "y"}
    assert approvals.changed(old, new) == [(key("resume"), OLD), (key("step:a"), NEW)]
    assert approvals.changed(new, {}) == []


def test_pending_is_the_rolled_out_commit_or_for_resume_the_halted_one() -> None:
    status = {"rollout": {"commit": NEW, "halted": {"commit": OLD, "gateway": "g"}}}
    assert approvals.pending(status, "rollout") == NEW
    assert approvals.pending(status, "step:test") == NEW
    assert approvals.pending(status, "resume") == OLD
    assert approvals.pending({"rollout": {"commit": NEW}}, "resume") == ""
    assert approvals.pending({}, "rollout") == ""
    assert approvals.pending({"rollout": {"commit": "HEAD"}}, "rollout") == ""
    done = {"rollout": {"commit": NEW, "pendingCommit": ""}}  # complete: nothing on its way
    assert approvals.pending(done, "rollout") == ""
    awaiting = {"rollout": {"commit": NEW, "pendingCommit": NEW}}
    assert approvals.pending(awaiting, "step:test") == NEW


def test_a_step_gate_must_name_a_step_of_the_spec() -> None:
    spec = {"rollout": {"steps": [{"name": "test"}, {"selector": {}}]}}
    names = approvals.step_names(spec)
    assert names == ["test", "step-2"]
    assert approvals.unknown_step("step:test", names) == ""
    assert approvals.unknown_step("pause:step-2", names) == ""
    assert approvals.unknown_step("rollout", names) == ""
    assert approvals.unknown_step("step:tset", names) == (
        "spec.rollout.steps has no step named 'tset' (steps: test, step-2)"
    )
