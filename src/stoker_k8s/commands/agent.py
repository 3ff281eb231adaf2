"""`stoker agent`: the in-cluster sidecar, configured by the environment the webhook injects."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import click

from stoker_agent import logs
from stoker_agent.applying import Applier
from stoker_agent.health import AgentMetrics, HealthServer
from stoker_agent.loop import AgentLoop
from stoker_core import metadata as formats
from stoker_core.errors import InvalidInput
from stoker_core.status import SyncRecord
from stoker_k8s.agentports import (
    AgentEnv,
    ConfigMapMetadata,
    ConfigMapStatus,
    agent_configuration,
)
from stoker_k8s.connection import connect, kube_options
from stoker_k8s.runtime import Informer


class _Both:
    """Status to the ConfigMap and to the metrics."""

    def __init__(self, status: ConfigMapStatus, metrics: AgentMetrics) -> None:
        self._status, self._metrics = status, metrics

    def write(self, record: SyncRecord) -> None:
        self._metrics.observe(record)
        self._status.write(record)


def _client(kubeconfig: str | None, context: str | None) -> Any:
    from kubernetes import client

    if not kubeconfig and not context and os.environ.get("KUBERNETES_SERVICE_HOST"):
        # In a pod: the agent's own identity, never the pod's ServiceAccount token, which
        # the gateway container holds too (H15).
        return client.CoreV1Api(client.ApiClient(agent_configuration(dict(os.environ))))
    # No start-up probe: the agent keeps the gateway as it is through an API outage.
    connect(kubeconfig, context)
    return client.CoreV1Api()


@click.command()
@kube_options
@click.option(
    "--log-format", type=click.Choice(["json", "text"]), default="json", show_default=True
)
def agent(kubeconfig: str | None, context: str | None, log_format: str) -> None:
    """Keep this pod's gateway in sync with what the controller publishes."""
    logs.setup("info", log_format)
    try:
        env = AgentEnv.from_environ(dict(os.environ))
    except InvalidInput as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    for secret_file in (env.api_key_file, env.token_file):
        if secret_file and os.path.isfile(secret_file):
            with open(secret_file, encoding="utf-8") as handle:
                logs.register_secret(handle.read())
    os.makedirs(env.repo_path, exist_ok=True)
    metrics = AgentMetrics()
    core = _client(kubeconfig, context)
    loop = AgentLoop(ConfigMapMetadata(core, env), _Both(ConfigMapStatus(core, env), metrics))
    server = HealthServer(loop.health, metrics, port=env.health_port).start()
    signal.signal(signal.SIGTERM, lambda *_: loop.stop())
    signal.signal(signal.SIGINT, lambda *_: loop.stop())
    # Watch the metadata ConfigMap: a new commit wakes the loop at once; the poll is a fallback.
    watcher = Informer(
        core.list_namespaced_config_map,
        lambda kind, obj: loop.wake(),
        namespace=env.cr_namespace,
        field_selector=f"metadata.name={formats.name_for(env.cr_name)}",
    ).start()
    try:
        with Applier(env.data_path) as applier:
            applier.recover()  # /startupz passes only once the data directory is consistent
        loop.run(poll=30.0)
    finally:
        watcher.stop()
        server.stop()
