"""Kubernetes Event bodies, one shape for the controller and the webhook."""

from __future__ import annotations

import time
from typing import Any

GROUP_VERSION = "stoker.io/v1alpha1"


def gatewaysync_event(
    namespace: str,
    name: str,
    uid: str | None,
    *,
    reason: str,
    message: str,
    warning: bool,
    component: str,
    at: str | None = None,
) -> dict[str, Any]:
    """A core/v1 Event about the GatewaySync `namespace/name` (messages cut at 1024 bytes)."""
    stamp = at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "metadata": {"generateName": f"{name}."},
        "involvedObject": {
            "apiVersion": GROUP_VERSION,
            "kind": "GatewaySync",
            "name": name,
            "namespace": namespace,
            "uid": uid,
        },
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": component},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
