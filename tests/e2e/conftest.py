"""End-to-end tests on real pods: the single-node cluster of tests/cluster (`make e2e`).

Not collected by `make test` (pyproject's norecursedirs). Every test here needs the `cluster`
fixture, which FAILS, never skips, when no cluster answers: `make e2e` starts one, runs this
suite inside the cluster's namespaces and tears it down (docs/testenv.md).
"""

from __future__ import annotations

import os
import secrets
import ssl
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from kubernetes import client, config

from conftest import ROOT

if TYPE_CHECKING:
    from e2e import gateways

STATE = Path(os.environ.get("STOKER_CLUSTER_STATE", "/tmp/stoker-cluster"))
VALUES = ROOT / "adapters" / "helm" / "stoker" / "values.yaml"
HOW = (
    "run `make e2e` (it starts the cluster, runs this suite inside the cluster's namespaces and "
    "tears down), or `make cluster` and then: nsenter -t $(cat {state}/holder.pid) -n -m "
    ".venv/bin/pytest tests/e2e"
)


@dataclass(frozen=True)
class Cluster:
    """A running test cluster: where its admin kubeconfig is and a client for it."""

    kubeconfig: Path
    api: client.ApiClient

    @property
    def core(self) -> client.CoreV1Api:
        """The core/v1 API."""
        return client.CoreV1Api(self.api)


def _ready(kubeconfig: Path) -> str | None:
    """None when the API server behind `kubeconfig` answers /readyz, else why not."""
    if not kubeconfig.is_file():
        return f"{kubeconfig} does not exist"
    cfg = yaml.safe_load(kubeconfig.read_text())
    server = cfg["clusters"][0]["cluster"]["server"]
    user = cfg["users"][0]["user"]
    context = ssl.create_default_context(
        cafile=cfg["clusters"][0]["cluster"]["certificate-authority"]
    )
    context.load_cert_chain(user["client-certificate"], user["client-key"])
    try:
        with urllib.request.urlopen(f"{server}/readyz", context=context, timeout=5) as response:
            return None if response.status == 200 else f"{server}/readyz answered {response.status}"
    except OSError as error:
        return f"{server} does not answer ({error})"


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The running cluster; fails the test (never skips) when there is none."""
    kubeconfig = STATE / "etc" / "admin.kubeconfig"
    why = _ready(kubeconfig)
    if why is not None:
        pytest.fail(f"no test cluster: {why}. {HOW.format(state=STATE)}", pytrace=False)
    api = config.new_client_from_config(str(kubeconfig))
    try:
        yield Cluster(kubeconfig, api)
    finally:
        api.close()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace, deleted after the test."""
    name = f"e2e-{secrets.token_hex(4)}"
    cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        cluster.core.delete_namespace(name, grace_period_seconds=0)


@pytest.fixture(scope="session")
def node_ip(cluster: Cluster) -> str:
    """The node's address: servers the pods must reach (Git, gateway simulators) bind to it."""
    return os.environ.get("STOKER_E2E_NODE_IP", "10.250.0.1")


# Namespaces the session's Stoker serves, one per gateway test (a namespace is never reused:
# deleting one takes longer than a test).
PLANT_NAMESPACES = 12


@pytest.fixture(scope="session")
def plant(
    cluster: Cluster, node_ip: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[gateways.Plant]:
    """Stoker installed by Helm (default values but the self-managed certificate, the served
    namespaces and the receiver), serving restricted namespaces, and the example configuration
    repository on a Git server the pods reach. Uninstalled at the end of the session."""
    from e2e import gateways  # imports this module

    token = secrets.token_hex(3)
    names = [f"plant-{token}-{i}" for i in range(PLANT_NAMESPACES)]
    for name in names:
        gateways.create_namespace(cluster, name)
    git = gateways.start_git(tmp_path_factory.mktemp("git"), node_ip)
    server, repo = next(git)
    try:
        gateways.install(cluster, names)
        yield gateways.Plant(cluster, names, server, repo)
    finally:
        gateways.uninstall(cluster, names)
        git.close()


def register_name(name: str, address: str) -> None:
    """Make `name` resolve to `address` in the cluster's DNS (tests/cluster/dns.py)."""
    with (STATE / "etc" / "dns-hosts").open("a") as hosts:
        hosts.write(f"{name} {address}\n")


def chart_images() -> dict[str, str]:
    """The image names the chart's default values give (image.registry, image.controller and
    image.agent's repository and tag), as its `stoker.image` template joins them."""
    values = yaml.safe_load(VALUES.read_text())["image"]
    registry = f"{values['registry']}/" if values.get("registry") else ""
    return {
        key: f"{registry}{entry['repository']}:{entry['tag']}"
        for key, entry in values.items()
        if isinstance(entry, dict)
    }
