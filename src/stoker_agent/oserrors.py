"""Machine errors (a full or read-only filesystem, a missing /tmp, a permission) in words."""

from __future__ import annotations

import errno

HINT = (
    "check that this path exists and is writable by this user (in a container: a writable /tmp "
    "and data volume are needed, the root filesystem may be read-only)"
)
NO_SPACE_HINT = "free space (or inodes) on the volume that holds this path"


def describe(error: OSError) -> tuple[str, str | None]:
    """What went wrong and the path it concerns (if the error names one)."""
    what = error.strerror or str(error)
    where = error.filename if isinstance(error.filename, str) else None
    hint = NO_SPACE_HINT if error.errno in (errno.ENOSPC, errno.EDQUOT) else HINT
    return f"{what}; {hint}", where


def sentence(error: OSError) -> str:
    """One line for a status or a log: `path: what went wrong; what to do`."""
    message, where = describe(error)
    return f"{where}: {message}" if where else message
