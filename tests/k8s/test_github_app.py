"""GitHub App auth: a signed JWT is exchanged for an installation token (a local stand-in for
the GitHub API checks the signature), the token opens a real Git server, is published for the
agents, and is cached per namespace and Secret (the original's B1)."""

from __future__ import annotations

import base64
import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client

from k8s.test_crd import MINIMAL
from stoker_k8s.controller import Controller
from support.gitservers import BareRepo, GitHttpServer

pytestmark = pytest.mark.kube
INSTALLATION_TOKEN = "ghs_installation-token-42"


@pytest.fixture
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def github_api(app_key: rsa.RSAPrivateKey) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    calls: list[dict[str, Any]] = []
    public = app_key.public_key()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            assertion = self.headers.get("Authorization", "").removeprefix("Bearer ")
            try:
                claims = jwt.decode(assertion, public, algorithms=["RS256"])
            except jwt.PyJWTError:
                self.send_response(401)
                self.end_headers()
                return
            calls.append({"path": self.path, "claims": claims})
            body = json.dumps(
                {"token": INSTALLATION_TOKEN, "expires_at": "2099-01-01T00:00:00Z"}
            ).encode()
            self.send_response(201)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", calls
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def app_secret(core: client.CoreV1Api, namespace: str, key: rsa.RSAPrivateKey) -> str:
    """Store the App's private key in the Secret `app` (key `key`); return the PEM."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    core.create_namespaced_secret(
        namespace,
        {"metadata": {"name": "app"}, "data": {"key": base64.b64encode(pem.encode()).decode()}},
    )
    return pem


def app_cr(name: str, repo: str, api: str) -> dict[str, Any]:
    """A GatewaySync authenticating to `repo` as App 1234, installation 42, via `api`."""
    body = copy.deepcopy(MINIMAL)
    body["metadata"]["name"] = name
    body["spec"]["git"]["repo"] = repo
    body["spec"]["git"]["auth"] = {
        "githubApp": {
            "appId": 1234,
            "installationId": 42,
            "apiBaseURL": api,
            "privateKeySecretRef": {"name": "app", "key": "key"},
        }
    }
    return body


@pytest.fixture
def served(
    tmp_path: Path, kube_core: client.CoreV1Api, kube_namespace: str, app_key: rsa.RSAPrivateKey
) -> tuple[Path, BareRepo, str]:
    """A served repository `config` (its root, the repository) and the App's key Secret (PEM)."""
    root = tmp_path / "served"
    root.mkdir()
    repo = BareRepo.create(root, "config", {"p/a.json": "{}"})
    return root, repo, app_secret(kube_core, kube_namespace, app_key)


def test_installation_tokens_are_minted_published_and_cached_per_tenant_b1(
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    github_api: tuple[str, list[dict[str, Any]]],
    served: tuple[Path, BareRepo, str],
) -> None:
    url, calls = github_api
    root, repo, pem = served
    with GitHttpServer(root, "git", "unused", tokens=[INSTALLATION_TOKEN]) as git_http:
        body = app_cr("minimal", git_http.url_for("config"), url)
        custom = client.CustomObjectsApi(kube_api)
        created = custom.create_namespaced_custom_object(
            "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
        )
        controller = Controller(client.CoreV1Api(kube_api), custom)
        controller.reconcile(created)
        controller.reconcile(created)
        assert git_http.secrets_in_urls(INSTALLATION_TOKEN) == []
    status = custom.get_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "minimal"
    )["status"]
    resolved = {c["type"]: c for c in status["conditions"]}["RefResolved"]
    assert resolved["message"] == repo.rev_parse("main")
    assert len(calls) == 1  # the second reconcile reused the cached token
    assert calls[0]["path"] == "/app/installations/42/access_tokens"
    assert calls[0]["claims"]["iss"] == "1234"
    published = kube_core.read_namespaced_secret("stoker-github-token-minimal", kube_namespace)
    assert base64.b64decode(published.data["token"]).decode() == INSTALLATION_TOKEN
    # As the original's annotation table has it: the owner's label and the purpose marker.
    assert published.metadata.labels["stoker.io/cr-name"] == "minimal"
    assert published.metadata.annotations["stoker.io/secret-type"] == "github-app-token"
    # Owned by its GatewaySync: the garbage collector removes it with the GatewaySync even when
    # no controller runs the finalizer any more (helm uninstall released it, issue 15).
    [owner] = published.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == (
        "GatewaySync",
        "minimal",
        created["metadata"]["uid"],
    )
    metadata = kube_core.read_namespaced_config_map("stoker-metadata-minimal", kube_namespace)
    assert INSTALLATION_TOKEN not in json.dumps(metadata.data)
    assert "PRIVATE KEY" not in json.dumps(metadata.data)
    other = controller.tokens.token(
        namespace="other-tenant",
        secret="app",
        app_id=1234,
        installation_id=42,
        private_key=pem,
        api_base_url=url,
    )
    assert other.value == INSTALLATION_TOKEN
    assert len(calls) == 2  # same App ids in another namespace: a separate cache entry


def test_every_gatewaysync_sharing_a_repository_and_app_gets_its_token_secret(
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    github_api: tuple[str, list[dict[str, Any]]],
    served: tuple[Path, BareRepo, str],
) -> None:
    url, calls = github_api
    root = served[0]
    custom = client.CustomObjectsApi(kube_api)
    controller = Controller(client.CoreV1Api(kube_api), custom)
    with GitHttpServer(root, "git", "unused", tokens=[INSTALLATION_TOKEN]) as git_http:
        passes = []
        for name in ("line-1", "line-2"):
            body = app_cr(name, git_http.url_for("config"), url)
            body["spec"]["polling"] = {"enabled": False}
            created = custom.create_namespaced_custom_object(
                "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
            )
            passes.append(controller.reconcile(created))
    # One ls-remote served both (shared per repository and credentials), yet each GatewaySync's
    # agents have their own Secret to mount.
    for name in ("line-1", "line-2"):
        secret = kube_core.read_namespaced_secret(f"stoker-github-token-{name}", kube_namespace)
        assert base64.b64decode(secret.data["token"]).decode() == INSTALLATION_TOKEN
    assert len(calls) == 1  # one mint, cached for the App's installation
    # Polling is off, but the token must be refreshed before it expires.
    assert all(p.within is not None and p.within < 3600 for p in passes)


def test_the_token_expiry_is_exported_per_gatewaysync_until_it_stops_using_the_app(
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    github_api: tuple[str, list[dict[str, Any]]],
    served: tuple[Path, BareRepo, str],
) -> None:
    url, _ = github_api
    root = served[0]
    custom = client.CustomObjectsApi(kube_api)
    controller = Controller(client.CoreV1Api(kube_api), custom)
    expiry = "stoker_controller_github_app_token_expiry_timestamp_seconds"
    labels = {"namespace": kube_namespace, "name": "minimal"}
    with GitHttpServer(root, "git", "unused", tokens=[INSTALLATION_TOKEN]) as git_http:
        body = app_cr("minimal", git_http.url_for("config"), url)
        created = custom.create_namespaced_custom_object(
            "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
        )
        controller.reconcile(created)
    assert controller.metrics.registry.get_sample_value(expiry, labels) == 4070908800.0  # 2099
    changed = custom.patch_namespaced_custom_object(
        "stoker.io",
        "v1alpha1",
        kube_namespace,
        "gatewaysyncs",
        "minimal",
        {"spec": {"git": {"auth": None, "repo": f"file://{root / 'config.git'}"}}},
    )
    controller.reconcile(changed)
    assert controller.metrics.registry.get_sample_value(expiry, labels) is None
