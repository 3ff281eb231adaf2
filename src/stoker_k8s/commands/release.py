"""`stoker release-gatewaysyncs`: after `helm uninstall` (the chart's post-delete hook), take
Stoker's finalizer off every GatewaySync, since no controller is left to do it and deleting one
(or its namespace) would hang. Nothing is deleted: GatewaySyncs are the user's configuration and
outlive the release; what the controller made for each is owned by it and goes with it."""

from __future__ import annotations

from typing import Any

import click

from stoker_agent.commands.common import reporting_errors
from stoker_core.errors import StokerError
from stoker_core.vocabulary import FINALIZER
from stoker_k8s.connection import TIMEOUT, ClusterUnavailable, api_errors, connect, kube_options

GROUP, VERSION, PLURAL = "stoker.io", "v1alpha1", "gatewaysyncs"
# A GatewaySync whose finalizers keep changing under us is tried this often, then reported.
ATTEMPTS = 5


class NotReleased(StokerError):
    """Some GatewaySyncs still hold Stoker's finalizer."""


def without_finalizer(finalizers: list[str]) -> list[str]:
    """`finalizers` without Stoker's (every other one kept, in order)."""
    return [f for f in finalizers if f != FINALIZER]


def release_patch(finalizers: list[str]) -> list[dict[str, Any]]:
    """A JSON patch that drops Stoker's finalizer only if the list is still `finalizers`: the API
    server tests the list read and replaces it in one step, so a finalizer added since is kept."""
    return [
        {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
        {"op": "replace", "path": "/metadata/finalizers", "value": without_finalizer(finalizers)},
    ]


def release_one(api: Any, namespace: str, name: str, finalizers: list[str]) -> bool:
    """Take Stoker's finalizer off one GatewaySync, re-reading it when it changed meanwhile.
    False when it is gone or no longer holds the finalizer."""
    from kubernetes.client.exceptions import ApiException

    for _ in range(ATTEMPTS):
        if FINALIZER not in finalizers:
            return False
        try:
            api.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, release_patch(finalizers),
                _content_type="application/json-patch+json", _request_timeout=TIMEOUT,
            )  # fmt: skip
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            if e.status not in (409, 422):  # 422: the test failed, the list changed
                raise
        # Read again with `list`: the hook's account may list and patch GatewaySyncs, no more.
        found = api.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, field_selector=f"metadata.name={name}",
            _request_timeout=TIMEOUT,
        )["items"]  # fmt: skip
        if not found:
            return False
        finalizers = list(found[0]["metadata"].get("finalizers") or [])
    raise NotReleased(
        f"GatewaySync {namespace}/{name}: its finalizers kept changing over {ATTEMPTS} tries; "
        "run stoker release-gatewaysyncs again"
    )


def listed(api: Any, namespaces: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every GatewaySync in `namespaces`, or in all namespaces when none is given."""
    if not namespaces:
        return list(
            api.list_cluster_custom_object(GROUP, VERSION, PLURAL, _request_timeout=TIMEOUT)[
                "items"
            ]
        )
    return [
        item
        for namespace in namespaces
        for item in api.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, _request_timeout=TIMEOUT
        )["items"]
    ]


@click.command("release-gatewaysyncs")
@kube_options
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="Only this namespace (repeatable; default: all).",
)
@reporting_errors
def release_gatewaysyncs(
    kubeconfig: str | None, context: str | None, namespaces: tuple[str, ...]
) -> None:
    """Remove stoker.io/finalizer from every GatewaySync (after uninstalling the controller)."""
    from kubernetes import client

    connect(kubeconfig, context)
    api = client.CustomObjectsApi()
    with api_errors("listing GatewaySyncs"):
        items = listed(api, tuple(n for n in namespaces if n))
    failed: list[str] = []
    for item in sorted(items, key=lambda i: (i["metadata"]["namespace"], i["metadata"]["name"])):
        meta = item["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        try:  # one refused or changing GatewaySync does not keep the others held
            with api_errors(f"releasing GatewaySync {namespace}/{name}"):
                released = release_one(api, namespace, name, list(meta.get("finalizers") or []))
        except (ClusterUnavailable, NotReleased) as e:
            failed.append(str(e))
            continue
        if released:
            click.echo(f"released {namespace}/{name}")
    if failed:
        raise NotReleased("; ".join(failed))
