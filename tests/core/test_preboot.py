"""The pre-boot rules: the start-up timeout's bounds and the redundancy role assumed before the
gateway answers (a backup is not written by mistake)."""

from __future__ import annotations

import pytest

from core.helpers import gs_with
from stoker_core.errors import InvalidInput
from stoker_core.injection import decide
from stoker_core.preboot import (
    DEFAULT_TIMEOUT,
    MAX_TIMEOUT,
    STARTUP_PROBE_SECONDS,
    Role,
    remembered,
    role_before_boot,
    skip_reason,
    startup_timeout,
)

CHART = {"app.kubernetes.io/name": "ignition", "app.kubernetes.io/instance": "plant1"}


def test_the_default_start_up_timeout_stays_well_below_the_kubelet_s_probe_limit() -> None:
    assert STARTUP_PROBE_SECONDS == 300  # what the webhook injects: 150 failures, 2 s apart
    assert DEFAULT_TIMEOUT <= MAX_TIMEOUT <= STARTUP_PROBE_SECONDS - 60
    assert startup_timeout(None, where="x") == DEFAULT_TIMEOUT
    assert startup_timeout("", where="x") == DEFAULT_TIMEOUT
    assert startup_timeout(" 90 ", where="x") == 90
    assert startup_timeout("0", where="x") == 0


@pytest.mark.parametrize("text", ["300", "-1", "1e3", "²", "ninety", "9" * 30])
def test_a_start_up_timeout_outside_its_bounds_is_refused_with_the_limit(text: str) -> None:
    with pytest.raises(InvalidInput, match=f"from 0 to {MAX_TIMEOUT}"):
        startup_timeout(text, where="stoker.io/startup-timeout")


def test_a_chart_pod_with_a_nonzero_ordinal_is_the_pair_s_backup_before_boot() -> None:
    backup = {**CHART, "apps.kubernetes.io/pod-index": "1"}
    primary = {**CHART, "apps.kubernetes.io/pod-index": "0"}
    assert role_before_boot(backup, None)[0] is Role.BACKUP
    assert role_before_boot(primary, None)[0] is Role.INDEPENDENT
    assert role_before_boot({"apps.kubernetes.io/pod-index": "1"}, None)[0] is Role.INDEPENDENT
    assert skip_reason(backup, None, apply_on_backup=False).startswith("Skipped (backup")
    assert skip_reason(backup, None, apply_on_backup=True) == ""


def test_the_role_the_gateway_last_reported_wins_over_the_ordinal_rule() -> None:
    backup = {**CHART, "apps.kubernetes.io/pod-index": "1"}
    assert role_before_boot(backup, Role.MASTER)[0] is Role.MASTER
    assert role_before_boot({}, Role.BACKUP)[0] is Role.BACKUP
    assert remembered("Backup\n") is Role.BACKUP
    assert remembered("../../etc") is None
    assert remembered(None) is None


def test_the_startup_timeout_annotation_reaches_the_agent_and_a_bad_one_only_warns() -> None:
    gs = gs_with([{"source": "p", "destination": "projects"}])

    def injected(value: str) -> tuple[dict[str, str], tuple[str, ...]]:
        pod = {
            "metadata": {
                "name": "gw-0",
                "annotations": {"stoker.io/inject": "true", "stoker.io/startup-timeout": value},
            },
            "spec": {
                "containers": [
                    {"name": "gw", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}
                ],
                "volumes": [{"name": "data", "emptyDir": {}}],
            },
        }
        decision = decide(pod, "plant", {"site": gs})
        assert decision.allowed
        [container] = [op["value"] for op in decision.patch if op["path"] == "/spec/initContainers"]
        [agent] = container
        return {e["name"]: e.get("value", "") for e in agent["env"]}, decision.warnings

    env, warnings = injected("120")
    assert (env["STOKER_STARTUP_TIMEOUT"], warnings) == ("120", ())
    env, warnings = injected("600")
    assert "STOKER_STARTUP_TIMEOUT" not in env
    assert "stoker.io/startup-timeout" in warnings[0]
    assert "the default is used" in warnings[0]
