"""A real kube-apiserver + etcd for tests (an envtest equivalent for Python).

Binaries are resolved like ``tests/testenv/build.sh`` does (``KUBEBUILDER_ASSETS``, then the
cache keyed by version and go.sum); this module never builds them, it fails with a message that
says what to run. See docs/testenv.md for the design and examples.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from support.kubecerts import CertificateAuthority, rsa_signing_key

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTENV_DIR = REPO_ROOT / "tests" / "testenv"
PROJECT_CRD_DIR = REPO_ROOT / "src" / "stoker_k8s" / "crds"
_KEYED_FILES = ("go.mod", "go.sum", "cmd/etcd/main.go", "cmd/kube-apiserver/main.go")
ADMIN_USER = "stoker-testenv-admin"
_PR_SET_PDEATHSIG = 1


class TestEnvError(RuntimeError):
    """The control plane cannot be resolved, started or used."""

    __test__ = False  # not a pytest test class


def k8s_version(testenv_dir: Path = TESTENV_DIR) -> str:
    """The ``k8s.io/kubernetes`` version required by the testenv Go module (e.g. ``v1.34.4``)."""
    for line in (testenv_dir / "go.mod").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "k8s.io/kubernetes" and parts[1].startswith("v1."):
            return parts[1]
    raise TestEnvError(f"no k8s.io/kubernetes requirement in {testenv_dir / 'go.mod'}")


def cache_key(testenv_dir: Path = TESTENV_DIR) -> str:
    """The cache key ``<version>-<sha256 of go.mod, go.sum and main.go files>[:16]``."""
    digest = hashlib.sha256()
    for name in _KEYED_FILES:
        digest.update((testenv_dir / name).read_bytes())
    return f"{k8s_version(testenv_dir)}-{digest.hexdigest()[:16]}"


def cache_root() -> Path:
    """The binary cache root (``$STOKER_TESTENV_CACHE`` or ``$XDG_CACHE_HOME/stoker/testenv``)."""
    explicit = os.environ.get("STOKER_TESTENV_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "stoker" / "testenv"


def _has_binaries(directory: Path) -> bool:
    return all(os.access(directory / b, os.X_OK) for b in ("kube-apiserver", "etcd"))


def missing_message() -> str:
    """The one message shown when no binaries can be found."""
    return (
        f"kube-apiserver and etcd {k8s_version()} are not built. Run 'make testenv' "
        "(needs Go 1.24 or newer and access to the Go module proxy on the first run; it takes "
        "about 3 minutes on 2 cores), or set KUBEBUILDER_ASSETS to a directory holding "
        "kube-apiserver and etcd (e.g. from setup-envtest)."
    )


def resolve_assets() -> Path:
    """Find the directory holding ``kube-apiserver`` and ``etcd``, or raise TestEnvError."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        if not _has_binaries(Path(assets)):
            raise TestEnvError(
                f"KUBEBUILDER_ASSETS={assets} does not hold executable kube-apiserver and etcd"
            )
        return Path(assets)
    cached = cache_root() / cache_key()
    if _has_binaries(cached):
        return cached
    raise TestEnvError(missing_message())


