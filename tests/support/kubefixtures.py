"""pytest fixtures for the real control plane: one per test session, a namespace per test.

Use them from a conftest with ``pytest_plugins = ["support.kubefixtures"]`` (root conftest) or
``from support.kubefixtures import *  # noqa: F403``. However many conftests import them, the
session shares a single control plane (kept in ``config.stash``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes import client

from support.kubeenv import PROJECT_CRD_DIR, ControlPlane, TestEnvError, resolve_assets
from support.tcpproxy import TcpProxy

__all__ = [
    "api_proxy",
    "kube_api",
    "kube_core",
    "kube_crd_paths",
    "kube_env",
    "kube_namespace",
    "proxied_kubeconfig",
]

_PLANE = pytest.StashKey[ControlPlane | str]()


@pytest.fixture(scope="session")
def kube_crd_paths() -> list[Path]:
    """CRD files or directories installed at start; override to add more."""
    return [PROJECT_CRD_DIR]


@pytest.fixture(scope="session")
def kube_env(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    kube_crd_paths: list[Path],
) -> ControlPlane:
    """The session's etcd + kube-apiserver; fails (never skips) when binaries are missing."""
    stash = request.config.stash
    plane = stash.get(_PLANE, None)
    if isinstance(plane, str):
        pytest.fail(plane, pytrace=False)
    if plane is None:
        try:
            assets = resolve_assets()
            plane = ControlPlane(tmp_path_factory.mktemp("kube-env"), assets)
            request.config.add_cleanup(plane.stop)
            plane.start()
        except TestEnvError as exc:
            stash[_PLANE] = str(exc)
            pytest.fail(str(exc), pytrace=False)
        stash[_PLANE] = plane
    with plane.api_client() as api:
        plane.install_crds(api, kube_crd_paths)
    return plane


@pytest.fixture(scope="session")
def kube_api(kube_env: ControlPlane) -> Iterator[client.ApiClient]:
    """An admin ApiClient (client certificate in group system:masters)."""
    with kube_env.api_client() as api:
        yield api


@pytest.fixture
def kube_core(kube_api: client.ApiClient) -> client.CoreV1Api:
    """CoreV1Api on the admin client."""
    return client.CoreV1Api(kube_api)


@pytest.fixture
def kube_namespace(kube_env: ControlPlane, kube_api: client.ApiClient) -> Iterator[str]:
    """A fresh namespace with a ``default`` ServiceAccount and ``kube-root-ca.crt``.

    On teardown, ``failurePolicy: Fail`` webhook configurations whose loopback server has
    stopped are deleted (and the test fails for leaving them); then the namespace is deleted
    without waiting (no namespace controller runs, so it would stay Terminating).
    """
    name = kube_env.create_namespace(kube_api)
    yield name
    leftovers = kube_env.delete_orphaned_webhooks(kube_api)
    client.CoreV1Api(kube_api).delete_namespace(name, _preload_content=False)
    if leftovers:
        pytest.fail(f"test left webhook configurations whose server stopped: {leftovers}")


@pytest.fixture
def api_proxy(kube_env: ControlPlane) -> Iterator[TcpProxy]:
    """A TCP proxy in front of the API server, to cut, black-hole or refuse a client's calls."""
    url = urlsplit(kube_env.server)
    with TcpProxy((url.hostname or "127.0.0.1", url.port or 443)) as running:
        yield running


def proxied_kubeconfig(kube_env: ControlPlane, proxy: TcpProxy, path: Path) -> Path:
    """Write the admin kubeconfig, pointed at `proxy` instead of the API server, to `path`."""
    config = yaml.safe_load(kube_env.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    path.write_text(yaml.safe_dump(config))
    return path
