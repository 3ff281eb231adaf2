"""Which scans a sync's changes need (stoker_core.scans)."""

from __future__ import annotations

import pytest

from stoker_core.scans import KINDS, scan_kinds


@pytest.mark.parametrize(
    ("changed", "kinds"),
    [
        (["projects/p/views/v/view.json"], ("projects",)),
        (["projects"], ("projects",)),  # the projects folder itself, removed
        (["config/resources/core/db/a/config.json"], ("config",)),
        (["projectsX/a.json"], ("config",)),  # not under projects/
        (["user-lib/pylib/a.py", "projects/p/a.json"], ("projects", "config")),
        (["config/a.json", "projects/p/a.json"], ("projects", "config")),  # projects first
        ([], KINDS),  # owed for a reason no path says: every kind
    ],
)
def test_a_change_is_scanned_by_the_kind_that_reads_it(
    changed: list[str], kinds: tuple[str, ...]
) -> None:
    assert scan_kinds(changed) == kinds


def test_the_paths_are_read_once_however_many() -> None:
    # A generator: scan_kinds must not need to go over the paths twice.
    paths = (f"projects/p{i}/a.json" for i in range(10_000))
    assert scan_kinds(paths) == ("projects",)
