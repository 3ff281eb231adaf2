"""`stoker receiver`: the push receiver, served by gunicorn (one process, many threads, so
replay memory and rate limits are shared)."""

from __future__ import annotations

import base64
import logging
import os
import threading
from typing import Any

import click

from stoker_core.errors import InvalidInput
from stoker_core.receiving import MAX_BODY, Secrets, trusted_networks
from stoker_k8s.connection import bounded_client, connect, kube_options, probe
from stoker_k8s.gunicorn import serve
from stoker_k8s.intake import Limits
from stoker_k8s.receiver import Conflict, Receiver, make_app
from stoker_k8s.runtime import Informer

# A delivery's reads and writes: a sender retries long before this, and a call on a connection
# gone silent must not hold a worker thread (and so every other delivery) for good.
CALL_TIMEOUT = (3.0, 10.0)


class KubeStore:
    """The receiver's Store over the official client. GatewaySyncs are read from a watch-fed
    cache once it has listed them, so a request (rejected ones included) costs the API server
    nothing but the annotation it sets; Secrets are always read fresh (a rotated or revoked
    secret takes effect at once)."""

    def __init__(self, configuration: Any = None) -> None:
        from kubernetes import client  # configured by connection.connect before

        api = bounded_client(configuration, timeout=CALL_TIMEOUT)  # the informer sets its own
        self._custom = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)
        self._errors = client.exceptions.ApiException
        self._informer: Informer | None = None
        self._lock = threading.Lock()
        # The namespaces the installation serves (the chart's `namespaces`); unset: every one.
        served = os.environ.get("STOKER_NAMESPACES")
        self._served = (
            None if served is None else {n.strip() for n in served.split(",") if n.strip()}
        )

    def _cache(self) -> Informer | None:
        # Started on first use, in the gunicorn worker: a thread started before the fork
        # would not exist in the worker.
        with self._lock:
            if self._informer is None:
                self._informer = Informer(
                    self._custom.list_cluster_custom_object,
                    lambda kind, obj: None,
                    group="stoker.io",
                    version="v1alpha1",
                    plural="gatewaysyncs",
                ).start()
            informer = self._informer
        return informer if informer.synced.is_set() else None

    def get(self, namespace: str, name: str, *, fresh: bool = False) -> dict[str, Any] | None:
        cache = None if fresh else self._cache()
        if cache is not None:
            found: dict[str, Any] | None = cache.lookup(namespace, name)
            return found
        try:
            body: dict[str, Any] = self._custom.get_namespaced_custom_object(  # type: ignore[assignment]
                "stoker.io", "v1alpha1", namespace, "gatewaysyncs", name
            )
        except self._errors as e:
            if e.status == 404:
                return None
            raise
        return body

    def annotate(
        self, namespace: str, name: str, annotations: dict[str, str], resource_version: str
    ) -> None:
        # A resourceVersion in a merge patch is a precondition: 409 when another write came
        # first, so two replicas never both act on one delivery or drop each other's record.
        patch = {"metadata": {"annotations": annotations, "resourceVersion": resource_version}}
        try:
            updated = self._custom.patch_namespaced_custom_object(
                "stoker.io", "v1alpha1", namespace, "gatewaysyncs", name, patch
            )
        except self._errors as e:
            if e.status == 409:
                raise Conflict(f"GatewaySync {namespace}/{name} changed") from e
            raise
        if self._informer is not None:
            self._informer.remember(updated)

    def secret(self, namespace: str, name: str) -> dict[str, str]:
        if self._served is not None and namespace not in self._served:
            return {}  # no Secret rights outside the served namespaces (H16): nothing to read
        try:
            data = self._core.read_namespaced_secret(name, namespace).data or {}
        except self._errors as e:
            if e.status == 404:
                return {}
            raise
        return {k: base64.b64decode(v).decode().strip() for k, v in data.items()}


log = logging.getLogger("stoker.receiver")


def _read(path: str | None, what: str) -> str | None:
    """A global secret's value; an absent file (a key the Secret does not hold) disables it."""
    if not path:
        return None
    if not os.path.exists(path):
        log.warning("%s: %s does not exist; that method is off for the global secret", what, path)
        return None
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip() or None


@click.command()
@click.option("--bind", default="0.0.0.0:9444", show_default=True, help="HOST:PORT to listen on.")
@click.option("--cert-file", type=click.Path(dir_okay=False), help="TLS cert (else plain HTTP).")
@click.option("--key-file", type=click.Path(dir_okay=False), help="TLS key.")
@kube_options
@click.option(
    "--hmac-secret-file",
    type=click.Path(dir_okay=False),
    help="Global HMAC key, for GatewaySyncs that name no secret of their own.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    help="Global bearer / GitLab token, for GatewaySyncs with no secret of their own.",
)
@click.option("--threads", default=8, show_default=True, help="Request threads.")
@click.option(
    "--trusted-proxies",
    envvar="STOKER_TRUSTED_PROXIES",
    default="",
    help="Comma-separated proxy addresses or CIDRs (your ingress controller's pods) whose "
    "X-Forwarded-For names the client; from any other peer it is ignored.",
)
def receiver(
    bind: str,
    cert_file: str | None,
    key_file: str | None,
    kubeconfig: str | None,
    context: str | None,
    hmac_secret_file: str | None,
    token_file: str | None,
    threads: int,
    trusted_proxies: str,
) -> None:
    """Serve POST /webhook/{namespace}/{crName}."""
    connect(kubeconfig, context)
    probe()  # a server that does not answer is one line and exit 1, not a 500 per delivery
    secrets = Secrets(
        hmac_key=_read(hmac_secret_file, "--hmac-secret-file"),
        token=_read(token_file, "--token-file"),
    )
    if secrets.hmac_key is None and secrets.token is None:
        log.warning(
            "no global secret: only GatewaySyncs naming receiver.secretName can be triggered"
        )
    try:
        trusted = trusted_networks(trusted_proxies)
    except InvalidInput as e:
        message = str(e.problems[0].message)
        raise click.BadParameter(message, param_hint="--trusted-proxies") from None
    app = make_app(Receiver(KubeStore(), secrets, trusted_proxies=trusted))
    # One process: the rate limits are per process (threads share them).
    serve(
        app,
        bind=bind,
        cert_file=cert_file,
        key_file=key_file,
        workers=1,
        threads=threads,
        limits=Limits(max_body=MAX_BODY),
    )
