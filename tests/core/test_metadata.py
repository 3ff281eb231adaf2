"""The metadata ConfigMap format round-trips and carries no secret."""

from __future__ import annotations

import json

import pytest

from core.helpers import manifest_with
from stoker_core.errors import InvalidInput
from stoker_core.metadata import decode, encode, status_name_for
from stoker_core.model import GatewaySync
from stoker_core.validation import load


def test_metadata_round_trips_by_value() -> None:
    doc = manifest_with({"default": {"mappings": [{"source": "p", "destination": "projects"}]}})
    doc["spec"]["git"]["auth"] = {"token": {"secretRef": {"name": "git", "key": "token"}}}
    gs = load(doc)
    data = encode(gs, commit="a" * 40, ref="main")
    assert set(data) == {"format", "commit", "ref", "repo", "paused", "gatewaysync"}
    back = decode(data)
    assert back is not None
    assert back.gatewaysync.spec == gs.spec
    assert (back.commit, back.ref, back.paused) == ("a" * 40, "main", False)
    assert encode(back.gatewaysync, commit="a" * 40, ref="main") == data  # stable bytes


def test_no_commit_yet_means_nothing_to_do() -> None:
    assert decode({"commit": ""}) is None


def test_status_configmap_names_are_per_pod() -> None:
    assert status_name_for("site", "ignition-0") == "stoker-status-site-ignition-0"


def test_a_rollout_is_not_published_so_agents_of_the_previous_release_still_read_the_metadata() -> (
    None
):
    doc = manifest_with({"default": {"mappings": [{"source": "p", "destination": "projects"}]}})
    doc["spec"]["rollout"] = {"steps": [{"selector": {"gateways": ["test"]}}]}
    data = encode(load(doc), commit="a" * 40, ref="main")
    # an agent of the release before spec.rollout reads the spec strictly: an unknown field
    # would make it refuse the whole ConfigMap; the agents never need the rollout anyway
    assert "rollout" not in json.loads(data["gatewaysync"])["spec"]
    back = decode(data)
    assert back is not None
    assert back.gatewaysync.spec.rollout is None


def test_the_history_limit_is_not_published_so_agents_of_the_previous_release_still_read_it() -> (
    None
):
    doc = manifest_with({"default": {"mappings": [{"source": "p", "destination": "projects"}]}})
    doc["spec"]["historyLimit"] = 20
    data = encode(load(doc), commit="a" * 40, ref="main")
    # status.history is the controller's; an agent of the release before it would refuse
    # the unknown field and with it the whole ConfigMap
    assert "historyLimit" not in json.loads(data["gatewaysync"])["spec"]


def _rollout_gs() -> GatewaySync:
    doc = manifest_with({"default": {"mappings": [{"source": "p", "destination": "projects"}]}})
    doc["spec"]["rollout"] = {"healthWindow": "30s", "steps": [{"selector": {"gateways": ["a"]}}]}
    return load(doc)


def test_without_targets_that_differ_nor_a_health_window_the_format_stays_1() -> None:
    data = encode(_rollout_gs(), commit="a" * 40, ref="main", targets={"b": "a" * 40})
    # a target equal to the baseline is no target: what a GatewaySync without a rollout sends
    assert data == encode(_rollout_gs(), commit="a" * 40, ref="main")
    assert data["format"] == "1"


def test_targets_and_the_health_window_round_trip_as_format_2() -> None:
    data = encode(
        _rollout_gs(),
        commit="a" * 40,
        ref="main",
        targets={"line-2": "b" * 40, "line-1": "b" * 40, "test": "a" * 40},
        health_window="1m30s",
    )
    assert data["format"] == "2"
    assert data["targets"] == '{"line-1":"' + "b" * 40 + '","line-2":"' + "b" * 40 + '"}'
    assert data["healthWindow"] == "1m30s"
    back = decode(data)
    assert back is not None
    assert back.targets == {"line-1": "b" * 40, "line-2": "b" * 40}
    assert back.health_window == 90.0
    assert (back.commit_for("line-1"), back.commit_for("test")) == ("b" * 40, "a" * 40)


def test_an_agent_of_the_previous_release_reads_format_2_as_the_baseline() -> None:
    # what holds a not-yet-restarted agent back: it reads `commit` and ignores the rest
    data = encode(_rollout_gs(), commit="a" * 40, ref="main", targets={"a": "b" * 40})
    back = decode({k: v for k, v in data.items() if k not in ("targets", "healthWindow")})
    assert back is not None
    assert back.commit_for("a") == "a" * 40


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("targets", "not json"),
        ("targets", '["a"]'),
        ("targets", '{"a": 1}'),
        ("targets", '{"a": "main"}'),
        ("targets", '{"a": "' + "A" * 40 + '"}'),
        ("healthWindow", "soon"),
        ("healthWindow", "-5s"),
        ("healthWindow", "1000h"),
    ],
)
def test_a_damaged_targets_or_health_window_is_refused_naming_the_key(key: str, text: str) -> None:
    data = encode(_rollout_gs(), commit="a" * 40, ref="main") | {key: text}
    with pytest.raises(InvalidInput) as caught:
        decode(data)
    assert caught.value.problems[0].field == key
