"""`stoker webhook`: the admission webhooks, served by gunicorn over TLS."""

from __future__ import annotations

from typing import Any

import click

from stoker_core.errors import InvalidInput
from stoker_core.injection import InjectionSettings
from stoker_core.model import GatewaySync
from stoker_core.validation import load
from stoker_k8s.admission import make_app
from stoker_k8s.gunicorn import serve


def _lister(kubeconfig: str | None) -> Any:
    from kubernetes import client, config

    if kubeconfig:
        config.load_kube_config(kubeconfig)
    else:
        config.load_incluster_config()
    api = client.CustomObjectsApi()

    def list_crs(namespace: str) -> dict[str, GatewaySync]:
        listing: Any = api.list_namespaced_custom_object(
            "stoker.io", "v1alpha1", namespace, "gatewaysyncs"
        )
        items = listing["items"]
        out = {}
        for item in items:
            try:
                out[item["metadata"]["name"]] = load(item)
            except InvalidInput:
                continue  # an invalid CR cannot be injected for; its own condition says why
        return out

    return list_crs


@click.command()
@click.option("--bind", default="0.0.0.0:9443", show_default=True, help="HOST:PORT to listen on.")
@click.option("--cert-file", required=True, type=click.Path(dir_okay=False), help="TLS cert.")
@click.option("--key-file", required=True, type=click.Path(dir_okay=False), help="TLS key.")
@click.option("--kubeconfig", envvar="KUBECONFIG", help="Outside a cluster: the kubeconfig.")
@click.option(
    "--agent-image",
    default=InjectionSettings().default_image,
    show_default=True,
    help="Agent image when neither the pod nor the GatewaySync names one.",
)
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes.")
def webhook(
    bind: str, cert_file: str, key_file: str, kubeconfig: str | None, agent_image: str, workers: int
) -> None:
    """Serve /mutate-v1-pod and /validate-gatewaysync over HTTPS."""
    app = make_app(_lister(kubeconfig), InjectionSettings(default_image=agent_image))
    serve(app, bind=bind, cert_file=cert_file, key_file=key_file, workers=workers)
