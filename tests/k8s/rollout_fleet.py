"""One harness for the fleet tests on the real API server (the status model, fleet rollouts): a
GatewaySync (the blue/red example) and its gateways, each a pod on the API server with its own
gateway simulator, data directory and real `stoker agent` process; the controller is driven
pass by pass in the test process (a new Controller each pass: it keeps nothing between passes
but what it wrote to the API server, as after a restart)."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import yaml
from kubernetes import client

from conftest import EXAMPLES, ROOT, git
from stoker_k8s.controller import Controller
from support.gateway_data import files_of
from support.ignition_sim import GatewaySimulator, running
from support.ignition_sim_resources import write_api_token
from support.inpod import start, stop
from support.kubecerts import CertificateAuthority
from support.kubeenv import ControlPlane, free_port, wait_until
from support.kubelet import statefulset_pod_labels

GS = ("stoker.io", "v1alpha1")
# What an agent reports once a commit is applied: Synced, then InSync at each periodic check.
IN_STEP = ("Synced", "InSync")
T = TypeVar("T")
# The last commit before issue 17 taught the agent per-gateway targets: its agent is "an agent
# of the previous release" (a pod not yet restarted after an upgrade), run from its own sources.
PREVIOUS_RELEASE = "52eb642"


class Fleet:
    """One GatewaySync (the blue/red example, polling hourly, a 5 s sync period) and its
    gateways: pods on the API server, each with a simulator and a real agent process."""

    def __init__(
        self,
        env: ControlPlane,
        api: client.ApiClient,
        core: client.CoreV1Api,
        namespace: str,
        repo: Path,
        work: Path,
        stack: contextlib.ExitStack,
    ) -> None:
        self.env, self.core, self.namespace, self.repo, self.work = env, core, namespace, repo, work
        self.custom = client.CustomObjectsApi(api)
        self.stack = stack
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.sims: dict[str, GatewaySimulator] = {}
        self.name = "blue-red"
        self._started = 0

    # ------------------------------------------------------------------ the GatewaySync

    def create(self, change: Callable[[dict[str, Any]], None] = lambda body: None) -> None:
        """Create the GatewaySync reading the test's repository; `change` edits it first."""
        body = yaml.safe_load((EXAMPLES / "gatewaysyncs" / "multiple-profiles.yaml").read_text())
        body["metadata"].pop("namespace", None)
        body["spec"]["git"] = {"repo": f"file://{self.repo}", "ref": "main"}
        body["spec"]["polling"] = {"enabled": True, "interval": "1h"}
        body["spec"]["sync"]["defaults"]["syncPeriod"] = 5
        change(body)
        self.core.create_namespaced_secret(  # the gateway API key the agents are given
            self.namespace,
            {"metadata": {"name": "gw-api-key"}, "stringData": {"apiKey": "stoker:unused"}},
        )
        self.custom.create_namespaced_custom_object(*GS, self.namespace, "gatewaysyncs", body)

    def get(self) -> dict[str, Any]:
        return dict(
            self.custom.get_namespaced_custom_object(*GS, self.namespace, "gatewaysyncs", self.name)
        )

    def patch(self, body: dict[str, Any]) -> None:
        """A merge patch of the GatewaySync (spec or metadata)."""
        self.custom.patch_namespaced_custom_object(
            *GS, self.namespace, "gatewaysyncs", self.name, body
        )

    def reconcile(self) -> dict[str, Any]:
        """One controller pass (a new controller: it resolves the ref afresh), then the CR."""
        Controller(self.core, self.custom).reconcile(self.get())
        return self.get()

    def drive(
        self, until: Callable[[dict[str, Any]], T | None], *, timeout: float = 90, what: str = ""
    ) -> T:
        """Controller passes (one every half second, as its requeue would) until `until(cr)`
        answers something truthy, which is returned."""

        def passed() -> T | None:
            answer = until(self.reconcile())
            if not answer:
                time.sleep(0.5)
            return answer

        found: T = wait_until(passed, timeout=timeout, interval=0, what=what)
        return found

    def passes(self, seconds: float) -> list[dict[str, Any]]:
        """Controller passes, one every half second, for `seconds` (more than a sync period
        gives every agent time to act on what was published): the CR after each."""
        deadline = time.monotonic() + seconds
        seen = [self.reconcile()]
        while time.monotonic() < deadline:
            time.sleep(0.5)
            seen.append(self.reconcile())
        return seen

    def published(self) -> dict[str, str]:
        """The metadata ConfigMap's data."""
        cm = self.core.read_namespaced_config_map(f"stoker-metadata-{self.name}", self.namespace)
        return dict(cm.data or {})

    def target(self, gateway: str) -> str:
        """The commit the metadata ConfigMap gives `gateway` (its target, else the baseline)."""
        data = self.published()
        targets: dict[str, str] = json.loads(data.get("targets") or "{}")
        return targets.get(gateway, data["commit"])

    # ------------------------------------------------------------------ the repository

    def head(self) -> str:
        return git(self.repo, "rev-parse", "HEAD")

    def push(self, message: str, change: Callable[[Path], None] | None = None) -> str:
        """Commit a change to the blue project (`change` edits the repository instead)."""
        if change is None:
            project = self.repo / "services/ignition-blue/projects/blue/project.json"
            text = project.read_text()
            project.write_text(text.replace("}", f', "description": "{message}"}}', 1))
        else:
            change(self.repo)
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", message)
        return self.head()

    # ------------------------------------------------------------------ gateways

    def pod(
        self,
        pod: str,
        profile: str,
        gateway: str,
        *,
        labels: dict[str, str] | None = None,
        statefulset: str = "",
    ) -> None:
        """An injected gateway pod, scheduled and running; `statefulset`: owned by that
        StatefulSet, its ordinal the pod name's suffix (labelled as the StatefulSet does)."""
        meta: dict[str, Any] = {
            "name": pod,
            "labels": dict(labels or {}),
            "annotations": {
                "stoker.io/inject": "true",
                "stoker.io/cr-name": self.name,
                "stoker.io/profile": profile,
                "stoker.io/gateway-name": gateway,
            },
        }
        if statefulset:
            meta["labels"] |= statefulset_pod_labels(statefulset, int(pod.rsplit("-", 1)[1]))
            meta["ownerReferences"] = [
                {
                    "apiVersion": "apps/v1",
                    "kind": "StatefulSet",
                    "name": statefulset,
                    "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, statefulset)),
                    "controller": True,
                }
            ]
        self.core.create_namespaced_pod(
            self.namespace,
            {
                "metadata": meta,
                "spec": {
                    "nodeName": "node-1",
                    "initContainers": [
                        {"name": "stoker-agent", "image": "agent", "restartPolicy": "Always"}
                    ],
                    "containers": [{"name": "gateway", "image": "ignition"}],
                },
            },
        )
        self.core.patch_namespaced_pod_status(pod, self.namespace, {"status": {"phase": "Running"}})

    def data(self, pod: str) -> Path:
        """The gateway's data directory."""
        return self.work / pod / "data"

    def files(self, pod: str) -> dict[str, bytes]:
        """Every file of the gateway's data directory with its bytes (caches left out)."""
        return files_of(self.data(pod))

    def agent(
        self,
        pod: str,
        profile: str,
        gateway: str,
        *,
        role: str = "Independent",
        release: Path | None = None,
    ) -> None:
        """Start (or restart) the agent of `pod`, with its own simulator and data directory;
        `release`: the sources of another release to run it from (`previous_release`)."""
        home = self.work / pod
        data = home / "data"
        if pod not in self.sims:
            data.mkdir(parents=True)
            (home / "api-token").write_text(write_api_token(data, collection="local"))
            self.sims[pod] = self.stack.enter_context(running(data, redundancy_role=role))
        port = self.sims[pod].url.rsplit(":", 1)[1]
        agent_env = {
            **self.env.subprocess_env(),
            "POD_NAME": pod,
            "POD_NAMESPACE": self.namespace,
            "CR_NAME": self.name,
            "GATEWAY_NAME": gateway,
            "PROFILE": profile,
            "DATA_PATH": str(data),
            "REPO_PATH": str(home / "repo"),
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": port,
            "API_KEY_FILE": str(home / "api-token"),
            "HEALTH_PORT": str(free_port()),
        }
        if release is not None:
            agent_env["PYTHONPATH"] = str(release)
        self._started += 1
        self.agents[pod] = start(
            ["agent", "--log-format", "text"], agent_env, home / f"agent-{self._started}.log"
        )

    def gateway(self, pod: str, profile: str, gateway: str, **options: Any) -> None:
        """A pod and its agent (`options`: the pod's `labels` and `statefulset`)."""
        self.pod(pod, profile, gateway, **options)
        self.agent(pod, profile, gateway)

    def stop_agent(self, pod: str) -> None:
        stop(self.agents.pop(pod))

    def report(self, pod: str) -> dict[str, Any]:
        """What the pod's agent last reported (empty before its first report)."""
        try:
            cm = self.core.read_namespaced_config_map(
                f"stoker-status-{self.name}-{pod}", self.namespace
            )
        except client.ApiException as e:
            if e.status == 404:
                return {}
            raise
        return dict(json.loads((cm.data or {}).get("status.json") or "{}"))

    def reported(
        self, pod: str, result: str | tuple[str, ...], commit: str, timeout: float = 60
    ) -> dict[str, Any]:
        """Wait until the pod's agent reports `result` (or one of them) at `commit`."""
        results = (result,) if isinstance(result, str) else result

        def done() -> dict[str, Any] | None:
            record = self.report(pod)
            return (
                record
                if record.get("result") in results and record.get("commit") == commit
                else None
            )

        what = f"{pod} to report {' or '.join(results)} at {commit[:7]}"
        return dict(wait_until(done, timeout=timeout, what=what))

    def api_scans(self, pod: str) -> int:
        """How many scans the gateway was asked for through its API (each sync asks one per
        kind it changed)."""
        return sum(1 for s in self.sims[pod].scans if s.trigger == "api")

    def stop_all(self) -> None:
        stop(*self.agents.values())
        self.agents.clear()


