"""Approval gates guarded on the real API server (issue 17): `stoker webhook` with exactly the
chart's rights, called through the chart's validating webhook configuration, and two users
holding the two Roles docs/rollouts.md shows. RBAC cannot tell a gate from the rest of the
spec; the webhook can: the editor (no `approve`) is refused removing `approval: required`, the
whole rollout or a gated step's name, and may change anything else; the approver may remove
a gate."""

from __future__ import annotations

import contextlib
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

    def __init__(self, plant: Plant, name: str, api: client.ApiClient) -> None:
        self.api, self.namespace = api, plant.namespace
        self.name = f"system:serviceaccount:{plant.namespace}:{name}"

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


class Guarded:
    """The plant with the chart's validating configuration too; its users patch as themselves."""

    def __init__(self, plant: Plant, stack: contextlib.ExitStack) -> None:
        self.plant, self.namespace, self.stack = plant, plant.namespace, stack

    def as_user(self, name: str, rules: list[dict[str, Any]]) -> User:
        self.plant.user(name, rules)
        token = token_for(client.CoreV1Api(self.plant.api), self.namespace, name)
        return User(
            self.plant, name, self.stack.enter_context(self.plant.kube_env.api_client(token))
        )

    def rollout(self) -> dict[str, Any]:
        """The stored spec.rollout of `site`."""
        found: dict[str, Any] = self.plant.read("site")["spec"].get("rollout") or {}
        return found


@pytest.fixture
def guarded(
    plant: Plant, helm: str, kube_env: ControlPlane, kube_api: client.ApiClient
) -> Iterator[Guarded]:
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
    with contextlib.ExitStack() as stack:
        stack.enter_context(kube_env.webhook_configuration(kube_api, config))
        guarded = Guarded(plant, stack)
        probe = guarded.as_user("probe", EDITOR_RULES)
        wait_until(
            lambda: "may not remove" in probe.refused(NO_ROLLOUT_GATE, dry_run=True),
            timeout=30,
            what="the validating webhook to guard the gates",
        )
        yield guarded


def test_an_editor_is_refused_removing_approval_required_and_an_approver_may(
    guarded: Guarded,
) -> None:
    editor = guarded.as_user("editor", EDITOR_RULES)
    approver = guarded.as_user("approver", APPROVER_RULES)
    message = editor.refused(NO_ROLLOUT_GATE)
    assert (
        f"{editor.name} may not remove the approval gate spec.rollout.approval: required "
        f"from GatewaySync {guarded.namespace}/site"
    ) in message
    assert '\\"approve\\" on gatewaysyncs (API group stoker.io)' in message
    assert "gatewaysync-approver in docs/rollouts.md#approvals" in message
    assert guarded.rollout()["approval"] == "required"
    assert "may not remove" in editor.refused({"spec": {"rollout": None}})
    assert guarded.rollout()["approval"] == "required"

    approver.patch(NO_ROLLOUT_GATE)
    assert guarded.rollout()["approval"] == "none"  # the CRD's default


def test_an_editor_may_change_anything_else_but_not_rename_a_gated_step(guarded: Guarded) -> None:
    editor = guarded.as_user("editor", EDITOR_RULES)
    steps = [
        {"name": "test", "selector": {"gateways": ["test-gw"]}, "approval": "required"},
        {"name": "line-1", "selector": {"gateways": ["line-1"]}, "pause": {"duration": "1m"}},
    ]
    editor.patch({"spec": {"paused": True, "rollout": {"healthWindow": "2m", "steps": steps}}})
    rollout = guarded.rollout()
    assert rollout["healthWindow"] == "2m"
    assert rollout["steps"][0]["approval"] == "required"  # adding a gate needs no right

    renamed = [{**steps[0], "name": "trial"}, steps[1]]
    message = editor.refused({"spec": {"rollout": {"steps": renamed}}})
    assert 'approval gate approval: required of step \\"test\\"' in message
    assert "a gated step renamed" in message
    assert guarded.rollout()["steps"][0]["name"] == "test"
    moved = [steps[1], steps[0]]  # reordering named steps keeps every gate
    editor.patch({"spec": {"rollout": {"steps": moved}}})
    assert [s["name"] for s in guarded.rollout()["steps"]] == ["line-1", "test"]
