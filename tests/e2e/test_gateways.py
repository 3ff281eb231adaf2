"""Gateways on real pods: the webhook injects the agent, which syncs Git into the data volume the
gateway (the simulator image, UID 2003) boots on, in namespaces enforcing `restricted`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from e2e.conftest import Cluster
from e2e.gateways import (
    GATEWAY_UID,
    SYSTEM,
    Plant,
    branch_for,
    custom,
    deploy_gateways,
    gateway_statefulset,
    gatewaysync,
    log,
    pod_state,
    push,
    scans,
    volume_dir,
    wait_for,
    wait_for_ready,
    wait_for_rollout,
)

STS = "ignition-blue"
BLUE = "services/ignition-blue/projects/blue"
VIEW = f"{BLUE}/com.inductiveautomation.perspective/views/Home/view.json"
SYNCED = {"blue", "global"}  # what the quickstart's GatewaySync delivers to ignition-blue


@dataclass
class Gateways:
    """A GatewaySync tracking its own branch and a StatefulSet of injected gateways."""

    plant: Plant
    namespace: str
    branch: str
    pods: list[str]

    @property
    def cluster(self) -> Cluster:
        """The cluster."""
        return self.plant.cluster

    def volume(self, ordinal: int) -> Path:
        """Pod `ordinal`'s data directory on the node."""
        return volume_dir(self.namespace, STS, ordinal)

    def commit(self, files: dict[str, bytes | str | None], message: str) -> str:
        """Commit on this test's branch (None deletes a path); the new commit id."""
        return self.plant.repo.commit(files, branch=self.branch, message=message, replace=False)


@pytest.fixture(scope="module")
def blue(plant: Plant) -> Iterator[Gateways]:
    """Two injected gateway pods of the quickstart's ignition-blue, synced from their own branch.
    Their gateway refuses a project named `rejected` (a commit the gateway rejects)."""
    namespace = plant.take_namespace()
    branch = branch_for(plant, namespace)
    gatewaysync(plant, namespace, git={"repo": plant.repo_url, "ref": branch})
    body = gateway_statefulset(STS, replicas=2, args=("--refuse-project", "rejected"))
    pods = deploy_gateways(plant.cluster, namespace, body, wait=False)
    for pod in pods:
        wait_for_ready(plant.cluster, namespace, pod)
    return Gateways(plant, namespace, branch, pods)


def init_container_names(cluster: Cluster, namespace: str, pod: str) -> list[str]:
    """The pod's init containers, in order (the agent is a native sidecar among them)."""
    spec = cluster.core.read_namespaced_pod(pod, namespace).spec
    return [c.name for c in spec.init_containers or []]


def test_the_webhook_injects_the_agent_after_the_pods_own_init_containers(blue: Gateways) -> None:
    for pod in blue.pods:
        assert init_container_names(blue.cluster, blue.namespace, pod) == [
            "seed-data",
            "stoker-agent",
        ]
        seed = blue.cluster.core.read_namespaced_pod_log(pod, blue.namespace, container="seed-data")
        assert seed.strip() == "seeded"  # the volume was empty: the chart's init step filled it


def test_the_first_sync_completes_before_the_gateway_container_starts(blue: Gateways) -> None:
    # The gateway's boot scan (its first) already loads the synced projects: it booted on them.
    for pod in blue.pods:
        boot = [s for s in scans(blue.cluster, blue.namespace, pod) if s["trigger"] == "boot"]
        projects = [s for s in boot if s["kind"] == "projects"]
        assert projects, (pod, boot)
        assert set(projects[0]["projects"]) >= SYNCED, (pod, boot)


