"""Machine errors (a full or read-only filesystem, a missing /tmp, a permission) in words."""

from __future__ import annotations

HINT = (
    "check that this path exists and is writable by this user (in a container: a writable /tmp "
    "and data volume are needed, the root filesystem may be read-only)"
)


def describe(error: OSError) -> tuple[str, str | None]:
    """What went wrong and the path it concerns (if the error names one)."""
    what = error.strerror or str(error)
    where = error.filename if isinstance(error.filename, str) else None
    return f"{what}; {HINT}", where
