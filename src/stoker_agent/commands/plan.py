"""`stoker plan`: what a sync would change, for people (text), CI (JSON, exit codes) and pull
requests (Markdown), for one gateway or several."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import click

from stoker_agent import logs
from stoker_agent.commands.common import (
    emit,
    identity_options,
    one_line,
    reporting_errors,
    source_options,
    var_file_option,
)
from stoker_agent.documents import pick
from stoker_agent.gitrepo import GitSnapshot, Repository
from stoker_agent.localtree import LocalTree
from stoker_agent.previewing import Side, file_diffs, live_side, tree_side
from stoker_agent.rendering import print_plan
from stoker_agent.syncing import read_manifest
from stoker_core import desired, planning, profiles, takeovers, targets
from stoker_core.errors import ExitCode, InvalidInput, UsageError
from stoker_core.manifest import Manifest, Record
from stoker_core.model import GatewaySync
from stoker_core.previews import markdown
from stoker_core.reports import plan_report, several_report
from stoker_core.secretvalues import Secrets
from stoker_core.templates import TemplateContext
from stoker_core.trees import IndexTree, LiveTree
from stoker_core.validation import load

MAX_GATEWAYS_FILE = 1024 * 1024  # bytes: a list of gateways, not a data set


def _placeholders(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    return {name: f"<secret {name}>" for name in values}


@click.command()
@source_options
@identity_options
@click.option(
    "--gateway",
    "gateway_flags",
    multiple=True,
    metavar="NAME[:PROFILE]",
    help="A gateway to plan for; repeat for several (--label applies to each). One plan each.",
)
@click.option(
    "--gateways",
    "gateways_file",
    type=click.Path(dir_okay=False),
    help="YAML file listing the gateways (name, profile, podName, namespace, labels).",
)
@click.option("--data-dir", type=click.Path(file_okay=False), help="The gateway's data directory.")
@click.option("--base-ref", help="Compare with this commit instead of a data directory.")
@click.option("--diff", "show_diff", is_flag=True, help="Show the content of each change.")
@var_file_option
@click.option(
    "--var-placeholder",
    "placeholders",
    multiple=True,
    callback=_placeholders,
    metavar="NAME",
    help="Render {{.Vars.NAME}} as <secret NAME> (a secret a CI job cannot read).",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(("text", "json", "yaml", "markdown")),
    default="text",
    show_default=True,
    help="Output format (json and yaml carry the same fields; markdown for a PR comment).",
)
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
    gateway_flags: tuple[str, ...],
    gateways_file: str | None,
    data_dir: str | None,
    base_ref: str | None,
    show_diff: bool,
    var_files: dict[str, str],
    placeholders: dict[str, str],
    output: str,
) -> None:
    """Plan a sync of REPO at REF into DATA_DIR (or against BASE_REF) without changing anything."""
    if (data_dir is None) == (base_ref is None):
        raise UsageError("give exactly one of --data-dir (a live gateway) or --base-ref (a commit)")
    several = bool(gateway_flags or gateways_file)
    chosen = _targets(
        gateway_name, profile, pod_name, namespace, labels, gateway_flags, gateways_file
    )
    gs = load(pick(cr_file, cr_name).data)
    secrets = Secrets(named=var_files, anonymous=logs.registered())
    extra_vars = {**placeholders, **var_files}
    ref = ref or "HEAD"
    with Repository(repo) as repository:
        commit = repository.resolve(ref)
        snapshot = repository.snapshot(commit)
        base = None
        old: GitSnapshot | None = None
        if base_ref is not None:
            old = repository.snapshot(repository.resolve(base_ref))
            base = {"ref": base_ref, "commit": old.commit}
        planner = _Planner(gs, ref, snapshot, old, data_dir, extra_vars, secrets, show_diff)
        reports = [_for(target, several, planner.report, base) for target in chosen]
    whole = several_report(reports, commit=commit, ref=ref, base=base) if several else reports[0]
    report = secrets.mask_all(whole)
    if output == "text":
        for one in secrets.mask_all(reports) if several else [report]:
            for warning in one.get("warnings", ()):  # on stderr: a pipe keeps the plan clean
                click.echo(one_line(f"warning: {warning['message']}"), err=True)
            print_plan(one)
    elif output == "markdown":
        click.echo(markdown(report), nl=False)
    else:
        emit(report, output)
    pending = any(r["added"] or r["modified"] or r["deleted"] for r in reports)
    sys.exit(ExitCode.CHANGES_PENDING if pending else ExitCode.OK)


def _for(
    target: targets.Target,
    several: bool,
    report: Callable[[targets.Target, dict[str, str] | None], dict[str, Any]],
    base: dict[str, str] | None,
) -> dict[str, Any]:
    """One gateway's report; with several, an input problem names the gateway it is about."""
    try:
        return report(target, base)
    except InvalidInput as e:
        if not several:
            raise
        who = f"gateway {target.name}: "
        raise type(e)([attrs.evolve(p, message=who + p.message) for p in e.problems]) from None


