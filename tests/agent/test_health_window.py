"""The health window of a fleet rollout (issue 17), on the agent loop against the gateway
simulator: after a sync leaves the gateway in step, the agent checks it every
clamp(window / 6, 2 s, 10 s) (gateway-info, the project list holding the commit's projects, the
gateway container's restart count), reports each check, and calls it unhealthy after two
failed checks in a row; a newer commit or shutdown ends the window at once. The loop runs on a
fake clock; the gateway and the repository are real."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import yaml

from conftest import EXAMPLES, git
from stoker_agent.gateway import GatewaySettings
from stoker_agent.health import AgentMetrics
from stoker_agent.healthwindow import Checker
from stoker_agent.loop import AgentLoop, Metadata
from stoker_agent.standalone import Identity, SyncSettings
from stoker_core.status import HealthReport
from stoker_core.validation import load
from support.agentloop import Clock, Sink, Source
from support.ignition_sim import GatewaySimulator, running
from support.ignition_sim_resources import write_api_token

MULTI = EXAMPLES / "gatewaysyncs" / "multiple-profiles.yaml"
WINDOW = 30.0  # seconds: a check every 5 s


@attrs.define
class Agent:
    loop: AgentLoop
    source: Source
    sink: Sink
    clock: Clock
    sim: GatewaySimulator
    restarts: list[int]

    def health(self) -> HealthReport:
        report = self.sink.records[-1].health
        assert report is not None
        return report

    def after(self, seconds: float) -> None:
        """Let `seconds` pass on the loop's clock, then one loop step."""
        self.clock.now += seconds
        self.loop.step()


def metadata(repo: Path, data: Path, sim: GatewaySimulator, token: Path, window: float) -> Metadata:
    settings = SyncSettings(
        gatewaysync=load(yaml.safe_load(MULTI.read_text())),
        profile="blue",
        identity=Identity(gateway_name="ignition-blue"),
        repo=str(repo),
        ref="main",
        data_dir=str(data),
        gateway=GatewaySettings(url=sim.url, token_file=str(token), timeout=5),
    )
    return Metadata(settings=settings, health_window=window)


@pytest.fixture
def agent(example_repo: Path, tmp_path: Path) -> Iterator[Agent]:
    data = tmp_path / "data"
    data.mkdir()
    token = tmp_path / "api-token"
    token.write_text(write_api_token(data, collection="local") + "\n")
    restarts = [0]  # the gateway container's restart count, as the pod's status would say
    with running(data) as sim:
        source = Source(metadata(example_repo, data, sim, token, WINDOW))
        clock, sink = Clock(), Sink()
        checker = Checker(restarts=lambda: restarts[0])
        loop = AgentLoop(source, sink, clock=clock, rng=lambda: 0.5, checker=checker)
        yield Agent(loop, source, sink, clock, sim, restarts)


def checks(sim: GatewaySimulator) -> int:
    return sum(1 for r in sim.requests if r.path.endswith("/gateway-info"))


def test_after_a_sync_the_agent_checks_its_gateway_over_the_window_and_reports_each_check(
    agent: Agent,
) -> None:
    agent.loop.step()
    synced = agent.sink.records[0]
    assert synced.result == "Synced", synced.error
    assert agent.health() == HealthReport(
        commit=synced.commit, healthy_for=0.0, since=agent.health().since, checked_at=""
    )
    held = []
    for _ in range(6):  # 30 s window / 6 = a check every 5 s
        agent.after(5)
        held.append(agent.health().healthy_for)
        assert agent.health().checked_at
    assert held == [5, 10, 15, 20, 25, 30]
    written, asked = len(agent.sink.records), checks(agent.sim)
    agent.after(5)
    agent.after(60)  # the window is over: no more checks, nothing new to say
    assert checks(agent.sim) == asked
    assert agent.health().healthy_for == 30
    assert not agent.health().unhealthy
    # later records (the drift check) still carry the window the controller reads
    assert len(agent.sink.records) >= written


def test_two_failed_checks_in_a_row_make_the_gateway_unhealthy_and_end_the_window(
    agent: Agent,
) -> None:
    agent.loop.step()
    agent.after(5)
    agent.sim.refused_projects.add("blue")  # the project stops loading (a later scan drops it)
    agent.sim.scan("projects")
    agent.after(5)
    assert agent.health().healthy_for == 0
    assert not agent.health().unhealthy  # one failed check is a blip
    agent.after(5)
    health = agent.health()
    assert health.unhealthy
    assert health.problem == "projects not loaded: blue"
    asked = checks(agent.sim)
    agent.after(5)
    assert checks(agent.sim) == asked  # over: unhealthy stays, no more checks


