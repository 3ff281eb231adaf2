"""The Grafana dashboards query only metrics Stoker really exports, and show every one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from conftest import ROOT
from stoker_agent.health import AgentMetrics
from stoker_k8s.metrics import ControllerMetrics, WebhookMetrics

DASHBOARDS = sorted((ROOT / "adapters" / "helm" / "stoker" / "dashboards").glob("*.json"))
SUFFIXES = ("_bucket", "_sum", "_count", "_created", "_total")


def families() -> list[str]:
    """The name of every metric family Stoker exports (agent, controller, receiver, webhook)."""
    registries: list[CollectorRegistry] = [AgentMetrics().registry, ControllerMetrics().registry]
    names = [family.name for registry in registries for family in registry.collect()]
    # The webhook's counters are served from its workers' files, not from a registry.
    webhook = WebhookMetrics("/nonexistent")
    return names + [family.name for family in webhook.injections.collect()]


def exported() -> set[str]:
    """Every sample name the families can produce."""
    names: set[str] = set()
    for family in families():
        names.add(family)
        names.add(family + "_total")
        names.update(f"{family}{s}" for s in SUFFIXES)
    return names


def queries(dashboard: dict[str, object]) -> list[str]:
    text = json.dumps(dashboard)
    return re.findall(r"\b(stoker_[a-z_]+)\b", text)


def test_there_are_fleet_and_detail_dashboards() -> None:
    assert [d.name for d in DASHBOARDS] == ["fleet-overview.json", "gatewaysync-detail.json"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_metric_a_dashboard_uses_is_exported(path: Path) -> None:
    used = set(queries(json.loads(path.read_text())))
    assert used
    assert used <= exported(), sorted(used - exported())


def test_every_exported_metric_is_on_a_dashboard() -> None:
    used = {name for path in DASHBOARDS for name in queries(json.loads(path.read_text()))}
    shown = {f for f in families() if ({f, f + "_total"} | {f + s for s in SUFFIXES}) & used}
    assert shown == set(families()), sorted(set(families()) - shown)


def test_the_fleet_dashboard_has_a_rollout_panel_with_every_rollout_metric() -> None:
    fleet = json.loads((ROOT / "adapters/helm/stoker/dashboards/fleet-overview.json").read_text())
    rollout = [p for p in fleet["panels"] if "rollout" in p["title"].lower()]
    used = {name for panel in rollout for name in queries(panel)}
    assert {"stoker_rollout_step", "stoker_rollout_gateways"} <= used
    assert "stoker_rollout_duration_seconds_bucket" in used