def test_the_agent_writes_files_owned_by_the_gateways_user_under_the_restricted_level(
    blue: Gateways,
) -> None:
    wait_for("the first sync on every pod", lambda: all(
        (blue.volume(i) / "projects" / "blue" / "project.json").is_file()
        for i in range(len(blue.pods))
    ))  # fmt: skip
    for ordinal in range(len(blue.pods)):
        synced = list((blue.volume(ordinal) / "projects").rglob("*"))
        assert synced
        assert {(p.stat().st_uid, p.stat().st_gid) for p in synced} == {(GATEWAY_UID, GATEWAY_UID)}
    labels = blue.cluster.core.read_namespace(blue.namespace).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    pod = blue.cluster.core.read_namespaced_pod(blue.pods[0], blue.namespace)
    assert pod.spec.security_context.fs_group == GATEWAY_UID
    [agent] = [c for c in pod.spec.init_containers if c.name == "stoker-agent"]
    assert agent.restart_policy == "Always"
    context = agent.security_context
    assert context.run_as_non_root
    assert context.read_only_root_filesystem
    assert context.capabilities.drop == ["ALL"]
    assert not context.allow_privilege_escalation
    assert context.seccomp_profile.type == "RuntimeDefault"
    # Stoker's own pods run in a namespace that enforces restricted as well (see conftest).
    system = blue.cluster.core.read_namespace(SYSTEM).metadata.labels
    assert system["pod-security.kubernetes.io/enforce"] == "restricted"
    assert blue.cluster.core.list_namespaced_pod(SYSTEM).items


def synced_view(gateways: Gateways, ordinal: int) -> str:
    """The Home view's text as synced into pod `ordinal`'s data volume."""
    path = (
        gateways.volume(ordinal)
        / "projects/blue/com.inductiveautomation.perspective/views/Home/view.json"
    )
    return path.read_text() if path.is_file() else ""


def test_a_push_through_the_receivers_service_is_applied_on_every_gateway_pod(
    blue: Gateways,
) -> None:
    view = json.loads(blue.plant.repo.git("show", f"{blue.branch}:{VIEW}"))
    view["custom"] = {"title": f"pushed at {time.time()}"}
    text = json.dumps(view, indent=2) + "\n"
    blue.commit({VIEW: text}, "Home view: a new title")

    push(blue.plant, blue.namespace)

    for ordinal, pod in enumerate(blue.pods):
        wait_for(
            f"{pod} to apply the pushed commit", lambda o=ordinal: synced_view(blue, o) == text
        )
        wait_for(
            f"{pod}'s gateway to scan the change",
            lambda p=pod: any(
                any("views/Home" in r for r in s["changed"])
                for s in scans(blue.cluster, blue.namespace, p)
                if s["trigger"] == "api"
            ),
        )


def test_a_commit_the_gateway_rejects_is_rolled_back(blue: Gateways) -> None:
    project = f"{BLUE.rsplit('/', 1)[0]}/rejected/project.json"
    blue.commit({project: json.dumps({"title": "refused", "enabled": True})}, "a refused project")
    push(blue.plant, blue.namespace)

    for ordinal, pod in enumerate(blue.pods):
        wait_for(
            f"{pod}'s gateway to refuse the project",
            lambda p=pod: any(
                any("rejected" in json.dumps(k) for k in s["skipped"])
                for s in scans(blue.cluster, blue.namespace, p)
            ),
        )
        wait_for(
            f"{pod}'s agent to roll the refused project back",
            lambda o=ordinal: not (blue.volume(o) / "projects/rejected").exists(),
        )
        assert (blue.volume(ordinal) / "projects/blue/project.json").is_file()
    blue.commit({project: None}, "drop the refused project")


def test_a_restarted_gateway_pod_keeps_its_synced_state(blue: Gateways) -> None:
    pod = blue.pods[0]
    before = synced_view(blue, 0)
    assert before
    old_uid = blue.cluster.core.read_namespaced_pod(pod, blue.namespace).metadata.uid
    blue.cluster.core.delete_namespaced_pod(pod, blue.namespace)
    wait_for(f"{pod} to be recreated", lambda: _recreated(blue, pod, old_uid))
    wait_for_ready(blue.cluster, blue.namespace, pod)

    seed = blue.cluster.core.read_namespaced_pod_log(pod, blue.namespace, container="seed-data")
    assert seed.strip() == "kept"  # the volume held the synced data: not seeded again
    boot = [s for s in scans(blue.cluster, blue.namespace, pod) if s["trigger"] == "boot"]
    assert set(boot[0]["projects"]) >= SYNCED, boot
    assert synced_view(blue, 0) == before


