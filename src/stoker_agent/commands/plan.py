"""`stoker plan`: what a sync would change, for people (text) and CI (JSON, exit codes)."""

from __future__ import annotations

import os
import sys

import click

from stoker_agent.commands.common import (
    emit,
    identity_options,
    one_line,
    output_option,
    reporting_errors,
    source_options,
)
from stoker_agent.documents import pick
from stoker_agent.gitrepo import Repository
from stoker_agent.localtree import LocalTree
from stoker_agent.rendering import print_plan
from stoker_agent.syncing import read_manifest
from stoker_core import desired, planning, profiles, takeovers
from stoker_core.errors import ExitCode, InvalidInput, UsageError
from stoker_core.manifest import Manifest, Record
from stoker_core.plans import SyncPlan
from stoker_core.reports import plan_report
from stoker_core.templates import TemplateContext
from stoker_core.trees import IndexTree, LiveTree
from stoker_core.validation import load


@click.command()
@source_options
@identity_options
@click.option("--data-dir", type=click.Path(file_okay=False), help="The gateway's data directory.")
@click.option("--base-ref", help="Compare with this commit instead of a data directory.")
@output_option
@reporting_errors
def plan(
    cr_file: str,
    cr_name: str | None,
    repo: str,
    ref: str | None,
    gateway_name: str | None,
    profile: str | None,
    pod_name: str,
    namespace: str,
    labels: dict[str, str],
    data_dir: str | None,
    base_ref: str | None,
    output: str,
) -> None:
    """Plan a sync of REPO at REF into DATA_DIR (or against BASE_REF) without changing anything."""
    if (data_dir is None) == (base_ref is None):
        raise UsageError("give exactly one of --data-dir (a live gateway) or --base-ref (a commit)")
    name = gateway_name or pod_name
    if not name:
        raise UsageError("--gateway-name is required (or --pod-name, which it defaults to)")
    doc = pick(cr_file, cr_name)
    gs = load(doc.data)
    effective = profiles.resolve(gs.spec.sync, profile)
    with Repository(repo) as repository:
        commit = repository.resolve(ref or "HEAD")

        def context_for(sha: str) -> TemplateContext:
            return TemplateContext(
                gateway_name=name,
                pod_name=pod_name,
                pod_ordinal=profiles.pod_ordinal(pod_name, labels),
                namespace=namespace or gs.metadata.namespace,
                cr_name=gs.metadata.name,
                ref=ref or "HEAD",
                commit=sha,
                labels=labels,
                vars=effective.vars,
            )

        wanted = desired.build(effective, repository.snapshot(commit), context_for(commit))
        live: LiveTree
        manifest: Manifest | None
        if base_ref is not None:
            base_commit = repository.resolve(base_ref)
            base = desired.build(
                effective, repository.snapshot(base_commit), context_for(base_commit)
            )
            live, manifest = _as_live(base)
        else:
            assert data_dir is not None
            live, manifest = _open_data_dir(data_dir)
        result = planning.plan(wanted, live, manifest)
    warned = takeovers.in_plan(wanted, result, manifest, effective.name)
    _print(result, output, ref=ref or "HEAD", profile=effective.name, gateway=name, warned=warned)
    sys.exit(ExitCode.CHANGES_PENDING if result.has_changes else ExitCode.OK)


def _as_live(tree: desired.DesiredTree) -> tuple[LiveTree, Manifest]:
    """The tree a base commit would produce, with a manifest saying Stoker wrote all of it."""
    live = IndexTree()
    records = {}
    for path, f in tree.files.items():
        live.add(path, f.blob, f.size, f.mode)
        records[path] = Record(f.blob, f.size, 0, 0, f.mode, tree.commit)
    for path in tree.dirs:
        live.dirs.add(path)
    return live, Manifest(commit=tree.commit, records=records)


def _open_data_dir(data_dir: str) -> tuple[LiveTree, Manifest | None]:
    if not os.path.isdir(data_dir):
        raise InvalidInput.one("data directory does not exist; check --data-dir", path=data_dir)
    return LocalTree(data_dir), read_manifest(data_dir)


def _print(
    result: SyncPlan,
    output: str,
    *,
    ref: str,
    profile: str,
    gateway: str,
    warned: list[takeovers.Takeover],
) -> None:
    report = plan_report(result, ref=ref, profile=profile, gateway=gateway)
    if warned:  # a mapping owns the gateway's own core collection (docs/sync-rules.md)
        report["warnings"] = [t.to_json() for t in warned]
    if output == "text":
        for takeover in warned:  # on stderr: a pipe keeps the plan clean
            click.echo(one_line(f"warning: {takeover.message()}"), err=True)
        print_plan(report)
    else:
        emit(report, output)
