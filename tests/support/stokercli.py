"""The `stoker` command line as the agent tests run it: a child process with NO_COLOR=1 whose
output is captured; the arguments of a sync of the example's profile blue against a gateway
simulator; and that simulator with its data directory and API token file, as a fixture."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from support.ignition_sim import GatewaySimulator, running
from support.ignition_sim_resources import write_api_token

TESTS = Path(__file__).resolve().parents[1]
MULTI = TESTS.parent / "examples" / "gatewaysyncs" / "multiple-profiles.yaml"
BLUE = ["--gateway-name", "ignition-blue", "--profile", "blue"]
CLI = (sys.executable, "-m", "stoker_agent.cli")
CONSOLE = (str(Path(sys.executable).parent / "stoker"),)  # the installed console command
# `python -c BLOCKING PACKAGES ARGS`: stoker with the top-level PACKAGES (comma-separated)
# refusing to import, as if not installed.
BLOCKING = """\
import sys
BLOCKED = set(sys.argv[1].split(","))
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Refuse())
from stoker_agent.cli import main
main(sys.argv[2:])
"""


def run_command(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """`command` with NO_COLOR=1 (and `env` on top of ours), its output captured as text."""
    return subprocess.run(
        list(command),
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )


def run_stoker(
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    console: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`stoker ARGS` (`python -m stoker_agent.cli`, or the installed command when `console`)."""
    command = [*(CONSOLE if console else CLI), *args]
    return run_command(command, env=env, stdin=stdin, cwd=cwd, timeout=timeout)


def run_module(
    *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m ARGS` able to import the tests' `support` modules (support.killedsync, ...)."""
    return run_command([sys.executable, "-m", *args], env={**tests_on_path(), **(env or {})})


def start_watch(*args: str) -> subprocess.Popen[str]:
    """`stoker ARGS --watch --interval 1s --output json` started: a JSON report a line on stdout."""
    return subprocess.Popen(
        [*CLI, *args, "--watch", "--interval", "1s", "--output", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def tests_on_path() -> dict[str, str]:
    """The environment that lets a child process import the tests' `support` modules."""
    return {"PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def sync_command(cr: Path, repo: Path, data: Path, *extra: str) -> list[str]:
    """`stoker sync` arguments: the GatewaySync file `cr`, `repo`, the data directory `data`."""
    return ["sync", "--cr", str(cr), "--repo", str(repo), "--data-dir", str(data), *extra]


def local_sync(repo: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """A fresh data directory and the `stoker sync` arguments for it, without a gateway."""
    data = tmp_path / "data"
    data.mkdir()
    return data, sync_command(MULTI, repo, data, *BLUE)


def sync_args(
    repo: Path, data: Path, sim: GatewaySimulator, token: Path, *extra: str, cr: Path = MULTI
) -> list[str]:
    """`stoker sync` arguments for profile blue of `cr`, against the simulator `sim`."""
    gateway = ["--gateway-url", sim.url, "--api-token-file", str(token)]
    return sync_command(cr, repo, data, *BLUE, *gateway, *extra)


def killed_sync_args(
    repo: Path, data: Path, sim: GatewaySimulator, token: Path, **more: object
) -> dict[str, object]:
    """The `support.killedsync` arguments for a sync of profile blue against `sim`."""
    return {
        "cr": str(MULTI),
        "profile": "blue",
        "gateway_name": "ignition-blue",
        "repo": str(repo),
        "data_dir": str(data),
        "gateway_url": sim.url,
        "token_file": str(token),
        **more,
    }


@pytest.fixture(name="gateway")
def simulated_gateway(tmp_path: Path) -> Iterator[tuple[GatewaySimulator, Path, Path]]:
    """A running gateway simulator, its data directory and a file with its API token."""
    data = tmp_path / "data"
    data.mkdir()
    token = tmp_path / "api-token"
    token.write_text(write_api_token(data, collection="local") + "\n")
    with running(data) as sim:
        yield sim, data, token
