"""The chart installed as a user would: `helm install` with the default values, except the
webhook's certificate (no cert-manager here: the webhook manages its own), the namespaces it
serves and the receiver (the session's `plant` fixture, tests/e2e/gateways.py)."""

from __future__ import annotations

from e2e.conftest import Cluster
from e2e.gateways import SYSTEM, Plant, wait_for_rollout


def test_helm_install_with_default_values_brings_the_controller_and_webhook_pods_to_ready(
    cluster: Cluster, plant: Plant
) -> None:
    wait_for_rollout(cluster, SYSTEM)

    pods = cluster.core.list_namespaced_pod(SYSTEM).items
    assert {p.metadata.labels["app.kubernetes.io/component"] for p in pods} >= {
        "controller",
        "webhook",
        "receiver",
    }
    for pod in pods:
        for container in pod.spec.containers:
            assert container.image_pull_policy == "IfNotPresent"
            assert container.security_context.run_as_non_root
            assert container.security_context.read_only_root_filesystem
