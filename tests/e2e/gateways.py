"""A plant on the test cluster: Stoker installed by Helm, a Git server the pods reach, and gateway
StatefulSets of the simulator image (UID 2003, the real image's data layout, a seeding init
container as Ignition charts have), each in a namespace under the `restricted` Pod Security level.

The gateways' data volumes are hostPath PersistentVolumes under the cluster's state directory,
which pytest shares with the kubelet (both run in the cluster's mount namespace): a test reads
what the agent wrote, and who owns it, straight from the node's disk.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client

from conftest import ROOT
from e2e.conftest import STATE, Cluster
from support.gitservers import BareRepo, GitHttpServer

CHART = ROOT / "adapters" / "helm" / "stoker"
RELEASE = "stoker"
SYSTEM = "stoker-system"
QUICKSTART = ROOT / "docs" / "quickstart.md"
EXAMPLE = ROOT / "examples" / "config-repo"
SIM = tomllib.loads((ROOT / "adapters" / "images" / "images.toml").read_text())["test_images"][
    "ignition-sim"
]
DATA = SIM["data_dir"]  # /usr/local/bin/ignition/data, as in inductiveautomation/ignition
GATEWAY_UID = int(SIM["user"].split(":")[0])  # 2003
HMAC_KEY = "e2e-receiver-hmac-key"
RESTRICTED = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
# What Ignition's charts do before the gateway's first start: copy the image's data directory
# into the (empty) volume; a volume holding data is left alone.
SEED = f'if [ -z "$(ls -A /seed)" ]; then cp -a {DATA}/. /seed/ && echo seeded; else echo kept; fi'
T = TypeVar("T")


def helm_binary() -> str:
    """The helm the chart tests use (adapters/helm/build-helm.sh, cached)."""
    done = subprocess.run(
        ["bash", str(ROOT / "adapters" / "helm" / "build-helm.sh")],
        capture_output=True, text=True, check=True, timeout=900,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


def helm(cluster: Cluster, *args: str, timeout: float = 300) -> str:
    """Run helm against the cluster; fail with its output."""
    argv = [helm_binary(), "--kubeconfig", str(cluster.kubeconfig), *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    assert done.returncode == 0, f"helm {' '.join(args[:2])} failed: {done.stderr}{done.stdout}"
    return done.stdout


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 180) -> T:
    """Poll `probe` until it returns something other than None/False; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(1)


def wait_for_rollout(cluster: Cluster, namespace: str, timeout: float = 240) -> None:
    """Every Deployment in `namespace` has all its replicas updated and available."""
    apps = client.AppsV1Api(cluster.api)

    def done() -> bool:
        items = apps.list_namespaced_deployment(namespace).items
        return bool(items) and all(
            (d.status.available_replicas or 0) == d.spec.replicas
            and (d.status.updated_replicas or 0) == d.spec.replicas
            for d in items
        )

    wait_for(f"the Deployments in {namespace}", done, timeout)
    webhook = [
        d for d in apps.list_namespaced_deployment(namespace).items
        if d.metadata.name == f"{RELEASE}-webhook" and d.spec.replicas
    ]  # fmt: skip
    if webhook:
        wait_for_webhook(cluster, namespace, timeout)


def wait_for_webhook(cluster: Cluster, namespace: str, timeout: float = 120) -> None:
    """Until the API server reaches the webhook through its Service. Ready pods are not enough:
    kube-proxy programs a new Service's endpoints a little later, and until then the API server
    is refused (a GatewaySync create fails with 500; a pod starts without the agent). A dry-run
    GatewaySync create is answered by the webhook, allowed or denied, once the path is open."""
    body = quickstart_gatewaysync()
    body["metadata"] = {"name": "webhook-probe", "namespace": namespace}

    def answered() -> bool:
        try:
            custom(cluster).create_namespaced_custom_object(
                "stoker.io", "v1alpha1", namespace, "gatewaysyncs", body, dry_run="All"
            )
        except client.ApiException as error:
            return "failed calling webhook" not in (error.body or "")
        return True

    wait_for(f"the API server to reach the webhook in {namespace}", answered, timeout)


