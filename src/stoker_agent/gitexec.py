"""Every git process Stoker starts, under a configuration that nobody but Stoker writes.

Git runs programs named by its configuration and by files in a repository (hooks,
`core.fsmonitor`, `core.sshCommand`, credential helpers, `ext::` remotes, filter drivers) and
reads configuration from the user's home, the system, the current directory's repository and
`include.path` files. A gateway that could write any of those places would run code as the sync
user, with the Git token in its environment. So every git command Stoker runs is built here:

- a private, empty HOME and XDG_CONFIG_HOME, no system or global configuration, no inherited
  `GIT_*` variable;
- the working directory is that private directory, with repository discovery stopped there, so
  a `.git` in the caller's working directory (a gateway's data directory, say) is never read;
- command-line overrides, which git ranks above any repository's own file, turn off hooks,
  fsmonitor, credential helpers and the `ext::` transport, and trust exactly the repository
  Stoker names (never `safe.directory=*`).

Repositories Stoker writes itself (the agent's and the standalone mirror) live only where the
gateway cannot write, so their own configuration files are Stoker's too.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from typing import IO, Any

# Git ranks `-c` above every configuration file, a repository's own included.
HARDENED: tuple[str, ...] = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "core.sshCommand=ssh",
    "-c", "core.gitProxy=",
    "-c", "core.askPass=/bin/false",
    "-c", "credential.helper=",
    "-c", "protocol.ext.allow=never",
    "-c", "uploadpack.packObjectsHook=",
    "-c", "gc.auto=0",
    "-c", "maintenance.auto=false",
    "-c", "core.pager=cat",
)  # fmt: skip

_private: str | None = None


def private_dir() -> str:
    """This process's empty 0700 directory, used as git's HOME and working directory."""
    global _private
    if _private is None or not os.path.isdir(_private):
        _private = tempfile.mkdtemp(prefix="stoker-git-")
        atexit.register(shutil.rmtree, _private, True)
    return _private


def environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a git process: the caller's, less anything that configures git."""
    home = private_dir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        HOME=home,
        XDG_CONFIG_HOME=home,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CEILING_DIRECTORIES=os.path.dirname(home),
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="/bin/false",
        SSH_ASKPASS="/bin/false",
        GIT_PAGER="cat",
        LC_ALL="C",
    )
    env.update(extra or {})
    return env


def command(args: Sequence[str], *, trusted: str | None = None) -> list[str]:
    """The argv of one git command; `trusted` is the one repository git may open if not ours."""
    trust = ("-c", f"safe.directory={trusted}") if trusted else ()
    return ["git", *HARDENED, *trust, *args]


def run(
    args: Sequence[str],
    *,
    trusted: str | None = None,
    env: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> subprocess.CompletedProcess[Any]:
    """Run one git command hardened; keyword arguments go to subprocess.run."""
    return subprocess.run(
        command(args, trusted=trusted),
        env=environment(env),
        cwd=private_dir(),
        check=False,
        **kwargs,
    )


def popen(
    args: Sequence[str],
    *,
    trusted: str | None = None,
    stdin: int | IO[Any] | None = None,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
) -> subprocess.Popen[bytes]:
    """Start one git command hardened, for streaming."""
    return subprocess.Popen(
        command(args, trusted=trusted),
        env=environment(),
        cwd=private_dir(),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
    )
