"""Controller and receiver metrics (prometheus-client, private registries)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stoker_core.vocabulary import Metric


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
        self.receiver_requests = Counter(
            Metric.RECEIVER_REQUESTS_TOTAL.removesuffix("_total"),
            "Receiver requests.",
            ["source", "code"],
            registry=r,
        )
