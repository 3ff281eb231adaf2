"""Helpers for the RBAC tests: the chart's RBAC installed on the test API server under a
release name of its own, tokens minted through the TokenRequest API, and the rules a token
holds as the API server reports them (SelfSubjectRulesReview)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kubernetes import client

from k8s.test_chart import CHART
from support.kubeenv import ControlPlane

RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def render_release(helm: str, release: str, namespace: str, values: str = "") -> list[Any]:
    """The chart rendered as release `release` in `namespace`."""
    import subprocess

    import yaml

    args = [helm, "template", release, str(CHART), "--namespace", namespace]
    if values:
        args += ["--set", values]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@contextmanager
def chart_rbac(
    helm: str, kube_env: ControlPlane, api: client.ApiClient, values: str = ""
) -> Iterator[tuple[str, str]]:
    """Install the chart's ServiceAccounts, roles and bindings (a fresh release name and
    release namespace); yield (release, release namespace); remove the cluster-wide ones."""
    release = f"r{secrets.token_hex(3)}"
    home = kube_env.create_namespace(api)
    objects = [o for o in render_release(helm, release, home, values) if o["kind"] in RBAC_KINDS]
    rbac, core = client.RbacAuthorizationV1Api(api), client.CoreV1Api(api)
    created: list[tuple[str, str]] = []
    for obj in objects:
        kind, meta = obj["kind"], obj["metadata"]
        if kind == "ServiceAccount":
            core.create_namespaced_service_account(meta["namespace"], obj)
        elif kind == "ClusterRole":
            rbac.create_cluster_role(obj)
            created.append(("cluster_role", meta["name"]))
        elif kind == "ClusterRoleBinding":
            rbac.create_cluster_role_binding(obj)
            created.append(("cluster_role_binding", meta["name"]))
        elif kind == "Role":
            rbac.create_namespaced_role(meta["namespace"], obj)
        else:
            rbac.create_namespaced_role_binding(meta["namespace"], obj)
    try:
        yield release, home
    finally:
        for kind, name in reversed(created):
            getattr(rbac, f"delete_{kind}")(name)
        core.delete_namespace(home, _preload_content=False)


def token_for(core: client.CoreV1Api, namespace: str, account: str, pod: Any | None = None) -> str:
    """A token of ServiceAccount `account` from the TokenRequest API (bound to `pod`, as the
    kubelet's projected token is, when given)."""
    spec: dict[str, Any] = {"expirationSeconds": 3600}
    if pod is not None:
        spec["boundObjectRef"] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": pod.metadata.name,
            "uid": pod.metadata.uid,
        }
    answer = core.create_namespaced_service_account_token(
        account, namespace, {"apiVersion": "authentication.k8s.io/v1", "spec": spec}
    )
    return str(answer.status.token)


def held_rules(api: client.ApiClient, namespace: str) -> set[tuple[str, str, str, str]]:
    """(apiGroup, resource, verb, resourceName or "*") the caller holds in `namespace`, as
    the API server reports them, without the rules every authenticated user has."""
    review = client.AuthorizationV1Api(api).create_self_subject_rules_review(
        {"spec": {"namespace": namespace}}
    )
    out = set()
    for rule in review.status.resource_rules:
        for group in rule.api_groups or [""]:
            for resource in rule.resources or []:
                if group == "authorization.k8s.io" or group == "authentication.k8s.io":
                    continue  # self reviews and token reviews: every user may ask these
                for verb in rule.verbs:
                    for name in rule.resource_names or ["*"]:
                        out.add((group, resource, verb, name))
    return out


def forbidden(call: Any, *args: Any, **kwargs: Any) -> bool:
    """Whether the API server answers 403 to `call(*args, **kwargs)`."""
    try:
        call(*args, **kwargs)
    except client.exceptions.ApiException as e:
        return e.status == 403
    return False
