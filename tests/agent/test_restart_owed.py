"""A restart owed stays reported until the gateway has had it (issue 16 item 2): `stoker sync`
against the gateway simulator, whose `overview` uptime and `restart-tasks/pending` say when it
last started and what it says needs a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import EXAMPLES, git
from support.ignition_sim import GatewaySimulator
from support.kubeenv import wait_until
from support.stokercli import run_stoker, sync_args

MARKER = ".stoker/restart-owed.json"


@pytest.fixture
def setup(example_repo: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The example repository with a modules.json, and a CR whose blue profile maps it."""
    (example_repo / "modules").mkdir()
    (example_repo / "modules/modules.json").write_text('{"perspective": "3.3.3"}\n')
    git(example_repo, "add", "-A")
    git(example_repo, "commit", "-qm", "modules")
    body = yaml.safe_load((EXAMPLES / "gatewaysyncs" / "multiple-profiles.yaml").read_text())
    body["spec"]["sync"]["profiles"]["blue"]["mappings"].append(
        {"source": "modules/modules.json", "destination": "modules.json", "type": "file"}
    )
    cr = tmp_path / "cr.yaml"
    cr.write_text(yaml.safe_dump(body))
    return example_repo, cr


def sync(setup: tuple[Path, Path], gateway: tuple[GatewaySimulator, Path, Path]) -> dict[str, str]:
    """One `stoker sync --output json` of profile blue: its report."""
    (repo, cr), (sim, data, token) = setup, gateway
    done = run_stoker(*sync_args(repo, data, sim, token, "--output", "json", cr=cr), timeout=120)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def restart(sim: GatewaySimulator) -> None:
    """Restart the gateway and wait until it runs again."""
    sim.restart(0.2)
    wait_until(lambda: sim.state == "RUNNING", timeout=10, what="the restart")


def test_restart_required_stays_until_the_gateway_has_restarted(
    setup: tuple[Path, Path], gateway: tuple[GatewaySimulator, Path, Path]
) -> None:
    sim, data, _ = gateway
    assert sync(setup, gateway)["result"] == "RestartRequired"
    # Nothing changed since, and the gateway still runs the old modules: still owed (the
    # agent's next check used to say InSync, and the status Synced, within one syncPeriod).
    again = sync(setup, gateway)
    assert again["result"] == "RestartRequired"
    assert "a restart-only file changed at" in again["restart"]
    restart(sim)
    assert sync(setup, gateway)["result"] == "InSync"
    assert not (data / MARKER).exists()


def test_restart_tasks_the_gateway_lists_after_a_sync_are_reported(
    setup: tuple[Path, Path], gateway: tuple[GatewaySimulator, Path, Path]
) -> None:
    sim, _, _ = gateway
    repo, _ = setup
    assert sync(setup, gateway)["result"] == "RestartRequired"
    restart(sim)
    sim.restart_tasks = ["Module 'Perspective' updated"]
    project = repo / "services/ignition-blue/projects/blue/project.json"
    project.write_text(project.read_text().replace("}", ', "description": "v2"}', 1))
    git(repo, "commit", "-qam", "v2")
    report = sync(setup, gateway)
    assert report["result"] == "RestartRequired"
    assert "pending restart tasks: Module 'Perspective' updated" in report["restart"]
    restart(sim)
    assert sync(setup, gateway)["result"] == "InSync"
    # What the gateway lists reaches the status bounded: the first 10 tasks, 200 characters each.
    sim.restart_tasks = [f"{i}:{'x' * 5000}" for i in range(100)]
    project.write_text(project.read_text().replace('"v2"', '"v3"'))
    git(repo, "commit", "-qam", "v3")
    report = sync(setup, gateway)
    assert report["result"] == "RestartRequired"
    assert "9:x" in report["restart"]
    assert "10:x" not in report["restart"]
    assert len(report["restart"]) < 10 * 200 + 200


def test_a_forged_restart_marker_is_read_as_hostile_input(
    setup: tuple[Path, Path], gateway: tuple[GatewaySimulator, Path, Path]
) -> None:
    sim, data, _ = gateway
    assert sync(setup, gateway)["result"] == "RestartRequired"
    restart(sim)
    for forged in ("x" * 100_000, "not json", '{"since": "soon"}', '{"since": true}'):
        (data / MARKER).write_text(forged)
        assert sync(setup, gateway)["result"] == "InSync"
