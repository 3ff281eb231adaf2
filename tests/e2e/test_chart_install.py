"""The chart installed as a user would: `helm install` with the default values, except the
webhook's certificate (no cert-manager here: the webhook manages its own)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from conftest import ROOT
from e2e.conftest import Cluster

CHART = ROOT / "adapters" / "helm" / "stoker"
RELEASE = "stoker"


def helm_binary() -> str:
    """The helm the chart tests use (adapters/helm/build-helm.sh, cached)."""
    done = subprocess.run(
        ["bash", str(ROOT / "adapters" / "helm" / "build-helm.sh")],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def installed(cluster: Cluster) -> Iterator[str]:
    """The chart installed into a namespace of its own; uninstalled afterwards. The namespace."""
    helm = helm_binary()
    namespace = "stoker-system"
    base = [helm, "--kubeconfig", str(cluster.kubeconfig)]
    subprocess.run(
        [*base, "install", RELEASE, str(CHART), "--namespace", namespace, "--create-namespace",
         "--set", "webhook.certManager.enabled=false"],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    try:
        yield namespace
    finally:
        subprocess.run(
            [*base, "uninstall", RELEASE, "--namespace", namespace, "--wait", "--timeout", "2m"],
            check=False, capture_output=True, timeout=300,
        )  # fmt: skip
        cluster.core.delete_namespace(namespace, grace_period_seconds=0)


def wait_for_deployments(cluster: Cluster, namespace: str, timeout: float = 240) -> None:
    """Every Deployment in `namespace` has all its replicas available; else fail with the pods."""
    apps = client.AppsV1Api(cluster.api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deployments = apps.list_namespaced_deployment(namespace).items
        if deployments and all(
            (d.status.available_replicas or 0) == d.spec.replicas for d in deployments
        ):
            return
        time.sleep(1)
    pods = cluster.core.list_namespaced_pod(namespace).items
    states = {p.metadata.name: [s.state for s in p.status.container_statuses or []] for p in pods}
    events = [e.message for e in cluster.core.list_namespaced_event(namespace).items]
    raise AssertionError(f"deployments in {namespace} not available: {states}; events: {events}")


def test_helm_install_with_default_values_brings_the_controller_and_webhook_pods_to_ready(
    cluster: Cluster, installed: str
) -> None:
    wait_for_deployments(cluster, installed)

    pods = cluster.core.list_namespaced_pod(installed).items
    assert {p.metadata.labels["app.kubernetes.io/component"] for p in pods} >= {
        "controller",
        "webhook",
    }
    for pod in pods:
        for container in pod.spec.containers:
            assert container.image_pull_policy == "IfNotPresent"
            assert container.security_context.run_as_non_root
            assert container.security_context.read_only_root_filesystem