# Looked up in the parent: the child calls it between fork and exec, where loading is unsafe.
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it when the test process dies (even by SIGKILL)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    """A currently free loopback TCP port (the same small race as envtest's)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class ControlPlane:
    """etcd and kube-apiserver processes on loopback ports, with their credentials.

    ``start()`` blocks until ``/readyz`` answers; ``stop()`` ends both processes by PID.
    """

    root: Path
    assets: Path
    server: str = ""
    kubeconfig: Path = field(init=False)
    ca: CertificateAuthority = field(init=False)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.pki = self.root / "pki"
        self.kubeconfig = self.root / "kubeconfig"
        self.ca = CertificateAuthority()

    # -- lifecycle ------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with (self.root / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self._procs.append(proc)
        return proc

    def _wait_ready(
        self, name: str, proc: subprocess.Popen[bytes], probe: Callable[[], bool], timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise TestEnvError(
                    f"{name} exited with {proc.returncode}; log tail:\n"
                    f"{_tail(self.root / f'{name}.log')}"
                )
            with contextlib.suppress(OSError, urllib.error.URLError, ssl.SSLError):
                if probe():
                    return
            if time.monotonic() > deadline:
                raise TestEnvError(
                    f"{name} not ready after {timeout:.0f}s; log tail:\n"
                    f"{_tail(self.root / f'{name}.log')}"
                )
            time.sleep(0.2)

    def start(self) -> ControlPlane:
        """Write credentials, start etcd then kube-apiserver, and wait until both are ready."""
        for attempt in range(3):
            try:
                self._start()
                return self
            except TestEnvError as exc:
                self.stop()
                # A free port can be taken between choosing it and binding it: retry.
                if "address already in use" not in str(exc) or attempt == 2:
                    raise
                shutil.rmtree(self.root / "etcd", ignore_errors=True)
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _start(self) -> None:
        pki = self.pki
        serving_cert, serving_key = self.ca.issue_server("127.0.0.1", "localhost").write(
            pki, "apiserver"
        )
        self.admin_cert, self.admin_key = self.ca.issue_client(ADMIN_USER, "system:masters").write(
            pki, "admin"
        )
        self.ca_file = pki / "ca.crt"
        self.ca_file.write_bytes(self.ca.cert_pem)
        sa_private, sa_public = rsa_signing_key()
        (pki / "sa.key").touch(mode=0o600)
        (pki / "sa.key").write_bytes(sa_private)
        (pki / "sa.pub").write_bytes(sa_public)

        client_port, peer_port, api_port = free_port(), free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        etcd = self._spawn(
            "etcd",
            [
                str(self.assets / "etcd"),
                f"--data-dir={self.root / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                "--name=testenv",
                f"--initial-cluster=testenv={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )

        def etcd_healthy() -> bool:
            with urllib.request.urlopen(f"{etcd_url}/health", timeout=2) as resp:
                return bool(resp.status == 200)

        self._wait_ready("etcd", etcd, etcd_healthy, timeout=30)

        self.server = f"https://127.0.0.1:{api_port}"
        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(self.assets / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                f"--etcd-prefix=/stoker-testenv-{secrets.token_hex(4)}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={self.root / 'certs'}",
                f"--tls-cert-file={serving_cert}",
                f"--tls-private-key-file={serving_key}",
                f"--client-ca-file={self.ca_file}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={self.server}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
            ],
        )
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(self.admin_cert, self.admin_key)

        def apiserver_ready() -> bool:
            with urllib.request.urlopen(f"{self.server}/readyz", timeout=5, context=ctx) as resp:
                return bool(resp.status == 200)

        self._wait_ready("kube-apiserver", apiserver, apiserver_ready, timeout=120)
        self._write_kubeconfig()

    def _write_kubeconfig(self) -> None:
        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode("ascii")

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "testenv",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": b64(self.ca_file),
                    },
                }
            ],
            "users": [
                {
                    "name": ADMIN_USER,
                    "user": {
                        "client-certificate-data": b64(self.admin_cert),
                        "client-key-data": b64(self.admin_key),
                    },
                }
            ],
            "contexts": [
                {"name": "testenv", "context": {"cluster": "testenv", "user": ADMIN_USER}}
            ],
            "current-context": "testenv",
        }
        self.kubeconfig.touch(mode=0o600)
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd, by the PIDs this object started (never by name)."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs.clear()

    def logs(self) -> str:
        """The tails of both logs, for failure reports."""
        return "\n".join(
            f"--- {name}.log ---\n{_tail(self.root / f'{name}.log')}"
            for name in ("etcd", "kube-apiserver")
        )

    # -- clients --------------------------------------------------------------------------

    def configuration(self, token: str | None = None) -> client.Configuration:
        """A client Configuration: admin (client certificate) or a bearer ``token``."""
        conf = client.Configuration()
        conf.host = self.server
        conf.ssl_ca_cert = str(self.ca_file)
        if token is None:
            conf.cert_file = str(self.admin_cert)
            conf.key_file = str(self.admin_key)
        else:
            # The key's name differs between client releases ("authorization", "BearerToken").
            conf.api_key = {"authorization": token, "BearerToken": token}
            conf.api_key_prefix = {"authorization": "Bearer", "BearerToken": "Bearer"}
        return conf

    def api_client(self, token: str | None = None) -> client.ApiClient:
        """A new ApiClient (admin by default); close it, or use it as a context manager."""
        return _ApiClient(self.configuration(token))

    # -- namespaces -----------------------------------------------------------------------

    def create_namespace(self, api: client.ApiClient, name: str | None = None) -> str:
        """Create a namespace as the controller-manager would leave it.

        The ``default`` ServiceAccount and the ``kube-root-ca.crt`` ConfigMap are created too
        (no controller-manager runs), so pods pass ServiceAccount admission and can mount the
        usual ``kube-api-access`` projected volume.
        """
        name = name or f"t-{secrets.token_hex(5)}"
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        core.create_namespaced_service_account(
            name, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="default"))
        )
        core.create_namespaced_config_map(
            name,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name="kube-root-ca.crt"),
                data={"ca.crt": self.ca.cert_pem.decode("ascii")},
            ),
        )
        return name

    # -- CRDs -----------------------------------------------------------------------------

    def install_crds(
        self,
        api: client.ApiClient,
        paths: Iterable[Path | str] = (),
        documents: Iterable[dict[str, Any]] = (),
        timeout: float = 30.0,
    ) -> list[str]:
        """Create or update CRDs from YAML files/directories and dicts; wait until served.

        Returns the CRD names. Paths that do not exist are ignored, so the project's CRD
        directory may be absent.
        """
        docs = list(documents)
        for path in map(Path, paths):
            if path.is_dir():
                files = sorted(path.glob("*.y*ml")) + sorted(path.glob("*.json"))
            else:
                files = [path]
            for file in files:
                if file.is_file():
                    docs += [d for d in yaml.safe_load_all(file.read_text()) if d]
        crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
        ext = client.ApiextensionsV1Api(api)
        for crd in crds:
            name = crd["metadata"]["name"]
            try:
                ext.create_custom_resource_definition(crd)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                current = _json(ext.read_custom_resource_definition(name, _preload_content=False))
                crd = {**crd, "metadata": {**crd["metadata"]}}
                crd["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                ext.replace_custom_resource_definition(name, crd)
        for crd in crds:
            self.wait_for_crd(api, crd, timeout)
        return [crd["metadata"]["name"] for crd in crds]

    def wait_for_crd(self, api: client.ApiClient, crd: dict[str, Any], timeout: float) -> None:
        """Wait until the CRD is Established and every served version lists its plural."""
        ext = client.ApiextensionsV1Api(api)
        custom = client.CustomObjectsApi(api)
        spec = crd["spec"]
        plural = spec["names"]["plural"]
        versions = [v["name"] for v in spec["versions"] if v.get("served", True)]
        deadline = time.monotonic() + timeout
        while True:
            current = _json(
                ext.read_custom_resource_definition(crd["metadata"]["name"], _preload_content=False)
            )
            established = any(
                c["type"] == "Established" and c["status"] == "True"
                # Right after creation the API server may report conditions as null.
                for c in (current.get("status") or {}).get("conditions") or []
            )
            served = established and all(
                self._lists_plural(custom, spec["group"], v, plural) for v in versions
            )
            if served:
                return
            if time.monotonic() > deadline:
                raise TestEnvError(f"CRD {crd['metadata']['name']} not served after {timeout}s")
            time.sleep(0.1)

    @staticmethod
    def _lists_plural(
        custom: client.CustomObjectsApi, group: str, version: str, plural: str
    ) -> bool:
        try:
            resources = custom.get_api_resources(group, version)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return any(r.name == plural for r in resources.resources)

    # -- webhooks -------------------------------------------------------------------------

    @contextlib.contextmanager
    def webhook_configuration(self, api: client.ApiClient, body: dict[str, Any]) -> Iterator[str]:
        """Register a Mutating- or ValidatingWebhookConfiguration for a ``with`` block.

        Enter this *after* the webhook server is listening; the configuration is deleted when
        the block exits, *before* the server stops, so a ``failurePolicy: Fail`` webhook never
        outlives its server. Yields the configuration's name. The apiserver picks new
        configurations up through an informer after a short delay: retry a canary request
        until the webhook's effect shows.
        """
        adm = client.AdmissionregistrationV1Api(api)
        name = body["metadata"]["name"]
        if body.get("kind") == "ValidatingWebhookConfiguration":
            adm.create_validating_webhook_configuration(body)
            delete = adm.delete_validating_webhook_configuration
        else:
            adm.create_mutating_webhook_configuration(body)
            delete = adm.delete_mutating_webhook_configuration
        try:
            yield name
        finally:
            try:
                delete(name, _preload_content=False)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    mutating_webhook = webhook_configuration

    def subprocess_env(self) -> dict[str, str]:
        """``os.environ`` plus ``KUBECONFIG`` pointing at the admin kubeconfig."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def delete_orphaned_webhooks(self, api: client.ApiClient) -> list[str]:
        """Delete webhook configurations with a ``failurePolicy: Fail`` webhook whose loopback
        URL no longer accepts connections (its server stopped); return their names.

        Such a configuration would make every matching request fail for the rest of the
        session. ``kube_namespace`` calls this after each test.
        """
        adm = client.AdmissionregistrationV1Api(api)
        kinds = {
            "mutating": (
                adm.list_mutating_webhook_configuration,
                adm.delete_mutating_webhook_configuration,
            ),
            "validating": (
                adm.list_validating_webhook_configuration,
                adm.delete_validating_webhook_configuration,
            ),
        }
        deleted = []
        for kind, (lister, deleter) in kinds.items():
            listing = _json(lister(_preload_content=False))
            for config in listing.get("items", []):
                if any(_orphaned(w) for w in config.get("webhooks") or []):
                    name = config["metadata"]["name"]
                    with contextlib.suppress(ApiException):
                        deleter(name, _preload_content=False)
                    deleted.append(f"{kind}/{name}")
        return deleted


class _ApiClient(client.ApiClient):
    """An ApiClient whose ``close()`` also closes its pooled connections.

    Older ``kubernetes`` releases leave them open, which warnings-as-errors turns into a failure.
    """

    def close(self) -> None:
        super().close()  # type: ignore[no-untyped-call]
        pool_manager = getattr(getattr(self, "rest_client", None), "pool_manager", None)
        if pool_manager is not None:
            pool_manager.clear()


def _json(response: Any) -> dict[str, Any]:
    """The JSON body of a ``_preload_content=False`` response."""
    data: dict[str, Any] = json.loads(response.data)
    return data


def _orphaned(webhook: dict[str, Any]) -> bool:
    """A Fail-policy webhook whose loopback URL refuses connections."""
    if webhook.get("failurePolicy", "Fail") != "Fail":
        return False
    url = urllib.parse.urlsplit(webhook.get("clientConfig", {}).get("url") or "")
    if url.hostname not in ("127.0.0.1", "localhost", "::1") or not url.port:
        return False
    try:
        with socket.create_connection((url.hostname, url.port), timeout=1):
            return False
    except OSError:
        return True


def wait_until(
    condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll ``condition`` until it returns a truthy value (returned) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)
