"""`stoker webhook`: the admission webhooks, served by gunicorn over TLS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from stoker_core.errors import InvalidInput
from stoker_core.injection import InjectionSettings
from stoker_core.model import GatewaySync
from stoker_core.validation import load
from stoker_k8s.admission import MAX_REVIEW, ApprovalSettings, Unavailable, make_app
from stoker_k8s.connection import api_errors, connect, kube_options, probe
from stoker_k8s.events import EventAggregator
from stoker_k8s.gunicorn import serve
from stoker_k8s.intake import Limits
from stoker_k8s.metrics import WebhookMetrics
from stoker_k8s.selfcert import ensure

# (connect, read) seconds for the GatewaySync listing each pod review needs: below the pod
# webhook's default timeoutSeconds (5), so a slow API server gets a 503 (the failurePolicy
# decides) while the API server still waits, rather than a review that outlasts it.
LIST_TIMEOUT = (1.5, 3.0)


def _clients() -> tuple[Any, Any]:
    """The GatewaySync lister and the event recorder the admission functions use."""
    import urllib3
    from kubernetes import client  # configured by connection.connect before

    listing_config = client.Configuration.get_default_copy()
    # One try after a timeout or a refused connection (urllib3's three retries would outlast
    # the review); a 429 or 503 that says when to come back (API priority and fairness, an
    # API server starting) is tried once more.
    listing_config.retries = urllib3.Retry(total=1, connect=0, read=0, redirect=0, other=0)
    api = client.CustomObjectsApi(client.ApiClient(listing_config))
    core: Any = client.CoreV1Api()  # the typed stubs want model objects; dicts serialise the same

    def create_event(namespace: str, body: dict[str, Any]) -> str:
        name: str = core.create_namespaced_event(namespace, body, _request_timeout=5).metadata.name
        return name

    def patch_event(namespace: str, name: str, changes: dict[str, Any]) -> None:
        core.patch_namespaced_event(name, namespace, changes, _request_timeout=5)

    record_event = EventAggregator(create_event, patch_event).record

    def list_crs(namespace: str) -> dict[str, GatewaySync]:
        listing: Any = api.list_namespaced_custom_object(
            "stoker.io", "v1alpha1", namespace, "gatewaysyncs", _request_timeout=LIST_TIMEOUT
        )
        items = listing["items"]
        out = {}
        for item in items:
            # The spec decides; the status is the controller's and may hold fields of a newer
            # release (an upgrade's skew): a strict read of it denied every new gateway pod.
            # The spec too is read leniently: the API server checked it against its CRD, which
            # may be newer than this webhook while an upgrade rolls out.
            item = {key: value for key, value in item.items() if key != "status"}
            try:
                out[item["metadata"]["name"]] = load(item, lenient=True)
            except InvalidInput:
                continue  # an invalid CR cannot be injected for; its own condition says why
        return out

    return list_crs, record_event


def _approval(namespace: str, secret: str | None) -> ApprovalSettings:
    """The approval review's key (Secret `secret`, made if missing; none without it) and the
    access check both reviews use: a SubjectAccessReview of verb `approve` on the GatewaySync
    for the request's user (approving, and removing an approval gate from the spec)."""
    import datetime as dt

    from kubernetes import client

    from stoker_k8s import approvalkey

    key = b""
    if secret:
        with api_errors(f"keeping the approval key in Secret {namespace}/{secret}"):
            key = approvalkey.ensure(client.CoreV1Api(), namespace, secret)
    config = client.Configuration.get_default_copy()
    config.retries = 0  # within the review's timeout: a slow answer is a 503, never a wait
    authz: Any = client.AuthorizationV1Api(client.ApiClient(config))

    def may_approve(user: Mapping[str, Any], namespace: str, name: str) -> bool:
        spec = {
            "user": user.get("username"),
            "groups": user.get("groups"),
            "uid": user.get("uid"),
            "extra": user.get("extra"),
            "resourceAttributes": {
                "group": "stoker.io",
                "resource": "gatewaysyncs",
                "verb": "approve",
                "namespace": namespace,
                "name": name,
            },
        }
        body = {"spec": {k: v for k, v in spec.items() if v}}
        try:
            answer = authz.create_subject_access_review(body, _request_timeout=LIST_TIMEOUT)
        except Exception as e:  # never a 200 that was not checked: failurePolicy Fail refuses
            first = (str(e).splitlines() or [""])[0][:200]
            raise Unavailable(
                f"asking the API server whether {spec['user']} may approve: "
                f"{type(e).__name__}: {first}"
            ) from e
        return bool(answer.status.allowed)

    def now() -> str:
        return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    return ApprovalSettings(key=key, may_approve=may_approve, now=now)


