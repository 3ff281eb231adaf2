"""The status model on the real API server with real agent processes (issue 16, item 2): a
gateway is Synced only at the commit the controller published for it, so Ready is False while
a push rolls out; RestartRequired is its own syncStatus, condition and printer column; the
backup of a redundant pair skipped by design counts when its primary is at the same commit (a
paused profile does not); a dryRun profile keeps Ready and raises Drifted naming what differs.

Each agent is a `stoker agent` process syncing a gateway simulator and reporting through its
status ConfigMap; the controller is driven pass by pass in this process (k8s.rollout_fleet)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import git
from k8s.rollout_fleet import Fleet, conditions, statuses
from k8s.rollout_fleet import fleet as fleet  # the fixture
from stoker_k8s.commands.status import summarize
from support.kubeenv import ControlPlane, wait_until

pytestmark = pytest.mark.kube


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


def table_row(kube_env: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    """What `kubectl get gs` shows: the API server's own Table rendering of the CR."""
    table = requests.get(
        f"{kube_env.server}/apis/stoker.io/v1alpha1/namespaces/{namespace}/gatewaysyncs/{name}",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        cert=(str(kube_env.admin_cert), str(kube_env.admin_key)),
        verify=str(kube_env.ca_file),
        timeout=10,
    ).json()
    columns = [c["name"] for c in table["columnDefinitions"]]
    return dict(zip(columns, table["rows"][0]["cells"], strict=True))


def test_ready_turns_false_after_a_push_until_the_gateways_run_the_new_commit(
    fleet: Fleet,
) -> None:
    fleet.create()
    fleet.pod("blue-0", "blue", "ignition-blue")
    fleet.reconcile()  # publishes the commit, creates the status ConfigMap
    old = head(fleet.repo)
    fleet.agent("blue-0", "blue", "ignition-blue")
    fleet.reported("blue-0", "Synced", old)
    assert conditions(fleet.reconcile())["Ready"]["status"] == "True"
    fleet.stop_agent("blue-0")  # the gateway keeps running the old commit
    project = fleet.repo / "services/ignition-blue/projects/blue/project.json"
    project.write_text(project.read_text().replace("}", ', "description": "v2"}', 1))
    git(fleet.repo, "commit", "-qam", "v2")
    new = head(fleet.repo)

    cr = fleet.reconcile()
    assert cr["status"]["lastSyncCommit"] == new
    found = conditions(cr)
    assert found["Ready"]["status"] == "False"  # it stayed True while the gateway ran `old`
    assert found["AllGatewaysSynced"]["status"] == "False"
    [gateway] = cr["status"]["discoveredGateways"]
    assert (gateway["syncStatus"], gateway["syncedCommit"]) == ("Pending", old)
    assert gateway["targetCommit"] == new
    assert found["AllGatewaysSynced"]["message"] == "0/1 synced (1 not yet at " + new[:7] + ")"

    fleet.agent("blue-0", "blue", "ignition-blue")
    fleet.reported("blue-0", "Synced", new)
    cr = fleet.reconcile()
    assert conditions(cr)["Ready"]["status"] == "True"
    assert statuses(cr) == {"blue-0": "Synced"}


