"""`stoker history`: what a GatewaySync published (`status.history`: who asked for each
commit, its steps, its outcome per gateway), or with `--data-dir` what standalone `stoker
sync` recorded in a data directory. One command for both; the data-directory form imports no
Kubernetes client (stoker_agent.commands.history does the work)."""

from __future__ import annotations

from typing import Any

import click

from stoker_agent.commands import history as standalone
from stoker_agent.commands.common import emit, output_option, reporting_errors
from stoker_core import fleethistory, history
from stoker_core.errors import StokerError, UsageError
from stoker_core.markup import visible
from stoker_core.model import HistoryEntry
from stoker_k8s.connection import TIMEOUT, api_errors, connect, context_namespace, kube_options

GROUP, VERSION, PLURAL = "stoker.io", "v1alpha1", "gatewaysyncs"
COLUMNS = ("PUBLISHED", "COMMIT", "REF", "OUTCOME", "STEPS", "GATEWAYS", "REQUESTED BY", "APPROVED")


class NotFound(StokerError):
    """The GatewaySync named does not exist."""


@click.command()
@click.argument("gatewaysync", required=False)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="A gateway's data directory: the syncs `stoker sync` recorded there instead.",
)
@click.option("-n", "--namespace", help="The GatewaySync's namespace (default: the context's).")
@kube_options
@click.option(
    "--limit",
    type=click.IntRange(1, history.MAX_LIMIT),
    default=None,
    help="Show only the newest N entries.",
)
@output_option
@reporting_errors
def history_command(
    gatewaysync: str | None,
    data_dir: str | None,
    namespace: str | None,
    kubeconfig: str | None,
    context: str | None,
    limit: int | None,
    output: str,
) -> None:
    """Show GATEWAYSYNC's published commits (status.history), newest first: who asked for
    each, its steps, its outcome per gateway. With --data-dir DIR instead: the syncs `stoker
    sync` recorded in DIR."""
    if (gatewaysync is None) == (data_dir is None):
        raise UsageError("give a GatewaySync name or --data-dir DIR, not both or neither")
    if data_dir is not None:
        standalone.show(data_dir, limit, output)
        return
    assert gatewaysync is not None
    connect(kubeconfig, context)
    where = namespace or context_namespace(kubeconfig, context)
    found = fleethistory.read(_status(where, gatewaysync).get("history"))
    entries = list(reversed(found.entries))[:limit]
    if found.damaged:
        click.echo(f"warning: status.history: {found.damaged} damaged entries skipped", err=True)
    if output != "text":
        emit(
            {
                "schemaVersion": 1,
                "namespace": where,
                "name": gatewaysync,
                "entries": fleethistory.dump(entries),
                "damagedEntries": found.damaged,
            },
            output,
        )
        return
    if not entries:
        click.echo(
            f"no commit published yet by GatewaySync {visible(where)}/{visible(gatewaysync)}"
        )
        return
    rows = [COLUMNS, *(_row(e) for e in entries)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _status(namespace: str, name: str) -> dict[str, Any]:
    """The GatewaySync's status ({} before its first reconcile)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = client.CustomObjectsApi()
    with api_errors(f"reading GatewaySync {namespace}/{name}"):
        try:
            found: Any = api.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=TIMEOUT
            )
        except ApiException as e:
            if e.status != 404:
                raise
            raise NotFound(
                f"GatewaySync {namespace}/{name} not found: check the name and -n NAMESPACE"
            ) from None
    status = found.get("status") if isinstance(found, dict) else None
    return status if isinstance(status, dict) else {}


def _row(entry: HistoryEntry) -> tuple[str, ...]:
    """One table row; every cell from the status is shown with its control and bidi escaped."""
    asked = entry.requested_by
    by = asked.via or "-"
    if asked.source or asked.delivery:
        by += f": {' '.join(p for p in (asked.source, asked.delivery) if p)}"
    done = sum(1 for s in entry.steps if s.finished_at)
    tally: dict[str, int] = {}
    for g in entry.gateways:
        tally[g.outcome] = tally.get(g.outcome, 0) + 1
    gateways = ", ".join(f"{n} {outcome}" for outcome, n in sorted(tally.items())) or "-"
    if entry.gateways_not_shown:
        gateways += f" (+{entry.gateways_not_shown} not shown)"
    cells = (
        entry.published_at or "-",
        entry.commit[:12],
        entry.ref or "-",
        entry.outcome or "-",
        f"{done}/{len(entry.steps)}",
        gateways,
        by,
        ", ".join(f"{a.gate}: {a.user}" for a in entry.approved_by) or "-",
    )
    return tuple(visible(cell) for cell in cells)
