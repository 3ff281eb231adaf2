"""The chart's life after `helm install`: uninstall while GatewaySyncs and injected gateways are
still there, and an upgrade from the previous chart. Runs after test_gateways.py (file order):
the first test removes the session's release."""

from __future__ import annotations

import io
import os
import re
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

from kubernetes import client

from conftest import ROOT
from e2e.gateways import (
    RELEASE,
    SYSTEM,
    Plant,
    custom,
    deploy_gateways,
    gateway_statefulset,
    gatewaysync,
    helm,
    helm_binary,
    volume_dir,
    wait_for,
    wait_for_ready,
    wait_for_rollout,
)

# The chart as released before issue 15's chart work (image names as one string, no PDBs, no
# schema): the version a plant would upgrade from. No tag exists yet; the commit stands in.
PREVIOUS = "2fcfc34"


def namespace_gone(plant: Plant, namespace: str) -> bool:
    """Whether `namespace` no longer exists."""
    try:
        plant.cluster.core.read_namespace(namespace)
    except client.ApiException as error:
        return error.status == 404
    return False


def strip_finalizers(plant: Plant, namespace: str) -> list[str]:
    """Remove what holds the GatewaySyncs of `namespace` (after a failure); their names."""
    api = custom(plant.cluster)
    held = []
    for gs in api.list_namespaced_custom_object("stoker.io", "v1alpha1", namespace, "gatewaysyncs")[
        "items"
    ]:
        if gs["metadata"].get("finalizers"):
            held.append(f"{namespace}/{gs['metadata']['name']}: {gs['metadata']['finalizers']}")
            api.patch_namespaced_custom_object(
                "stoker.io", "v1alpha1", namespace, "gatewaysyncs", gs["metadata"]["name"],
                {"metadata": {"finalizers": None}},
            )  # fmt: skip
    return held


def stoker_finalized(plant: Plant, namespaces: list[str]) -> list[str]:
    """The GatewaySyncs of `namespaces` still holding Stoker's finalizer."""
    api = custom(plant.cluster)
    return [
        f"{ns}/{gs['metadata']['name']}"
        for ns in namespaces
        for gs in api.list_namespaced_custom_object("stoker.io", "v1alpha1", ns, "gatewaysyncs")[
            "items"
        ]
        if "stoker.io/finalizer" in (gs["metadata"].get("finalizers") or [])
    ]


def gone(read: Callable[[], object]) -> bool:
    """Whether `read` answers 404."""
    try:
        read()
    except client.ApiException as error:
        return error.status == 404
    return False


def test_helm_uninstall_with_gatewaysyncs_still_present_leaves_nothing_hanging_on_a_finalizer(
    plant: Plant,
) -> None:
    used = plant.namespaces[: plant.used]
    api = custom(plant.cluster)
    present = {
        ns: [gs["metadata"]["name"] for gs in items]
        for ns in used
        if (
            items := api.list_namespaced_custom_object("stoker.io", "v1alpha1", ns, "gatewaysyncs")[
                "items"
            ]
        )
    }
    assert present, "test_gateways.py should have left GatewaySyncs behind"
    assert stoker_finalized(plant, list(present)), "the controller should have finalized them"

    # The post-delete hook (a Job on the controller image) runs before helm returns.
    helm(plant.cluster, "uninstall", RELEASE, "--namespace", SYSTEM, "--wait", "--timeout", "3m")
    # Released, not deleted: GatewaySyncs are the user's configuration and stay.
    assert stoker_finalized(plant, list(present)) == []
    for ns, names in present.items():
        left = api.list_namespaced_custom_object("stoker.io", "v1alpha1", ns, "gatewaysyncs")
        assert sorted(gs["metadata"]["name"] for gs in left["items"]) == sorted(names)
    # The hook's objects went once it succeeded (hook-delete-policy: hook-succeeded).
    hook = f"{RELEASE}-release-gatewaysyncs"
    rbac = client.RbacAuthorizationV1Api(plant.cluster.api)
    assert gone(lambda: client.BatchV1Api(plant.cluster.api).read_namespaced_job(hook, SYSTEM))
    assert gone(lambda: plant.cluster.core.read_namespaced_service_account(hook, SYSTEM))
    assert gone(lambda: rbac.read_cluster_role(hook))
    assert gone(lambda: rbac.read_cluster_role_binding(hook))

    # One GatewaySync deleted on its own: what the controller made for it goes with it (owner
    # references; the garbage collector, not a controller, removes them).
    ns, [name, *_] = next(iter(present.items()))
    api.delete_namespaced_custom_object("stoker.io", "v1alpha1", ns, "gatewaysyncs", name)
    made = [
        lambda: plant.cluster.core.read_namespaced_config_map(f"stoker-metadata-{name}", ns),
        lambda: plant.cluster.core.read_namespaced_service_account(f"stoker-agent-{name}", ns),
        lambda: rbac.read_namespaced_role(f"stoker-agent-{name}", ns),
    ]
    wait_for(
        f"GatewaySync {ns}/{name} and what Stoker made for it to go",
        lambda: (
            all(gone(read) for read in made)
            and gone(
                lambda: api.get_namespaced_custom_object(
                    "stoker.io", "v1alpha1", ns, "gatewaysyncs", name
                )
            )
        ),
        timeout=120,
    )

    for namespace in used:
        plant.cluster.core.delete_namespace(namespace)
    try:
        wait_for(
            "the namespaces holding GatewaySyncs to be deleted",
            lambda: all(namespace_gone(plant, ns) for ns in used),
            timeout=120,
        )
    except AssertionError:
        held = [line for ns in used for line in strip_finalizers(plant, ns)]
        raise AssertionError(f"left hanging on a finalizer after helm uninstall: {held}") from None


