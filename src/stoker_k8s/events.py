"""Kubernetes Event bodies, one shape for the controller and the webhook."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
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


CreateEvent = Callable[[str, dict[str, Any]], str]  # (namespace, body) -> the event's name
PatchEvent = Callable[[str, str, dict[str, Any]], None]  # (namespace, name, changes)


class EventAggregator:
    """Repeats of one event (same object, reason and message) within `window` seconds raise
    the first one's `count` and `lastTimestamp` instead of adding events, as client-go's
    recorder does: a crash-looping ReplicaSet leaves one event, not one per pod."""

    def __init__(
        self,
        create: CreateEvent,
        patch: PatchEvent,
        *,
        window: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._create, self._patch = create, patch
        self._window, self._clock = window, clock
        self._seen: dict[tuple[str, str, str, str], tuple[str, int, float]] = {}
        self._lock = threading.Lock()

    def record(self, namespace: str, body: dict[str, Any]) -> None:
        """Create the event, or count a repeat of a recent one."""
        key = (namespace, body["involvedObject"]["name"], body["reason"], body["message"])
        now = self._clock()
        with self._lock:
            self._forget_older_than(now - self._window)
            seen = self._seen.get(key)
        if seen is not None:
            name, count, first = seen
            try:
                self._patch(
                    namespace, name, {"count": count + 1, "lastTimestamp": body["lastTimestamp"]}
                )
            except Exception:  # gone (expired, deleted): start a new one below
                pass
            else:
                with self._lock:
                    self._seen[key] = (name, count + 1, first)
                return
        name = self._create(namespace, body)
        with self._lock:
            self._seen[key] = (name, 1, now)

    def _forget_older_than(self, limit: float) -> None:
        stale = [k for k, (_, _, first) in self._seen.items() if first < limit]
        for k in stale:
            del self._seen[k]
