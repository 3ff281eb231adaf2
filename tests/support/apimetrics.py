"""Counters the real API server keeps about itself (its /metrics), read as the admin: what the
tests count instead of timing (Secret reads, webhook calls that failed open)."""

from __future__ import annotations

import requests

from support.kubeenv import ControlPlane


def api_server_count(kube_env: ControlPlane, metric: str, *labels: str) -> float:
    """The sum of the API server's `metric` samples whose labels hold every one of `labels`
    (each written as it appears, e.g. 'verb="GET"')."""
    text = requests.get(
        f"{kube_env.server}/metrics",
        cert=(str(kube_env.admin_cert), str(kube_env.admin_key)),
        verify=str(kube_env.ca_file),
        timeout=10,
    ).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(metric + "{") and all(label in line for label in labels)
    )
