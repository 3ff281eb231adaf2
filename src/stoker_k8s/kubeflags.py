"""What every Kubernetes command shares before it talks to the API server, with no client
imported: the kubectl flags, the default kubeconfig, and the error for a cluster out of reach
(the agent, which has its own small client, imports only this)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from stoker_core.errors import StokerError

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_KUBECONFIG = "~/.kube/config"


class ClusterUnavailable(StokerError):
    """No usable cluster configuration, or the API server does not answer or refuses us."""


def kube_options(func: F) -> F:
    """Add --kubeconfig and --context (the kubectl flags) to a command."""
    func = click.option(
        "--context", help="kubeconfig context to use (default: its current-context)."
    )(func)
    return click.option(
        "--kubeconfig",
        envvar="KUBECONFIG",
        type=click.Path(dir_okay=False),
        help=f"kubeconfig file (default: $KUBECONFIG, else in-cluster, else {DEFAULT_KUBECONFIG}).",
    )(func)


def kubeconfig_path(
    kubeconfig: str | None, context: str | None, environ: Mapping[str, str]
) -> str | None:
    """The kubeconfig to read, or None for the pod's own credentials: an explicit --kubeconfig
    or --context wins; in a pod, its identity; elsewhere ~/.kube/config, as kubectl does."""
    if not kubeconfig and not context and environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    default = os.path.expanduser(DEFAULT_KUBECONFIG)
    path = kubeconfig or default
    if not kubeconfig and not os.path.exists(default):
        raise ClusterUnavailable(
            "no kubeconfig: not in a cluster and no ~/.kube/config; "
            "give --kubeconfig FILE or set KUBECONFIG"
        )
    if os.pathsep not in path and not os.path.exists(path):
        raise ClusterUnavailable(f"kubeconfig {path} does not exist; check --kubeconfig")
    return path