def test_one_failed_check_restarts_the_count_and_the_window_takes_longer(agent: Agent) -> None:
    agent.loop.step()
    agent.after(5)
    agent.after(5)
    agent.sim.fail("/data/api/v1/gateway-info", 503, times=3)  # every retry of one check
    agent.after(5)
    assert agent.health().healthy_for == 0
    assert "gateway-info did not answer" in agent.health().problem
    agent.after(5)  # it passes again: healthy from this check on
    assert (agent.health().healthy_for, agent.health().problem) == (0, "")
    for _ in range(6):
        agent.after(5)
    assert agent.health().healthy_for == 30
    assert not agent.health().unhealthy


def test_a_restart_of_the_gateway_container_within_the_window_is_unhealthy(agent: Agent) -> None:
    agent.loop.step()
    agent.after(5)
    agent.restarts[0] = 1  # the kubelet restarted the gateway container
    agent.after(5)
    agent.after(5)
    assert agent.health().unhealthy
    assert agent.health().problem == "the gateway container restarted (restartCount 0 → 1)"


def test_a_newer_commit_ends_the_window_at_once_and_opens_its_own(
    agent: Agent, example_repo: Path
) -> None:
    agent.loop.step()
    first = agent.sink.records[-1].commit
    agent.after(5)
    (example_repo / "NEWS.md").write_text("newer\n")
    git(example_repo, "add", "-A")
    git(example_repo, "commit", "-qm", "newer")
    newer = git(example_repo, "rev-parse", "HEAD")
    meta = agent.source.meta
    assert meta is not None
    agent.source.meta = attrs.evolve(meta, settings=attrs.evolve(meta.settings, commit=newer))
    agent.after(1)
    assert agent.sink.records[-1].commit == newer != first
    assert (agent.health().commit, agent.health().healthy_for) == (newer, 0)
    agent.after(5)
    assert (agent.health().commit, agent.health().healthy_for) == (newer, 5)


def test_shutdown_ends_the_window_without_another_check(agent: Agent) -> None:
    agent.loop.step()
    agent.after(5)
    asked, written = checks(agent.sim), len(agent.sink.records)
    agent.loop.stop()
    agent.after(5)
    assert (checks(agent.sim), len(agent.sink.records)) == (asked, written)


def test_without_a_health_window_the_agent_watches_nothing(agent: Agent) -> None:
    meta = agent.source.meta
    assert meta is not None
    agent.source.meta = attrs.evolve(meta, health_window=0.0)
    agent.loop.step()
    asked = checks(agent.sim)
    agent.after(5)
    agent.after(5)
    assert checks(agent.sim) == asked
    assert agent.sink.records[-1].health is None


def test_a_window_published_after_the_sync_opens_at_the_next_drift_check(agent: Agent) -> None:
    # a gateway already at the commit a rollout gives it (or a pre-boot sync, which had no
    # gateway to watch): the drift check that finds it in step opens the window
    meta = agent.source.meta
    assert meta is not None
    agent.source.meta = attrs.evolve(meta, health_window=0.0)
    agent.loop.step()
    agent.source.meta = meta
    agent.after(30)  # blue's syncPeriod: a drift check (driftPolicy report: a dry run)
    assert agent.sink.records[-1].result == "InSync"
    assert agent.health().healthy_for == 0
    agent.after(5)
    assert agent.health().healthy_for == 5


def test_a_health_check_is_not_counted_as_a_sync_in_the_metrics(agent: Agent) -> None:
    agent.loop.step()
    syncs = len(agent.sink.records)  # the sync (and the full check right after it)
    for _ in range(3):
        agent.after(5)
    assert len(agent.sink.records) == syncs + 3  # each check is reported
    metrics = AgentMetrics()
    for record in agent.sink.records:  # what the in-cluster agent's sink passes on
        metrics.observe(record)
    counted = [s for s in metrics.sync_total.collect()[0].samples if s.name.endswith("_total")]
    assert sum(s.value for s in counted) == syncs


def test_a_sync_that_opens_the_window_comes_back_for_its_first_check_at_the_window_pace(
    agent: Agent,
) -> None:
    # The loop sleeps for what step() returns: a sync that opens a window must not leave its
    # first check for the sync period (the rollout benchmark saw a 2 s window held 30 s).
    delay = agent.loop.step()
    assert agent.sink.records[0].result == "Synced", agent.sink.records[0].error
    assert delay <= WINDOW / 6
    agent.after(delay)
    assert agent.health().checked_at  # that step checked
