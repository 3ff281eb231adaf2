"""Run one `stoker sync` with a gateway in a child process and SIGKILL it right after the last
change of its commit (before the transaction finishes): `python -m support.killedsync ARGS_JSON`.

For crash tests that need the whole sync (the gateway's scan included), not only the applier.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from stoker_agent.documents import pick
from stoker_agent.gateway import GatewaySettings
from stoker_agent.histories import Recording
from stoker_agent.standalone import Identity, SyncSettings, run_once
from stoker_core.validation import load


def kill_after_commit(done: int, total: int) -> None:
    """The applier's progress hook: the commit's last change is step `total` of `total`."""
    if done == total:
        os.kill(os.getpid(), signal.SIGKILL)


def run(args: dict[str, Any]) -> str:
    """Sync `data_dir` to `repo` as profile `profile` of the GatewaySync in file `cr`."""
    settings = SyncSettings(
        gatewaysync=load(pick(args["cr"], None).data),
        profile=args["profile"],
        identity=Identity(gateway_name=args["gateway_name"]),
        repo=args["repo"],
        ref=None,
        data_dir=args["data_dir"],
        gateway=GatewaySettings(url=args["gateway_url"], token_file=args["token_file"]),
        progress=kill_after_commit,
        history=Recording(user="killed") if args.get("history") else None,
    )
    return run_once(settings).record.result


if __name__ == "__main__":
    print(run(json.loads(sys.argv[1])))
