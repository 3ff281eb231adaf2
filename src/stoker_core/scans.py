"""Which of the gateway's scans a sync's changes need.

The project scan reads `projects/` only; the config scan reads the config collections
(`config/...`). A sync asks for, and takes the scan lock of, only the kinds its changed paths
(with any still owed from earlier runs) call for: a project edit does not make the gateway
reload its configuration, nor a config edit its projects. Anything outside `projects/` counts
as config: a scan too many costs a call, one too few would leave a change unloaded.
"""

from __future__ import annotations

from collections.abc import Iterable

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
