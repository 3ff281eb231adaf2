"""The sync plan: a frozen list of operations, each with a reason. Planning is pure; applying it
is the agent's job. `apply_to` is the reference semantics the real applier is tested against.
"""

from __future__ import annotations

import enum
import operator
from typing import NamedTuple

import attrs

from stoker_core.desired import Skip
from stoker_core.trees import MemoryTree


class Action(enum.StrEnum):
    """What an operation does to its path."""

    WRITE = "write"
    DELETE = "delete"
    KEEP = "keep"
    MKDIR = "mkdir"
    RMDIR = "rmdir"


class Reason(enum.StrEnum):
    """Why an operation is in the plan."""

    NEW = "new"
    CONTENT_CHANGED = "content-changed"
    MODE_CHANGED = "mode-changed"
    REPLACES_NON_FILE = "replaces-non-file"
    UNCHANGED = "unchanged"
    ADOPTED = "adopted"
    VERIFIED = "verified"  # read because its metadata changed; content still equal
    GATEWAY_STAMPED = "gateway-stamped"  # only Ignition's lastModification/signature differ
    ORPHAN = "orphan"
    EMPTY_DIR = "empty-directory"
    NEEDED_DIR = "needed-directory"


# Files kept as they are whose manifest record must be (re)written, or every later sync would
# read them again: adopted ones, gateway-stamped ones, and ones whose stat changed (a touch, a
# copy by another tool) while their content did not.
_RERECORD = frozenset({Reason.ADOPTED, Reason.GATEWAY_STAMPED, Reason.VERIFIED})


_REASON = operator.itemgetter(2)  # an Operation's reason, in C


class Operation(NamedTuple):  # a tuple: one per managed path, made in the hot loop
    """One step of a plan. WRITE carries the blob id and, for rendered files, the content."""

    action: Action
    path: str
    reason: Reason
    blob: str = ""
    mode: int = 0
    size: int = 0
    mapping: int = -1
    content: bytes | None = None


@attrs.frozen(slots=True, kw_only=True)
class SyncPlan:
    """What one sync will do, in path order, plus what it leaves alone and why."""

    commit: str
    operations: tuple[Operation, ...]
    skipped: tuple[Skip, ...]
    # The commit's empty directories (nothing below them is a file): recorded in the manifest,
    # so that planning from the next commit's changes looks at them when that commit drops them.
    dirs: tuple[str, ...] = ()
    # The digest of the profile and template values it was planned with (recorded.inputs_digest):
    # kept in the manifest with the skip reports, so the next commit can be planned from its
    # changes ("": not known, the next commit is planned whole).
    inputs: str = ""
    # The operations that change something (all but KEEP), in path order: found once, since a
    # commit changing one file keeps thousands, and every question below is about the changes.
    changes: tuple[Operation, ...] = attrs.field(init=False, eq=False, repr=False)

    @changes.default
    def _changes(self) -> tuple[Operation, ...]:
        keep = Action.KEEP
        return tuple([op for op in self.operations if op[0] is not keep])

    def paths(self, action: Action, *reasons: Reason) -> list[str]:
        """Return the paths of operations with `action` (and one of `reasons`, if given)."""
        return [
            op.path
            for op in (self.operations if action is Action.KEEP else self.changes)
            if op.action is action and (not reasons or op.reason in reasons)
        ]

    @property
    def added(self) -> list[str]:
        """Files that do not exist yet."""
        return self.paths(Action.WRITE, Reason.NEW)

    @property
    def modified(self) -> list[str]:
        """Files whose content, mode or type changes."""
        return self.paths(
            Action.WRITE, Reason.CONTENT_CHANGED, Reason.MODE_CHANGED, Reason.REPLACES_NON_FILE
        )

    @property
    def deleted(self) -> list[str]:
        """Files removed."""
        return self.paths(Action.DELETE)

    @property
    def unchanged(self) -> int:
        """How many managed files already match."""
        return len(self.operations) - len(self.changes)

    def projects(self) -> set[str]:
        """Projects this commit delivers (a `projects/<name>/project.json` written or kept):
        the ones the gateway must list after its scan, or the change was rejected."""
        names = set()
        for op in self.operations:
            path = op.path
            if not (path.startswith("projects/") and path.endswith("/project.json")):
                continue  # the test below splits the path: most are not these
            parts = path.split("/")
            if len(parts) == 3 and op.action in (Action.WRITE, Action.KEEP):
                names.add(parts[1])
        return names

    @property
    def has_changes(self) -> bool:
        """Tell whether applying the plan would change anything."""
        return bool(self.changes)

    def needs_transaction(self, *, has_manifest: bool) -> bool:
        """Changes to make, or a manifest to (re)write so the next sync can trust what is
        there: none yet, or files kept whose record is new or stale."""
        return (
            self.has_changes
            or not has_manifest
            or not _RERECORD.isdisjoint(map(_REASON, self.operations))
        )

    def ordered(self) -> list[Operation]:
        """Operations in the order an applier must run them: deletions (deepest first),
        then directories (shallowest first), then writes."""
        rank = {Action.DELETE: 0, Action.RMDIR: 1, Action.MKDIR: 2, Action.WRITE: 3}
        work = [op for op in self.changes if op.action in rank]

        def key(op: Operation) -> tuple[int, int, str]:
            depth = op.path.count("/")
            return (rank[op.action], -depth if op.action is Action.RMDIR else depth, op.path)

        return sorted(work, key=key)


def apply_to(plan: SyncPlan, tree: MemoryTree, contents: dict[str, bytes]) -> MemoryTree:
    """Return a copy of `tree` with the plan applied; `contents` maps blob ids to bytes."""
    out = tree.copy()
    for op in plan.ordered():
        if op.action is Action.DELETE:
            out.remove(op.path)
        elif op.action is Action.RMDIR:
            out.rmdir(op.path)
        elif op.action is Action.MKDIR:
            out.mkdir(op.path)
        else:
            data = op.content if op.content is not None else contents[op.blob]
            out.put(op.path, data, op.mode)
    return out
