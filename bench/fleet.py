"""A fleet of gateways for the cluster benchmarks: per gateway a pod made directly in the API
server, a gateway simulator (in the benchmark's process) and a real `stoker agent` process with
the environment the webhook injects; the agents' reports read back from their status
ConfigMaps, and when they do not come, what each straggler was doing.

The fleet start-up once timed out at 50 agents in two of three full `make bench` runs
(bench/notes/latency.md) with nothing left to read. So `settled` fails at once when an agent
has exited (not after the deadline), and on any failure it prints each straggler (process,
status ConfigMap, requests its gateway saw, log tail), the API server's refusals (429, 5xx)
and this process's open files, and keeps every log in `<out>/<name>-failure/`.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster import apiserver_requests, gateway_pod, stoker
from support.ignition_sim import GatewaySimulator
from support.ignition_sim_resources import write_api_token
from support.kubeenv import ControlPlane, wait_until


def code_env(env: Mapping[str, str], src: str | None) -> dict[str, str]:
    """`env` for Stoker processes that run the code in `src` (the `src` directory of another
    commit, first on PYTHONPATH), or this checkout's code when `src` is None."""
    if not src:
        return dict(env)
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, (src, env.get("PYTHONPATH"))))}


class FleetStalled(AssertionError):
    """The fleet did not report a commit: an agent exited, or the deadline passed."""


@dataclass
class Gateway:
    """One gateway: its pod name, simulator and agent process."""

    pod: str
    sim: GatewaySimulator
    agent: subprocess.Popen[bytes]


