"""One full sync for a gateway: fetch, policy checks, locked apply, scan, verdict, status.

Used by `stoker sync` (once or with --watch) and by the in-cluster agent loop. What to do with
the gateway's answer comes from `stoker_core.outcomes`; this module only carries it out.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from stoker_agent import logs, mirrors, oserrors, restarts
from stoker_agent.applying import (
    PENDING_FILE,
    REJECTED_FILE,
    STATE_DIR,
    Applier,
    Progress,
)
from stoker_agent.credentials import Credentials
from stoker_agent.datadirs import (
    ApplyError,
    DirectoryInTheWay,
    read_state_file,
    remove_state_file,
    write_state_file,
)
from stoker_agent.gitrepo import GitSnapshot, Repository, is_remote
from stoker_agent.histories import Recording
from stoker_agent.localtree import LocalTree
from stoker_agent.observers import Observer, Unobserved
from stoker_agent.syncing import lists_whole_tree, sync_commit
from stoker_core import desired, jsontext, profiles, refs
from stoker_core.drift import from_plan
from stoker_core.errors import Blocked, ExitCode, StokerError
from stoker_core.fieldwise import FIELDWISE
from stoker_core.model import DesignerPolicy, GatewaySync
from stoker_core.outcomes import GatewayReply, Verdict, decide
from stoker_core.plans import SyncPlan
from stoker_core.scans import scan_kinds
from stoker_core.secretfiles import SecretFile, missing_sentence, needed
from stoker_core.secretvalues import Secrets
from stoker_core.status import SyncRecord
from stoker_core.templates import TemplateContext

if TYPE_CHECKING:  # imported by a sync that talks to a gateway, or fetches (issue 18)
    from stoker_agent.gateway import GatewayClient, GatewaySettings
    from stoker_agent.gitfetch import Mirror
    from stoker_core.diffs import FileDiff  # --dry-run --diff

log = logging.getLogger("stoker.sync")
AGENT_VERSION = "0.1.0.dev0"
STATUS_FILE = f"{STATE_DIR}/status.json"
ROLE_FILE = f"{STATE_DIR}/redundancy-role"  # what the gateway last said (stoker_core.preboot)
PREBOOT_SCAN = "before the gateway started: it loads the files as it boots (no scan)"

EXIT_FOR: dict[str, ExitCode] = {
    "Synced": ExitCode.OK,
    "RestartRequired": ExitCode.OK,
    "InSync": ExitCode.OK,
    "DryRun": ExitCode.CHANGES_PENDING,
    "Rejected": ExitCode.ROLLED_BACK,
    "Skipped": ExitCode.BLOCKED,
    "Blocked": ExitCode.BLOCKED,
    "Error": ExitCode.ERROR,
}


@attrs.frozen(slots=True, kw_only=True)
class Identity:
    """Who the gateway is, for templates."""

    __eq__, __hash__, __repr__ = FIELDWISE

    gateway_name: str
    pod_name: str = ""
    namespace: str = ""
    labels: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen(slots=True, kw_only=True)
class SyncSettings:
    """Everything one sync needs; built once from flags or the environment."""

    __eq__, __hash__, __repr__ = FIELDWISE

    gatewaysync: GatewaySync
    profile: str | None
    identity: Identity
    repo: str
    ref: str | None
    data_dir: str
    commit: str | None = None  # the exact commit the controller resolved, when known
    # Where a remote is fetched; None: the sync user's cache (checked by mirrors.prepare).
    mirror_dir: str | None = None
    credentials: Credentials = attrs.field(factory=Credentials)
    gateway: GatewaySettings | None = None
    extra_vars: dict[str, str] = attrs.field(factory=dict)
    dry_run: bool = False
    diff: bool = False  # with dry_run: read both sides of each change for a content diff
    secrets: Secrets = attrs.field(factory=Secrets)  # masked in those diffs
    scan_timeout: float = 60.0  # seconds to wait for the gateway's scans to finish
    designer_wait: float = 300.0  # seconds `wait` waits for Designers to close (5 min)
    designer_poll: float = 10.0
    progress: Progress | None = None  # called with (done, total) while a transaction runs
    # A new commit goes first even when the full check is due; the outcome says the check was
    # deferred, and the agent loop runs it at once after (see syncing.sync_commit).
    defer_check: bool = False
    periodic_check: bool = False  # the loop's drift check: a dry run whose full check counts
    # Check every managed file for real, due or not (the loop's drift check, --full-check);
    # else a resync within syncPeriod of the last full check stats the recorded files only.
    full_check: bool = False
    # Set while the gateway has not started (the agent's first sync in a pod, see
    # stoker_agent.booting): the sync talks to no gateway, skips a redundancy backup by the
    # rule of stoker_core.preboot, and calls it right before the first file changes (it
    # raises Blocked once the gateway may be starting). No scan: the gateway reads the files
    # as it boots.
    before_boot: Callable[[], None] | None = None
    # The credential files this sync reads (in a cluster, from optional Secret volumes): one
    # that is missing holds the sync back with a status that names it (issue 15).
    secret_files: tuple[SecretFile, ...] = ()
    # Told about fetches, scans and Designer sessions (the agent's metrics); not compared.
    observer: Observer = attrs.field(factory=Unobserved, eq=False, repr=False)
    # Standalone `stoker sync` appends each sync to .stoker/history.jsonl (None: the agent).
    history: Recording | None = None


@attrs.frozen(slots=True)
class Outcome:
    """The record written to status, plus the plan for printing."""

    __eq__, __hash__, __repr__ = FIELDWISE

    record: SyncRecord
    plan: SyncPlan | None
    diffs: tuple[list[FileDiff], int] | None = None  # with --dry-run --diff: diffs, left out
    check_deferred: bool = False  # a due full check was left for the next sync of this commit
    from_diff: bool = False  # the desired tree was built from the commit's changes

    @property
    def exit_code(self) -> ExitCode:
        """Exit code of `stoker sync` for this outcome."""
        return EXIT_FOR.get(self.record.result, ExitCode.ERROR)


SourcesFor = Callable[[str], Sequence[str]]  # commit -> the repository paths a sync reads


def current_commit(settings: SyncSettings) -> str:
    """The commit the ref names now: `git ls-remote` for a URL, the repository for a path."""
    ref = settings.ref or "HEAD"
    if not is_remote(settings.repo):
        with Repository(settings.repo) as repo:
            return repo.resolve(ref)
    from stoker_agent.gitfetch import Mirror

    # ls-remote needs no repository: the mirror's place is named, never created or opened.
    where = settings.mirror_dir or mirrors.default_mirror_dir(settings.data_dir, settings.repo)
    mirror = Mirror(where, settings.repo, settings.credentials)
    try:
        return refs.resolve(ref, refs.parse_ls_remote(mirror.ls_remote()), where=settings.repo)
    finally:
        mirror.close()


@contextlib.contextmanager
def _snapshot(
    settings: SyncSettings,
    sources_for: SourcesFor | None = None,
    ahead: Callable[[str], bool] = lambda commit: True,
) -> Iterator[tuple[GitSnapshot, str]]:
    """Open the repository at the wanted commit: local directly, remote through a mirror.

    With `sources_for` (spec.git.sparse), a remote commit is fetched without file contents,
    then only the files under those paths are fetched, and the snapshot sees only them.
    `ahead(commit)`: whether the snapshot lists the commit's tree from the start (see
    GitSnapshot).
    """
    ref = settings.ref or "HEAD"
    if not is_remote(settings.repo):
        with Repository(settings.repo) as repo:
            commit = repo.resolve(settings.commit or ref)
            yield repo.snapshot(commit, ahead=ahead(commit)), ref
        return
    from stoker_agent.gitfetch import Mirror

    with mirrors.place(settings.mirror_dir, settings.data_dir, settings.repo) as where:
        fetched = settings.observer.fetched
        mirror = Mirror(
            where,
            settings.repo,
            settings.credentials,
            on_fetch=lambda seconds, ok: fetched(seconds, ok=ok),
        )
        with _fetched(settings, mirror, sources_for, ahead) as snapshot:
            yield snapshot, ref


@contextlib.contextmanager
def _fetched(
    settings: SyncSettings,
    mirror: Mirror,
    sources_for: SourcesFor | None,
    ahead: Callable[[str], bool],
) -> Iterator[GitSnapshot]:
    """The wanted commit fetched into `mirror`, opened as a snapshot (listed from the start
    when `ahead(commit)`)."""
    ref = settings.ref or "HEAD"
    try:
        commit = mirror.fetch(ref, settings.commit, blobless=sources_for is not None)
        paths: Sequence[str] = ()
        if sources_for is not None:
            paths = sources_for(commit)
            fetched = mirror.fetch_blobs(commit, paths)
            log.info("sparse fetch: %d files under %s", fetched, ", ".join(paths) or "(none)")
        # A commit planned from its changes (a running agent's new one, a resync within
        # syncPeriod) is never listed whole ahead: a git process wasted if it is not built whole.
        with GitSnapshot(mirror.path, commit, paths, ahead=ahead(commit)) as snapshot:
            yield snapshot
    finally:
        mirror.close()


def digest(profile: profiles.EffectiveProfile, commit: str) -> str:
    """What makes two syncs the same: the commit and the effective profile, compared by value."""
    text = json.dumps([commit, repr(profile)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def run_once(
    settings: SyncSettings,
    *,
    honour_rejections: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Sync once and write the status file, an honest one whatever fails; raises only a
    machine error (OSError), after recording it."""
    started = time.monotonic()
    base = {
        "profile": settings.profile or "default",
        "gateway": settings.identity.gateway_name,
        "agent_version": AGENT_VERSION,
        "dry_run": settings.dry_run,
    }
    machine: OSError | None = None
    # One client, so one connection, for the sync and its restart check after it.
    client = _client(settings.gateway) if settings.gateway else None
    try:
        outcome = _run(settings, base, client, honour_rejections, sleep)
        settled = restarts.settle(outcome.record, client, settings.data_dir)
        outcome = attrs.evolve(outcome, record=settled)
    except StokerError as e:
        result = "Blocked" if isinstance(e, Blocked) else "Error"
        outcome = Outcome(SyncRecord(result=result, error=str(e), **base), None)  # type: ignore[arg-type]
    except OSError as e:  # the machine (a full disk, a permission): still an honest status (H7)
        machine = e
        error = oserrors.sentence(e)
        outcome = Outcome(SyncRecord(result="Error", error=error, **base), None)  # type: ignore[arg-type]
    finally:
        if client is not None:
            client.close()
    record = attrs.evolve(
        logs.scrub_record(outcome.record),
        duration_seconds=time.monotonic() - started,
        time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    _write_status(settings.data_dir, record)
    if settings.history is not None:
        settings.history.add(settings.data_dir, record, quiet=machine is not None)
    if machine is not None:
        raise machine  # said by the caller, as every machine error is (the CLI, the agent loop)
    return Outcome(record, outcome.plan, outcome.diffs, outcome.check_deferred, outcome.from_diff)


def _run(
    settings: SyncSettings,
    base: dict[str, Any],
    client: GatewayClient | None,
    honour_rejections: bool,
    sleep: Callable[[float], None],
) -> Outcome:
    gs = settings.gatewaysync
    if not settings.dry_run:
        mirrors.remove_old(settings.data_dir)  # never used: the gateway could write it (H1)
    effective = profiles.resolve(gs.spec.sync, settings.profile)
    base["profile"] = effective.name
    if effective.paused:  # a paused profile changes nothing and scans nothing (B10)
        paused = SyncRecord(result="Skipped", skip="paused", error="profile is paused", **base)
        return Outcome(paused, None)
    if effective.dry_run and not settings.dry_run:  # spec dryRun: plan and report only
        settings = attrs.evolve(settings, dry_run=True)
        base["dry_run"] = True
    if settings.before_boot is not None and not settings.dry_run:
        from stoker_core import preboot  # the agent's first sync in a pod only

        last = preboot.remembered(read_state_file(os.path.join(settings.data_dir, ROLE_FILE)))
        why = preboot.skip_reason(
            settings.identity.labels, last, apply_on_backup=effective.apply_on_backup
        )
        if why:  # at the commit the controller published: the primary replicates it
            at = {**base, "commit": settings.commit or "", "ref": settings.ref or "HEAD"}
            return Outcome(SyncRecord(result="Skipped", skip="backup", error=why, **at), None)
    talks = settings.gateway is not None and not settings.dry_run  # a dry run asks it nothing
    lacking = _missing(needed(settings.secret_files, gateway=talks))
    if lacking:
        log.warning("%s", lacking)
        return Outcome(SyncRecord(result="Blocked", error=lacking, **base), None)

    def sources_for(commit: str) -> Sequence[str]:
        context = _context(settings, gs, effective, commit, settings.ref or "HEAD")
        return desired.sources(effective, context)

    def ahead(commit: str) -> bool:  # a tree planned from its changes is never listed whole
        return lists_whole_tree(
            settings.data_dir,
            commit,
            effective.sync_period,
            defer_check=settings.defer_check,
            full_check=settings.full_check,
        )

    sparse = sources_for if gs.spec.git.sparse else None
    with _snapshot(settings, sparse, ahead) as (snapshot, ref):
        base.update(commit=snapshot.commit, ref=ref)
        if client is not None and not settings.dry_run:
            skip = _gateway_gate(client, effective, settings, sleep)
            if skip is not None:
                return Outcome(attrs.evolve(skip, **base), None)
        key = digest(effective, snapshot.commit)
        rejected = _rejected(settings.data_dir)
        if honour_rejections and rejected == key:
            return Outcome(
                SyncRecord(
                    result="Rejected",
                    error="held: the gateway rejected this commit; change it or trigger a sync",
                    **base,
                ),
                None,
            )
        if rejected is not None and rejected != key and not settings.dry_run:
            # Another commit (or profile) is applied now: the hold of the rejected one is
            # over, so being given it again (a fix elsewhere, a resumed rollout) retries it.
            remove_state_file(os.path.join(settings.data_dir, REJECTED_FILE))
        context = _context(settings, gs, effective, snapshot.commit, ref)
        locked: list[bool] = []

        def before_changes(plan: SyncPlan) -> None:
            if settings.before_boot is not None:
                settings.before_boot()  # no gateway yet: nothing to lock or to scan
                return
            # Owed before the commit starts: a run that dies after it leaves the next run,
            # which rolls it forward and then finds nothing to change, this scan (H4).
            owed = _owe_scan(settings.data_dir, plan, _read_pending(settings.data_dir))
            if client is not None:
                locked.append(_lock(client, settings.data_dir, sleep, scan_kinds(owed)))

        result = sync_commit(
            settings.data_dir,
            snapshot,
            effective,
            context,
            dry_run=settings.dry_run,
            before_changes=before_changes if client or settings.before_boot else None,
            progress=settings.progress,
            defer_check=settings.defer_check,
            record_check=settings.periodic_check,
            full_check=settings.full_check,
        )
        plan = result.plan
        deferred = result.check_deferred
        base["drift"] = tuple((d.path, str(d.kind)) for d in from_plan(plan, result.previous))
        base["drift_checked"] = result.full_check
        base.update(
            added=tuple(plan.added), modified=tuple(plan.modified), deleted=tuple(plan.deleted)
        )
        if settings.dry_run:
            name = "DryRun" if plan.has_changes else "InSync"
            diffs = None
            if settings.diff:
                from stoker_agent.previewing import file_diffs, live_side, plan_side

                live = live_side(LocalTree(settings.data_dir))
                diffs = file_diffs(plan, live, plan_side(plan, snapshot), settings.secrets)
            return Outcome(SyncRecord(result=name, **base), plan, diffs, deferred, result.from_diff)
        if client is None:
            name = "Synced" if result.applied else "InSync"
            scan = PREBOOT_SCAN if settings.before_boot else "no gateway: not scanned"
            record = SyncRecord(result=name, scan=scan, **base)
            return Outcome(record, plan, check_deferred=deferred, from_diff=result.from_diff)
        pending = _read_pending(settings.data_dir)
        if not result.applied and not locked and pending is None:
            record = SyncRecord(result="InSync", scan="nothing changed", **base)
            return Outcome(record, plan, check_deferred=deferred, from_diff=result.from_diff)
        # Until the gateway confirms it loaded them, these changes still need a scan: a
        # failed scan is retried on the next run, never forgotten (the original's B11).
        changed = _owe_scan(settings.data_dir, plan, pending)
        reply, scan = _scan_and_check(client, settings, plan, scan_kinds(changed))
        verdict = decide(reply, changed, rollback_on_failure=effective.rollback_on_failure)
        if verdict is Verdict.RETRY:
            return Outcome(SyncRecord(result="Error", scan=scan, error=scan, **base), plan)
        remove_state_file(os.path.join(settings.data_dir, PENDING_FILE))
        if verdict is Verdict.REJECTED:
            return Outcome(_reject(client, settings, key, scan, base), plan)
        record = SyncRecord(result=str(verdict), scan=scan, **base)
        return Outcome(record, plan, check_deferred=deferred, from_diff=result.from_diff)


def _client(gateway: GatewaySettings) -> GatewayClient:
    """The gateway's API client; its module (and requests) is imported by a sync with a
    gateway only, so a one-file sync without one starts faster (issue 18)."""
    from stoker_agent.gateway import GatewayClient

    return GatewayClient(gateway)


def _missing(files: Sequence[SecretFile]) -> str:
    """The sentence naming the credential files that are not there ("" when all are); those
    that are get their values masked in the logs (a Secret mounted late is one too)."""
    missing = []
    for secret in files:
        try:
            with open(secret.path, encoding="utf-8", errors="replace") as handle:
                logs.register_secret(handle.read().strip())
        except FileNotFoundError:
            missing.append(secret)
    return missing_sentence(missing)


def _context(
    settings: SyncSettings,
    gs: GatewaySync,
    effective: profiles.EffectiveProfile,
    commit: str,
    ref: str,
) -> TemplateContext:
    ident = settings.identity
    return TemplateContext(
        gateway_name=ident.gateway_name,
        pod_name=ident.pod_name,
        pod_ordinal=profiles.pod_ordinal(ident.pod_name, ident.labels),
        namespace=ident.namespace or gs.metadata.namespace,
        cr_name=gs.metadata.name,
        ref=ref,
        commit=commit,
        labels=ident.labels,
        vars={**effective.vars, **settings.extra_vars},
    )


def _gateway_gate(
    client: GatewayClient,
    effective: profiles.EffectiveProfile,
    settings: SyncSettings,
    sleep: Callable[[float], None],
) -> SyncRecord | None:
    """Redundancy and Designer-session checks; a record to report when the sync must not run."""
    from stoker_core import preboot

    policy = effective.designer_session_policy
    role = str(client.info().get("redundancyRole", "")).lower()
    if preboot.remembered(role) is not None and not settings.dry_run:
        path = os.path.join(settings.data_dir, ROLE_FILE)
        with contextlib.suppress(OSError, ApplyError):  # a hint for the next pre-boot sync
            if read_state_file(path) != role:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                write_state_file(path, role)
    if role == "backup" and not effective.apply_on_backup:
        settings.observer.designers(blocking=False)
        return SyncRecord(
            result="Skipped", skip="backup", error="Skipped (backup): the master replicates to it"
        )
    waited = 0.0
    while True:
        sessions = client.designers()
        blocking = bool(sessions) and policy is not DesignerPolicy.PROCEED
        settings.observer.designers(blocking=blocking)
        if not blocking:
            if sessions:
                log.info("Designer sessions open, proceeding: %s", ", ".join(map(str, sessions)))
            return None
        who = ", ".join(map(str, sessions))
        if policy is DesignerPolicy.FAIL:
            return SyncRecord(
                result="Blocked",
                designer_blocked=True,
                error=f"Designer sessions active (policy=fail): {who}",
            )
        if waited >= settings.designer_wait:
            return SyncRecord(
                result="Blocked",
                designer_blocked=True,
                error=f"Designer sessions still active after {waited:.0f}s: {who}",
            )
        sleep(settings.designer_poll)
        waited += settings.designer_poll


def _lock(
    client: GatewayClient, data_dir: str, sleep: Callable[[float], None], kinds: Sequence[str]
) -> bool:
    """Take the scan locks of `kinds` when the gateway offers them, so no scan of theirs sees a
    half-applied tree; a lock an earlier run of Stoker left is recognised as ours (see
    stoker_agent.scanlocking: its paths are still owed, so its kind is among `kinds`)."""
    from stoker_agent.scanlocking import ScanLocks

    return ScanLocks(client, data_dir, sleep=sleep).take_all(kinds)


def _scan_and_check(
    client: GatewayClient, settings: SyncSettings, plan: SyncPlan, kinds: Sequence[str]
) -> tuple[GatewayReply, str]:
    """Scan `kinds` (projects first), wait for them, then check what the gateway loaded."""
    started = time.monotonic()
    reply, text = _scan(client, settings, plan, kinds)
    settings.observer.scanned(time.monotonic() - started, str(reply))
    return reply, text


def _scan(
    client: GatewayClient, settings: SyncSettings, plan: SyncPlan, kinds: Sequence[str]
) -> tuple[GatewayReply, str]:
    from stoker_agent.gateway import GatewayError

    try:
        since, asked = int(time.time() * 1000) - 1000, time.monotonic()
        # Each answer tells how long the last scan of its kind took: a long one is first
        # read when this one is likely done, not every second until then.
        answers = [(kind, client.scan(kind)) for kind in kinds]
        for kind, like in answers:
            client.wait_for_scan(kind, since, settings.scan_timeout, like=like, asked_at=asked)
        loaded = client.projects()
        missing = sorted(plan.projects() - loaded)
        if missing:
            return (
                GatewayReply.PROJECT_MISSING,
                f"scan done, but projects did not load: {', '.join(missing)}",
            )
    except GatewayError as e:
        return e.reply, str(e)
    return GatewayReply.LOADED, f"scan done; {_running(loaded)}"


def _running(projects: set[str], shown: int = 10) -> str:
    """What the gateway says it runs now, from its project list, for the user to read."""
    if not projects:
        return "the gateway lists no projects"
    names = sorted(projects)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"the gateway runs {len(names)} project(s): {', '.join(names[:shown])}{more}"


def _reject(
    client: GatewayClient, settings: SyncSettings, key: str, scan: str, base: dict[str, Any]
) -> SyncRecord:
    """Roll back to the last good state, scan again, and hold this commit."""
    from stoker_agent.gateway import GatewayError

    with Applier(settings.data_dir) as applier:
        applier.rollback()
    try:
        client.scan("projects")
        client.scan("config")
    except GatewayError as e:
        log.warning("rescan after rollback failed: %s", e)
    _write_json(os.path.join(settings.data_dir, REJECTED_FILE), {"digest": key})
    return SyncRecord(result="Rejected", scan=scan, error=f"rolled back: {scan}", **base)


def _read_pending(data_dir: str) -> list[str] | None:
    """Paths applied earlier whose scan has not succeeded yet, or None."""
    body = _read_json(os.path.join(data_dir, PENDING_FILE))
    changed = body.get("changed") if body is not None else None
    return [str(p) for p in changed] if isinstance(changed, list) else None


def _owe_scan(data_dir: str, plan: SyncPlan, pending: list[str] | None) -> list[str]:
    """Record that the plan's paths need a scan, with those still owed from earlier runs
    (`pending`, as read); the paths owed now. The file is written only when that changed."""
    changed = sorted({*(pending or []), *plan.added, *plan.modified, *plan.deleted})
    if changed != pending:
        _write_json(os.path.join(data_dir, PENDING_FILE), {"changed": changed})
    return changed


def _rejected(data_dir: str) -> str | None:
    body = _read_json(os.path.join(data_dir, REJECTED_FILE))
    return str(body.get("digest")) if body is not None else None


def _read_json(path: str) -> dict[str, Any] | None:
    """A JSON state file as an object; absent, linked, damaged or not an object is None."""
    with contextlib.suppress(OSError, ValueError, ApplyError):
        body = jsontext.loads(read_state_file(path) or "null")
        return body if isinstance(body, dict) else None
    return None


def _write_json(path: str, body: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_state_file(path, json.dumps(body, indent=2))


def _write_status(data_dir: str, record: SyncRecord) -> None:
    if not os.path.isdir(data_dir):
        return
    path = os.path.join(data_dir, STATUS_FILE)
    try:
        _write_json(path, record.to_json())
    except (OSError, ApplyError) as e:
        # A status that cannot be written (a full disk) must not leave the last one standing,
        # saying Synced: removing a file needs no free space (H7). Through a linked .stoker,
        # nothing is written or removed (H3).
        reason = e.strerror if isinstance(e, OSError) else str(e)
        removed = False
        with contextlib.suppress(OSError, ApplyError):
            removed = remove_state_file(path)
        if removed:
            log.warning("writing %s: %s; the old status was removed", path, reason)
        else:  # a directory planted there is said; the machine's error is the sync's own
            log.log(
                logging.WARNING if isinstance(e, DirectoryInTheWay) else logging.DEBUG,
                "writing %s: %s",
                path,
                reason,
            )
