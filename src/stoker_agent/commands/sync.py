"""`stoker sync`: make a data directory equal to a commit, then have the gateway rescan.

Standalone mode for gateways outside Kubernetes (Linux), and the main job of `make demo`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import attrs
import click

from stoker_agent import logs, mirrors
from stoker_agent.applying import Progress
from stoker_agent.commands.common import (
    Period,
    emit,
    http_url,
    identity_options,
    output_option,
    reporting_errors,
    source_options,
    var_file_option,
)
from stoker_agent.credentials import Credentials
from stoker_agent.documents import pick
from stoker_agent.histories import Recording, os_user
from stoker_agent.standalone import Identity, Outcome, SyncSettings, run_once
from stoker_core.errors import ExitCode, UsageError
from stoker_core.history import DEFAULT_LIMIT, MAX_LIMIT
from stoker_core.reports import plan_report
from stoker_core.secretvalues import Secrets
from stoker_core.validation import load

if TYPE_CHECKING:
    from stoker_agent.gateway import GatewaySettings


@click.command()
@source_options
@identity_options
@click.option("--data-dir", required=True, type=click.Path(file_okay=False), help="Data directory.")
@click.option("--git-token-file", type=click.Path(dir_okay=False), help="HTTPS token file.")
@click.option("--ssh-key-file", type=click.Path(dir_okay=False), help="SSH private key file.")
@click.option("--known-hosts-file", type=click.Path(dir_okay=False), help="SSH known_hosts.")
@click.option(
    "--git-ca-file", type=click.Path(dir_okay=False), help="CA bundle of an HTTPS Git server."
)
@click.option(
    "--mirror-dir",
    envvar="STOKER_MIRROR_DIR",
    type=click.Path(file_okay=False),
    help="Where a remote repository is fetched (default: ~/.cache/stoker/mirrors/…); never "
    "inside the data directory.",
)
@click.option(
    "--gateway-url", callback=http_url, help="Gateway base URL, e.g. http://localhost:8088."
)
@click.option("--api-token-file", type=click.Path(dir_okay=False), help="Gateway API token file.")
@click.option("--gateway-ca-file", type=click.Path(dir_okay=False), help="CA bundle for HTTPS.")
@click.option("--gateway-insecure", is_flag=True, help="Skip TLS verification of the gateway.")
@var_file_option
@click.option(
    "--watch", is_flag=True, help="Keep syncing, as the agent does (drift per driftPolicy)."
)
@click.option(
    "--interval",
    type=Period(),
    default="30s",
    show_default=True,
    help="With --watch: how often to look at the ref and check for drift (30, 30s, 5m).",
)
@click.option("--dry-run", is_flag=True, help="Plan only; exit 2 when changes are pending.")
@click.option(
    "--full-check",
    is_flag=True,
    help="Check every managed file and folder now (stray files too), even within the "
    "profile's syncPeriod of the last full check.",
)
@click.option(
    "--diff", "show_diff", is_flag=True, help="With --dry-run: show the content of each change."
)
@click.option(
    "--requested-by",
    help="Who asked for this sync, for .stoker/history.jsonl (default: the OS user).",
)
@click.option(
    "--history-limit",
    type=click.IntRange(1, MAX_LIMIT),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="Syncs kept in .stoker/history.jsonl (stoker history prints them).",
)
@output_option
@reporting_errors
def sync(
    cr_file: str,
    cr_name: str | None,
    repo: str,
    ref: str | None,
    gateway_name: str | None,
    profile: str | None,
    pod_name: str,
    namespace: str,
    labels: dict[str, str],
    data_dir: str,
    git_token_file: str | None,
    ssh_key_file: str | None,
    known_hosts_file: str | None,
    git_ca_file: str | None,
    mirror_dir: str | None,
    gateway_url: str | None,
    api_token_file: str | None,
    gateway_ca_file: str | None,
    gateway_insecure: bool,
    var_files: dict[str, str],
    watch: bool,
    interval: float,
    dry_run: bool,
    full_check: bool,
    show_diff: bool,
    requested_by: str | None,
    history_limit: int,
    output: str,
) -> None:
    """Sync DATA_DIR to REPO at REF for one gateway, then ask the gateway to rescan."""
    logs.setup("info", "json" if output == "json" else "text")
    name = gateway_name or pod_name
    if not name:
        raise UsageError("--gateway-name is required (or --pod-name, which it defaults to)")
    if git_token_file and ssh_key_file:
        raise UsageError("give one of --git-token-file and --ssh-key-file")
    if gateway_ca_file and gateway_insecure:
        raise UsageError("give one of --gateway-ca-file and --gateway-insecure")
    if api_token_file and not gateway_url:
        raise UsageError("--api-token-file needs --gateway-url")
    if show_diff and not dry_run:
        raise UsageError("--diff needs --dry-run (stoker plan --diff previews without syncing)")
    settings = SyncSettings(
        gatewaysync=load(pick(cr_file, cr_name).data),
        profile=profile,
        identity=Identity(gateway_name=name, pod_name=pod_name, namespace=namespace, labels=labels),
        repo=repo,
        ref=ref,
        data_dir=data_dir,
        mirror_dir=mirrors.prepare(mirror_dir, data_dir) if mirror_dir else None,
        credentials=Credentials(
            token_file=git_token_file,
            ssh_key_file=ssh_key_file,
            known_hosts_file=known_hosts_file,
            ca_file=git_ca_file,
        ),
        gateway=_gateway(gateway_url, api_token_file, gateway_ca_file, gateway_insecure),
        extra_vars=var_files,
        dry_run=dry_run,
        full_check=full_check,
        diff=show_diff,
        secrets=Secrets(named=var_files, anonymous=logs.registered()),
        # A --dry-run is a preview, as `stoker plan` is: it changes nothing, so it is not
        # history (a GatewaySync's own dryRun is: that gateway's syncs are dry runs).
        history=None
        if dry_run
        else Recording(history_limit, requested_by or os_user(), collapse_repeats=watch),
    )
    if not watch:
        with _progress_bar(enabled=output == "text" and sys.stdout.isatty()) as progress:
            outcome = run_once(attrs.evolve(settings, progress=progress))
        _print(outcome, output)
        sys.exit(outcome.exit_code)
    from stoker_agent.watching import keep_syncing  # only here: a single sync stays lean

    keep_syncing(settings, interval, lambda outcome: _print(outcome, output, compact=True))


def _gateway(
    url: str | None, token_file: str | None, ca_file: str | None, insecure: bool
) -> GatewaySettings | None:
    """The gateway to scan, if any; its client's module is imported only then (issue 18)."""
    if not url:
        return None
    from stoker_agent.gateway import GatewaySettings

    return GatewaySettings(url=url, token_file=token_file, ca_file=ca_file, insecure=insecure)