def test_a_gateway_that_needs_a_restart_shows_restart_required_and_keeps_ready(
    fleet: Fleet, kube_env: ControlPlane, kube_namespace: str
) -> None:
    (fleet.repo / "modules").mkdir()
    (fleet.repo / "modules/modules.json").write_text('{"perspective": "3.3.3"}\n')
    git(fleet.repo, "add", "-A")
    git(fleet.repo, "commit", "-qm", "modules")

    def with_modules(body: dict[str, Any]) -> None:
        body["spec"]["sync"]["profiles"]["blue"]["mappings"].append(
            {"source": "modules/modules.json", "destination": "modules.json", "type": "file"}
        )

    fleet.create(with_modules)
    fleet.pod("blue-0", "blue", "ignition-blue")
    fleet.reconcile()
    fleet.agent("blue-0", "blue", "ignition-blue")
    fleet.reported("blue-0", "RestartRequired", head(fleet.repo))
    cr = fleet.reconcile()
    assert statuses(cr) == {"blue-0": "RestartRequired"}  # it was shown as Synced
    found = conditions(cr)
    assert found["RestartRequired"]["status"] == "True"
    assert found["RestartRequired"]["reason"] == "RestartPending"
    assert "ignition-blue" in found["RestartRequired"]["message"]
    # Applied and loaded as far as a scan can: Ready holds, the restart is the operator's call.
    assert found["Ready"]["status"] == "True"
    row = table_row(kube_env, kube_namespace, fleet.name)
    assert row["Restart"] == "True"
    summary = summarize(cr)
    assert summary["restart"] == "True"
    assert any("RestartRequired" in note for note in summary["notes"])
    shown = subprocess.run(
        [sys.executable, "-m", "stoker_agent.cli", "status", "-n", kube_namespace],
        env={**kube_env.subprocess_env(), "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "ignition-blue (blue-0): RestartRequired" in shown
    assert "* RestartRequired: 1 gateway(s) need a restart" in shown
    # The agent's periodic check keeps saying so until the gateway has restarted.
    fleet.sims["blue-0"].restart(0.2)
    wait_until(
        lambda: fleet.report("blue-0").get("result") == "InSync",
        timeout=60,
        what="the agent to see the restart",
    )
    cr = fleet.reconcile()
    assert statuses(cr) == {"blue-0": "Synced"}
    assert conditions(cr)["RestartRequired"]["status"] == "False"
    assert table_row(kube_env, kube_namespace, fleet.name)["Restart"] == "False"


def test_a_redundant_pair_is_ready_when_its_primary_is_synced_and_the_backup_skipped(
    fleet: Fleet,
) -> None:
    fleet.create()
    fleet.pod("plant-0", "blue", "plant")
    fleet.pod("plant-1", "blue", "plant-1")
    fleet.reconcile()
    commit = head(fleet.repo)
    fleet.agent("plant-0", "blue", "plant", role="Master")
    fleet.agent("plant-1", "blue", "plant-1", role="Backup")
    fleet.reported("plant-0", "Synced", commit)
    fleet.reported("plant-1", "Skipped", commit)
    cr = fleet.reconcile()
    assert statuses(cr) == {"plant-0": "Synced", "plant-1": "Skipped"}
    found = conditions(cr)
    assert found["Ready"]["status"] == "True"  # a redundant pair was never Ready
    assert found["AllGatewaysSynced"]["status"] == "True"
    assert not (fleet.work / "plant-1/data/projects/blue").exists()  # the master replicates


def test_a_paused_profile_that_reports_skipped_keeps_ready_false(fleet: Fleet) -> None:
    def red_paused(body: dict[str, Any]) -> None:
        body["spec"]["sync"]["profiles"]["red"]["paused"] = True

    fleet.create(red_paused)
    fleet.pod("blue-0", "blue", "ignition-blue")
    fleet.pod("red-0", "red", "ignition-red")
    fleet.reconcile()
    fleet.agent("blue-0", "blue", "ignition-blue")
    fleet.agent("red-0", "red", "ignition-red")
    fleet.reported("blue-0", "Synced", head(fleet.repo))
    wait_until(lambda: fleet.report("red-0").get("result") == "Skipped", timeout=60)
    cr = fleet.reconcile()
    assert statuses(cr) == {"blue-0": "Synced", "red-0": "Skipped"}
    assert conditions(cr)["Ready"]["status"] == "False"
    assert conditions(cr)["AllGatewaysSynced"]["message"].startswith("1/2 synced")


def test_a_dry_run_profile_keeps_ready_and_raises_drifted_naming_what_differs(
    fleet: Fleet,
) -> None:
    def blue_dry_run(body: dict[str, Any]) -> None:
        body["spec"]["sync"]["profiles"]["blue"]["dryRun"] = True

    fleet.create(blue_dry_run)
    fleet.pod("blue-0", "blue", "ignition-blue")
    fleet.reconcile()
    fleet.agent("blue-0", "blue", "ignition-blue")
    record = fleet.reported("blue-0", "DryRun", head(fleet.repo))
    cr = fleet.reconcile()
    found = conditions(cr)
    assert found["Ready"]["status"] == "True"  # a dryRun profile was never Ready
    assert statuses(cr) == {"blue-0": "Drifted"}
    drifted = found["Drifted"]
    assert (drifted["status"], drifted["reason"]) == ("True", "DriftDetected")
    count = record["added"]["count"] + record["modified"]["count"] + record["deleted"]["count"]
    assert f"ignition-blue: {count} file(s) differ from Git" in drifted["message"]
    assert record["added"]["paths"][0] in drifted["message"]
    assert drifted["message"].count(", ") < 8  # the first few paths, not all of them
    assert not (fleet.work / "blue-0/data/projects/blue").exists()  # nothing written
