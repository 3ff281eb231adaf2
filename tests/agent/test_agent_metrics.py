"""The agent's /metrics while it really syncs: git fetches from a remote, the gateway's scans
(the Ignition simulator) and Designer sessions holding a sync back, as the loop sees them."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import EXAMPLES, git
from stoker_agent.gateway import GatewaySettings
from stoker_agent.health import AgentMetrics, HealthServer
from stoker_agent.loop import AgentLoop, Metadata
from stoker_agent.standalone import Identity, SyncSettings
from stoker_core.validation import load
from support.agentloop import Sink, Source
from support.ignition_sim import GatewaySimulator, running
from support.ignition_sim_resources import write_api_token
from support.kubeenv import wait_until

MULTI = EXAMPLES / "gatewaysyncs" / "multiple-profiles.yaml"


@attrs.frozen
class Agent:
    loop: AgentLoop
    sink: Sink
    sim: GatewaySimulator
    url: str  # the health server's /metrics

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample /metrics serves now, by name and labels."""
        text = requests.get(self.url, timeout=5).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        return self.samples().get((name, tuple(sorted(labels.items()))), 0.0)


def settings_for(
    repo: str, data: Path, sim: GatewaySimulator, token: Path, **profile: Any
) -> SyncSettings:
    body = yaml.safe_load(MULTI.read_text())
    body["spec"]["sync"]["profiles"]["blue"].update(profile)
    return SyncSettings(
        gatewaysync=load(body),
        profile="blue",
        identity=Identity(gateway_name="ignition-blue"),
        repo=repo,
        ref="main",
        data_dir=str(data),
        mirror_dir=str(data.parent / "mirror"),
        gateway=GatewaySettings(url=sim.url, token_file=str(token), timeout=5),
        designer_poll=0.2,
    )


@pytest.fixture
def remote(tmp_path: Path) -> str:
    """The example configuration repository, fetched by URL (a real `git fetch`)."""
    repo = tmp_path / "config-repo"
    shutil.copytree(EXAMPLES / "config-repo", repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "example")
    return f"file://{repo}"


@pytest.fixture
def agent(tmp_path: Path, remote: str, request: pytest.FixtureRequest) -> Iterator[Agent]:
    data = tmp_path / "data"
    data.mkdir()
    token = tmp_path / "api-token"
    token.write_text(write_api_token(data, collection="local") + "\n")
    profile = getattr(request, "param", {})
    repo = profile.pop("repo", remote)
    with running(data) as sim:
        metrics = AgentMetrics()
        source = Source(Metadata(settings=settings_for(repo, data, sim, token, **profile)))
        sink = Sink()
        loop = AgentLoop(source, sink, observer=metrics)
        server = HealthServer(loop.health, metrics, host="127.0.0.1", port=0).start()
        try:
            yield Agent(loop, sink, sim, f"http://127.0.0.1:{server.port}/metrics")
        finally:
            loop.stop()
            server.stop()


def test_a_sync_from_a_remote_counts_its_fetch_and_its_scan(agent: Agent) -> None:
    agent.loop.step()
    assert agent.sink.records[-1].result == "Synced", agent.sink.records[-1].error
    assert agent.value("stoker_agent_git_fetch_duration_seconds_count", result="success") >= 1
    assert agent.value("stoker_agent_git_fetch_duration_seconds_count", result="error") == 0
    assert agent.value("stoker_agent_scan_total", result="loaded") == 1
    assert agent.value("stoker_agent_scan_duration_seconds_count") == 1
    assert agent.value("stoker_agent_designer_sessions_blocked") == 0


@pytest.mark.parametrize("agent", [{"repo": "file:///nonexistent/plant.git"}], indirect=True)
def test_a_failed_fetch_is_counted_as_an_error(agent: Agent) -> None:
    agent.loop.step()
    assert agent.sink.records[-1].result == "Error"
    assert agent.value("stoker_agent_git_fetch_duration_seconds_count", result="error") >= 1
    assert agent.value("stoker_agent_scan_duration_seconds_count") == 0


@pytest.mark.parametrize("agent", [{"designerSessionPolicy": "wait"}], indirect=True)
def test_designer_sessions_blocking_a_sync_show_while_it_waits_and_clear_when_they_close(
    agent: Agent,
) -> None:
    agent.sim.add_designer("alice", "blue")
    syncing = threading.Thread(target=agent.loop.step, daemon=True)
    syncing.start()
    wait_until(
        lambda: agent.value("stoker_agent_designer_sessions_blocked") == 1,
        timeout=20,
        what="the waiting sync to show Designer sessions blocking",
    )
    assert agent.value("stoker_agent_scan_total", result="loaded") == 0  # still held back
    agent.sim.set_designers([])
    syncing.join(timeout=30)
    assert not syncing.is_alive()
    assert agent.sink.records[-1].result == "Synced", agent.sink.records[-1].error
    assert agent.value("stoker_agent_designer_sessions_blocked") == 0
    assert agent.value("stoker_agent_scan_total", result="loaded") == 1


@pytest.mark.parametrize("agent", [{"designerSessionPolicy": "fail"}], indirect=True)
def test_designer_sessions_that_fail_a_sync_keep_the_gauge_up_until_a_sync_gets_through(
    agent: Agent,
) -> None:
    agent.sim.add_designer("alice", "blue")
    agent.loop.step()
    assert agent.sink.records[-1].result == "Blocked"
    assert agent.value("stoker_agent_designer_sessions_blocked") == 1
    agent.sim.set_designers([])
    agent.loop.trigger()
    agent.loop.step()
    assert agent.sink.records[-1].result == "Synced", agent.sink.records[-1].error
    assert agent.value("stoker_agent_designer_sessions_blocked") == 0
