"""H16: every right each Stoker ServiceAccount holds is in the RBAC table of docs/security.md,
read from the rendered chart (every option on), the plain manifests and, on the real API server,
from SelfSubjectRulesReview; Leases only in Stoker's namespace, Secrets only in the served
namespaces; a GatewaySync elsewhere is told so and nothing is read or written there."""

from __future__ import annotations

import copy
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from conftest import ROOT
from k8s.rbacsupport import chart_rbac, held_rules, render_release, token_for
from k8s.test_chart import helm as helm  # the fixture
from k8s.test_crd import MINIMAL
from stoker_k8s import agentaccess
from stoker_k8s.controller import Controller
from support.kubeenv import ControlPlane

Right = tuple[str, str, str, str, str, str]  # account, where, group, resource, verb, name
CLUSTER, HOME, SERVED, OWN = "cluster", "release namespace", "served namespaces", "own"
EVERY_OPTION = "receiver.enabled=true,webhook.certManager.enabled=false,namespaces={plant,site-2}"


def table() -> set[Right]:
    """The rights docs/security.md's RBAC table lists."""
    text = (ROOT / "docs/security.md").read_text()
    section = text.split("## RBAC table", 1)[1].split("\n## ", 1)[0]
    wheres = {"cluster": CLUSTER, "release namespace": HOME, "served namespaces": SERVED}
    out: set[Right] = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or not cells[0].startswith("`"):
            continue
        account, where, group, resources, verbs, names = (c.replace("`", "") for c in cells)
        for resource in resources.split(", "):
            for verb in verbs.split(", "):
                for name in names.split(", ") if names else ["*"]:
                    out.add(
                        (
                            account,
                            wheres.get(where, OWN),
                            "" if group == "core" else group,
                            resource,
                            verb,
                            name,
                        )
                    )
    assert out, "docs/security.md has no RBAC table"
    return out


