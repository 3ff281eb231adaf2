"""Which of the gateway's scans a sync's changes need, and when to read how one is going.

The project scan reads `projects/` only; the config scan reads the config collections
(`config/...`). A sync asks for, and takes the scan lock of, only the kinds its changed paths
(with any still owed from earlier runs) call for: a project edit does not make the gateway
reload its configuration, nor a config edit its projects. Anything outside `projects/` counts
as config: a scan too many costs a call, one too few would leave a change unloaded.

A scan's status is read soon for a quick scan and less often for a long one; how far the
gateway's own numbers (the last scan's duration and end) are trusted to say when is decided
here, so the client only sleeps and reads.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import attrs

PROJECTS, CONFIG = "projects", "config"
KINDS = (PROJECTS, CONFIG)  # the order they are asked for: projects first, as Ignition wants
_PROJECTS_DIR = PROJECTS + "/"


def scan_kinds(changed: Iterable[str]) -> tuple[str, ...]:
    """The scans that load the `changed` paths (relative to the data directory), in KINDS
    order; every kind when none is named (a scan owed for a reason no path says)."""
    projects = config = False
    for path in changed:
        if path == PROJECTS or path.startswith(_PROJECTS_DIR):
            projects = True
        else:
            config = True
        if projects and config:
            break
    if not (projects or config):
        return KINDS
    return tuple(kind for kind, needed in zip(KINDS, (projects, config), strict=True) if needed)


@attrs.frozen(slots=True)
class ScanStatus:
    """The state of one scan kind."""

    active: bool
    last_timestamp: int
    last_duration: int


# Seconds between reads of a scan's status, the last repeated: a scan of a few files is seen
# done within 0.05-0.15 s; one of many seconds (a large gateway, or one busy) is read about
# once a second, not five times (each read is an authenticated call the gateway answers).
SCAN_POLLS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.0)
# A scan is first read once LONG_SCAN_SHARE of the last one's duration has passed, when that
# took at least LONG_SCAN seconds and ended at most LONG_SCAN_RECENT seconds ago (a gateway
# busy now scans about as long again; a long scan of another moment, its start or a fleet's,
# says nothing of this one), never later than LONG_SCAN_WAIT: a gateway's number cannot hold
# the check back for long.
LONG_SCAN, LONG_SCAN_SHARE, LONG_SCAN_WAIT, LONG_SCAN_RECENT = 1.0, 0.75, 10.0, 30.0


def expected_scan(like: ScanStatus, now: float) -> float:
    """How long a scan just asked for is likely to take, judged by the state its request
    answered at `now` (epoch seconds): the last scan's duration if it ended within
    LONG_SCAN_RECENT seconds, else 0 (nothing known)."""
    ended_ago = now - like.last_timestamp / 1000
    if not like.active or not 0 <= ended_ago <= LONG_SCAN_RECENT:
        return 0.0
    return like.last_duration / 1000


def scan_pauses(expected: float, elapsed: float = 0.0) -> Iterator[float]:
    """The pause before each read of a scan's status: none before the first, then SCAN_POLLS;
    for a scan expected to take `expected` s (at least LONG_SCAN), asked for `elapsed` s ago,
    the first read waits until LONG_SCAN_SHARE of it has passed (at most LONG_SCAN_WAIT)."""
    first = 0.0
    if expected >= LONG_SCAN:
        first = max(min(LONG_SCAN_SHARE * expected, LONG_SCAN_WAIT) - elapsed, 0.0)
    return itertools.chain((first,), SCAN_POLLS, itertools.repeat(SCAN_POLLS[-1]))