def quickstart_gatewaysync() -> dict[str, Any]:
    """The GatewaySync of docs/quickstart.md, as written."""
    found = [
        doc
        for body in re.findall(r"```yaml\n(.*?)```", QUICKSTART.read_text(), re.DOTALL)
        for doc in yaml.safe_load_all(body)
        if doc.get("kind") == "GatewaySync"
    ]
    assert len(found) == 1, "docs/quickstart.md should hold one GatewaySync"
    return found[0]


def example_files() -> dict[str, bytes]:
    """examples/config-repo as {path: content}."""
    return {
        str(p.relative_to(EXAMPLE)): p.read_bytes()
        for p in sorted(EXAMPLE.rglob("*"))
        if p.is_file()
    }


@dataclass
class Plant:
    """Stoker installed for `namespaces`, and the Git server serving `repo` to the pods."""

    cluster: Cluster
    namespaces: list[str]
    git: GitHttpServer
    repo: BareRepo
    used: int = 0

    @property
    def repo_url(self) -> str:
        """The configuration repository's URL, as pods reach it (the node's address)."""
        return self.git.url_for(self.repo.name)

    def take_namespace(self) -> str:
        """A served namespace no other test used yet."""
        assert self.used < len(self.namespaces), "raise PLANT_NAMESPACES in tests/e2e/conftest"
        self.used += 1
        return self.namespaces[self.used - 1]


def install(cluster: Cluster, namespaces: list[str], *values: str) -> None:
    """`helm upgrade --install` the chart with default values except the self-managed webhook
    certificate (no cert-manager here), the served namespaces and the receiver, into a
    namespace enforcing the `restricted` Pod Security level."""
    try:
        create_namespace(cluster, SYSTEM)
    except client.ApiException as error:
        if error.status != 409:
            raise
    helm(
        cluster, "upgrade", "--install", RELEASE, str(CHART), "--namespace", SYSTEM,
        "--create-namespace", "--wait", "--timeout", "4m",
        "--set", f"namespaces={{{','.join(namespaces)}}}",
        "--set", "webhook.certManager.enabled=false,receiver.enabled=true", *values,
    )  # fmt: skip
    wait_for_rollout(cluster, SYSTEM)


def uninstall(cluster: Cluster, namespaces: list[str]) -> None:
    """Delete the GatewaySyncs while the controller runs, `helm uninstall`, then delete the
    namespaces and the gateways' volumes."""
    api = custom(cluster)
    for namespace in namespaces:
        for gs in api.list_namespaced_custom_object(
            "stoker.io", "v1alpha1", namespace, "gatewaysyncs"
        )["items"]:
            api.delete_namespaced_custom_object(
                "stoker.io", "v1alpha1", namespace, "gatewaysyncs", gs["metadata"]["name"]
            )
    helm(cluster, "uninstall", RELEASE, "--namespace", SYSTEM, "--ignore-not-found", "--wait")
    for namespace in [*namespaces, SYSTEM]:
        try:
            cluster.core.delete_namespace(namespace, grace_period_seconds=0)
        except client.ApiException as error:
            if error.status != 404:
                raise
    for pv in cluster.core.list_persistent_volume().items:
        if pv.spec.claim_ref and pv.spec.claim_ref.namespace in namespaces:
            cluster.core.delete_persistent_volume(pv.metadata.name)


def create_namespace(cluster: Cluster, name: str) -> None:
    """A namespace enforcing the `restricted` Pod Security level."""
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    cluster.core.create_namespace({"metadata": {"name": name, "labels": labels}})


