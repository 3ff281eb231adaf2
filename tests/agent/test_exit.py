"""How a `stoker` process ends after a command succeeds: at once (os._exit, not the interpreter
taken apart object by object), yet with everything an ordinary exit owes done first: atexit
handlers run, and all of its output is written, to a pipe too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from core.helpers import manifest_with

PROFILE = {"default": {"mappings": [{"source": "p", "destination": "projects"}]}}

# The command run in-process, with an atexit handler of its own registered before it.
WITH_HANDLER = """
import atexit, sys
from pathlib import Path
atexit.register(lambda: Path({marker!r}).write_text("ran"))
sys.argv = ["stoker", *{args!r}]
from stoker_agent.cli import main
main()
print("not reached: main exits", file=sys.stderr)
"""


def sync_args(make_repo: Any, tmp_path: Path, files: int) -> list[str]:
    """The arguments of a `stoker sync --output json` of a new repository of `files` files."""
    repo = make_repo({f"p/proj/v{i:05}/view.json": f'{{"v": {i}}}' for i in range(files)})
    cr = tmp_path / "cr.yaml"
    cr.write_text(json.dumps(manifest_with(PROFILE)))  # JSON is YAML
    data = tmp_path / "data"
    data.mkdir()
    args = ["sync", "--cr", str(cr), "--repo", str(repo), "--data-dir", str(data)]
    return [*args, "--gateway-name", "gw", "--output", "json"]


def test_a_successful_command_runs_the_atexit_handlers_and_exits_zero(
    make_repo: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    code = WITH_HANDLER.format(marker=str(marker), args=sync_args(make_repo, tmp_path, 3))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "not reached" not in done.stderr
    assert marker.read_text() == "ran"
    assert json.loads(done.stdout)["result"] == "Synced"


def test_output_larger_than_a_pipe_s_buffer_reaches_the_reader_whole(
    make_repo: Any, tmp_path: Path
) -> None:
    # 3,000 added paths: some 120 KiB of JSON, more than the pipe (64 KiB) and stdout's own
    # buffer hold, so the last of it is still in the buffer when the command returns.
    args = sync_args(make_repo, tmp_path, 3000)
    stoker = str(Path(sys.executable).with_name("stoker"))
    with subprocess.Popen([stoker, *args], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        out = proc.stdout.read()
    assert proc.returncode == 0
    assert len(out) > 64 * 1024
    assert len(json.loads(out)["added"]) == 3000