@click.command()
@click.option("--bind", default="0.0.0.0:9443", show_default=True, help="HOST:PORT to listen on.")
@click.option("--cert-file", type=click.Path(dir_okay=False), help="TLS cert.")
@click.option("--key-file", type=click.Path(dir_okay=False), help="TLS key.")
@click.option(
    "--self-signed-secret",
    help="Without cert files: keep a self-made CA and "
    "certificate in this Secret and write the CA into the webhook configurations.",
)
@click.option(
    "-n",
    "--namespace",
    envvar="POD_NAMESPACE",
    default="stoker-system",
    show_default=True,
    help="Namespace of that Secret and of the webhook Service.",
)
@click.option(
    "--service-name",
    default="stoker-webhook",
    show_default=True,
    help="The webhook Service (the certificate's DNS names).",
)
@click.option("--mutating-config", multiple=True, help="MutatingWebhookConfiguration to patch.")
@click.option("--validating-config", multiple=True, help="ValidatingWebhookConfiguration to patch.")
@kube_options
@click.option(
    "--agent-image",
    default=InjectionSettings().default_image,
    show_default=True,
    help="Agent image when neither the pod nor the GatewaySync names one.",
)
@click.option(
    "--approval-key-secret",
    help="Stamp rollout approvals (/mutate-gatewaysync-approval) with the key in this Secret "
    "of --namespace, created if missing; without it every approval is refused (removing an "
    "approval gate from a spec needs the right to approve either way).",
)
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes.")
@click.option("--threads", default=4, show_default=True, help="Request threads per worker.")
def webhook(
    bind: str,
    cert_file: str | None,
    key_file: str | None,
    self_signed_secret: str | None,
    namespace: str,
    service_name: str,
    mutating_config: tuple[str, ...],
    validating_config: tuple[str, ...],
    kubeconfig: str | None,
    context: str | None,
    agent_image: str,
    approval_key_secret: str | None,
    workers: int,
    threads: int,
) -> None:
    """Serve /mutate-v1-pod, /validate-gatewaysync and /mutate-gatewaysync-approval over
    HTTPS."""
    connect(kubeconfig, context)
    probe()  # a server that does not answer is one line and exit 1, not a failing review each
    lister, record_event = _clients()
    if self_signed_secret:
        from kubernetes import client

        with api_errors(f"keeping the webhook certificate in Secret {self_signed_secret}"):
            cert_file, key_file = ensure(
                client.CoreV1Api(),
                client.AdmissionregistrationV1Api(),
                namespace=namespace,
                secret=self_signed_secret,
                service=service_name,
                mutating=list(mutating_config),
                validating=list(validating_config),
                directory="/tmp/stoker-webhook-tls",
            )
    if not cert_file or not key_file:
        raise click.UsageError("give --cert-file and --key-file, or --self-signed-secret")
    approval = _approval(namespace, approval_key_secret)
    metrics = WebhookMetrics.shared()  # before gunicorn forks its workers
    app = make_app(
        lister, InjectionSettings(default_image=agent_image), record_event, metrics, approval
    )
    serve(
        app,
        bind=bind,
        cert_file=cert_file,
        key_file=key_file,
        workers=workers,
        threads=threads,
        limits=Limits(max_body=MAX_REVIEW),
        on_exit=metrics.close,
    )
