"""Approval gates guarded on the real API server (issue 17): `stoker webhook` with exactly the
chart's rights, called through the chart's validating webhook configuration, and two users
holding the two Roles docs/rollouts.md shows. RBAC cannot tell a gate from the rest of the
spec; the webhook can: the editor (no `approve`) is refused removing `approval: required`, the
whole rollout or a gated step's name, and may change anything else; the approver may remove
a gate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from k8s.rbacsupport import render_release, token_for
from k8s.test_approvals import APPROVER_RULES, EDITOR_RULES, Plant
from k8s.test_approvals import plant as plant  # the fixture
from k8s.test_chart import helm as helm  # the fixture
from support.kubeenv import ControlPlane, wait_until

pytestmark = pytest.mark.kube
GS = ("stoker.io", "v1alpha1")


class User:
    """Someone holding `rules` in the plant's namespace, patching GatewaySyncs as themselves."""

    def __init__(self, plant: Plant, name: str, rules: list[dict[str, Any]]) -> None:
        plant.user(name, rules)
        token = token_for(client.CoreV1Api(plant.api), plant.namespace, name)
        self.api = plant.kube_env.api_client(token)
        self.namespace, self.name = (
            plant.namespace,
            f"system:serviceaccount:{plant.namespace}:{name}",
        )

    def patch(self, body: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        extra = {"dry_run": "All"} if dry_run else {}
        custom = client.CustomObjectsApi(self.api)
        stored: dict[str, Any] = custom.patch_namespaced_custom_object(
            *GS, self.namespace, "gatewaysyncs", "site", body, **extra
        )
        return stored

    def refused(self, body: dict[str, Any], dry_run: bool = False) -> str:
        """The API server's message refusing `body` ("": it was admitted)."""
        try:
            self.patch(body, dry_run)
        except ApiException as e:
            if e.status != 403:
                raise
            return str(e.body)
        return ""


NO_ROLLOUT_GATE = {"spec": {"rollout": {"approval": None}}}


@pytest.fixture
def guarded(
    plant: Plant, helm: str, kube_env: ControlPlane, kube_api: client.ApiClient
) -> Iterator[Plant]:
    """The plant with the chart's validating configuration pointed at its webhook too."""
    [config] = [
        o
        for o in render_release(helm, plant.release, plant.home)
        if o["kind"] == "ValidatingWebhookConfiguration"
    ]
    webhook = config["webhooks"][0]
    assert webhook["failurePolicy"] == "Fail"
    webhook["clientConfig"] = {"url": f"{plant.url}/validate-gatewaysync", "caBundle": plant.ca}
    webhook["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": plant.namespace}}
    config["metadata"] = {"name": f"stoker-validation-{plant.namespace}"}
    with kube_env.webhook_configuration(kube_api, config):
        probe = User(plant, "probe", EDITOR_RULES)
        wait_until(
            lambda: "may not remove" in probe.refused(NO_ROLLOUT_GATE, dry_run=True),
            timeout=30,
            what="the validating webhook to guard the gates",
        )
        yield plant


def rollout_of(plant: Plant) -> dict[str, Any]:
    found: dict[str, Any] = plant.read("site")["spec"].get("rollout") or {}
    return found


def test_an_editor_is_refused_removing_approval_required_and_an_approver_may(
    guarded: Plant,
) -> None:
    editor = User(guarded, "editor", EDITOR_RULES)
    approver = User(guarded, "approver", APPROVER_RULES)
    message = editor.refused(NO_ROLLOUT_GATE)
    assert (
        f"{editor.name} may not remove the approval gate spec.rollout.approval: required "
        f"from GatewaySync {guarded.namespace}/site"
    ) in message
    assert '\\"approve\\" on gatewaysyncs (API group stoker.io)' in message
    assert "gatewaysync-approver in docs/rollouts.md#approvals" in message
    assert rollout_of(guarded)["approval"] == "required"
    assert "may not remove" in editor.refused({"spec": {"rollout": None}})
    assert rollout_of(guarded)["approval"] == "required"

    approver.patch(NO_ROLLOUT_GATE)
    assert rollout_of(guarded)["approval"] == "none"  # the CRD's default


def test_an_editor_may_change_anything_else_but_not_rename_a_gated_step(guarded: Plant) -> None:
    editor = User(guarded, "editor", EDITOR_RULES)
    steps = [
        {"name": "test", "selector": {"gateways": ["test-gw"]}, "approval": "required"},
        {"name": "line-1", "selector": {"gateways": ["line-1"]}, "pause": {"duration": "1m"}},
    ]
    editor.patch({"spec": {"paused": True, "rollout": {"healthWindow": "2m", "steps": steps}}})
    rollout = rollout_of(guarded)
    assert rollout["healthWindow"] == "2m"
    assert rollout["steps"][0]["approval"] == "required"  # adding a gate needs no right

    renamed = [{**steps[0], "name": "trial"}, steps[1]]
    message = editor.refused({"spec": {"rollout": {"steps": renamed}}})
    assert 'approval gate approval: required of step \\"test\\"' in message
    assert "a gated step renamed" in message
    assert rollout_of(guarded)["steps"][0]["name"] == "test"
    moved = [steps[1], steps[0]]  # reordering named steps keeps every gate
    editor.patch({"spec": {"rollout": {"steps": moved}}})
    assert [s["name"] for s in rollout_of(guarded)["steps"]] == ["line-1", "test"]
