"""The Grafana dashboards query only metrics Stoker really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from conftest import ROOT
from stoker_agent.health import AgentMetrics
from stoker_k8s.metrics import ControllerMetrics

DASHBOARDS = sorted((ROOT / "adapters" / "helm" / "stoker" / "dashboards").glob("*.json"))
SUFFIXES = ("_bucket", "_sum", "_count", "_created", "_total")


def exported() -> set[str]:
    """Every sample name the registries can produce (after one observation of each)."""
    names: set[str] = set()
    registries: list[CollectorRegistry] = [AgentMetrics().registry, ControllerMetrics().registry]
    for registry in registries:
        for family in registry.collect():
            names.add(family.name)
            names.add(family.name + "_total")
            names.update(f"{family.name}{s}" for s in SUFFIXES)
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
