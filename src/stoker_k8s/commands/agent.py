"""`stoker agent`: the in-cluster sidecar, configured by the environment the webhook injects."""
# ruff: noqa: E402 (requests is imported after the lines that keep its extras out)

from __future__ import annotations

import os
import signal
import sys
import warnings

# Before requests is first imported: it loads a character-detection package (charset_normalizer,
# 2.5 MiB in every sidecar) that the agent never needs (the API server and the gateway answer
# JSON; requests falls back to UTF-8 without one). Issue 18: an agent idles under 40 MiB.
sys.modules.setdefault("charset_normalizer", None)  # type: ignore[arg-type]
sys.modules.setdefault("chardet", None)  # type: ignore[arg-type]
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Unable to find acceptable character detection")
    import requests  # noqa: F401

import click

from stoker_agent import logs
from stoker_agent.applying import Applier
from stoker_agent.booting import Boot
from stoker_agent.health import AgentMetrics, HealthServer
from stoker_agent.healthwindow import Checker
from stoker_agent.loop import AgentLoop
from stoker_core import metadata as formats
from stoker_core.errors import InvalidInput
from stoker_core.status import SyncRecord
from stoker_k8s.agentapi import AgentApi, ConfigMapWatch
from stoker_k8s.agentports import AgentEnv, ConfigMapMetadata, ConfigMapStatus, gateway_restarts
from stoker_k8s.apiaccess import choose
from stoker_k8s.kubeflags import kube_options


class _Both:
    """Status to the ConfigMap and to the metrics."""

    def __init__(self, status: ConfigMapStatus, metrics: AgentMetrics) -> None:
        self._status, self._metrics = status, metrics

    def write(self, record: SyncRecord) -> None:
        self._metrics.observe(record)
        self._status.write(record)


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
    # In a pod, the agent's own identity, never the pod's ServiceAccount token (H15). No
    # start-up probe: the agent keeps the gateway as it is through an API outage. Its own small
    # client, not the `kubernetes` package: see docs/architecture.md, "The agent's API client".
    api = AgentApi(choose(kubeconfig, context, dict(os.environ)))
    # The gateway container starts once /startupz passes: after the first sync, or after the
    # start-up timeout (stoker_core.preboot), counted from here.
    loop = AgentLoop(
        ConfigMapMetadata(api, env),
        _Both(ConfigMapStatus(api, env), metrics),
        observer=metrics,
        boot=Boot(env.startup_timeout),
        checker=Checker(restarts=gateway_restarts(api, env)),
    )
    server = HealthServer(loop.health, metrics, port=env.health_port).start()
    signal.signal(signal.SIGTERM, lambda *_: loop.stop())
    signal.signal(signal.SIGINT, lambda *_: loop.stop())
    # Watch the metadata ConfigMap: a new commit wakes the loop at once; the poll is a fallback.
    watcher = ConfigMapWatch(
        api, env.cr_namespace, formats.name_for(env.cr_name), loop.wake
    ).start()
    try:
        with Applier(env.data_path) as applier:
            applier.recover()  # /startupz waits for a consistent data directory, then the sync
        loop.run(poll=30.0)
    finally:
        watcher.stop()
        server.stop()
