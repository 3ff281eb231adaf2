"""`stoker sync` against gateway replies that are not the API's (a proxy's login page, a
redirect), scan locks left by an earlier run, and one-off transport failures (H14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from conftest import git
from support.ignition_sim import Fault, GatewaySimulator
from support.ignition_sim_resources import write_api_token
from support.stokercli import run_stoker, sync_args

LOCK = "/data/api/v1/scan-lock"


def sync(repo: Path, data: Path, sim: GatewaySimulator, token: Path) -> dict[str, object]:
    """One `stoker sync --output json` of profile blue; its report plus the exit code."""
    done = run_stoker(*sync_args(repo, data, sim, token, "--output", "json"), timeout=120)
    assert "Traceback" not in done.stderr
    report: dict[str, object] = json.loads(done.stdout)
    return {**report, "exit": done.returncode, "stderr": done.stderr}


def take_lock(sim: GatewaySimulator, key: str, kind: str) -> None:
    """Take a scan lock the way another client (a manual run, an operator) would."""
    reply = requests.post(
        f"{sim.url}{LOCK}/{kind}",
        json={"acquireTimeout": 1, "holdTimeout": 60},
        headers={"X-Ignition-API-Token": key},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize(
    ("path", "fault", "seen"),
    [
        ("/data/api/v1/scan/projects", "garbage", "Please log in"),  # HTML with 200
        ("/data/api/v1/scan/projects", "redirect", "/sso/login"),  # 302
        ("/data/api/v1/projects/list", "foreign-json", "UP"),  # JSON, not the API's
    ],
)
def test_H14_a_page_that_is_not_the_apis_after_an_apply_is_retried_not_rolled_back(
    example_repo: Path,
    gateway: tuple[GatewaySimulator, Path, Path],
    path: str,
    fault: Fault,
    seen: str,
) -> None:
    sim, data, token = gateway
    assert sync(example_repo, data, sim, token)["result"] == "Synced"
    project = example_repo / "services/ignition-blue/projects/blue/project.json"
    project.write_text(project.read_text().replace("}", ', "description": "v2"}', 1))
    git(example_repo, "commit", "-qam", "a good change")
    sim.fail(path, fault, times=-1)  # a proxy in front of the gateway answers instead

    report = sync(example_repo, data, sim, token)

    assert (report["result"], report["exit"]) == ("Error", 1)
    assert b'"v2"' in (data / "projects/blue/project.json").read_bytes()  # no rollback
    assert not (data / ".stoker/rejected.json").exists()
    status = json.loads((data / ".stoker/status.json").read_text())
    assert status["result"] == "Error"
    assert sim.url in status["error"]
    assert seen in status["error"]
    assert "not the gateway API" in status["error"]
    assert len(status["error"]) < 600
    secret = token.read_text().strip().split(":", 1)[1]
    assert secret not in json.dumps(status) + str(report)
    sim.clear_faults()
    assert sync(example_repo, data, sim, token)["result"] == "Synced"  # the retry loads it
    assert "v2" in json.dumps(sim.loaded_projects()["blue"].meta)


def test_H14_a_rerun_is_not_blocked_by_the_scan_lock_its_last_run_left(
    example_repo: Path, gateway: tuple[GatewaySimulator, Path, Path]
) -> None:
    sim, data, token = gateway
    sim.fail(f"{LOCK}/config", "drop", times=-1)  # the run dies after taking the projects lock
    first = sync(example_repo, data, sim, token)
    assert first["result"] == "Error"
    held = requests.get(
        f"{sim.url}{LOCK}/projects",
        headers={"X-Ignition-API-Token": token.read_text().strip()},
        timeout=10,
    )
    assert held.status_code == 200  # still held, for up to 120 s
    sim.clear_faults()

    again = sync(example_repo, data, sim, token)

    assert (again["result"], again["exit"]) == ("Synced", 0), again
    assert "blue" in sim.loaded_projects()


@pytest.mark.parametrize("holder", ["a manual run with the same token", "another actor"])
def test_H14_a_scan_lock_held_by_anyone_else_still_blocks_with_a_clear_message(
    example_repo: Path, gateway: tuple[GatewaySimulator, Path, Path], holder: str
) -> None:
    sim, data, token = gateway
    key = token.read_text().strip()
    if holder == "another actor":
        key = write_api_token(data, "operator", collection="local")
        sim.scan("config")
    take_lock(sim, key, "projects")

    report = sync(example_repo, data, sim, token)

    assert (report["result"], report["exit"]) == ("Blocked", 4)
    actor = key.split(":", 1)[0]
    message = str(report["error"])
    assert f"held by {actor!r}" in message
    assert "not by this Stoker" in message
    assert "s left" in message
    assert not (data / "projects").exists()


@pytest.mark.parametrize(
    ("path", "fault"),
    [
        (f"{LOCK}/projects", 503),
        (f"{LOCK}/config", "drop"),
        (f"{LOCK}/projects", "lost"),  # the gateway took the lock; its answer never came
    ],
)
def test_H14_one_failed_scan_lock_call_is_retried_and_the_sync_succeeds(
    example_repo: Path, gateway: tuple[GatewaySimulator, Path, Path], path: str, fault: Fault
) -> None:
    sim, data, token = gateway
    sim.fail(path, fault)

    report = sync(example_repo, data, sim, token)

    assert (report["result"], report["exit"]) == ("Synced", 0), report
    assert "blue" in sim.loaded_projects()
    assert [r.path for r in sim.requests if r.path.startswith(LOCK) and r.method == "POST"].count(
        path
    ) >= 2


@pytest.mark.parametrize("status", [400, 404, 405])
def test_H14_an_unexpected_http_status_after_an_apply_is_retried_not_rolled_back(
    example_repo: Path, gateway: tuple[GatewaySimulator, Path, Path], status: int
) -> None:
    sim, data, token = gateway
    assert sync(example_repo, data, sim, token)["result"] == "Synced"
    project = example_repo / "services/ignition-blue/projects/blue/project.json"
    project.write_text(project.read_text().replace("}", ', "description": "v2"}', 1))
    git(example_repo, "commit", "-qam", "a good change")
    sim.fail("/data/api/v1/scan/projects", status, times=-1)  # says nothing about the change

    report = sync(example_repo, data, sim, token)

    assert (report["result"], report["exit"]) == ("Error", 1)
    assert b'"v2"' in (data / "projects/blue/project.json").read_bytes()  # no rollback
    assert not (data / ".stoker/rejected.json").exists()
    assert f"HTTP {status}" in str(report["error"])
    assert f"{sim.url}/data/api/v1/scan/projects" in str(report["error"])