def gatewaysync(plant: Plant, namespace: str, name: str = "plant", **spec: Any) -> dict[str, Any]:
    """Create the quickstart's GatewaySync in `namespace`, pointed at the tests' Git server."""
    body = quickstart_gatewaysync()
    body["metadata"] = {"name": name, "namespace": namespace}
    body["spec"]["git"]["repo"] = plant.repo_url
    # Polling is slow: a change reaches the gateways through the receiver (or a new pass).
    body["spec"]["polling"] = {"interval": "1h"}
    body["spec"]["receiver"] = {"secretName": "plant-webhook"}
    body["spec"].update(spec)
    core = plant.cluster.core
    for secret, data in (
        ("ignition-api-key", {"apiKey": SIM["api_token"]}),
        ("plant-webhook", {"hmac": HMAC_KEY}),
    ):
        core.create_namespaced_secret(namespace, {"metadata": {"name": secret}, "stringData": data})
    return custom(plant.cluster).create_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", body
    )


def branch_for(plant: Plant, namespace: str) -> str:
    """A branch of the configuration repository for one namespace's GatewaySync."""
    plant.repo.git("branch", namespace, "main")
    return namespace


def custom(cluster: Cluster) -> client.CustomObjectsApi:
    """The custom-objects API."""
    return client.CustomObjectsApi(cluster.api)


def volume_dir(namespace: str, sts: str, ordinal: int) -> Path:
    """Where the node keeps the data volume of pod `sts-ordinal` (a hostPath PV)."""
    return STATE / "volumes" / namespace / f"{sts}-{ordinal}"


def data_volumes(cluster: Cluster, namespace: str, sts: str, replicas: int) -> None:
    """Pre-bound hostPath PersistentVolumes for the StatefulSet's claims, owned by the gateway's
    user as a provisioner honouring fsGroup would leave them (the kubelet applies no fsGroup
    to hostPath)."""
    for ordinal in range(replicas):
        path = volume_dir(namespace, sts, ordinal)
        path.mkdir(parents=True, exist_ok=True)
        shutil.chown(path, GATEWAY_UID, GATEWAY_UID)
        path.chmod(0o2775)
        cluster.core.create_persistent_volume(
            {
                "metadata": {"name": f"{namespace}-{sts}-{ordinal}"},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "",
                    "hostPath": {"path": str(path), "type": "Directory"},
                    "claimRef": {"namespace": namespace, "name": f"data-{sts}-{ordinal}"},
                },
            }
        )


