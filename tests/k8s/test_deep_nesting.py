"""Input nested deeper than Python's stack reaching the Kubernetes roles: a kubeconfig, and an
agent's status record in its ConfigMap (a compromised agent can write it). Each is damaged
input with a message, never a RecursionError."""

from __future__ import annotations

from pathlib import Path

import pytest

from stoker_k8s import apiaccess, controller
from stoker_k8s.apiaccess import ClusterUnavailable

DEEP = "[" * 100_000 + "]" * 100_000


def test_a_kubeconfig_nested_too_deeply_is_named_with_what_to_check(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("clusters: " + DEEP + "\n")
    with pytest.raises(ClusterUnavailable, match="nested too deeply; check --kubeconfig"):
        apiaccess.choose(str(kubeconfig), None, {})


def test_an_agent_record_nested_too_deeply_is_no_record() -> None:
    assert controller._record(DEEP) is None
