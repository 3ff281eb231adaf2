"""One sync of a data directory to a commit: lock, recover, plan, apply, record the manifest.

Shared by `stoker sync` and the agent loop; what to sync is decided by `stoker_core`, this
module only reads the world and hands the plan to the crash-safe applier.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import time
from collections.abc import Callable, Iterable

import attrs

from stoker_agent import cpus
from stoker_agent.applying import FULL_CHECK_FILE, Applier, Progress
from stoker_agent.datadirs import ApplyError, read_state_file
from stoker_agent.gitrepo import GitError, GitSnapshot
from stoker_agent.localtree import LocalTree
from stoker_core import desired, manifestlog, planning
from stoker_core.desired import DesiredFile
from stoker_core.drift import stamped_equal
from stoker_core.errors import InvalidInput
from stoker_core.manifest import CTIMES_LIMIT, CTIMES_PATH, MANIFEST_PATH, Manifest
from stoker_core.manifestlog import LOG_LIMIT, LOG_PATH
from stoker_core.plans import Action, Operation, SyncPlan
from stoker_core.profiles import EffectiveProfile
from stoker_core.recorded import (
    CHANGE_LIMIT,
    FromDiff,
    RecordedTree,
    from_diff,
    full_check_due,
    inputs_digest,
    paths_to_check,
    rendering_sources,
    rewrites_carried,
    unlike_records,
    whole_because,
    whole_because_diff,
)
from stoker_core.templates import TemplateContext

log = logging.getLogger("stoker.sync")
# A manifest base this large (about 200 bytes a file: some 2,500 files) makes a full check walk
# the data directory in a child process (see large_enough_to_walk_apart).
WALK_APART_FROM = 512 * 1024
WALK_APART_CPUS = 2.0  # ... given this many CPUs (affinity and cgroup quota, see cpus.available)


@attrs.frozen(slots=True)
class SyncResult:
    """What one sync did: the plan, and whether it was applied (not a dry run, had changes)."""

    plan: SyncPlan
    applied: bool
    recovered: str
    previous: Manifest | None  # the manifest the plan was made against
    full_check: bool = True  # False: planned from the commit's changes (see stoker_core.recorded)
    check_deferred: bool = False  # a full check was due and left for the next sync (defer_check)
    from_diff: bool = False  # the desired tree was built from `git diff-tree` (recorded.from_diff)


def read_manifest(data_dir: str) -> Manifest | None:
    """The last manifest, or None (absent or damaged: then every file is hashed once)."""
    path = os.path.join(data_dir, MANIFEST_PATH)
    try:
        # Never through a link: whoever writes the data directory could point it anywhere (H2).
        # Non-blocking: a FIFO planted there would wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.close(fd)
            log.warning("%s is a FIFO; ignored (every file is checked once)", MANIFEST_PATH)
            return None
        with open(fd, encoding="utf-8") as handle:
            manifest = Manifest.from_json(handle.read())
        manifest = manifestlog.replay(manifest, _read_log(data_dir, manifest))
        return manifest.with_ctimes(_read_ctimes(data_dir))
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        log.warning("%s is a symbolic link; ignored (every file is checked once)", MANIFEST_PATH)
        return None
    except InvalidInput as e:
        log.warning("%s", e)
        return None


def _read_log(data_dir: str, base: Manifest) -> str:
    """The manifest's delta log, "" when absent or when the base is of an older format; a
    linked, oversized or undecodable log is refused by name (InvalidInput)."""
    if not base.generation:
        return ""  # a base of format 1 or 2 has no log: one left beside it is stale
    try:
        return read_state_file(os.path.join(data_dir, LOG_PATH), LOG_LIMIT) or ""
    except FileNotFoundError:
        return ""
    except (ApplyError, ValueError, OSError) as e:  # ValueError: too large, not UTF-8
        raise InvalidInput.one(
            f"{e}; the data directory's files are checked by hashing them once", path=LOG_PATH
        ) from None


def _read_ctimes(data_dir: str) -> str:
    """The side file of the last transaction's ctimes, or "" (absent, linked, too large)."""
    try:
        return read_state_file(os.path.join(data_dir, CTIMES_PATH), CTIMES_LIMIT) or ""
    except (OSError, ApplyError, ValueError) as e:  # ValueError: too large, not UTF-8
        log.debug("%s: %s; its files are hashed once instead", CTIMES_PATH, e)
        return ""