def upgrade_steps() -> list[str]:
    """The command block of docs/install.md's "Upgrading" section."""
    doc = (ROOT / "docs" / "install.md").read_text()
    section = doc[doc.index("## Upgrading") :]
    block = re.search(r"```\n(.*?)```", section, re.DOTALL)
    assert block, "docs/install.md: no upgrade commands"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert lines[0].startswith("kubectl apply"), lines
    assert lines[-1].startswith("helm upgrade"), lines
    return lines


def previous_chart(tmp: Path) -> Path:
    """The chart directory as committed at PREVIOUS."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", PREVIOUS, "adapters/helm/stoker"],
        capture_output=True, check=True,
    )  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tmp, filter="data")
    return tmp / "adapters" / "helm" / "stoker"


def test_helm_upgrade_from_the_previous_chart_keeps_the_gateways_synced_and_injected(
    plant: Plant, tmp_path: Path
) -> None:
    namespace = plant.take_namespace()
    common = [
        "--namespace", SYSTEM, "--wait", "--timeout", "4m",
        "--set", f"namespaces={{{namespace}}}",
        "--set", "webhook.certManager.enabled=false,receiver.enabled=true",
    ]  # fmt: skip
    helm(plant.cluster, "install", RELEASE, str(previous_chart(tmp_path)), *common)
    wait_for_rollout(plant.cluster, SYSTEM)
    plant.repo.git("branch", namespace, "main")
    gatewaysync(plant, namespace, git={"repo": plant.repo_url, "ref": namespace})
    [pod] = deploy_gateways(plant.cluster, namespace, gateway_statefulset())
    synced = volume_dir(namespace, "ignition-blue", 0) / "projects" / "blue" / "project.json"
    wait_for("the first sync under the previous chart", synced.is_file)

    # docs/install.md's upgrade, as written: the CRD first (Helm never upgrades crds/), then
    # `helm upgrade --reset-then-reuse-values` (the values set at install are kept).
    for line in upgrade_steps():
        done = subprocess.run(
            ["bash", "-ec", line], cwd=ROOT, capture_output=True, text=True, timeout=600,
            check=False, env={**os.environ, "KUBECONFIG": str(plant.cluster.kubeconfig),
                              "PATH": f"{Path(helm_binary()).parent}:{os.environ['PATH']}"},
        )  # fmt: skip
        assert done.returncode == 0, f"`{line}` failed: {done.stdout}{done.stderr}"
    wait_for_rollout(plant.cluster, SYSTEM)

    plant.cluster.core.delete_namespaced_pod(pod, namespace)
    wait_for(f"{pod} to be recreated", lambda: _new_pod(plant, namespace, pod))
    wait_for_ready(plant.cluster, namespace, pod)
    spec = plant.cluster.core.read_namespaced_pod(pod, namespace).spec
    assert [c.name for c in spec.init_containers] == ["seed-data", "stoker-agent"]
    assert synced.is_file()


def _new_pod(plant: Plant, namespace: str, pod: str) -> bool:
    try:
        p = plant.cluster.core.read_namespaced_pod(pod, namespace)
    except client.ApiException:
        return False
    return p.metadata.deletion_timestamp is None