@dataclass
class Fleet:
    """The gateways of one GatewaySync `cr`, grown on demand."""

    work: Path
    env: dict[str, str]
    namespace: str
    core: Any
    cr: str
    gateways: list[Gateway] = field(default_factory=list)
    # Other processes the fleet needs (the controller, the receiver): one that exits fails
    # a wait at once too.
    needs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def grow(
        self,
        size: int,
        *,
        labels: Callable[[int], Mapping[str, str]] = lambda i: {},
        extra_env: Callable[[int], Mapping[str, str]] = lambda i: {},
    ) -> None:
        """Add gateways (pod with `labels(i)`, simulator, agent) until there are `size`."""
        for i in range(len(self.gateways), size):
            pod = f"gw-{i:03d}"
            body = gateway_pod(pod, self.cr, pod)
            body["metadata"]["labels"] = dict(labels(i))
            self.core.create_namespaced_pod(self.namespace, body)
            data = self.work / pod / "data"
            data.mkdir(parents=True)
            token = self.work / pod / "api-token"
            token.write_text(write_api_token(data, collection="local"))
            sim = GatewaySimulator(data).start()
            agent_env = {
                **self.env,
                "POD_NAME": pod,
                "POD_NAMESPACE": self.namespace,
                "CR_NAME": self.cr,
                "GATEWAY_NAME": pod,
                "PROFILE": "default",
                "DATA_PATH": str(data),
                "REPO_PATH": str(self.work / pod / "repo"),
                "GATEWAY_HOST": "127.0.0.1",
                "GATEWAY_PORT": sim.url.rsplit(":", 1)[1],
                "API_KEY_FILE": str(token),
                # Any free port: nothing here asks the agent, and a port picked in advance
                # could be taken by an outgoing connection before the agent binds it (then
                # the agent exits at start: one of the suspects of the 50-agent time-out).
                "HEALTH_PORT": "0",
                **extra_env(i),
            }
            agent = stoker(["agent", "--log-format", "text"], agent_env, self.log(pod))
            self.gateways.append(Gateway(pod, sim, agent))

    def log(self, pod: str) -> Path:
        """The agent's log file."""
        return self.work / f"{pod}.log"

    def reported(self) -> dict[str, dict[str, Any]]:
        """Every status ConfigMap's record, by ConfigMap name (one LIST request)."""
        listed = self.core.list_namespaced_config_map(
            self.namespace,
            label_selector=f"stoker.io/cr-name={self.cr}",
            _preload_content=False,
        )
        return {
            item["metadata"]["name"]: json.loads(item.get("data", {}).get("status.json") or "{}")
            for item in json.loads(listed.data)["items"]
        }

    def status_of(self, reported: Mapping[str, dict[str, Any]], pod: str) -> dict[str, Any] | None:
        """A pod's record in `reported` (None: its status ConfigMap does not exist)."""
        return reported.get(f"stoker-status-{self.cr}-{pod}")

    def applied(self, commit: str) -> bool:
        """Whether every agent reports `commit` in its status ConfigMap."""
        reported = self.reported()
        return all(
            (self.status_of(reported, gw.pod) or {}).get("commit") == commit for gw in self.gateways
        )

    def exited(self) -> list[Gateway]:
        """The gateways whose agent process has ended."""
        return [gw for gw in self.gateways if gw.agent.poll() is not None]

    def settled(
        self,
        commit: str,
        timeout: float,
        *,
        plane: ControlPlane,
        out: Path,
        what: str,
        done: Callable[[], bool] | None = None,
    ) -> None:
        """Wait until every agent reports `commit` (or `done()`); an agent that exits fails
        the wait at once. On failure: the diagnosis printed, the logs kept under `out`."""

        def finished() -> bool:
            if self.exited():
                raise FleetStalled(f"{what}: an agent exited")
            for name, proc in self.needs.items():
                if proc.poll() is not None:
                    raise FleetStalled(f"{what}: the {name} exited ({proc.returncode})")
            return done() if done is not None else self.applied(commit)

        try:
            wait_until(finished, timeout, 0.5, what)
        except AssertionError as e:
            print(self.diagnosis(commit, plane), flush=True)
            kept = self.keep_logs(plane, out / f"{self.cr}-failure")
            raise FleetStalled(f"{e} (logs kept in {kept})") from None

    def diagnosis(self, commit: str, plane: ControlPlane) -> str:
        """For a time-out: each agent not at `commit`, then what the API server refused and
        how many files this process holds open."""
        reported = self.reported()
        lines = []
        for gw in self.gateways:
            status = self.status_of(reported, gw.pod)
            if status is not None and status.get("commit") == commit and gw.agent.poll() is None:
                continue
            lines += self._straggler(gw, status)
        refused = {
            f"{verb} {resource} {code}": int(n)
            for (verb, resource, code), n in apiserver_requests(plane).items()
            if resource and (code == "429" or code.startswith("5"))  # not its own start-up probes
        }
        lines.append(f"API server refusals (429, 5xx) so far: {refused or 'none'}")
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        files = len(os.listdir("/proc/self/fd"))
        lines.append(f"open files of the benchmark: {files} (limit {limit})")
        return "\n".join(lines)

    def _straggler(self, gw: Gateway, status: dict[str, Any] | None) -> list[str]:
        alive = "running" if gw.agent.poll() is None else f"exited {gw.agent.returncode}"
        if status is None:
            said = "no status ConfigMap (the controller creates it once it has seen the pod)"
        elif not status:
            said = "status ConfigMap empty (the agent has not written it)"
        else:
            said = (
                f"{status.get('result')} at {str(status.get('commit'))[:12]}: "
                f"{status.get('error') or status.get('scan')}"
            )
        requests = gw.sim.requests
        last = f", last {requests[-1].method} {requests[-1].path}" if requests else ""
        log = self.log(gw.pod).read_text(errors="replace").splitlines()
        return [
            f"{gw.pod} ({alive}): {said}; its gateway saw {len(requests)} request(s){last}",
            *(f"    {line}" for line in log[-8:]),
        ]

    def keep_logs(self, plane: ControlPlane, dest: Path) -> Path:
        """Copy every log of the run (agents, controller, receiver, API server, etcd) to
        `dest` (the work directory is removed on exit); returns `dest`."""
        dest.mkdir(parents=True, exist_ok=True)
        for source in (self.work, plane.root):
            for log in source.glob("*.log"):
                shutil.copy2(log, dest / log.name)
        return dest

    def stop(self) -> None:
        """Stop every agent (SIGTERM, by PID) and simulator."""
        for gw in self.gateways:
            gw.agent.terminate()
        for gw in self.gateways:
            try:
                gw.agent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                gw.agent.kill()
                gw.agent.wait()
            gw.sim.stop()
