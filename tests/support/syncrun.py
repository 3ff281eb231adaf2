"""Run one sync in a child process (for crash tests): `python -m support.syncrun ARGS_JSON`."""

from __future__ import annotations

import json
import sys
from typing import Any

from stoker_agent.gitrepo import Repository
from stoker_agent.syncing import sync_commit
from stoker_core import profiles
from stoker_core.templates import TemplateContext
from stoker_core.validation import load


def run(args: dict[str, Any]) -> dict[str, Any]:
    """Sync `data_dir` to `commit` of `repo` with the given GatewaySync document."""
    gs = load(args["cr"])
    effective = profiles.resolve(gs.spec.sync, args.get("profile"))
    context = TemplateContext(gateway_name=args.get("gateway", "gw"), vars=effective.vars)
    with Repository(args["repo"]) as repo:
        result = sync_commit(
            args["data_dir"],
            repo.snapshot(args["commit"]),
            effective,
            context,
            crash_at=args.get("crash_at"),
        )
    return {
        "applied": result.applied,
        "recovered": result.recovered,
        "added": len(result.plan.added),
        "deleted": len(result.plan.deleted),
        "from_diff": result.from_diff,
    }


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
