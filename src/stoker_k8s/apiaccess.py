"""Where the agent's API server is and how the agent proves who it is, without the `kubernetes`
package: in a pod, the service host and port, the cluster CA and the token file the webhook
names (read again before every request, since the kubelet replaces it whenever the controller
renews it); elsewhere (tests, a laptop), a kubeconfig with a token, a token file or a client
certificate. Failures read like the official client's (stoker_k8s.connection): one line with
the fix."""

from __future__ import annotations

import atexit
import base64
import binascii
import os
import shutil
import tempfile
from typing import Any

import attrs

from stoker_core.errors import TemporaryError
from stoker_k8s.kubeflags import ClusterUnavailable, kubeconfig_path

SERVICE_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
SERVICE_CA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
MAX_TOKEN = 64 * 1024
MAX_KUBECONFIG = 1024 * 1024


@attrs.frozen(slots=True, kw_only=True)
class Access:
    """One API server and one identity."""

    server: str  # https://host:port, no trailing slash
    verify: str | bool = True  # a CA file, True (the system's CAs) or False (kubeconfig says so)
    token: str | None = None
    token_file: str | None = None  # read again before every request
    cert: tuple[str, str] | None = None  # client certificate and key files

    def headers(self) -> dict[str, str]:
        """The Authorization header for the next request (none for a client certificate)."""
        token = _read_token(self.token_file) if self.token_file else self.token
        return {"Authorization": f"Bearer {token}"} if token else {}


def _read_token(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            token = handle.read(MAX_TOKEN).strip()
    except (OSError, UnicodeDecodeError):
        token = ""
    if not token:
        raise TemporaryError(
            f"the agent's API token {path} is not there yet; the controller writes it "
            "into the Secret stoker-agent-token-<gatewaysync> and the kubelet mounts it "
            "(if it never comes, see the GatewaySync's Ready condition)"
        )
    return token


def in_cluster(environ: dict[str, str]) -> Access:
    """In a pod, under the agent's own identity: the token file the webhook names
    (STOKER_API_TOKEN_FILE, mounted into the sidecar only), never the pod's ServiceAccount
    token, which the gateway container holds too (H15). Until the file appears each request
    fails with a TemporaryError and the loop retries: the sidecar (and the gateway) starts."""
    host = environ.get("KUBERNETES_SERVICE_HOST", "kubernetes.default.svc")
    port = environ.get("KUBERNETES_SERVICE_PORT", "443")
    return Access(
        server=f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}",
        verify=environ.get("STOKER_API_CA_FILE") or SERVICE_CA,
        token_file=environ.get("STOKER_API_TOKEN_FILE") or SERVICE_TOKEN,
    )


def choose(kubeconfig: str | None, context: str | None, environ: dict[str, str]) -> Access:
    """An explicit --kubeconfig or --context wins; in a pod, the agent's identity; elsewhere
    ~/.kube/config, as kubectl does."""
    path = kubeconfig_path(kubeconfig, context, environ)
    if path is None:
        return in_cluster(environ)
    try:
        return from_kubeconfig(path, context)
    except (KeyError, TypeError, ValueError, OSError) as e:
        raise ClusterUnavailable(
            f"kubeconfig {path}: {e}; check --kubeconfig and --context"
        ) from None


def from_kubeconfig(path: str, context: str | None) -> Access:
    """The access a kubeconfig (or a KUBECONFIG list of them, the first name winning) gives,
    for `context` or its current-context."""
    merged: dict[str, dict[str, tuple[dict[str, Any], str]]] = {
        "clusters": {},
        "users": {},
        "contexts": {},
    }
    current = None
    import yaml  # here: in a pod no kubeconfig is read, and PyYAML costs the sidecar 1 MiB

    for one in (p for p in path.split(os.pathsep) if p and os.path.exists(p)):
        with open(one, encoding="utf-8") as handle:
            text = handle.read(MAX_KUBECONFIG)
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            raise ValueError("not valid YAML") from None
        except RecursionError:
            raise ValueError("not valid YAML: nested too deeply") from None
        if not isinstance(doc, dict):
            raise ValueError("not a kubeconfig (a mapping)")
        base = os.path.dirname(os.path.abspath(one))
        for kind, entries in merged.items():
            for entry in doc.get(kind) or []:
                entries.setdefault(str(entry["name"]), (entry.get(kind[:-1]) or {}, base))
        current = current or doc.get("current-context")
    name = context or current
    if not name or name not in merged["contexts"]:
        raise ValueError(f"no context {name!r} in it" if name else "no current-context")
    ctx, _ = merged["contexts"][name]
    cluster, cluster_base = merged["clusters"][str(ctx["cluster"])]
    user, user_base = merged["users"].get(str(ctx.get("user", "")), ({}, ""))
    verify: str | bool = not cluster.get("insecure-skip-tls-verify", False)
    if verify:
        verify = _file(cluster, "certificate-authority", cluster_base) or True
    for unsupported in ("exec", "auth-provider", "username"):
        if unsupported in user:
            raise ValueError(
                f"user {ctx.get('user')!r} signs in with {unsupported}, which stoker agent "
                "does not support; give it a token, tokenFile or client certificate"
            )
    certificate = _file(user, "client-certificate", user_base)
    key = _file(user, "client-key", user_base)
    token_file = user.get("tokenFile")
    return Access(
        server=str(cluster["server"]).rstrip("/"),
        verify=verify,
        token=user.get("token") or None,
        token_file=os.path.join(user_base, token_file) if token_file else None,
        cert=(certificate, key) if certificate and key else None,
    )


def _file(section: dict[str, Any], key: str, base: str) -> str | None:
    """A kubeconfig file field: `key` (relative to the kubeconfig) or `key`-data (kept in a
    private temporary file, as the official client does, removed at exit)."""
    if section.get(f"{key}-data"):
        try:
            content = base64.b64decode(section[f"{key}-data"], validate=True)
        except (binascii.Error, TypeError):
            raise ValueError(f"{key}-data is not base64") from None
        handle, name = tempfile.mkstemp(dir=_private_dir(), suffix=".pem")
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        return name
    value = section.get(key)
    return os.path.join(base, value) if value else None


_DIR: list[str] = []


def _private_dir() -> str:
    if not _DIR:
        _DIR.append(tempfile.mkdtemp(prefix="stoker-agent-"))  # mode 0700
        atexit.register(shutil.rmtree, _DIR[0], True)
    return _DIR[0]