def _recreated(gateways: Gateways, pod: str, old_uid: str) -> bool:
    try:
        current = gateways.cluster.core.read_namespaced_pod(pod, gateways.namespace)
    except client.ApiException:
        return False
    return current.metadata.uid != old_uid


def read_gatewaysync(cluster: Cluster, namespace: str) -> dict:
    """The GatewaySync `plant` of `namespace`."""
    return custom(cluster).get_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", "plant"
    )


def gatewaysync_gone(cluster: Cluster, namespace: str) -> bool:
    """Whether the GatewaySync `plant` of `namespace` no longer exists."""
    try:
        read_gatewaysync(cluster, namespace)
    except client.ApiException as error:
        return error.status == 404
    return False


def gateway_status(cluster: Cluster, namespace: str) -> str:
    """The first discovered gateway's syncStatus ("" before any)."""
    found = (read_gatewaysync(cluster, namespace).get("status") or {}).get("discoveredGateways")
    return found[0].get("syncStatus", "") if found else ""


def gatewaysync_condition(cluster: Cluster, namespace: str, kind: str) -> dict | None:
    """The GatewaySync `plant`'s condition of type `kind`, if any."""
    gs = custom(cluster).get_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", "plant"
    )
    return next(
        (c for c in (gs.get("status") or {}).get("conditions") or [] if c["type"] == kind), None
    )


def any_condition_reason(cluster: Cluster, namespace: str, reason: str) -> dict | None:
    """The GatewaySync `plant`'s first condition with `reason`, if any."""
    gs = custom(cluster).get_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", "plant"
    )
    conditions = (gs.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("reason") == reason), None)


def test_missing_api_key_git_token_and_vars_secrets_do_not_keep_the_gateway_from_starting(
    plant: Plant,
) -> None:
    namespace = plant.take_namespace()
    branch = branch_for(plant, namespace)
    gatewaysync(
        plant,
        namespace,
        git={
            "repo": plant.repo_url,
            "ref": branch,
            "auth": {"token": {"secretRef": {"name": "absent-git-token", "key": "token"}}},
        },
        gateway={"api": {"secretName": "absent-api-key"}},
    )
    cr = custom(plant.cluster).get_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", "plant"
    )
    profiles = cr["spec"]["sync"]["profiles"]
    profiles["default"]["varsFrom"] = [
        {"name": "dbPassword", "secretKeyRef": {"name": "absent-vars", "key": "password"}}
    ]
    custom(plant.cluster).patch_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", "plant",
        {"spec": {"sync": {"profiles": profiles}}},
    )  # fmt: skip
    body = gateway_statefulset(STS)
    # The agent cannot sync without them: the gateway waits for it only this long (the
    # documented bound; 180 s by default), then starts on the files it has.
    body["spec"]["template"]["metadata"]["annotations"]["stoker.io/startup-timeout"] = "30"
    [pod] = deploy_gateways(plant.cluster, namespace, body, wait=False)

    def gateway_running() -> bool:
        try:
            p = plant.cluster.core.read_namespaced_pod(pod, namespace)
        except client.ApiException:
            return False  # not created yet
        return any(s.name == "gateway" and s.ready for s in p.status.container_statuses or [])

    try:
        wait_for(f"the gateway container of {pod} to run", gateway_running, timeout=180)
    except AssertionError as error:
        raise AssertionError(f"{error}: {pod_state(plant.cluster, namespace, pod)}") from None
    assert "stoker-agent" in init_container_names(plant.cluster, namespace, pod)
    secrets = wait_for(
        "the GatewaySync to name the missing Secrets",
        lambda: gatewaysync_condition(plant.cluster, namespace, "SecretsAvailable"),
    )
    assert secrets["status"] == "False", secrets
    assert secrets["reason"] == "SecretMissing", secrets
    for name in ("absent-api-key", "absent-git-token", "absent-vars"):
        assert name in secrets["message"], secrets


