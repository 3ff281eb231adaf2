"""Rollout approvals on the real API server (issue 17): `stoker webhook` with exactly the chart's
rights, called through the chart's approval webhook configuration, and `stoker approve` run by
two users holding the two Roles docs/rollouts.md shows: the one holding `approve` is recorded
by name in the stamp, the editor is refused with a message naming the right it lacks; a commit
that is not pending is refused by the command before writing and by the webhook; an approval
written by hand around the webhook, or copied from another GatewaySync, is ignored by
`approvals.verified` as the controller reads it (with the chart's controller rights on the
key)."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from conftest import ROOT
from k8s.rbacsupport import chart_rbac, render_release, token_for
from k8s.test_chart import helm as helm  # the fixture
from k8s.test_crd import MINIMAL
from k8s.test_doc_manifests import BLOCK
from k8s.test_webhook import serving
from stoker_core import approvals
from stoker_k8s import approvalkey
from support.kubeenv import ControlPlane, wait_until
from support.stokercli import run_stoker

pytestmark = pytest.mark.kube

NEW, OLD = "3f9c2e1" + "b" * 33, "a" * 40
ROLLOUT = approvals.key("rollout")


def documented_roles() -> dict[str, list[dict[str, Any]]]:
    """The rules of the Roles docs/rollouts.md's section "Approvals" shows, by name."""
    text = (ROOT / "docs/rollouts.md").read_text().split("\n## Approvals\n", 1)[1]
    section = text.split("\n## ", 1)[0]
    docs = [d for body in BLOCK.findall(section) for d in yaml.safe_load_all(body) if d]
    return {d["metadata"]["name"]: d["rules"] for d in docs if d["kind"] == "Role"}


ROLES = documented_roles()
APPROVER_RULES, EDITOR_RULES = ROLES["gatewaysync-approver"], ROLES["gatewaysync-editor"]


