"""The discovery rules in the core: which pods a GatewaySync claims, which of them count as
gateways, their names (one rule for the webhook's GATEWAY_NAME, the agent and the controller)
and who owns them (issue 16, item 1)."""

from __future__ import annotations

import pytest

from core.test_injection import apply_patch, cr, pod
from stoker_core.discovery import alive, claims, counts, gateway_name, owner
from stoker_core.injection import decide

CHART = {"app.kubernetes.io/name": "ignition", "app.kubernetes.io/instance": "plant1"}


def stateful(index: int, *, index_label: bool = True) -> dict[str, str]:
    labels = {**CHART, "statefulset.kubernetes.io/pod-name": f"plant1-ignition-{index}"}
    if index_label:
        labels["apps.kubernetes.io/pod-index"] = str(index)
    return labels


@pytest.mark.parametrize(
    ("annotations", "labels", "expected"),
    [
        ({"stoker.io/gateway-name": "north"}, CHART, "north"),
        ({}, CHART, "plant1"),
        ({}, stateful(0), "plant1"),
        ({}, stateful(1), "plant1-1"),
        ({}, stateful(1, index_label=False), "plant1-1"),  # clusters before pod-index (1.28)
        ({}, {"app.kubernetes.io/name": "ignition"}, "ignition"),
        ({}, {"app.kubernetes.io/name": "south", "app.kubernetes.io/instance": "x"}, "south"),
        ({}, {}, "ignition-0"),
    ],
)
def test_the_gateway_name_rule_prefers_the_annotation_then_the_chart_release_then_labels(
    annotations: dict[str, str], labels: dict[str, str], expected: str
) -> None:
    assert gateway_name(annotations, labels, "ignition-0") == expected


def test_the_webhook_tells_the_agent_the_name_the_controller_gives_the_pod() -> None:
    backup = pod()
    backup["metadata"]["name"] = "plant1-ignition-1"
    backup["metadata"]["labels"] = stateful(1)
    decision = decide(backup, "plant", {"site": cr()})
    [agent] = apply_patch(backup, decision.patch)["spec"]["initContainers"]
    told = {e["name"]: e.get("value") for e in agent["env"]}["GATEWAY_NAME"]
    assert told == gateway_name({}, stateful(1), "plant1-ignition-1") == "plant1-1"


def test_a_pod_is_claimed_by_its_named_gatewaysync_or_by_the_only_one() -> None:
    assert claims({"stoker.io/cr-name": "site"}, "site", sole=False)  # inject not needed
    assert not claims({"stoker.io/cr-name": "other"}, "site", sole=True)
    assert claims({"stoker.io/inject": "true"}, "site", sole=True)
    assert not claims({"stoker.io/inject": "true"}, "site", sole=False)
    assert not claims({}, "site", sole=True)


def test_scheduled_pods_that_are_not_terminal_count() -> None:
    assert counts("node-1", "Pending", False)  # the agent's first sync, before the gateway
    assert counts("node-1", "Running", False)
    assert counts("node-1", "Unknown", False)  # node lost: not known to be gone
    assert not counts("", "Pending", False)  # not scheduled
    assert not counts("node-1", "Failed", False)  # evicted pods are Failed too
    assert not counts("node-1", "Succeeded", False)
    assert not counts("node-1", "Running", True)  # being deleted
    assert alive("Pending", False)
    assert not alive("Failed", False)


def test_a_deployment_s_replicasets_are_one_owner_and_a_bare_pod_its_own() -> None:
    hashed = {"pod-template-hash": "5d8f9"}
    assert owner([("ReplicaSet", "edge-5d8f9")], hashed, "edge-5d8f9-x") == "Deployment edge"
    assert owner([("StatefulSet", "blue")], {}, "blue-0") == "StatefulSet blue"
    assert owner([], {}, "lonely") == "Pod lonely"
