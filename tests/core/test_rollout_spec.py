"""`spec.rollout` (issue 17): its defaults keep today's behaviour, every mistake is named with
its field and fix, and a step's selector and allowance read as documented."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.helpers import manifest_with
from stoker_core import waves
from stoker_core.errors import InvalidInput
from stoker_core.model import Approval, OnFailure, Rollout, RolloutStep, StepSelector
from stoker_core.schema import crd
from stoker_core.validation import load

PROFILES = {
    "default": {"mappings": [{"source": "a", "destination": "b"}]},
    "line": {"mappings": [{"source": "a", "destination": "b"}]},
}


def with_rollout(rollout: Any) -> dict[str, Any]:
    doc = manifest_with(copy.deepcopy(PROFILES))
    doc["spec"]["rollout"] = rollout
    return doc


def problems(doc: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidInput) as info:
        load(doc)
    return {(p.field or p.path or ""): p.message for p in info.value.problems}


def test_no_rollout_is_the_default_so_every_gateway_moves_at_once_as_today() -> None:
    assert load(manifest_with(copy.deepcopy(PROFILES))).spec.rollout is None


def test_an_empty_rollout_gets_defaults_that_hold_no_gateway_back() -> None:
    rollout = load(with_rollout({})).spec.rollout
    assert rollout == Rollout()
    assert rollout.steps == ()
    assert rollout.health_window == "30s"
    assert rollout.on_failure is OnFailure.HALT
    assert rollout.approval is Approval.NONE
    assert waves.allowance(rollout, 0, 50) == 50


def test_a_full_rollout_is_read_with_counts_percents_pauses_and_approvals() -> None:
    rollout = load(
        with_rollout(
            {
                "healthWindow": "10s",
                "onFailure": "rollback",
                "approval": "required",
                "steps": [
                    {"name": "test", "selector": {"gateways": ["test-gw"]}, "maxUnavailable": 1},
                    {
                        "name": "line-1",
                        "selector": {"matchLabels": {"stoker.io/wave": "1"}, "profiles": ["line"]},
                        "maxUnavailable": "25%",
                        "pause": {"untilApproved": True},
                        "approval": "required",
                    },
                    {"selector": {"profiles": ["default"]}, "pause": {"duration": "10m"}},
                ],
            }
        )
    ).spec.rollout
    assert rollout is not None
    assert [s.max_unavailable for s in rollout.steps] == [1, "25%", "100%"]
    assert rollout.steps[1].pause is not None
    assert rollout.steps[1].pause.until_approved
    assert rollout.steps[1].approval is Approval.REQUIRED
    assert [waves.step_name(s, i) for i, s in enumerate(rollout.steps)] == [
        "test",
        "line-1",
        "step-3",
    ]


def test_every_rollout_mistake_is_named_with_its_field_and_fix() -> None:
    found = problems(
        with_rollout(
            {
                "healthWindow": "soon",
                "steps": [
                    {"selector": {}, "maxUnavailable": 0},
                    {
                        "name": "Line_1",
                        "selector": {"profiles": ["nope"], "matchLabels": {"-x": "y!"}},
                        "maxUnavailable": "120%",
                        "pause": {},
                    },
                    {"name": "b", "selector": {"gateways": ["gw"]}, "pause": {"duration": "90d"}},
                    {"name": "b", "selector": {"gateways": ["gw"]}},
                ],
            }
        )
    )
    base = "spec.rollout"
    assert "not a duration" in found[f"{base}.healthWindow"]
    assert "give matchLabels, gateways or profiles" in found[f"{base}.steps[0].selector"]
    assert "at least 1" in found[f"{base}.steps[0].maxUnavailable"]
    assert "DNS label" in found[f"{base}.steps[1].name"]
    assert "not a label key" in found[f"{base}.steps[1].selector.matchLabels"]
    assert "not a label value" in found[f"{base}.steps[1].selector.matchLabels.-x"]
    assert "not a profile of spec.sync.profiles" in found[f"{base}.steps[1].selector.profiles[0]"]
    assert '"1%" to "100%"' in found[f"{base}.steps[1].maxUnavailable"]
    assert "exactly one of duration" in found[f"{base}.steps[1].pause"]
    assert "not a duration" in found[f"{base}.steps[2].pause.duration"]
    assert "give each step its own name" in found[f"{base}.steps[3].name"]
    assert "also chosen by steps[2]" in found[f"{base}.steps[3].selector.gateways"]


@pytest.mark.parametrize(("value", "fragment"), [(2.5, "the number 2.5"), (True, "boolean")])
def test_max_unavailable_is_a_whole_number_or_a_string(value: object, fragment: str) -> None:
    doc = with_rollout({"steps": [{"selector": {"gateways": ["gw"]}, "maxUnavailable": value}]})
    assert fragment in problems(doc)["spec.rollout.steps[0].maxUnavailable"]


def test_a_pause_or_window_beyond_its_bound_is_refused() -> None:
    found = problems(
        with_rollout(
            {
                "healthWindow": "25h",
                "steps": [{"selector": {"gateways": ["gw"]}, "pause": {"duration": "721h"}}],
            }
        )
    )
    assert '"24h"' in found["spec.rollout.healthWindow"]
    assert '"720h"' in found["spec.rollout.steps[0].pause.duration"]


def test_the_crd_carries_max_unavailable_as_int_or_string_with_its_rule() -> None:
    spec = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    step = spec["properties"]["rollout"]["properties"]["steps"]["items"]
    field = step["properties"]["maxUnavailable"]
    assert field["x-kubernetes-int-or-string"] is True
    assert "type" not in field
    assert field["default"] == "100%"
    assert "self.matches" in field["x-kubernetes-validations"][0]["rule"]
    assert step["required"] == ["selector"]


def member(name: str, profile: str = "default", **labels: str) -> waves.Member:
    return waves.Member(name=name, profile=profile, labels=labels)


def test_a_gateway_belongs_to_the_first_step_whose_every_criterion_matches() -> None:
    rollout = Rollout(
        steps=(
            RolloutStep(selector=StepSelector(gateways=("gw-test",))),
            RolloutStep(selector=StepSelector(match_labels={"wave": "1"}, profiles=("line",))),
            RolloutStep(selector=StepSelector(profiles=("line",))),
        )
    )
    assert waves.step_of(rollout, member("gw-test", "line", wave="1")) == 0
    assert waves.step_of(rollout, member("gw-a", "line", wave="1")) == 1
    assert waves.step_of(rollout, member("gw-b", "default", wave="1")) == 3  # matched by none
    assert waves.step_of(rollout, member("gw-c", "line", wave="2")) == 2


@pytest.mark.parametrize(
    ("value", "size", "allowed"),
    [(1, 10, 1), (3, 2, 3), ("25%", 10, 2), ("25%", 3, 1), ("100%", 7, 7), ("1%", 1, 1)],
)
def test_max_unavailable_percent_rounds_down_and_never_below_one(
    value: int | str, size: int, allowed: int
) -> None:
    rollout = Rollout(
        steps=(RolloutStep(selector=StepSelector(gateways=("x",)), max_unavailable=value),)
    )
    assert waves.allowance(rollout, 0, size) == allowed


def test_gateways_no_step_selects_move_with_the_last_steps_allowance() -> None:
    rollout = Rollout(
        steps=(
            RolloutStep(selector=StepSelector(gateways=("a",)), max_unavailable="100%"),
            RolloutStep(selector=StepSelector(gateways=("b",)), max_unavailable=2),
        )
    )
    assert waves.allowance(rollout, 2, 40) == 2


def test_the_rollout_example_in_docs_rollouts_md_is_valid() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "rollouts.md").read_text()
    block = re.search(r"```yaml\n(spec:\n  rollout:.*?)```", text, re.DOTALL)
    assert block is not None
    rollout = load(with_rollout(yaml.safe_load(block.group(1))["spec"]["rollout"])).spec.rollout
    assert rollout is not None
    assert [waves.step_name(s, i) for i, s in enumerate(rollout.steps)] == [
        "test",
        "line-1",
        "lines",
    ]