def sync_commit(
    data_dir: str,
    snapshot: GitSnapshot,
    profile: EffectiveProfile,
    context: TemplateContext,
    *,
    dry_run: bool = False,
    crash_at: int | None = None,
    before_changes: Callable[[SyncPlan], None] | None = None,
    progress: Progress | None = None,
    defer_check: bool = False,
    record_check: bool = False,
    full_check: bool = False,
) -> SyncResult:
    """Make `data_dir` equal to `snapshot` for this profile (or only plan it, when dry_run).

    `defer_check`: a new commit is planned from its changes even when a full check is due, and
    the result says the check was deferred: the caller runs it next, as a sync of the same
    commit (the agent loop does, so push-to-applied never waits for a whole-tree walk).
    `record_check`: a dry run's full check counts as one (the agent's periodic drift check).
    `full_check`: check every managed file for real, due or not (the agent's drift check,
    `stoker sync --full-check`). A resync of the recorded commit whose check is not due stats
    every recorded file and lists no folder (see recorded.unlike_records).
    """
    if not os.path.isdir(data_dir):
        raise InvalidInput.one("data directory does not exist", path=data_dir)
    with Applier(data_dir, crash_at=crash_at, progress=progress) as applier:
        recovered = applier.recover()
        live = LocalTree(data_dir)
        last_check, now = _last_full_check(data_dir), time.time()
        # Asked for, or due by time in a one-shot sync, the check is full whatever the
        # manifest says: its walk starts before the manifest is read (see _prefetch); whether
        # the check is full is still decided by the manifest.
        likely_full = full_check or (
            not defer_check
            and full_check_due(last_full_check=last_check, now=now, sync_period=profile.sync_period)
        )
        apart = large_enough_to_walk_apart(data_dir) if likely_full else None  # asked once
        early = bool(apart)
        if early:
            _prefetch(live, profile, context)
        manifest = read_manifest(data_dir)
        due = manifest is None or full_check_due(
            last_full_check=last_check,
            now=now,
            sync_period=profile.sync_period,
            asked=full_check,
        )
        deferred = due and defer_check and manifest is not None and not _same(manifest, snapshot)
        full = due and not deferred
        if full and apart is None and large_enough_to_walk_apart(data_dir):
            _prefetch(live, profile, context)
        built = (
            None if full or manifest is None else _from_diff(snapshot, profile, context, manifest)
        )
        # Otherwise after reading the manifest: git lists the commit's tree meanwhile.
        tree = desired.build(profile, snapshot, context) if built is None else built.tree

        def stamped(want: DesiredFile) -> bool:
            if want.content is not None:
                return stamped_equal(want.content, live.read(want.path))
            try:
                ours = snapshot.read(want.source)
            except GitError:
                # Only a record carried forward can name a blob git lacks (a planted one: no
                # mapping that renders is carried); rewritten, it is built whole.
                if built is None or want.path in built.built:
                    raise
                return False
            # A carried resource.json the gateway stamped after the last scan (Ignition does,
            # at every load) is compared like any other: its blob is the commit's, unchanged.
            return stamped_equal(ours, live.read(want.path))

        # A resync whose check is not due: every recorded file is stat'd, none read unless
        # its stat changed, no folder listed (a stray file waits for the next full check).
        unlike = (
            unlike_records(manifest, live.lstat_many)
            if not full and manifest is not None and _same(manifest, snapshot)
            else set()
        )
        view = (
            live
            if full or manifest is None
            else RecordedTree(
                live,
                manifest,
                (paths_to_check(tree, manifest) if built is None else built.check) | unlike,
            )
        )
        plan = planning.plan(tree, view, manifest, stamped=stamped)
        if built is not None and manifest is not None and rewrites_carried(plan, built):
            log.debug("the desired tree is built whole: a file it carried forward is rewritten")
            built, tree = None, desired.build(profile, snapshot, context)
            view = RecordedTree(live, manifest, paths_to_check(tree, manifest) | unlike)
            plan = planning.plan(tree, view, manifest, stamped=stamped)
        plan = attrs.evolve(plan, inputs=inputs_digest(profile, context))
        if dry_run or not plan.needs_transaction(has_manifest=manifest is not None):
            if full and (record_check or not dry_run):
                _record_full_check(data_dir)
            return SyncResult(plan, False, recovered, manifest, full, deferred, built is not None)

        if before_changes is not None and plan.has_changes:
            before_changes(plan)  # e.g. take the gateway's scan locks

        wanted = [
            op.blob for op in plan.ordered() if op.action is Action.WRITE and op.content is None
        ]
        blobs = snapshot.pipeline(wanted)
        try:

            def read(op: Operation) -> Iterable[bytes]:
                return [op.content] if op.content is not None else blobs.next(op.blob)

            applier.apply(
                plan,
                read,
                profile=profile.name,
                previous=manifest,
                previous_file=os.path.join(data_dir, MANIFEST_PATH) if manifest else None,
            )
        finally:
            blobs.close()
        if full:
            _record_full_check(data_dir)
    return SyncResult(
        plan, plan.has_changes, recovered, manifest, full, deferred, built is not None
    )


