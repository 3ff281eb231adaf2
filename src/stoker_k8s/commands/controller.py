"""`stoker controller`: reconcile GatewaySyncs on watch events and at each one's own
`spec.polling.interval`."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading

import click
from prometheus_client import start_http_server

from stoker_agent import logs
from stoker_agent.commands.common import Period
from stoker_k8s import crdcheck
from stoker_k8s.connection import bounded_client, connect, kube_options, probe
from stoker_k8s.controller import Controller
from stoker_k8s.leader import LeaderElector
from stoker_k8s.manager import Manager
from stoker_k8s.metrics import ControllerMetrics

log = logging.getLogger("stoker.controller")


@click.command()
@kube_options
@click.option(
    "--interval",
    default=None,
    hidden=True,
    help="Ignored (each GatewaySync's spec.polling.interval decides); kept for old manifests.",
)
@click.option(
    "--backoff",
    type=Period(),
    default="30s",
    show_default=True,
    help="First retry delay after a failed pass; it doubles on each failure in a row.",
)
@click.option(
    "--backoff-cap",
    type=Period(),
    default="5m",
    show_default=True,
    help="Longest delay between retries.",
)
@click.option(
    "--log-format", type=click.Choice(["json", "text"]), default="json", show_default=True
)
@click.option("--metrics-port", default=8080, show_default=True, help="Port of /metrics (0: off).")
@click.option(
    "--leader-election/--no-leader-election",
    default=True,
    show_default=True,
    help="Reconcile only while holding the Lease (run several replicas safely).",
)
@click.option(
    "--lease-namespace",
    envvar="POD_NAMESPACE",
    default="stoker-system",
    show_default=True,
    help="Namespace of the Lease.",
)
@click.option("--lease-seconds", default=15, show_default=True, help="Lease duration.")
@click.option(
    "--namespaces",
    envvar="STOKER_NAMESPACES",
    default=None,
    help="Comma-separated namespaces whose GatewaySyncs this installation serves (the chart "
    "value `namespaces`, with the RBAC to match); unset: every namespace (needs cluster-wide "
    "rights, which the chart never grants).",
)
def controller(
    kubeconfig: str | None,
    context: str | None,
    interval: str | None,
    backoff: float,
    backoff_cap: float,
    log_format: str,
    metrics_port: int,
    leader_election: bool,
    lease_namespace: str,
    lease_seconds: int,
    namespaces: str | None,
) -> None:
    """Resolve refs, publish metadata, and report gateway status on every GatewaySync."""
    from kubernetes import client

    logs.setup("info", log_format)
    if interval is not None:
        log.warning("--interval is ignored: each GatewaySync's spec.polling.interval decides")
    connect(kubeconfig, context)
    probe()  # a server that does not answer is one line and exit 1, not a watch that retries
    metrics = ControllerMetrics()
    if metrics_port:
        start_http_server(metrics_port, registry=metrics.registry)
    served = None if namespaces is None else [n.strip() for n in namespaces.split(",") if n.strip()]
    api = bounded_client()  # no call waits on a silent connection for good
    ctl = Controller(
        client.CoreV1Api(api), client.CustomObjectsApi(api), metrics, namespaces=served
    )
    fit = crdcheck.check(ctl.core.api_client)  # Helm never upgrades crds/: say so plainly
    if fit is not None and fit[0]:
        log.warning("%s", fit[0].message())
        ctl.use_crd(fit[0], fit[1].status_schema())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    elector = (
        LeaderElector(
            client.CoordinationV1Api(api),
            lease_namespace,
            "stoker-controller",
            f"{socket.gethostname()}-{os.getpid()}",
            lease_seconds=lease_seconds,
        )
        if leader_election
        else None
    )
    Manager(
        ctl,
        elector=elector,
        lease_seconds=lease_seconds,
        backoff=(backoff, backoff_cap),
    ).run(stop)
    # The informers' watch threads may still sit in a blocking read; no work is left, so end
    # now rather than let interpreter shutdown race those threads (it aborted the process).
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)
