"""Which scans a sync's changes need, and when a scan's status is read (stoker_core.scans)."""

from __future__ import annotations

import pytest

from stoker_core.scans import KINDS, ScanStatus, expected_scan, scan_kinds, scan_pauses


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


@pytest.mark.parametrize(
    ("ended_ago", "duration_ms", "active", "expected"),
    [
        (2.0, 5000, True, 5.0),  # busy now: about as long again
        (29.0, 5000, True, 5.0),
        (31.0, 5000, True, 0.0),  # a long scan of another moment (a fleet's start): unknown
        (600.0, 5000, True, 0.0),
        (-5.0, 5000, True, 0.0),  # ended in the future by the gateway's clock: unknown
        (2.0, 5000, False, 0.0),  # not running: nothing to wait for
    ],
)
def test_only_a_recent_long_scan_says_how_long_the_next_takes(
    ended_ago: float, duration_ms: int, active: bool, expected: float
) -> None:
    # A rollout on 50 gateways, each batch's scan quick, waited 3.75 s before its first read
    # because the last scan, at the fleet's start, had taken 5 s: 1.75x the rollout's floor.
    now = 1_800_000_000.0
    like = ScanStatus(active, int((now - ended_ago) * 1000), duration_ms)
    assert expected_scan(like, now) == expected


@pytest.mark.parametrize(
    ("expected", "elapsed", "first"),
    [
        (0.0, 0.0, 0.0),
        (0.5, 0.0, 0.0),
        (-3.0, 0.0, 0.0),
        (4.0, 0.0, 3.0),
        (4.0, 1.0, 2.0),
        (4.0, 9.0, 0.0),
        (1e12, 0.0, 10.0),
    ],
)
def test_a_gateway_number_never_holds_the_first_read_back_long(
    expected: float, elapsed: float, first: float
) -> None:
    pauses = scan_pauses(expected, elapsed)
    assert next(pauses) == first
    assert [next(pauses) for _ in range(7)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
