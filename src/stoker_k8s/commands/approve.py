"""`stoker approve` and `stoker rollout resume`: approve the pending commit of a GatewaySync's
rollout (or restart a halted one) by writing its SHA under an `approval.stoker.io/` annotation.
The admission webhook checks the right to approve and stamps the approving user; this command
checks the commit first (no write for a commit that is not pending) and shows who was recorded.
"""

from __future__ import annotations

import json
from typing import Any

import click

from stoker_agent.commands.common import emit, output_option, reporting_errors
from stoker_core import approvals
from stoker_core.errors import StokerError, UsageError
from stoker_k8s.connection import TIMEOUT, api_errors, connect, context_namespace, kube_options

GROUP, VERSION, PLURAL = "stoker.io", "v1alpha1", "gatewaysyncs"


class NotApproved(StokerError):
    """The approval was not written, or written but not stamped (it counts for nothing)."""


def _read(api: Any, namespace: str, name: str) -> dict[str, Any]:
    from kubernetes.client.exceptions import ApiException

    try:
        found: dict[str, Any] = api.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _request_timeout=TIMEOUT
        )
    except ApiException as e:
        if e.status == 404:
            raise NotApproved(f"GatewaySync {namespace}/{name} not found") from None
        raise
    return found


def _full(commit: str, pending: str, gate: str, where: str) -> str:
    """The pending commit, if `commit` names it (in full or by a prefix of 7 or more)."""
    given = commit.strip().lower()
    if pending and len(given) >= 7 and pending.startswith(given):
        return pending
    if gate == approvals.RESUME_GATE:
        raise NotApproved(f"{where} has no halted rollout to resume (status.rollout.halted)")
    now = f"the pending commit is {pending}" if pending else "no commit is pending"
    raise NotApproved(
        f"commit {commit} is not the one awaiting approval in {where}: {now} (status.rollout)"
    )


def _write(api: Any, namespace: str, name: str, gate: str, commit: str) -> dict[str, Any]:
    """Write the commit under the gate's key; return the object as stored (stamped)."""
    from kubernetes.client.exceptions import ApiException

    key = approvals.key(gate)
    current = (_read(api, namespace, name)["metadata"].get("annotations") or {}).get(key)
    try:
        if current == commit:  # unstamped, written around the webhook: write it anew
            api.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name,
                {"metadata": {"annotations": {key: None}}}, _request_timeout=TIMEOUT,
            )  # fmt: skip
        stored: dict[str, Any] = api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name,
            {"metadata": {"annotations": {key: commit}}}, _request_timeout=TIMEOUT,
        )  # fmt: skip
    except ApiException as e:
        said = _message(e)
        if said:  # the webhook's refusal (who, what right is missing) or the API server's
            raise NotApproved(f"approving {commit[:12]} in {namespace}/{name}: {said}") from None
        raise
    return stored


def _message(error: Any) -> str:
    """The API server's message in a refusal (an admission webhook's is in it), "" if none."""
    try:
        body = json.loads(error.body or "")
    except (TypeError, ValueError):
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return message[:1000] if isinstance(message, str) else ""


def run(namespace: str, name: str, gate: str, commit: str, output: str) -> None:
    """Check, write, and report one approval."""
    from kubernetes import client

    long = approvals.too_long(gate)
    if long:
        raise UsageError(long)
    api = client.CustomObjectsApi()
    where = f"GatewaySync {namespace}/{name}"
    with api_errors(f"approving in {where}"):
        found = _read(api, namespace, name)
        unknown = approvals.unknown_step(gate, approvals.step_names(found.get("spec") or {}))
        if unknown:
            raise NotApproved(f"{where}: {unknown}")
        pending = approvals.pending(found.get("status") or {}, gate)
        full = _full(commit or pending, pending, gate, where)
        stored = _write(api, namespace, name, gate, full)
    value = (stored["metadata"].get("annotations") or {}).get(approvals.key(gate), "")
    stamp = approvals.parse(value) if isinstance(value, str) else None
    if stamp is None:
        raise NotApproved(
            f"{approvals.key(gate)} was written to {where} but not stamped: the approval "
            f"webhook is not installed or not reached, so the controller ignores it "
            f"(docs/rollouts.md#approvals)"
        )
    report = {
        "schemaVersion": 1,
        "namespace": namespace,
        "gatewaysync": name,
        "gate": gate,
        "commit": stamp.commit,
        "approvedBy": stamp.by,
        "approvedAt": stamp.at,
    }
    if output != "text":
        emit(report, output)
        return
    click.echo(f"approved {gate} of commit {stamp.commit} in {where}")
    click.echo(f"recorded: by {stamp.by} at {stamp.at}")


def _gate(step: str | None, pause: str | None) -> str:
    if step and pause:
        raise click.UsageError("give --step or --pause, not both")
    return f"step:{step}" if step else f"pause:{pause}" if pause else approvals.ROLLOUT_GATE


@click.command()
@click.argument("gatewaysync")
@click.argument("commit")
@click.option("--step", help="Approve this step of the rollout (its approval: required).")
@click.option("--pause", help="Approve going on past this step (its pause: untilApproved).")
@click.option("-n", "--namespace", help="Its namespace (default: the kubeconfig context's).")
@kube_options
@output_option
@reporting_errors
def approve(
    gatewaysync: str,
    commit: str,
    step: str | None,
    pause: str | None,
    namespace: str | None,
    kubeconfig: str | None,
    context: str | None,
    output: str,
) -> None:
    """Approve COMMIT (the pending one, in full or its first 7+ characters) of GATEWAYSYNC's
    rollout: the whole rollout, or with --step / --pause one step's gate."""
    gate = _gate(step, pause)
    connect(kubeconfig, context)
    run(namespace or context_namespace(kubeconfig, context), gatewaysync, gate, commit, output)


@click.group()
def rollout() -> None:
    """Act on a GatewaySync's rollout."""


@rollout.command()
@click.argument("gatewaysync")
@click.option("-n", "--namespace", help="Its namespace (default: the kubeconfig context's).")
@kube_options
@output_option
@reporting_errors
def resume(
    gatewaysync: str,
    namespace: str | None,
    kubeconfig: str | None,
    context: str | None,
    output: str,
) -> None:
    """Start GATEWAYSYNC's halted commit again from the first step (approving it to resume)."""
    connect(kubeconfig, context)
    where = namespace or context_namespace(kubeconfig, context)
    run(where, gatewaysync, approvals.RESUME_GATE, "", output)