def large_enough_to_walk_apart(data_dir: str) -> bool:
    """Whether a full check's walk is worth a child process: its start-up (~20 ms of CPU)
    costs more than walking a small tree here (300 files: 2 ms), and a fleet of agents pays it
    at every check. Judged by the manifest's size, known before it is read (never through a
    link; absent on a first sync, when the walk stays here), and only where the child can run
    beside this process: with two CPUs' worth of quota (a container limited to less, as the
    injected agent's 200m is, would run both on one budget and wait the longer for it)."""
    try:
        large = os.lstat(os.path.join(data_dir, MANIFEST_PATH)).st_size >= WALK_APART_FROM
    except OSError:
        return False
    return large and cpus.available() >= WALK_APART_CPUS


def lists_whole_tree(
    data_dir: str,
    commit: str,
    sync_period: int,
    *,
    defer_check: bool = False,
    full_check: bool = False,
) -> bool:
    """Whether a sync of `commit` is likely to build its desired tree whole (no recorded
    commit, a full check asked for, or due and not deferred: see sync_commit), so that its
    snapshot lists the commit's tree from the start; else it is planned from the changes (none,
    for a resync), which never list it. A hint, read without parsing the manifest: wrong, it
    changes only when the listing starts."""
    hint = _recorded_commit_hint(data_dir)
    if hint is None or full_check:
        return True
    if defer_check and hint != commit:  # a resync is the deferred check itself
        return False
    return full_check_due(
        last_full_check=_last_full_check(data_dir), now=time.time(), sync_period=sync_period
    )


def _recorded_commit_hint(data_dir: str) -> str | None:
    """The commit the manifest last recorded, as the end of its log (else the head of its
    base) names it, read without parsing either (a few KiB, never through a link): a hint of
    whether this sync is a resync, which only decides when a full check's walk starts. None
    when neither names one (absent, linked, a last log line longer than the tail read)."""
    for path, tail in ((LOG_PATH, True), (MANIFEST_PATH, False)):
        try:
            # Never through a link, and a FIFO planted there does not block (not read either).
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
            fd = os.open(os.path.join(data_dir, path), flags)
        except OSError:
            continue
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # a folder or a FIFO planted there
            os.close(fd)
            continue
        with open(fd, "rb") as handle:
            if tail:
                handle.seek(max(0, info.st_size - _HINT_BYTES))
            named = _COMMIT_KEY.findall(handle.read(_HINT_BYTES))
        if named:
            return bytes(named[-1]).decode("ascii")
    return None


_HINT_BYTES = 4096
_COMMIT_KEY = re.compile(rb'"commit":"([0-9a-f]{40,64})"')  # a line's or a base's own key


def _prefetch(live: LocalTree, profile: EffectiveProfile, context: TemplateContext) -> None:
    """Start a full check's walk of the live tree in a child process: it runs on another core
    while the desired tree is built (see LocalTree.prefetch)."""
    live.prefetch(desired.outer_destinations(profile, context), desired.never_patterns(profile))


def _from_diff(
    snapshot: GitSnapshot, profile: EffectiveProfile, context: TemplateContext, manifest: Manifest
) -> FromDiff | None:
    """The desired tree built from the commit's changes since the manifest's, or None (with
    the rule that says why, at debug level) when it must be built whole."""
    why = whole_because(manifest, profile, context, snapshot.commit)
    if why is None:
        try:
            diff = snapshot.diff_since(
                manifest.commit,
                desired.sources(profile, context),
                rendering_sources(profile, context),
                CHANGE_LIMIT,
            )
        except GitError as e:  # e.g. a shallow fetch without the recorded commit
            diff, why = None, f"the recorded commit cannot be compared ({e})"
        if diff is None:
            why = why or f"more than {CHANGE_LIMIT} paths changed"
        else:
            why = whole_because_diff(diff, profile, context)
            if why is None:
                built = from_diff(
                    profile, context, manifest, diff, snapshot.read, snapshot.read_ahead
                )
                if isinstance(built, FromDiff):
                    return built
                why = built
    log.debug("the desired tree is built whole: %s", why)
    return None


def _same(manifest: Manifest, snapshot: GitSnapshot) -> bool:
    return manifest.commit == snapshot.commit


def _last_full_check(data_dir: str) -> float | None:
    try:
        return os.stat(os.path.join(data_dir, FULL_CHECK_FILE)).st_mtime
    except FileNotFoundError:
        return None


def _record_full_check(data_dir: str) -> None:
    fd = os.open(
        os.path.join(data_dir, FULL_CHECK_FILE), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644
    )
    try:
        os.utime(fd)  # its mtime is the record; never through a link
    finally:
        os.close(fd)
