"""The CLI error table: every way a user can get a `stoker` command wrong (or run it where it
cannot work) ends in one line on stderr, no traceback, and the exit code README.md documents.

Each case runs the real `stoker` in a subprocess. A missing optional package is simulated by a
meta-path finder that refuses to import it (no second environment); an unwritable directory is
a read-only bind mount in a private mount namespace (root binds it too) or, for a non-root user,
a directory without write permission; "API server down" is a kubeconfig naming a closed loopback
port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from conftest import EXAMPLES
from support.stokercli import BLOCKING

STOKER = str(Path(sys.executable).with_name("stoker"))
CR = EXAMPLES / "gatewaysyncs" / "single-gateway.yaml"  # its one profile is "standard"
K8S_COMMANDS = (
    "status",
    "controller",
    "webhook",
    "receiver",
    "release-gatewaysyncs",
    "approve",
    "history",
)
# Options that keep a k8s command from listening anywhere but loopback, should it get that far.
QUIET = {
    "status": [],
    "release-gatewaysyncs": [],
    "approve": ["site", "3f9c2e1"],
    "history": ["site"],
    "controller": ["--metrics-port", "0", "--no-leader-election"],
    "webhook": ["--bind", "127.0.0.1:0"],
    "receiver": ["--bind", "127.0.0.1:0"],
    "agent": [],
}
# Bind-mount a directory read-only onto itself, then run the command (the namespace, and the
# mount with it, ends with the command: nothing to clean up).
READ_ONLY = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'


class World(NamedTuple):
    """Files and directories the cases point at."""

    root: Path
    repo: Path
    data: Path
    kubeconfig_down: Path


class Case(NamedTuple):
    """One row: the command line, the exit code and words the one line must hold."""

    name: str
    args: Callable[[World], list[str]]
    code: int
    says: str
    blocked: str = ""  # comma-separated top-level packages to refuse
    read_only: str = ""  # a directory (relative to the world) to make unwritable


def _plan(w: World, *extra: str, repo: str = "") -> list[str]:
    base = ["--cr", str(CR), "--repo", repo or str(w.repo), "--data-dir", str(w.data)]
    return ["plan", *base, "--gateway-name", "gw", *extra]


def _sync(w: World, *extra: str) -> list[str]:
    base = ["--cr", str(CR), "--repo", str(w.repo), "--profile", "standard"]
    return ["sync", *base, "--gateway-name", "gw", *extra]


CASES = [
    Case("a wrong flag", lambda w: [*_plan(w), "--frob"], 64, "No such option '--frob'"),
    Case(
        "a missing file",
        lambda w: ["validate", str(w.root / "missing.yaml")],
        1,
        "cannot read: No such file or directory",
    ),
    Case("bad YAML", lambda w: ["validate", str(w.root / "broken.yaml")], 1, "invalid YAML: line"),
    Case(
        "a misspelt field",
        lambda w: ["validate", str(w.root / "misspelt.yaml")],
        1,
        "syncPerod: unknown field",
    ),
    Case(
        "an unknown kind",
        lambda w: ["validate", str(w.root / "unknown-kind.yaml")],
        1,
        '"GatewaySycn" is unknown; did you mean GatewaySync?',
    ),
    Case("an empty file", lambda w: ["validate", str(w.root / "empty.yaml")], 1, "is empty"),
    Case(
        "a missing repository",
        lambda w: _plan(w, "--profile", "standard", repo=str(w.root / "nowhere")),
        1,
        "is not a Git repository",
    ),
    Case(
        "a missing remote repository",
        lambda w: _plan(w, "--profile", "standard", repo=f"file://{w.root}/nowhere.git"),
        1,
        "does not appear to be a git repository",
    ),
    Case(
        "an unknown ref",
        lambda w: _plan(w, "--profile", "standard", "--ref", "nope"),
        1,
        'ref "nope" not found',
    ),
    Case("an unknown profile", lambda w: _plan(w, "--profile", "nope"), 1, 'profile "nope"'),
    Case(
        "an unwritable directory",
        lambda w: _sync(w, "--data-dir", str(w.root / "locked")),
        1,
        "locked",
        read_only="locked",
    ),
    Case(
        "a URL without scheme",
        lambda w: _sync(w, "--data-dir", str(w.data), "--gateway-url", "localhost:8088"),
        64,
        "'--gateway-url': \"localhost:8088\" is not an http(s) URL; write the scheme and host, "
        'e.g. "http://localhost:8088"',
    ),
    Case(
        "a period the CR would take but malformed",
        lambda w: _sync(w, "--data-dir", str(w.data), "--watch", "--interval", "ten"),
        64,
        "'--interval'",
    ),
    *(
        Case(
            f"no kubeconfig for {command}",
            lambda w, c=command: [c, *QUIET[c]],
            1,
            "no kubeconfig: not in a cluster and no ~/.kube/config",
        )
        for command in K8S_COMMANDS
    ),
    *(
        Case(
            f"API server down for {command}",
            lambda w, c=command: [c, "--kubeconfig", str(w.kubeconfig_down), *QUIET[c]],
            1,
            "cannot reach the API server at https://127.0.0.1:",
        )
        for command in K8S_COMMANDS
    ),
    Case(
        "API server down for rollout resume",
        lambda w: ["rollout", "resume", "site", "--kubeconfig", str(w.kubeconfig_down)],
        1,
        "cannot reach the API server at https://127.0.0.1:",
    ),
    Case(
        "approve names one gate",
        lambda w: ["approve", "site", "3f9c2e1", "--step", "a", "--pause", "b"],
        64,
        "give --step or --pause, not both",
    ),
    Case(
        "history names a GatewaySync or a data directory",
        lambda w: ["history", "site", "--data-dir", str(w.data)],
        64,
        "give a GatewaySync name or --data-dir DIR, not both or neither",
    ),
    Case(
        "a kubeconfig that does not exist",
        lambda w: ["status", "--kubeconfig", str(w.root / "nope.yaml")],
        1,
        "nope.yaml does not exist",
    ),
    Case(
        "an unknown kubeconfig context",
        lambda w: ["status", "--kubeconfig", str(w.kubeconfig_down), "--context", "nope"],
        1,
        "check --kubeconfig and --context",
    ),
    *(
        Case(
            f"a missing extra ({package}) for {command}",
            lambda w, c=command: [c, *QUIET[c]],
            1,
            f"stoker {command} needs the 'k8s' extra: pip install 'stoker[k8s]'",
            blocked=package,
        )
        for command, package in [
            ("status", "kubernetes"),
            ("controller", "prometheus_client"),
            ("webhook", "gunicorn"),
            ("receiver", "kubernetes"),
            ("agent", "prometheus_client"),
            ("history", "kubernetes"),
        ]
    ),
    Case(
        "a base package missing for sync --gateway-url",
        lambda w: _sync(w, "--data-dir", str(w.data), "--gateway-url", "http://127.0.0.1:9"),
        1,
        "stoker sync needs the Python package 'requests'",
        blocked="requests",
    ),
]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def world(tmp_path: Path, example_repo: Path) -> World:
    """The files every case needs, in one temporary directory."""
    (tmp_path / "data").mkdir()
    (tmp_path / "locked").mkdir()
    (tmp_path / "home").mkdir()
    (tmp_path / "broken.yaml").write_text("spec: [unclosed\n")
    (tmp_path / "misspelt.yaml").write_text(CR.read_text().replace("syncPeriod", "syncPerod"))
    (tmp_path / "unknown-kind.yaml").write_text(
        CR.read_text().replace("GatewaySync", "GatewaySycn")
    )
    (tmp_path / "empty.yaml").write_text("")
    kubeconfig = tmp_path / "down.kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: down\n"
        f"clusters: [{{name: down, cluster: {{server: 'https://127.0.0.1:{_closed_port()}'}}}}]\n"
        "users: [{name: u, user: {token: not-a-secret}}]\n"
        "contexts: [{name: down, context: {cluster: down, user: u}}]\n"
    )
    return World(tmp_path, example_repo, tmp_path / "data", kubeconfig)


def run(case: Case, w: World) -> subprocess.CompletedProcess[str]:
    """Run the case's command the way a user would, in a world with no cluster."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "STOKER_"))}
    env.update(HOME=str(w.root / "home"), NO_COLOR="1")
    argv = case.args(w)
    command = (
        [sys.executable, "-c", BLOCKING, case.blocked, *argv] if case.blocked else [STOKER, *argv]
    )
    if case.read_only:
        locked = w.root / case.read_only
        if os.geteuid() == 0:
            unshare = shutil.which("unshare")
            assert unshare, "unshare (util-linux) is needed to make a directory read-only as root"
            command = [unshare, "-m", "sh", "-c", READ_ONLY, "sh", str(locked), *command]
        else:
            locked.chmod(0o555)
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120, check=False
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name.replace(" ", "-"))
def test_every_cli_error_is_one_line_with_its_documented_exit_code(
    case: Case, world: World
) -> None:
    done = run(case, world)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines
    assert case.says in lines[0], lines[0]
    assert done.returncode == case.code, (done.returncode, lines[0])


def test_a_reader_that_goes_away_ends_stoker_quietly(
    tmp_path: Path, make_repo: Callable[[dict[str, bytes | str]], Path]
) -> None:
    """`stoker plan | head`: no traceback and no "error: Broken pipe" about a path."""
    repo = make_repo({f"projects/p{i:05}/project.json": "{}" for i in range(3000)})
    (tmp_path / "data").mkdir()
    cr = tmp_path / "cr.yaml"
    cr.write_text(
        "apiVersion: stoker.io/v1alpha1\nkind: GatewaySync\nmetadata: {name: plant}\n"
        "spec:\n  git: {repo: unused, ref: main}\n  gateway: {api: {secretName: k}}\n"
        "  sync:\n    profiles:\n      default:\n"
        "        mappings: [{source: projects, destination: projects}]\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "stoker_agent.cli", "plan", "--cr", str(cr),
            "--repo", str(repo), "--ref", "main", "--data-dir", str(tmp_path / "data"),
            "--gateway-name", "g",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stderr is not None
    assert proc.stdout.read(100)  # the plan is well over a pipe's buffer...
    proc.stdout.close()  # ...and the reader leaves
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert (proc.wait(timeout=60), stderr) == (1, "")
