"""How a `stoker` command reaches the API server: the kubeconfig or the pod's service account,
chosen once at start, and each way that fails (no kubeconfig, a broken one, a server that does
not answer, a refusal) said in one line with the fix, never as a traceback."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

# Shared with the agent, which must not import this module's client (re-exported here).
from stoker_k8s.kubeflags import DEFAULT_KUBECONFIG as DEFAULT_KUBECONFIG
from stoker_k8s.kubeflags import ClusterUnavailable as ClusterUnavailable
from stoker_k8s.kubeflags import kube_options as kube_options
from stoker_k8s.kubeflags import kubeconfig_path

# A `stoker status` or a start-up check waits this long for an answer (connect, read).
TIMEOUT = (5.0, 30.0)
# Any call of a long-running process given no timeout of its own (connect, read): a pooled
# connection that went silent (an API server restarted behind a load balancer, a dropped NAT
# flow) would hold the calling thread for good, and a controller worker holds its GatewaySync.
# The read bound is above the API server's own 60 s limit on a request, so a slow answer is
# still read; after it, urllib3 tries the call again on a new connection.
CALL_TIMEOUT = (10.0, 70.0)


def connect(kubeconfig: str | None, context: str | None = None) -> None:
    """Load the cluster configuration into the client's defaults, or fail in one line.

    An explicit --kubeconfig or --context wins; in a pod, its service account; elsewhere
    ~/.kube/config, as kubectl does.
    """
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    path = kubeconfig_path(kubeconfig, context, os.environ)
    if path is None:
        try:
            config.load_incluster_config()
        except ConfigException as e:
            raise ClusterUnavailable(f"in-cluster configuration: {e}") from None
        return
    try:
        config.load_kube_config(config_file=path, context=context)
    except (ConfigException, OSError, ValueError) as e:
        raise ClusterUnavailable(
            f"kubeconfig {path}: {_first_line(e)}; check --kubeconfig and --context"
        ) from None
    except Exception as e:  # yaml's errors: a file that is not YAML at all
        if type(e).__module__.startswith("yaml"):
            raise ClusterUnavailable(f"kubeconfig {path}: not valid YAML") from None
        raise


def context_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace kubectl would use: the context's, in a pod its own, else "default"."""
    from kubernetes import config

    path = kubeconfig_path(kubeconfig, context, os.environ)
    if path is None:
        try:
            with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as handle:
                return handle.read().strip() or "default"
        except OSError:
            return "default"
    try:
        every, active = config.list_kube_config_contexts(config_file=path)
    except Exception:  # connect() already read it; a namespace is no reason to fail here
        return "default"
    chosen = next((c for c in every if c.get("name") == context), active) if context else active
    return str((chosen.get("context") or {}).get("namespace") or "default")


def bounded_client(
    configuration: Any = None, *, timeout: tuple[float, float] = CALL_TIMEOUT
) -> Any:
    """An ApiClient (on `configuration`, else the loaded defaults) whose every call made without
    a `_request_timeout` of its own gets `timeout`."""
    from kubernetes import client

    class Bounded(client.ApiClient):
        def call_api(self, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("_request_timeout") is None:
                kwargs["_request_timeout"] = timeout
            return super().call_api(*args, **kwargs)

    return Bounded(configuration)


def probe() -> None:
    """Ask the API server for its version; fail in one line if it does not answer."""
    from kubernetes import client

    configuration = client.Configuration.get_default_copy()
    configuration.retries = 0  # one try: urllib3's retries would each log a warning line
    with api_errors("reaching the API server"), client.ApiClient(configuration) as api:
        client.VersionApi(api).get_code(_request_timeout=TIMEOUT)


@contextlib.contextmanager
def api_errors(doing: str) -> Iterator[None]:
    """Turn the client's connection and HTTP errors into ClusterUnavailable, naming the server."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    server = client.Configuration.get_default_copy().host
    try:
        yield
    except ApiException as e:
        raise ClusterUnavailable(f"{doing} at {server}: {_refusal(e)}") from None
    except HTTPError as e:
        reason = _first_line(getattr(e, "reason", None) or e).rsplit(": ", 1)[-1]
        raise ClusterUnavailable(
            f"cannot reach the API server at {server} ({reason}); check --kubeconfig and "
            "--context, and that the cluster is running"
        ) from None


def _refusal(error: Any) -> str:
    status = getattr(error, "status", None)
    if status == 401:
        return "401 Unauthorized: the kubeconfig's credentials were refused (expired token?)"
    if status == 403:
        return "403 Forbidden: this user or service account lacks the RBAC permission"
    if status == 404:
        return "404 Not Found: is the GatewaySync CRD installed? (see docs/install.md)"
    return f"{status} {getattr(error, 'reason', '')}".strip()


def _first_line(error: object) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__
