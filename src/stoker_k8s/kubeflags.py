"""What every Kubernetes command shares before it talks to the API server, with no client
imported: the kubectl flags, the default kubeconfig, and the error for a cluster out of reach
(the agent, which has its own small client, imports only this)."""

from __future__ import annotations

from collections.abc import Callable
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
