"""The approval gates a GatewaySync's spec holds (stoker_core.approvals.gates) and which of them
an update removes (`removed`): what the validating webhook guards with the right to approve
(issue 17, docs/rollouts.md "Approvals"). Specs are read leniently, as the stored object may be
older or newer than this release."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from core.helpers import manifest_with
from stoker_core import approvals, model, waves
from stoker_core.validation import load

PROFILES = {
    "default": {"mappings": [{"source": "a", "destination": "b"}]},
    "line": {"mappings": [{"source": "a", "destination": "b"}]},
}
GATED: dict[str, Any] = {
    "approval": "required",
    "steps": [
        {"name": "test", "selector": {"gateways": ["test-gw"]}, "approval": "required"},
        {"selector": {"profiles": ["line"]}, "pause": {"untilApproved": True}},
        {"name": "rest", "selector": {"gateways": ["gw-9"]}, "pause": {"duration": "5m"}},
    ],
}


def spec(rollout: Any = None) -> dict[str, Any]:
    body = manifest_with(copy.deepcopy(PROFILES))["spec"]
    if rollout is not None:
        body["rollout"] = copy.deepcopy(rollout)
    return body


def test_a_spec_holds_the_rollout_gate_each_steps_approval_and_each_pause_until_approved() -> None:
    assert approvals.gates(spec(GATED)) == ("rollout", "step:test", "pause:step-2")
    assert approvals.gates(spec()) == ()
    assert approvals.gates(spec({"steps": [{"name": "a", "selector": {}}]})) == ()


def test_the_gates_are_the_ones_the_rollout_decision_waits_on() -> None:
    """Read from the wire form, they are what `rollouts` asks for from the model."""
    body = manifest_with(copy.deepcopy(PROFILES))
    body["spec"]["rollout"] = copy.deepcopy(GATED)
    rollout = load(body).spec.rollout
    assert rollout is not None
    expected = ["rollout"] if rollout.approval is model.Approval.REQUIRED else []
    for index, step in enumerate(rollout.steps):
        name = waves.step_name(step, index)
        if step.approval is model.Approval.REQUIRED:
            expected.append(f"step:{name}")
        if step.pause is not None and step.pause.until_approved:
            expected.append(f"pause:{name}")
    assert approvals.gates(body["spec"]) == tuple(expected)


def test_removing_any_gate_or_the_whole_rollout_is_a_removal() -> None:
    old = spec(GATED)
    no_rollout_gate = spec({**GATED, "approval": "none"})
    assert approvals.removed(old, no_rollout_gate) == ["rollout"]
    no_step_gate = copy.deepcopy(old)
    del no_step_gate["rollout"]["steps"][0]["approval"]
    assert approvals.removed(old, no_step_gate) == ["step:test"]
    timed = copy.deepcopy(old)
    timed["rollout"]["steps"][1]["pause"] = {"duration": "1s"}
    assert approvals.removed(old, timed) == ["pause:step-2"]
    assert approvals.removed(old, spec()) == ["rollout", "step:test", "pause:step-2"]


def test_a_step_renamed_or_moved_takes_its_gates_away() -> None:
    old = spec(GATED)
    renamed = copy.deepcopy(old)
    renamed["rollout"]["steps"][0]["name"] = "trial"
    assert approvals.removed(old, renamed) == ["step:test"]
    shifted = copy.deepcopy(old)  # a step put first: the unnamed step-2 becomes step-3
    shifted["rollout"]["steps"].insert(0, {"name": "first", "selector": {}})
    assert approvals.removed(old, shifted) == ["pause:step-2"]


def test_other_changes_and_added_gates_remove_nothing() -> None:
    old = spec(GATED)
    edited = copy.deepcopy(old)
    edited["rollout"]["healthWindow"] = "2m"
    edited["rollout"]["steps"][0]["selector"] = {"gateways": ["test-gw", "test-gw-2"]}
    edited["rollout"]["steps"][2]["approval"] = "required"
    edited["paused"] = True
    assert approvals.removed(old, edited) == []
    assert approvals.removed(spec(), old) == []
    assert approvals.removed(old, old) == []


def test_a_stored_spec_with_unknown_fields_or_odd_shapes_is_read_leniently() -> None:
    newer = spec({**GATED, "canary": {"weight": 5}})
    newer["rollout"]["steps"][0]["extra"] = [1, 2]
    assert approvals.gates(newer) == ("rollout", "step:test", "pause:step-2")
    for odd in ("required", ["approval"], {"steps": "x"}, {"steps": [None, 3, "s"]}):
        assert approvals.gates(spec(odd)) == ()
    truthy = spec({"approval": "REQUIRED", "steps": [{"pause": {"untilApproved": "yes"}}]})
    assert approvals.gates(truthy) == ()  # only what the CRD admits counts as a gate
    assert approvals.gates({"rollout": {"approval": "required"}}) == ("rollout",)


def test_each_gate_is_described_in_the_words_of_the_spec() -> None:
    assert approvals.described("rollout") == "spec.rollout.approval: required"
    assert approvals.described("step:test") == 'approval: required of step "test"'
    assert approvals.described("pause:step-2") == 'pause: {untilApproved: true} after step "step-2"'


_SPECS = st.fixed_dictionaries(
    {
        "approval": st.sampled_from(["required", "none"]),
        "steps": st.lists(
            st.fixed_dictionaries(
                {"selector": st.just({})},
                optional={
                    "name": st.sampled_from(["a", "b", "step-1", "step-2"]),
                    "approval": st.sampled_from(["required", "none"]),
                    "pause": st.sampled_from([{"untilApproved": True}, {"duration": "1m"}]),
                },
            ),
            max_size=4,
        ),
    }
)


@given(_SPECS, _SPECS)
def test_removed_is_exactly_the_old_gates_the_new_spec_lacks(a: Any, b: Any) -> None:
    old, new = spec(a), spec(b)
    gone = approvals.removed(old, new)
    assert set(gone) == set(approvals.gates(old)) - set(approvals.gates(new))
    assert gone == [g for g in approvals.gates(old) if g in gone]  # in the old spec's order