def gateway_statefulset(
    name: str = "ignition-blue",
    replicas: int = 1,
    *,
    inject: bool = True,
    args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The gateway StatefulSet: the simulator image as the gateway (UID 2003, fsGroup 2003, data
    at the real image's path), an init container seeding an empty data volume, injection asked
    for by the annotation. `args` go to the simulator (e.g. --refuse-project)."""
    image = SIM["name"]
    labels = {"app.kubernetes.io/name": name}
    command = [*SIM["entrypoint"], *SIM["cmd"], "--name", name, *args]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {"stoker.io/inject": "true"} if inject else {},
                },
                "spec": {
                    "securityContext": {
                        "runAsUser": GATEWAY_UID,
                        "runAsGroup": GATEWAY_UID,
                        "fsGroup": GATEWAY_UID,
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "terminationGracePeriodSeconds": 5,
                    "initContainers": [
                        {
                            "name": "seed-data",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", SEED],
                            "securityContext": RESTRICTED,
                            "volumeMounts": [{"name": "data", "mountPath": "/seed"}],
                        }
                    ],
                    "containers": [
                        {
                            "name": "gateway",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": command,
                            "ports": [{"name": "http", "containerPort": 8088}],
                            "readinessProbe": {
                                "httpGet": {"path": "/StatusPing", "port": 8088},
                                "periodSeconds": 2,
                            },
                            "securityContext": RESTRICTED,
                            "volumeMounts": [{"name": "data", "mountPath": DATA}],
                        }
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "",
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }


def deploy_gateways(
    cluster: Cluster, namespace: str, body: dict[str, Any], *, wait: bool = True
) -> list[str]:
    """Create the StatefulSet (and its volumes); the pod names, once all are Ready."""
    name, replicas = body["metadata"]["name"], body["spec"]["replicas"]
    data_volumes(cluster, namespace, name, replicas)
    client.AppsV1Api(cluster.api).create_namespaced_stateful_set(namespace, body)
    pods = [f"{name}-{i}" for i in range(replicas)]
    if wait:
        for pod in pods:
            wait_for_ready(cluster, namespace, pod)
    return pods


def pod_state(cluster: Cluster, namespace: str, pod: str) -> str:
    """A pod's phase and container states, for failure messages."""
    try:
        p = cluster.core.read_namespaced_pod(pod, namespace)
    except client.ApiException as error:
        return f"{pod}: {error.reason}"
    statuses = [*(p.status.init_container_statuses or []), *(p.status.container_statuses or [])]
    events = cluster.core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={pod}"
    )
    return (
        f"{pod} {p.status.phase}: "
        f"{[(s.name, s.ready, s.state.to_dict()) for s in statuses]}; "
        f"events: {[e.message for e in events.items][-8:]}"
    )


def wait_for_ready(cluster: Cluster, namespace: str, pod: str, timeout: float = 240) -> None:
    """Until every container of `pod` is ready (native sidecars included)."""

    def ready() -> bool:
        try:
            p = cluster.core.read_namespaced_pod(pod, namespace)
        except client.ApiException:
            return False
        conditions = {c.type: c.status for c in p.status.conditions or []}
        return p.metadata.deletion_timestamp is None and conditions.get("Ready") == "True"

    try:
        wait_for(f"pod {namespace}/{pod} to be Ready", ready, timeout)
    except AssertionError as error:
        raise AssertionError(f"{error}: {pod_state(cluster, namespace, pod)}") from None


def scans(
    cluster: Cluster, namespace: str, pod: str, previous: bool = False
) -> list[dict[str, Any]]:
    """The gateway container's scan records (the simulator logs one JSON line per scan)."""
    log = cluster.core.read_namespaced_pod_log(
        pod, namespace, container="gateway", previous=previous
    )
    return [json.loads(line)["scan"] for line in log.splitlines() if line.startswith('{"scan"')]


def projects_loaded(cluster: Cluster, namespace: str, pod: str) -> set[str]:
    """The projects the gateway's last project scan loaded."""
    records = [s for s in scans(cluster, namespace, pod) if s["kind"] == "projects"]
    return set(records[-1]["projects"]) if records else set()


def push(plant: Plant, namespace: str, cr: str = "plant") -> None:
    """Tell the receiver, through its Service, that the branch the GatewaySync tracks moved (a
    signed GitHub push); fail unless it asks the controller for a refresh."""
    service = plant.cluster.core.read_namespaced_service(f"{RELEASE}-receiver", SYSTEM)
    gs = custom(plant.cluster).get_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", cr
    )
    branch = gs["spec"]["git"]["ref"]
    after = plant.repo.rev_parse(branch)
    body = json.dumps({"ref": f"refs/heads/{branch}", "after": after}).encode()
    signature = hmac.new(HMAC_KEY.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        f"http://{service.spec.cluster_ip}/webhook/{namespace}/{cr}",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-Hub-Signature-256": f"sha256={signature}",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    assert answer.get("message") == "refresh requested", answer


def start_git(root: Path, node_ip: str) -> Iterator[tuple[GitHttpServer, BareRepo]]:
    """The example configuration repository over smart HTTP on the node's address."""
    repo = BareRepo.create(root, "plant-config", example_files(), message="Plant configuration")
    with GitHttpServer(root, host=node_ip, require_auth=False) as server:
        yield server, repo


def log(message: str) -> None:
    """Progress on stderr (pytest -s shows it; the failure report has it otherwise)."""
    print(f"e2e: {message}", file=sys.stderr, flush=True)