def _targets(
    gateway_name: str | None,
    profile: str | None,
    pod_name: str,
    namespace: str,
    labels: dict[str, str],
    flags: Sequence[str],
    path: str | None,
) -> list[targets.Target]:
    """The gateways to plan for: one from --gateway-name/--pod-name, or several."""
    if flags or path:
        if gateway_name or pod_name or profile:
            raise UsageError(
                "give --gateway/--gateways or --gateway-name/--pod-name/--profile, not both"
            )
        chosen = []
        for flag in flags:
            try:
                chosen.append(targets.from_flag(flag, labels))
            except ValueError as e:
                raise UsageError(f"--gateway: {e}") from None
        if path:
            chosen.extend(targets.from_document(_read_yaml(path), path=path))
        return chosen
    name = gateway_name or pod_name
    if not name:
        raise UsageError(
            "--gateway-name is required (or --pod-name, which it defaults to; "
            "or --gateway/--gateways for several)"
        )
    return [
        targets.Target(
            name=name, profile=profile, pod_name=pod_name, namespace=namespace, labels=labels
        )
    ]


def _read_yaml(path: str) -> object:
    import yaml

    from stoker_agent.documents import TOO_DEEP

    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_GATEWAYS_FILE + 1)
    except OSError as e:
        raise InvalidInput.one(f"cannot read the gateways file: {e.strerror}", path=path) from None
    if len(data) > MAX_GATEWAYS_FILE:
        raise InvalidInput.one("the gateways file is over 1 MiB", path=path)
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidInput.one(f"invalid YAML{where}", path=path) from None
    except RecursionError:
        raise InvalidInput.one(TOO_DEEP, path=path) from None


class _Planner:
    """Plans one commit (against a base commit or a data directory) for one gateway at a time."""

    def __init__(
        self,
        gs: GatewaySync,
        ref: str,
        snapshot: GitSnapshot,
        old: GitSnapshot | None,
        data_dir: str | None,
        extra_vars: Mapping[str, str],
        secrets: Secrets,
        show_diff: bool,
    ) -> None:
        self.gs, self.ref, self.snapshot, self.old = gs, ref, snapshot, old
        self.data_dir, self.extra_vars = data_dir, extra_vars
        self.secrets, self.show_diff = secrets, show_diff

    def context(
        self, target: targets.Target, effective: profiles.EffectiveProfile, sha: str
    ) -> TemplateContext:
        return TemplateContext(
            gateway_name=target.name,
            pod_name=target.pod_name,
            pod_ordinal=profiles.pod_ordinal(target.pod_name, target.labels),
            namespace=target.namespace or self.gs.metadata.namespace,
            cr_name=self.gs.metadata.name,
            ref=self.ref,
            commit=sha,
            labels=dict(target.labels),
            vars={**effective.vars, **self.extra_vars},
        )

    def report(self, target: targets.Target, base: dict[str, str] | None) -> dict[str, Any]:
        effective = profiles.resolve(self.gs.spec.sync, target.profile)
        _check_vars_from(effective, self.extra_vars)
        commit = self.snapshot.commit
        wanted = desired.build(effective, self.snapshot, self.context(target, effective, commit))
        live: LiveTree
        before: Side
        manifest: Manifest | None
        if self.old is not None:
            old_tree = desired.build(
                effective, self.old, self.context(target, effective, self.old.commit)
            )
            live, manifest = _as_live(old_tree)
            before = tree_side(old_tree, self.old)
        else:
            assert self.data_dir is not None
            local, manifest = _open_data_dir(self.data_dir)
            live, before = local, live_side(local)
        result = planning.plan(wanted, live, manifest)
        diffs, left_out = None, 0
        if self.show_diff:
            after = tree_side(wanted, self.snapshot)
            diffs, left_out = file_diffs(result, before, after, self.secrets)
        report = plan_report(
            result,
            ref=self.ref,
            profile=effective.name,
            gateway=target.name,
            base=base,
            diffs=diffs,
            diffs_left_out=left_out,
        )
        warned = takeovers.in_plan(wanted, result, manifest, effective.name)
        if warned:  # a mapping owns the gateway's own core collection (docs/sync-rules.md)
            report["warnings"] = [t.to_json() for t in warned]
        return report


def _check_vars_from(effective: profiles.EffectiveProfile, given: Mapping[str, str]) -> None:
    """A variable read from a Secret needs a value here: its file, or a placeholder."""
    missing = [v.name for v in effective.vars_from if v.name not in given]
    if missing:
        names = ", ".join(missing)
        raise UsageError(
            f"profile {effective.name} reads {names} from a Secret (varsFrom); give "
            f"--var-file {missing[0]}=FILE or --var-placeholder {missing[0]} for each"
        )


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


def _open_data_dir(data_dir: str) -> tuple[LocalTree, Manifest | None]:
    if not os.path.isdir(data_dir):
        raise InvalidInput.one("data directory does not exist; check --data-dir", path=data_dir)
    return LocalTree(data_dir), read_manifest(data_dir)