def test_webhook_scaled_to_zero_a_gateway_pod_starts_without_the_agent_shows_missing_sidecar(
    plant: Plant,
) -> None:
    apps = client.AppsV1Api(plant.cluster.api)
    namespace = plant.take_namespace()
    branch = branch_for(plant, namespace)
    gatewaysync(plant, namespace, git={"repo": plant.repo_url, "ref": branch})
    apps.patch_namespaced_deployment_scale("stoker-webhook", SYSTEM, {"spec": {"replicas": 0}})
    try:
        wait_for(
            "the webhook's pods to be gone",
            lambda: (
                not plant.cluster.core.list_namespaced_pod(
                    SYSTEM, label_selector="app.kubernetes.io/component=webhook"
                ).items
            ),
        )
        [pod] = deploy_gateways(plant.cluster, namespace, gateway_statefulset(STS))
        assert init_container_names(plant.cluster, namespace, pod) == ["seed-data"]
        wait_for(
            "the GatewaySync to report the gateway MissingSidecar",
            lambda: gateway_status(plant.cluster, namespace) == "MissingSidecar",
        )
        sidecar = gatewaysync_condition(plant.cluster, namespace, "SidecarInjected")
        assert sidecar, "no SidecarInjected condition"
        assert sidecar["status"] == "False"
        # The receiver's annotations and the GatewaySync's deletion need no webhook either.
        push(plant, namespace)
        wait_for(
            "the receiver's annotation",
            lambda: (
                "stoker.io/refresh-requested-at"
                in (read_gatewaysync(plant.cluster, namespace)["metadata"].get("annotations") or {})
            ),
        )
        custom(plant.cluster).delete_namespaced_custom_object(
            "stoker.io", "v1alpha1", namespace, "gatewaysyncs", "plant"
        )
        wait_for(
            "the GatewaySync to be deleted", lambda: gatewaysync_gone(plant.cluster, namespace)
        )
    finally:
        apps.patch_namespaced_deployment_scale("stoker-webhook", SYSTEM, {"spec": {"replicas": 2}})
        wait_for_rollout(plant.cluster, SYSTEM)


def test_two_controller_replicas_elect_a_leader_and_the_other_takes_over_when_it_is_killed(
    plant: Plant,
) -> None:
    coordination = client.CoordinationV1Api(plant.cluster.api)
    pods = {
        p.metadata.name
        for p in plant.cluster.core.list_namespaced_pod(
            SYSTEM, label_selector="app.kubernetes.io/component=controller"
        ).items
    }
    assert len(pods) == 2

    def holder() -> tuple[str, str] | None:
        for lease in coordination.list_namespaced_lease(SYSTEM).items:
            identity = lease.spec.holder_identity or ""
            for pod in pods:
                if identity.startswith(pod):
                    return lease.metadata.name, pod
        return None

    lease, leader = wait_for("a controller to hold the lease", holder)
    log(f"lease {lease} held by {leader}")
    plant.cluster.core.delete_namespaced_pod(leader, SYSTEM, grace_period_seconds=0)

    def taken_over() -> str | None:
        # The standby, or the replica the Deployment starts in the killed one's place.
        found = coordination.read_namespaced_lease(lease, SYSTEM).spec.holder_identity or ""
        alive = {
            p.metadata.name
            for p in plant.cluster.core.list_namespaced_pod(
                SYSTEM, label_selector="app.kubernetes.io/component=controller"
            ).items
            if p.metadata.deletion_timestamp is None
        }
        return next((pod for pod in alive - {leader} if found.startswith(pod)), None)

    successor = wait_for("another controller replica to take the lease over", taken_over, 120)
    kind = "the standby" if successor in pods else "a replacement"
    log(f"lease {lease} taken over by {successor} ({kind})")
    # The new leader reconciles: a new GatewaySync gets its status.
    namespace = plant.take_namespace()
    gatewaysync(plant, namespace, git={"repo": plant.repo_url, "ref": branch_for(plant, namespace)})
    wait_for(
        "the new leader to reconcile a new GatewaySync",
        lambda: gatewaysync_condition(plant.cluster, namespace, "RefResolved"),
    )
    wait_for_rollout(plant.cluster, SYSTEM)
