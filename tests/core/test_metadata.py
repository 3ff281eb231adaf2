"""The metadata ConfigMap format round-trips and carries no secret."""

from __future__ import annotations

import json

from core.helpers import manifest_with
from stoker_core.metadata import decode, encode, status_name_for
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