@contextlib.contextmanager
def _progress_bar(*, enabled: bool) -> Iterator[Progress | None]:
    """A one-line progress counter for long applies, on a terminal only, erased at the end."""
    if not enabled:
        yield None
        return
    shown = [-1]

    def update(done: int, total: int) -> None:
        percent = done * 100 // total if total else 0
        if percent != shown[0]:  # at most ~100 redraws, however many files
            shown[0] = percent
            click.echo(f"\rapplying {done}/{total} ({percent}%)", nl=False)

    try:
        yield update
    finally:
        if shown[0] >= 0:
            click.echo("\r\x1b[K", nl=False)


def _print(outcome: Outcome, output: str, *, compact: bool = False) -> None:
    record = outcome.record.to_json()
    report = None
    if outcome.plan is not None:
        diffs, left_out = outcome.diffs or (None, 0)
        report = plan_report(
            outcome.plan,
            ref=record["ref"] or "HEAD",
            profile=record["profile"],
            gateway=record["gateway"],
            diffs=diffs,
            diffs_left_out=left_out,
        )
        if diffs is not None:  # contents are masked; paths and details may hold a value too
            report = Secrets(anonymous=logs.registered()).mask_all(report)
    if output != "text":
        body = report if report is not None else {"schemaVersion": 1}
        body.update(
            result=record["result"],
            scan=record["scan"],
            drift=record["drift"],
            driftChecked=record["driftChecked"],
            desiredFromDiff=outcome.from_diff,
            durationSeconds=record["durationSeconds"],
            time=record["time"],
        )
        if record["error"]:
            body["error"] = record["error"]
        if record["restart"]:
            body["restart"] = record["restart"]
        emit(body, output, compact=compact)
        return
    if report is not None:
        from stoker_agent.rendering import print_plan  # text output only

        print_plan(report)
    for drift in record["drift"]:
        click.echo(click.style(f"  drift: {drift['path']} ({drift['kind']})", fg="magenta"))
    # --watch prints one sync after another: each result line says when (UTC).
    line = (f"{record['time']} " if compact else "") + f"result: {record['result']}"
    if record["scan"]:
        line += f"; gateway: {record['scan']}"
    click.echo(line)
    if record["restart"]:
        click.echo(f"restart needed: {record['restart']}")
    if record["error"]:
        click.echo(f"error: {record['error']}", err=True)
    if outcome.exit_code is ExitCode.ERROR and not record["error"]:
        click.echo("error: sync failed", err=True)
