"""The chart's alert rules, evaluated by Prometheus's own `promtool test rules` (built from the
Go module proxy by tests/promtool/build.sh, `make promtool-bin`): each alert fires on the
series it is meant for, after its `for`, and not on the healthy ones beside them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from conftest import ROOT
from k8s.test_chart import helm as helm  # the fixture
from k8s.test_chart import render

TESTS = ROOT / "tests" / "promtool" / "alerts_test.yaml"


def promtool() -> str:
    done = subprocess.run(
        ["bash", str(ROOT / "tests/promtool/build.sh"), "--no-build"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"promtool is not available: {done.stderr}"  # never skipped
    return done.stdout.strip().splitlines()[-1]


def rules(helm: str) -> dict[str, object]:
    """The PrometheusRule's groups as the chart renders them, as a Prometheus rules file."""
    [rule] = [
        d
        for d in render(helm, "stoker-system", "metrics.prometheusRule=true")
        if d["kind"] == "PrometheusRule"
    ]
    return {"groups": rule["spec"]["groups"]}


def test_every_alert_of_the_chart_has_a_rule_unit_test(helm: str) -> None:
    alerts = {r["alert"] for g in rules(helm)["groups"] for r in g["rules"]}  # type: ignore[attr-defined]
    tested = {
        case["alertname"]
        for test in yaml.safe_load(TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
    }
    assert alerts == tested


def test_the_alert_rules_pass_promtool_check_and_their_unit_tests(
    helm: str, tmp_path: Path
) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules(helm)))
    shutil.copy(TESTS, tmp_path / "alerts_test.yaml")
    binary = promtool()
    check = subprocess.run(
        ["nice", "-n", "19", binary, "check", "rules", "rules.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    done = subprocess.run(
        ["nice", "-n", "19", binary, "test", "rules", "alerts_test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