def granted(objects: list[dict[str, Any]], release: str, home: str) -> set[Right]:
    """The rights the rendered bindings give each ServiceAccount."""

    def generic(name: str) -> str:
        return re.sub(rf"^{re.escape(release)}-", "<release>-", name)

    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}
    out: set[Right] = set()
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        namespace = binding["metadata"].get("namespace")
        ref = binding["roleRef"]
        role = roles[
            (ref["kind"], None if ref["kind"] == "ClusterRole" else namespace, ref["name"])
        ]
        where = CLUSTER if namespace is None else HOME if namespace == home else SERVED
        for subject in binding["subjects"]:
            for rule in role["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        for verb in rule["verbs"]:
                            for name in rule.get("resourceNames") or ["*"]:
                                out.add(
                                    (
                                        generic(subject["name"]),
                                        where,
                                        group,
                                        resource,
                                        verb,
                                        generic(name),
                                    )
                                )
    return out


def agent_rights() -> set[Right]:
    """What the controller grants one GatewaySync's agents (one discovered pod)."""
    pods = [agentaccess.AgentPod("<pod>", "uid", None)]
    return {
        ("stoker-agent-<gatewaysync>", OWN, group, resource, verb, name)
        for rule in agentaccess.rules("<gatewaysync>", pods)
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        for name in rule["resourceNames"]
    }


def plain(name: str) -> list[dict[str, Any]]:
    """The objects of one plain-manifest file."""
    return [d for d in yaml.safe_load_all((ROOT / "adapters/manifests" / name).read_text()) if d]


def test_the_plain_namespace_access_manifest_matches_the_chart(helm: str) -> None:
    committed = (ROOT / "adapters/manifests/namespace-access.yaml").read_text()
    done = subprocess.run(
        [
            helm,
            "template",
            "stoker",
            str(ROOT / "adapters/helm/stoker"),
            "--namespace",
            "stoker-system",
            "--show-only",
            "templates/namespaces.yaml",
            "--set",
            "namespaces={GATEWAY_NAMESPACE}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert committed.split("\n", 4)[4] == done.stdout, "run: bash adapters/manifests/render.sh"
    assert "kind: Role" in committed


def test_H16_every_right_the_chart_and_manifests_grant_is_in_the_security_table(
    helm: str,
) -> None:
    listed = table()
    renderings = [
        granted(render_release(helm, "stoker", "stoker-system", values), "stoker", "stoker-system")
        for values in ("", EVERY_OPTION, "receiver.enabled=true,namespaces={plant}")
    ]
    manifests = [
        d for d in yaml.safe_load_all((ROOT / "adapters/manifests/stoker.yaml").read_text()) if d
    ]
    renderings.append(granted(manifests, "stoker", "stoker-system"))
    renderings.append(granted(plain("namespace-access.yaml"), "stoker", "stoker-system"))
    for rights in [*renderings, agent_rights()]:
        assert rights - listed == set(), "grant these only with a row in docs/security.md"
    every = set().union(*renderings, agent_rights())
    assert listed - every == set(), "the RBAC table lists rights nothing grants"
    # The two that were too wide: Leases only at home, Secrets only where served.
    leases = {r for r in every if r[3] == "leases"}
    assert {r[1] for r in leases} == {HOME}
    secrets = {r for r in every if r[3] == "secrets"}
    assert {(r[0], r[1]) for r in secrets} == {
        ("<release>-controller", SERVED),
        ("<release>-controller", HOME),
        ("<release>-receiver", SERVED),
        ("<release>-webhook", HOME),
    }
    # At home the controller reads one Secret: the key that checks approval stamps.
    assert {r[4:] for r in secrets if r[:2] == ("<release>-controller", HOME)} == {
        ("get", "<release>-approval-key")
    }


@pytest.mark.kube
def test_H16_the_api_server_reports_no_right_beyond_the_table(
    helm: str, kube_env: ControlPlane, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    listed = table()
    admin = client.CoreV1Api(kube_api)
    elsewhere = kube_env.create_namespace(kube_api)
    values = (
        f"receiver.enabled=true,webhook.certManager.enabled=false,namespaces={{{kube_namespace}}}"
    )
    try:
        with chart_rbac(helm, kube_env, kube_api, values) as (release, home):
            for part in ("controller", "webhook", "receiver", "release-gatewaysyncs"):
                token = token_for(admin, home, f"{release}-{part}")
                with kube_env.api_client(token) as api:
                    for namespace, where in (
                        (home, HOME),
                        (kube_namespace, SERVED),
                        (elsewhere, CLUSTER),
                    ):
                        allowed = {
                            (r[2], r[3], r[4], r[5])
                            for r in listed
                            if r[0] == f"<release>-{part}" and r[1] in (CLUSTER, where)
                        }
                        held = {
                            (group, resource, verb, re.sub(rf"^{release}-", "<release>-", name))
                            for group, resource, verb, name in held_rules(api, namespace)
                        }
                        assert held - allowed == set(), f"{part} in {where}"
                        if part == "controller":
                            resources = {r[1] for r in held}
                            assert ("leases" in resources) == (where == HOME)
                            secrets = {(r[2], r[3]) for r in held if r[1] == "secrets"}
                            if where == HOME:  # the key that checks approval stamps, only
                                assert secrets == {("get", "<release>-approval-key")}
                            else:
                                assert bool(secrets) == (where == SERVED)
    finally:
        admin.delete_namespace(elsewhere, _preload_content=False)


@pytest.mark.kube
def test_H16_a_gatewaysync_in_a_namespace_not_served_is_told_so_and_left_alone(
    helm: str,
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    admin = client.CoreV1Api(kube_api)
    served = kube_env.create_namespace(kube_api)
    body = copy.deepcopy(MINIMAL)
    body["spec"]["git"]["repo"] = f"file://{tmp_path / 'absent.git'}"
    custom_admin = client.CustomObjectsApi(kube_api)
    custom_admin.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
    )
    try:
        with chart_rbac(helm, kube_env, kube_api, f"namespaces={{{served}}}") as (release, home):
            token = token_for(admin, home, f"{release}-controller")
            with kube_env.api_client(token) as api:
                custom = client.CustomObjectsApi(api)
                controller = Controller(client.CoreV1Api(api), custom, namespaces=[served])
                item = custom.get_namespaced_custom_object(
                    "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "minimal"
                )
                assert not controller.reconcile(item).failed
        cr = custom_admin.get_namespaced_custom_object(
            "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "minimal"
        )
        ready = {c["type"]: c for c in cr["status"]["conditions"]}["Ready"]
        assert (ready["status"], ready["reason"]) == ("False", "NamespaceNotServed")
        assert f"namespace {kube_namespace} is not served" in ready["message"]
        assert "`namespaces`" in ready["message"]
        assert "stoker.io/finalizer" not in (cr["metadata"].get("finalizers") or [])
        assert admin.list_namespaced_config_map(kube_namespace).items == [
            cm
            for cm in admin.list_namespaced_config_map(kube_namespace).items
            if cm.metadata.name == "kube-root-ca.crt"
        ]
    finally:
        admin.delete_namespace(served, _preload_content=False)


@pytest.mark.kube
def test_H16_the_controller_runs_on_the_charts_rights_alone_watching_only_served_namespaces(
    helm: str,
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    from stoker_k8s.manager import Manager
    from support.gitservers import BareRepo
    from support.kubeenv import wait_until

    BareRepo.create(tmp_path, "config", {"p/a.json": "{}"})
    body = copy.deepcopy(MINIMAL)
    body["spec"]["git"]["repo"] = f"file://{tmp_path / 'config.git'}"
    admin = client.CoreV1Api(kube_api)
    client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
    )
    with chart_rbac(helm, kube_env, kube_api, f"namespaces={{{kube_namespace}}}") as (
        release,
        home,
    ):
        token = token_for(admin, home, f"{release}-controller")
        with kube_env.api_client(token) as api:
            controller = Controller(
                client.CoreV1Api(api), client.CustomObjectsApi(api), namespaces=[kube_namespace]
            )
            manager = Manager(controller, workers=1)
            stop = threading.Event()
            thread = threading.Thread(target=manager.run, args=(stop,), daemon=True)
            thread.start()
            try:

                def published() -> Any:
                    try:
                        return admin.read_namespaced_config_map(
                            "stoker-metadata-minimal", kube_namespace
                        )
                    except client.exceptions.ApiException:
                        return None

                wait_until(published, timeout=30, what="the controller to publish")
            finally:
                stop.set()
                thread.join(timeout=30)
