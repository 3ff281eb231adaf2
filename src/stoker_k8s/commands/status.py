"""`stoker status`: the fleet at a glance — every GatewaySync, its ref and commit, each gateway's
state and last sync, and why anything is not Ready."""

from __future__ import annotations

from typing import Any

import click

from stoker_agent.commands.common import emit, output_option, reporting_errors
from stoker_core.conditions import ABNORMAL_TRUE, abnormal
from stoker_core.vocabulary import Condition, Reason
from stoker_k8s.connection import TIMEOUT, api_errors, connect, kube_options

# Shown on lines of their own: Ready as the row's status, Progressing as the rollout's.
QUIET = ("Ready", Condition.PROGRESSING)


def summarize(item: dict[str, Any]) -> dict[str, Any]:
    """One GatewaySync as the status command reports it."""
    status = item.get("status") or {}
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    ready = conditions.get("Ready", {})
    return {
        "namespace": item["metadata"]["namespace"],
        "name": item["metadata"]["name"],
        "ref": status.get("lastSyncRef") or item["spec"]["git"]["ref"],
        "commit": status.get("lastSyncCommitShort", ""),
        "ready": ready.get("status", "Unknown"),
        "status": ready.get("message", "not reconciled yet"),
        "gateways": conditions.get("AllGatewaysSynced", {}).get("message", ""),
        "restart": conditions.get("RestartRequired", {}).get("status", ""),
        "problems": [
            f"{c['type']}: {c['message']}"
            for c in conditions.values()
            if abnormal(c) and c["type"] not in (*QUIET, *ABNORMAL_TRUE)
        ],
        "rollout": _rollout(item, conditions.get(Condition.PROGRESSING)),
        # What does not hold Ready but needs someone: a restart owed, files that differ.
        "notes": [
            f"{c['type']}: {c['message']}"
            for c in conditions.values()
            if c["type"] in ABNORMAL_TRUE and abnormal(c)
        ],
        "discovered": [
            {
                "name": g.get("name"),
                "pod": g.get("podName"),
                "syncStatus": g.get("syncStatus"),
                "syncedCommit": (g.get("syncedCommit") or "")[:7],
                "targetCommit": (g.get("targetCommit") or "")[:7],
                "lastSyncTime": g.get("lastSyncTime", ""),
            }
            for g in status.get("discoveredGateways") or []
        ],
    }


def _rollout(item: dict[str, Any], progressing: dict[str, Any] | None) -> dict[str, str] | None:
    """Where the GatewaySync's rollout is, and the command that moves it on when it waits on a
    person (an approval, or a resume after a halt); None without a rollout."""
    if progressing is None:
        return None
    meta, record = item["metadata"], (item.get("status") or {}).get("rollout") or {}
    where = f"{meta['name']} -n {meta['namespace']}"
    gate, pending = str(record.get("awaiting") or ""), str(record.get("pendingCommit") or "")
    command = ""
    if progressing.get("reason") == Reason.ROLLOUT_HALTED:
        command = f"stoker rollout resume {where}"
    elif gate and pending:
        kind, _, step = gate.partition(":")
        flag = f" --{kind} {step}" if step else ""
        command = f"stoker approve {meta['name']} {pending[:12]}{flag} -n {meta['namespace']}"
    return {
        "reason": str(progressing.get("reason", "")),
        "message": str(progressing.get("message", "")),
        "next": command,
    }


@click.command()
@kube_options
@click.option("-n", "--namespace", help="Only this namespace (default: all).")
@output_option
@reporting_errors
def status(kubeconfig: str | None, context: str | None, namespace: str | None, output: str) -> None:
    """Show every GatewaySync, its gateways and what is wrong."""
    from kubernetes import client

    connect(kubeconfig, context)
    api = client.CustomObjectsApi()
    with api_errors("listing GatewaySyncs"):
        listing: Any = (
            api.list_namespaced_custom_object(
                "stoker.io", "v1alpha1", namespace, "gatewaysyncs", _request_timeout=TIMEOUT
            )
            if namespace
            else api.list_cluster_custom_object(
                "stoker.io", "v1alpha1", "gatewaysyncs", _request_timeout=TIMEOUT
            )
        )
    rows = sorted(
        (summarize(i) for i in listing["items"]), key=lambda r: (r["namespace"], r["name"])
    )
    if output != "text":
        emit({"schemaVersion": 1, "gatewaysyncs": rows}, output)
        return
    if not rows:
        click.echo("no GatewaySync found")
        return
    header = (
        f"{'NAMESPACE':16} {'NAME':20} {'REF':14} {'COMMIT':8} {'READY':6} {'RESTART':8} "
        f"{'GATEWAYS':12} STATUS"
    )
    click.echo(header)
    for row in rows:
        colour = "green" if row["ready"] == "True" else "red"
        click.echo(
            f"{row['namespace']:16} {row['name']:20} {row['ref']:14} {row['commit']:8} "
            + click.style(f"{row['ready']:6}", fg=colour)
            + f" {row['restart'] or '-':8} {row['gateways']:12} {row['status']}"
        )
        for gateway in row["discovered"]:
            wanted = gateway["targetCommit"]
            behind = (
                f" (should be at {wanted})" if wanted and wanted != gateway["syncedCommit"] else ""
            )
            click.echo(
                f"    {gateway['name']} ({gateway['pod']}): {gateway['syncStatus']} "
                f"{gateway['syncedCommit']}{behind} {gateway['lastSyncTime']}"
            )
        rollout = row["rollout"]
        if rollout:
            halted = rollout["reason"] == Reason.ROLLOUT_HALTED
            line = f"    > rollout: {rollout['reason']}: {rollout['message']}"
            click.echo(click.style(line, fg="yellow" if halted else None))
            if rollout["next"]:
                fix = " (or push a fix: a newer commit starts again)" if halted else ""
                click.echo(f"      to go on: {rollout['next']}{fix}")
        for problem in row["problems"]:
            click.echo(click.style(f"    ! {problem}", fg="yellow"))
        for note in row["notes"]:
            click.echo(click.style(f"    * {note}", fg="cyan"))