@pytest.fixture
def fleet(
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    example_repo: Path,
    tmp_path: Path,
) -> Iterator[Fleet]:
    """The fleet harness; every agent and simulator it started is stopped afterwards."""
    with contextlib.ExitStack() as stack:
        found = Fleet(kube_env, kube_api, kube_core, kube_namespace, example_repo, tmp_path, stack)
        try:
            yield found
        finally:
            found.stop_all()


@contextlib.contextmanager
def approval_webhook(
    env: ControlPlane, api: client.ApiClient, namespace: str, work: Path
) -> Iterator[None]:
    """`stoker webhook` stamping rollout approvals of `namespace`'s GatewaySyncs (its key in
    the Secret stoker-approval-key of `namespace`), called by the API server as the chart's
    approval webhook configuration has it (only changed approval.stoker.io/ annotations)."""
    ca = CertificateAuthority("stoker-approval-ca")
    cert, key = ca.issue_server("127.0.0.1").write(work, "webhook")
    port = free_port()
    args = ["webhook", "--bind", f"127.0.0.1:{port}", "--cert-file", str(cert)]
    args += ["--key-file", str(key), "--workers", "1", "--namespace", namespace]
    args += ["--approval-key-secret", "stoker-approval-key"]
    proc = start(args, env.subprocess_env(), work / "webhook.log")
    url = f"https://127.0.0.1:{port}"
    (work / "ca.pem").write_bytes(ca.cert_pem)

    def up() -> bool:
        try:
            return requests.get(f"{url}/healthz", verify=str(work / "ca.pem"), timeout=2).ok
        except requests.RequestException:
            return False

    changed = (
        "has(object.metadata.annotations) && object.metadata.annotations.exists(k, "
        "k.startsWith('approval.stoker.io/') && (request.operation != 'UPDATE' || "
        "!has(oldObject.metadata.annotations) || !(k in oldObject.metadata.annotations) || "
        "oldObject.metadata.annotations[k] != object.metadata.annotations[k]))"
    )
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": f"stoker-approval-{namespace}"},
        "webhooks": [
            {
                "name": "gatewaysync-approve.stoker.io",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "clientConfig": {
                    "url": f"{url}/mutate-gatewaysync-approval",
                    "caBundle": ca.ca_bundle,
                },
                "rules": [
                    {
                        "apiGroups": ["stoker.io"],
                        "apiVersions": ["v1alpha1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["gatewaysyncs"],
                        "scope": "Namespaced",
                    }
                ],
                "matchConditions": [{"name": "approval-added-or-changed", "expression": changed}],
            }
        ],
    }
    try:
        wait_until(up, timeout=30, what="stoker webhook to listen")
        with env.webhook_configuration(api, config):
            yield
    finally:
        stop(proc)


def previous_release(into: Path) -> Path:
    """The `src` tree of PREVIOUS_RELEASE (from this checkout's history), to run its agent."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", PREVIOUS_RELEASE, "src"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def copy_project(repo: Path, name: str) -> None:
    """A new project `name` for the blue gateways, a copy of the blue project."""
    projects = repo / "services/ignition-blue/projects"
    shutil.copytree(projects / "blue", projects / name)


def conditions(cr: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in cr.get("status", {}).get("conditions", [])}


def statuses(cr: dict[str, Any]) -> dict[str, str]:
    return {g["podName"]: g["syncStatus"] for g in cr["status"]["discoveredGateways"]}
