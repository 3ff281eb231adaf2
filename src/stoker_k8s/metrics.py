"""Controller, receiver and webhook metrics (prometheus-client, private registries; the
webhook's summed over its gunicorn worker processes)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections import Counter as Counter_
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from stoker_core.rollouts import Phase
from stoker_core.rolloutstate import COMPLETE
from stoker_core.vocabulary import Metric, Reason

if TYPE_CHECKING:
    from stoker_core.rolloutstatus import Event
    from stoker_k8s.rolloutpass import Outcome

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
        self.status_writes = Counter(
            Metric.CONTROLLER_STATUS_WRITES_TOTAL.removesuffix("_total"),
            "Status writes sent to the API server (only when the status changed).",
            ["namespace", "name"],
            registry=r,
        )
        self.github_token_expiry = Gauge(
            Metric.CONTROLLER_GITHUB_APP_TOKEN_EXPIRY,
            "When the GitHub App installation token of a GatewaySync's agents expires.",
            ["namespace", "name"],
            registry=r,
        )
        self.rollout_step = Gauge(
            Metric.ROLLOUT_STEP,
            "The step a GatewaySync's rollout is in, from 1 (the gateways no step selects are "
            "the last step); one more than the steps once the commit reached every gateway.",
            ["namespace", "name"],
            registry=r,
        )
        self.rollout_gateways = Gauge(
            Metric.ROLLOUT_GATEWAYS,
            "Gateways of a GatewaySync's rollout by phase (waiting, moving, done, failed, "
            "uncounted: dryRun).",
            ["namespace", "name", "phase"],
            registry=r,
        )
        self.rollout_halted = Gauge(
            Metric.ROLLOUT_HALTED,
            "1 while a GatewaySync's rollout is halted: a gateway failed the commit (every "
            "gateway is at its target then, so no other metric shows it).",
            ["namespace", "name"],
            registry=r,
        )
        self.rollout_duration = Histogram(
            Metric.ROLLOUT_DURATION,
            "From the first pass that saw a commit to its rollout reaching every gateway.",
            ["namespace", "name"],
            buckets=(30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
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
        series: list[tuple[Any, tuple[str, ...]]] = [
            (family, (namespace, name)) for family in self._per_gatewaysync()
        ]
        series += [(self.reconcile_total, (namespace, name, r)) for r in RESULTS]
        for family, labels in series:
            with contextlib.suppress(KeyError):  # never set (older clients raise)
                family.remove(*labels)
        self.forget_rollout(namespace, name)

    def rollout(self, namespace: str, name: str, outcome: Outcome, news: Iterable[Event]) -> None:
        """A rollout pass: its step, its gateways per phase, and its duration once complete."""
        state = outcome.state
        step = len(outcome.steps) + 1 if state.step == COMPLETE else state.step + 1
        self.rollout_step.labels(namespace, name).set(step)
        self.rollout_halted.labels(namespace, name).set(1 if state.halted is not None else 0)
        counts = Counter_(outcome.phases.values())
        for phase in Phase:
            self.rollout_gateways.labels(namespace, name, phase.value).set(counts[phase])
        if any(e.reason == Reason.ROLLOUT_COMPLETE for e in news):
            since = outcome.record.get("since")
            if isinstance(since, int | float):
                self.rollout_duration.labels(namespace, name).observe(max(time.time() - since, 0.0))

    def forget_rollout(self, namespace: str, name: str) -> None:
        """A GatewaySync without (or no longer with) spec.rollout: no rollout series."""
        series: list[tuple[Any, tuple[str, ...]]] = [
            (self.rollout_step, (namespace, name)),
            (self.rollout_duration, (namespace, name)),
            (self.rollout_halted, (namespace, name)),
        ]
        series += [(self.rollout_gateways, (namespace, name, p.value)) for p in Phase]
        for family, labels in series:
            with contextlib.suppress(KeyError):
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
            self.status_writes,
            self.github_token_expiry,
        ]


MAX_NAMESPACES = 500  # per worker: a forged review's namespace must not grow series unbounded


class WebhookMetrics:
    """The admission webhook's /metrics, the same from whichever gunicorn worker answers: each
    worker writes its counts to files under one directory (prometheus-client's multiprocess
    mode) and /metrics sums them, those of workers that have exited included."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.injections = Counter(
            Metric.WEBHOOK_INJECTIONS_TOTAL.removesuffix("_total"),
            "Pod admissions by result: injected, skipped (no agent wanted or already there), "
            "denied, unavailable (GatewaySyncs could not be read: answered 503).",
            ["namespace", "result"],
            registry=None,  # served through the directory, never from this process's memory
        )
        self._namespaces: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def shared(cls) -> WebhookMetrics:
        """Metrics that the workers forked after this call share (call it before serving)."""
        directory = tempfile.mkdtemp(prefix="stoker-webhook-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        from prometheus_client import values

        # prometheus-client picks its value store from the environment when first imported,
        # which may have been before this call.
        values.ValueClass = values.get_value_class()
        return cls(directory)

    def close(self) -> None:
        """Remove the workers' files (the server has stopped)."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def admitted(self, namespace: str, result: str) -> None:
        """Count one pod admission."""
        with self._lock:
            if namespace not in self._namespaces and len(self._namespaces) >= MAX_NAMESPACES:
                namespace = "_other"
            else:
                self._namespaces.add(namespace)
        self.injections.labels(namespace[:63], result).inc()

    def exposition(self) -> bytes:
        """The text /metrics serves: every worker's counts, summed."""
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.directory)
        return generate_latest(registry)
