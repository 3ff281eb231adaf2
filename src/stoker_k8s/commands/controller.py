"""`stoker controller`: reconcile GatewaySyncs every --interval."""

from __future__ import annotations

import logging
import os
import signal
import threading

import click
from prometheus_client import start_http_server

from stoker_agent import logs
from stoker_core.durations import parse_duration
from stoker_k8s.controller import Controller
from stoker_k8s.metrics import ControllerMetrics

log = logging.getLogger("stoker.controller")


@click.command()
@click.option("--interval", default="10s", show_default=True, help="Time between passes.")
@click.option(
    "--log-format", type=click.Choice(["json", "text"]), default="json", show_default=True
)
@click.option("--metrics-port", default=8080, show_default=True, help="Port of /metrics (0: off).")
def controller(interval: str, log_format: str, metrics_port: int) -> None:
    """Resolve refs, publish metadata, and report gateway status on every GatewaySync."""
    from kubernetes import client, config

    logs.setup("info", log_format)
    if os.environ.get("KUBECONFIG"):
        config.load_kube_config(os.environ["KUBECONFIG"])
    else:
        config.load_incluster_config()
    metrics = ControllerMetrics()
    if metrics_port:
        start_http_server(metrics_port, registry=metrics.registry)
    ctl = Controller(client.CoreV1Api(), client.CustomObjectsApi(), metrics)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    period = parse_duration(interval)
    while not stop.is_set():
        try:
            ctl.reconcile_all()
        except Exception:  # the API server being away must not end the controller
            log.exception("reconcile pass failed")
        stop.wait(period)
