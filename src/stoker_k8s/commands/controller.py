"""`stoker controller`: reconcile GatewaySyncs every --interval."""

from __future__ import annotations

import logging
import os
import signal
import threading

import click

from stoker_agent import logs
from stoker_core.durations import parse_duration
from stoker_k8s.controller import Controller

log = logging.getLogger("stoker.controller")


@click.command()
@click.option("--interval", default="10s", show_default=True, help="Time between passes.")
@click.option(
    "--log-format", type=click.Choice(["json", "text"]), default="json", show_default=True
)
def controller(interval: str, log_format: str) -> None:
    """Resolve refs, publish metadata, and report gateway status on every GatewaySync."""
    from kubernetes import client, config

    logs.setup("info", log_format)
    if os.environ.get("KUBECONFIG"):
        config.load_kube_config(os.environ["KUBECONFIG"])
    else:
        config.load_incluster_config()
    ctl = Controller(client.CoreV1Api(), client.CustomObjectsApi())
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
