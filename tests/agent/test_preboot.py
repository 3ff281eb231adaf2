"""The agent's first sync in a pod, before the gateway starts (issue 15): `/startupz` waits for
it, it applies without asking the gateway anything (no scan, no Designer check, no redundancy
role), a redundant backup is not written, and the start-up timeout lets the gateway start on
the files it has when Git is out of reach. The loop runs the real sync against a local Git
repository and the gateway simulator, on a fake clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
import requests

from conftest import commit_tree, git
from core.helpers import gs_with
from stoker_agent.booting import Boot, TooLate
from stoker_agent.gateway import GatewaySettings
from stoker_agent.health import AgentMetrics, HealthServer
from stoker_agent.loop import AgentLoop, Metadata
from stoker_agent.standalone import PREBOOT_SCAN, Identity, Outcome, SyncSettings, run_once
from stoker_core.secretfiles import SecretFile
from support.agentloop import Clock, Sink, Source
from support.ignition_sim import running
from support.ignition_sim_resources import write_api_token
from support.kubeenv import free_port

TIMEOUT = 180.0
CLOSED = f"http://127.0.0.1:{free_port()}"  # the gateway container has not started
CHART_BACKUP = {
    "app.kubernetes.io/name": "ignition",
    "app.kubernetes.io/instance": "plant1",
    "apps.kubernetes.io/pod-index": "1",
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    commit_tree(path, {"p/blue/project.json": '{"title": "Blue"}\n'}, "first")
    return path


def settings_for(
    repo: Path, data: Path, url: str, labels: dict[str, str] | None = None, **kw: Any
) -> SyncSettings:
    token = data.parent / "api-token"
    if not token.exists():
        token.write_text(write_api_token(data, collection="local"))
    gs = gs_with([{"source": "p", "destination": "projects"}], syncPeriod=60, **kw)
    return SyncSettings(
        gatewaysync=gs,
        profile=None,
        identity=Identity(gateway_name="plant1", pod_name="plant1-0", labels=labels or {}),
        repo=str(repo),
        ref="main",
        data_dir=str(data),
        gateway=GatewaySettings(url=url, token_file=str(token)),
    )


def booting_loop(settings: SyncSettings, clock: Clock) -> tuple[AgentLoop, Sink]:
    sink = Sink()
    loop = AgentLoop(
        Source(Metadata(settings=settings)),
        sink,
        clock=clock,
        rng=lambda: 0.5,
        boot=Boot(TIMEOUT, clock=clock),
    )
    loop.health.started = True  # the journal is recovered (what run() says first)
    return loop, sink


def test_the_first_sync_applies_before_the_gateway_starts_without_asking_it_anything(
    repo: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    settings = settings_for(repo, data, CLOSED, designerSessionPolicy="fail")
    loop, sink = booting_loop(settings, Clock())
    assert not loop.health.startup_passed()

    loop.step()

    [record] = sink.records  # no scan, no Designer check, no role: nothing answers yet
    assert (record.result, record.scan) == ("Synced", PREBOOT_SCAN)
    assert (data / "projects" / "blue" / "project.json").exists()
    assert loop.health.startup_passed()


def test_startupz_answers_starting_until_the_first_sync_has_settled(
    repo: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    loop, _ = booting_loop(settings_for(repo, data, CLOSED), Clock())
    server = HealthServer(loop.health, AgentMetrics(), host="127.0.0.1", port=0).start()
    try:
        url = f"http://127.0.0.1:{server.port}/startupz"
        before = requests.get(url, timeout=5)
        loop.step()
        after = requests.get(url, timeout=5)
    finally:
        server.stop()
    assert (before.status_code, before.text) == (503, "starting\n")
    assert after.status_code == 200


def test_an_agent_restarted_beside_a_running_gateway_syncs_with_a_scan_not_pre_boot(
    repo: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "api-token").write_text(write_api_token(data, collection="local"))
    with running(data) as sim:
        loop, sink = booting_loop(settings_for(repo, data, sim.url), Clock())
        loop.step()
        assert "blue" in sim.loaded_projects()
    [record] = sink.records
    assert record.result == "Synced"
    assert record.scan != PREBOOT_SCAN
    assert loop.health.startup_passed()


def test_a_chart_pod_with_ordinal_1_is_a_backup_and_is_not_written_before_boot(
    repo: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    settings = attrs.evolve(settings_for(repo, data, CLOSED, CHART_BACKUP), commit="c" * 40)
    loop, sink = booting_loop(settings, Clock())
    loop.step()
    [record] = sink.records
    assert (record.result, record.skip, record.commit) == ("Skipped", "backup", "c" * 40)
    assert "Skipped (backup, before the gateway started)" in record.error
    assert "ordinal 1" in record.error
    assert not (data / "projects").exists()
    assert loop.health.startup_passed()  # a backup boots at once, on what it has


def test_apply_on_backup_writes_a_backup_before_boot(repo: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    settings = settings_for(repo, data, CLOSED, CHART_BACKUP, applyOnBackup=True)
    loop, sink = booting_loop(settings, Clock())
    loop.step()
    assert [r.result for r in sink.records] == ["Synced"]
    assert (data / "projects" / "blue").is_dir()


def test_a_gateway_that_said_it_is_a_backup_is_not_written_before_its_next_boot(
    repo: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "api-token").write_text(write_api_token(data, collection="local"))
    with running(data, redundancy_role="Backup") as sim:
        once = run_once(settings_for(repo, data, sim.url))  # it runs and says what it is
        assert once.record.result == "Skipped", once.record.error
    loop, sink = booting_loop(settings_for(repo, data, CLOSED), Clock())  # the pod restarts
    loop.step()
    [record] = sink.records
    assert record.result == "Skipped"
    assert "reported redundancy role backup when it last answered" in record.error
    assert not (data / "projects").exists()


def test_an_unreachable_git_server_delays_the_gateway_by_the_start_up_timeout_at_most(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    settings = settings_for(tmp_path, data, CLOSED)
    settings = attrs.evolve(settings, repo=f"http://127.0.0.1:{free_port()}/plant.git")
    clock = Clock()
    loop, sink = booting_loop(settings, clock)
    calls: list[SyncSettings] = []

    def sync(settings: SyncSettings, **kwargs: Any) -> Outcome:
        calls.append(settings)
        return run_once(settings, **kwargs)

    loop._sync = sync
    loop.step()
    assert sink.records[-1].result == "Error"
    assert not loop.health.startup_passed()
    clock.now += TIMEOUT
    assert loop.health.startup_passed()  # the gateway starts on the files it has
    clock.now += 3600
    loop.step()
    # the agent keeps trying, now as after boot: with the gateway
    assert [c.gateway is None for c in calls] == [True, False]
    assert [c.before_boot is None for c in calls] == [False, True]


def test_the_start_up_timeout_never_ends_the_window_in_the_middle_of_a_pre_boot_write() -> None:
    clock = Clock()
    boot = Boot(10, clock=clock)
    boot.hold()
    clock.now += 60
    assert not boot.over()  # the gateway waits for the write under way
    boot.release()
    assert boot.over()
    with pytest.raises(TooLate, match="start-up timeout passed"):
        boot.hold()  # a write that had not begun waits for the next sync, with a scan


def test_a_paused_gatewaysync_lets_the_gateway_start_at_once() -> None:
    @attrs.define
    class Paused:
        paused: bool = True

        def read(self) -> Metadata | None:
            return None

    clock = Clock()
    loop = AgentLoop(Paused(), Sink(), clock=clock, boot=Boot(TIMEOUT, clock=clock))
    loop.health.started = True
    assert not loop.health.startup_passed()
    loop.step()
    assert loop.health.startup_passed()


def test_a_missing_api_key_does_not_hold_back_the_sync_before_boot_only_after(
    repo: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    key = SecretFile(
        path=str(tmp_path / "api-key" / "apiKey"),
        purpose="the gateway API key",
        secret="ignition-api-key",
        gateway_only=True,
    )
    settings = attrs.evolve(settings_for(repo, data, CLOSED), secret_files=(key,))
    clock = Clock()
    loop, sink = booting_loop(settings, clock)
    loop.step()
    clock.now += 3600
    loop.step()  # the drift check, a dry run: it asks the gateway nothing either
    loop.trigger()
    loop.step()
    assert [r.result for r in sink.records] == ["Synced", "InSync", "Blocked"]
    assert "Secret 'ignition-api-key' key 'apiKey'" in sink.records[2].error
