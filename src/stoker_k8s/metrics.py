"""Controller and receiver metrics (prometheus-client, private registries)."""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stoker_core.vocabulary import Metric

RESULTS = ("success", "requeue", "error")  # the reconcile_total results


class ControllerMetrics:
    """What the controller exposes on /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.reconcile_total = Counter(
            Metric.CONTROLLER_RECONCILE_TOTAL.removesuffix("_total"),
            "Reconciles by result.",
            ["namespace", "name", "result"],
            registry=r,
        )
        self.reconcile_duration = Histogram(
            Metric.CONTROLLER_RECONCILE_DURATION,
            "Reconcile duration.",
            ["namespace", "name"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.gateways_discovered = Gauge(
            Metric.CONTROLLER_GATEWAYS_DISCOVERED,
            "Gateway pods found for a GatewaySync.",
            ["namespace", "name"],
            registry=r,
        )
        self.gateways_synced = Gauge(
            Metric.CONTROLLER_GATEWAYS_SYNCED,
            "Gateway pods reporting Synced.",
            ["namespace", "name"],
            registry=r,
        )
        self.ref_resolve_duration = Histogram(
            Metric.CONTROLLER_REF_RESOLVE_DURATION,
            "Duration of each git ls-remote that resolves a GatewaySync's ref (cached answers "
            "are not observed).",
            ["namespace", "name"],
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.ref_resolve_errors = Counter(
            Metric.CONTROLLER_REF_RESOLVE_ERRORS_TOTAL.removesuffix("_total"),
            "Reconciles whose ref did not resolve (unreachable, refused, missing ref or Secret).",
            ["namespace", "name"],
            registry=r,
        )
        self.github_token_expiry = Gauge(
            Metric.CONTROLLER_GITHUB_APP_TOKEN_EXPIRY,
            "When the GitHub App installation token of a GatewaySync's agents expires.",
            ["namespace", "name"],
            registry=r,
        )
        self.receiver_requests = Counter(
            Metric.RECEIVER_REQUESTS_TOTAL.removesuffix("_total"),
            "Receiver requests.",
            ["source", "code"],
            registry=r,
        )

    def forget(self, namespace: str, name: str) -> None:
        """Remove every series of GatewaySync `namespace/name` (deleted: the original's B21)."""
        series = [(family, (namespace, name)) for family in self._per_gatewaysync()]
        series += [(self.reconcile_total, (namespace, name, r)) for r in RESULTS]
        for family, labels in series:
            with contextlib.suppress(KeyError):  # never set (older clients raise)
                family.remove(*labels)

    def forget_token(self, namespace: str, name: str) -> None:
        """A GatewaySync no longer uses a GitHub App: no expiry to watch."""
        with contextlib.suppress(KeyError):
            self.github_token_expiry.remove(namespace, name)

    def _per_gatewaysync(self) -> list[Any]:
        return [
            self.reconcile_duration,
            self.gateways_discovered,
            self.gateways_synced,
            self.ref_resolve_duration,
            self.ref_resolve_errors,
            self.github_token_expiry,
        ]
