"""Data-directory path rules: normalising destinations, refusing escapes, and which paths Stoker
must never touch (gateway identity, caches) or touch only when told (gateway-owned state).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from itertools import repeat
from operator import itemgetter

from stoker_core.globs import GlobSet

# Never written or deleted, whatever a mapping says: gateway caches and identity.
PROTECTED = GlobSet(
    [
        "**/.resources/**",
        "**/.uuid",
        "config/local/ignition/gateway-network/uuid.txt",
    ]
)

# Written only when a mapping's destination lies inside them; pruned only if Stoker wrote them.
GATEWAY_OWNED = GlobSet(
    [
        "config/local/**",
        "config/resources/local/**",
        "local/**",
        "db/**",
        "**/*.jks",
        "**/*.pfx",
        "**/*.p12",
        "**/*keystore*",
        "commissioning.json",
        ".ignition-seed-complete",
    ]
)

# API tokens the gateway holds: written from Git like any resource, but deleted only if Stoker
# wrote them. Mapping a whole collection must never delete the token the agent itself (or an
# operator) authenticates with, locking everyone out of the gateway's API.
KEPT_UNLESS_RECORDED = GlobSet(["config/resources/*/ignition/api-token/**"])

# Config collections the gateway itself owns and writes (security properties, user sources, API
# tokens, everything edited in its web interface). A directory mapping onto one of them, or onto a
# folder holding one, still owns that subtree, so Stoker warns: Inductive Automation's guidance is
# to keep Git-managed config in `external` (or a deployment-mode collection) and leave `core` be.
GATEWAY_COLLECTIONS = ("config/resources/core",)

# Stoker's own state and the original agent's staging folder: never part of a sync.
RESERVED = GlobSet([".stoker/**", ".sync-staging/**"])

# Files whose change needs a gateway restart rather than a scan.
RESTART_REQUIRED = GlobSet(
    ["modules/**", "**/*.modl", "modules.json", "ignition.conf", "**/*.vmoptions"]
)


# Linux limits, in bytes: one name (most file systems) and a whole path given to the kernel,
# its terminating NUL included. A plan holding a longer one would fail halfway through its apply.
NAME_MAX = 255
PATH_MAX = 4096


def too_long(path: str) -> str | None:
    """Why `path` cannot be created on Linux (a name or the whole path too long), or None."""
    raw = path.encode("utf-8", "surrogateescape")
    if len(raw) <= NAME_MAX:  # the common case: nothing to split
        return None
    longest = max(len(part) for part in raw.split(b"/"))
    if longest > NAME_MAX:
        return (
            f"a name in this path is {longest} bytes, longer than the {NAME_MAX} bytes a file "
            "system allows (NAME_MAX); shorten it in the repository or the mapping"
        )
    if len(raw) >= PATH_MAX:
        return (
            f"this path is {len(raw)} bytes; Linux refuses paths of {PATH_MAX} bytes or more "
            "(PATH_MAX); use fewer or shorter folders in the repository or the mapping"
        )
    return None


def shorten(path: str, limit: int = 120) -> str:
    """`path` cut to `limit` characters for a message (an over-long path is still named)."""
    return path if len(path) <= limit else path[: limit - 1] + "…"


class PathEscape(ValueError):
    """A path is absolute or climbs out of its root."""


def normalize(path: str) -> str:
    """Normalise a relative path: `./projects/` and `projects` both become `projects`.

    The data-directory root itself is "" (from ".", "./" or ""). Raise PathEscape when the path is
    absolute or, after resolving `..`, leaves the root.
    """
    text = path
    if text.startswith("/"):
        raise PathEscape(f'absolute path not allowed: "{path}"; write it relative, e.g. "projects"')
    if "\0" in text:
        raise PathEscape("path holds a NUL byte")
    cleaned = posixpath.normpath(text) if text else "."
    if cleaned == ".." or cleaned.startswith("../"):
        raise PathEscape(f'path "{path}" leaves its root through ".."')
    return "" if cleaned == "." else cleaned


_NOT_A_NAME = frozenset({"", ".", ".."})


def is_clean(path: str) -> bool:
    """Whether `path` names a file by plain names only (no "", "." or ".." part, no NUL).

    Paths from a commit, a manifest or a plan must be: git never writes a tree entry called
    "..", but a crafted repository can hold one, and a data-directory path made from it would
    climb out of the data directory.
    """
    if "\0" in path:
        return False
    # Fast path (this runs once per path of a commit): no part can be "", "." or ".." unless
    # the path is empty, starts with "." or "/", ends with "/", or holds "//" or "/.".
    ends_plain = path[:1] not in ("", ".", "/") and path[-1:] != "/"
    if ends_plain and "//" not in path and "/." not in path:
        return True
    return not any(part in _NOT_A_NAME for part in path.split("/"))


def first_unclean(paths: Sequence[str]) -> int:
    """The index of the first path that is not clean (see is_clean), or -1 when all are.

    For a commit's or a manifest's every path: when all are plain (the rule), a few searches
    of their joined text settle it, with no step per path. Joined by "/" and framed by it, a
    "", "." or ".." part of any of them (the whole path included) reads "//", "/./" or "/../".
    """
    joined = "/" + "/".join(paths) + "/"
    if "\0" not in joined and "//" not in joined and "/./" not in joined and "/../" not in joined:
        return -1
    return next((i for i, path in enumerate(paths) if not is_clean(path)), -1)


def is_under(path: str, root: str) -> bool:
    """Tell whether `path` is `root` or inside it ("" is the whole data directory)."""
    return not root or path == root or path.startswith(root + "/")


def folders_above(paths: Iterable[str]) -> set[str]:
    """Every folder above one of `paths` ("" left out): a level of folders at a time, each
    a few set operations in C, not a climb per path (a tree's every file is asked at once)."""
    found: set[str] = set()
    level = set(map(_FOLDER, map(str.rpartition, paths, repeat("/"))))
    while level:
        level.discard("")
        level -= found  # known already: so are the folders above it
        found |= level
        level = set(map(_FOLDER, map(str.rpartition, level, repeat("/"))))
    return found


_FOLDER = itemgetter(0)  # of str.rpartition's parts


def parents(path: str) -> list[str]:
    """Return the ancestors of `path`, nearest first, excluding the root ""."""
    out: list[str] = []
    while "/" in path:
        path = path.rsplit("/", 1)[0]
        out.append(path)
    return out