class Plant:
    """A namespace served by the approval webhook, its users and the chart's release."""

    def __init__(self, kube_env: ControlPlane, api: client.ApiClient, namespace: str) -> None:
        self.kube_env, self.api, self.namespace = kube_env, api, namespace
        self.custom = client.CustomObjectsApi(api)
        self.release, self.home, self.tmp = "", "", Path()
        self.url, self.ca = "", ""  # the webhook serving, for other configurations to call

    def kubeconfig(self, token: str, name: str) -> Path:
        config = yaml.safe_load(self.kube_env.kubeconfig.read_text())
        config["users"][0]["user"] = {"token": token}
        config["contexts"][0]["context"]["namespace"] = self.namespace
        path = self.tmp / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        return path

    def user(self, name: str, rules: list[dict[str, Any]]) -> Path:
        """A ServiceAccount `name` holding `rules` here: its kubeconfig."""
        core, rbac = client.CoreV1Api(self.api), client.RbacAuthorizationV1Api(self.api)
        core.create_namespaced_service_account(self.namespace, {"metadata": {"name": name}})
        rbac.create_namespaced_role(self.namespace, {"metadata": {"name": name}, "rules": rules})
        rbac.create_namespaced_role_binding(
            self.namespace,
            {
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": self.namespace}],
            },
        )
        return self.kubeconfig(token_for(core, self.namespace, name), name)

    def gatewaysync(self, name: str) -> dict[str, Any]:
        """A GatewaySync whose rollout awaits approval of NEW (its status as the controller
        writes it), after a halt of OLD."""
        body = copy.deepcopy(MINIMAL)
        body["metadata"]["name"] = name
        body["spec"]["rollout"] = {
            "approval": "required",
            "steps": [{"name": "test", "selector": {"gateways": ["test-gw"]}}],
        }
        self.custom.create_namespaced_custom_object(
            "stoker.io", "v1alpha1", self.namespace, "gatewaysyncs", body
        )
        rollout = {"commit": NEW, "baseline": OLD, "step": 0, "awaiting": "rollout"}
        rollout |= {
            "pendingCommit": NEW,
            "halted": {"gateway": "g", "commit": OLD, "error": "x", "at": 1.0},
        }
        self.custom.patch_namespaced_custom_object_status(
            "stoker.io",
            "v1alpha1",
            self.namespace,
            "gatewaysyncs",
            name,
            {"status": {"rollout": rollout}},
        )
        return self.read(name)

    def read(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            "stoker.io", "v1alpha1", self.namespace, "gatewaysyncs", name
        )
        return found

    def annotate(self, name: str, values: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """Patch annotations as the admin (who may approve); the object as stored."""
        extra = {"dry_run": "All"} if dry_run else {}
        stored: dict[str, Any] = self.custom.patch_namespaced_custom_object(
            "stoker.io", "v1alpha1", self.namespace, "gatewaysyncs", name,
            {"metadata": {"annotations": values}}, **extra,
        )  # fmt: skip
        return stored

    def stamped(self, name: str) -> bool:
        """Whether the webhook stamps an approval now (a dry run: nothing is stored)."""
        value = self.annotate(name, {ROLLOUT: NEW}, dry_run=True)["metadata"]["annotations"]
        return approvals.parse(value[ROLLOUT]) is not None

    def verified(self, name: str, commit: str = NEW) -> approvals.Verified:
        """What the controller counts, with the key read through the chart's controller rights."""
        core = client.CoreV1Api(self.api)
        token = token_for(core, self.home, f"{self.release}-controller")
        with self.kube_env.api_client(token) as api:
            key = approvalkey.read(client.CoreV1Api(api), self.home)  # named by the chart's env
        assert key, "the controller could not read the approval key"
        obj = self.read(name)
        meta = obj["metadata"]
        return approvals.verified(
            meta.get("annotations") or {},
            key=key,
            namespace=self.namespace,
            name=meta["name"],
            uid=meta["uid"],
            commit=commit,
        )

    def approve(self, kubeconfig: Path, *args: str) -> Any:
        return run_stoker("approve", *args, "--kubeconfig", str(kubeconfig), timeout=60)


@pytest.fixture
def plant(
    helm: str,
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Plant]:
    """The chart's RBAC, `stoker webhook` with its webhook's token, the chart's approval
    configuration pointed at it for this namespace only, and a GatewaySync `site` awaiting."""
    plant = Plant(kube_env, kube_api, kube_namespace)
    plant.tmp = tmp_path
    with contextlib.ExitStack() as stack:
        plant.release, plant.home = stack.enter_context(chart_rbac(helm, kube_env, kube_api))
        core = client.CoreV1Api(kube_api)
        token = token_for(core, plant.home, f"{plant.release}-webhook")
        env = {**kube_env.subprocess_env(), "KUBECONFIG": str(plant.kubeconfig(token, "webhook"))}
        secret = f"{plant.release}-approval-key"
        monkeypatch.setenv(approvals.KEY_SECRET_ENV, secret)  # as the chart sets it
        url, ca = stack.enter_context(
            serving(env, tmp_path, "--approval-key-secret", secret, "--namespace", plant.home)
        )
        plant.url, plant.ca = url, ca
        [config] = [
            o
            for o in render_release(helm, plant.release, plant.home)
            if o["kind"] == "MutatingWebhookConfiguration"
            and o["metadata"]["name"].endswith("-gatewaysync-approval")
        ]
        webhook = config["webhooks"][0]
        assert webhook["failurePolicy"] == "Fail"
        webhook["clientConfig"] = {"url": f"{url}/mutate-gatewaysync-approval", "caBundle": ca}
        webhook["namespaceSelector"] = {
            "matchLabels": {"kubernetes.io/metadata.name": kube_namespace}
        }
        config["metadata"] = {"name": f"stoker-approval-{kube_namespace}"}
        stack.enter_context(kube_env.webhook_configuration(kube_api, config))
        plant.gatewaysync("site")
        wait_until(lambda: plant.stamped("site"), timeout=30, what="the approval webhook")
        yield plant


def test_one_user_approves_and_is_recorded_by_name_the_other_is_refused_naming_the_right(
    plant: Plant,
) -> None:
    editor = plant.user("editor", EDITOR_RULES)
    approver = plant.user("approver", APPROVER_RULES)
    refused = plant.approve(editor, "site", NEW)
    assert refused.returncode == 1, refused.stderr
    who = f"system:serviceaccount:{plant.namespace}:editor"
    assert f"{who} may not approve rollouts of GatewaySync {plant.namespace}/site" in refused.stderr
    assert '"approve" on gatewaysyncs (API group stoker.io)' in refused.stderr
    assert "docs/rollouts.md#approvals" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert ROLLOUT not in (plant.read("site")["metadata"].get("annotations") or {})

    done = plant.approve(approver, "site", NEW[:7])
    assert done.returncode == 0, done.stderr
    me = f"system:serviceaccount:{plant.namespace}:approver"
    assert f"recorded: by {me} at " in done.stdout
    seen = plant.verified("site")
    assert seen.gates == {"rollout"}
    assert seen.by == {"rollout": me}
    assert seen.ignored == ()


def test_a_commit_that_is_not_pending_is_refused_by_the_command_and_by_the_webhook(
    plant: Plant,
) -> None:
    approver = plant.user("approver", APPROVER_RULES)
    refused = plant.approve(approver, "site", OLD)
    assert refused.returncode == 1
    assert f"commit {OLD} is not the one awaiting approval" in refused.stderr
    assert f"the pending commit is {NEW}" in refused.stderr
    with pytest.raises(ApiException) as caught:  # around the command: the webhook says no
        plant.annotate("site", {ROLLOUT: OLD})
    assert f"commit {OLD} is not the one awaiting approval" in caught.value.body
    assert ROLLOUT not in (plant.read("site")["metadata"].get("annotations") or {})
    resumed = run_stoker("rollout", "resume", "site", "--kubeconfig", str(approver), timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert f"approved resume of commit {OLD}" in resumed.stdout
    assert plant.verified("site", commit=OLD).gates == {"resume"}


def test_a_hand_written_approval_and_one_copied_from_another_gatewaysync_are_ignored(
    plant: Plant,
    kube_api: client.ApiClient,
) -> None:
    approver = plant.user("approver", APPROVER_RULES)
    plant.gatewaysync("other")
    assert plant.approve(approver, "other", NEW).returncode == 0
    copied = plant.read("other")["metadata"]["annotations"][ROLLOUT]
    assert plant.verified("other").gates == {"rollout"}
    with pytest.raises(ApiException) as caught:  # pasting a stamp in is refused outright
        plant.annotate("site", {approvals.key("step:test"): copied})
    assert "write the full commit SHA" in caught.value.body

    # Around the webhook (its configuration gone): what is written stays unstamped.
    admission = client.AdmissionregistrationV1Api(kube_api)
    admission.delete_mutating_webhook_configuration(f"stoker-approval-{plant.namespace}")
    wait_until(lambda: not plant.stamped("site"), timeout=30, what="the webhook to be gone")
    plant.annotate("site", {ROLLOUT: NEW, approvals.key("step:test"): copied})
    seen = plant.verified("site")
    assert seen.gates == frozenset()
    assert sorted(seen.ignored) == [
        "approval.stoker.io/rollout is a plain commit SHA: ignored (written while the approval "
        "webhook was bypassed, or damaged); approve again with stoker approve",
        "approval.stoker.io/step.test carries a stamp that does not verify for this GatewaySync: "
        "ignored (copied from another object, moved to another gate, or edited)",
    ]
