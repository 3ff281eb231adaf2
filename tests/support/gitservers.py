"""Real Git servers on loopback for tests: ``git daemon``, smart HTTP(S) and ``sshd``.

Every server runs from a private temporary directory, listens on ``127.0.0.1`` on a free port,
serves the bare repositories under one root directory and is stopped by the PIDs it started
(never by name). Repositories are built with the git CLI under a fixed identity and an isolated
``HOME``, so the user's ``~/.gitconfig`` never matters. See docs/git-test-servers.md.

Typical use (the fixtures at the end of this module wrap the same calls)::

    repo = BareRepo.create(root, "config", {"a.txt": "one"})
    with GitDaemon(root) as daemon:
        git_client(["clone", daemon.url_for("config"), str(dest)], env=daemon.client_env(home))
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import ipaddress
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest

from support import githttp
from support.githttp import HttpRequestRecord

# ---------------------------------------------------------------------------------------------
# Git CLI with an isolated environment
# ---------------------------------------------------------------------------------------------

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Stoker Tests",
    "GIT_AUTHOR_EMAIL": "tests@stoker.invalid",
    "GIT_COMMITTER_NAME": "Stoker Tests",
    "GIT_COMMITTER_EMAIL": "tests@stoker.invalid",
}
_FIRST_COMMIT_TIME = 1_700_000_000
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
TEST_TOKEN = "ghs_test-token"
"""The token the ``git_http``/``git_https`` fixtures accept as a password or bearer token."""


class GitServerError(RuntimeError):
    """A test Git server could not be started or used (the message says why)."""


class GitCommandError(RuntimeError):
    """A git command run by the helpers failed; carries its exit code and output."""

    def __init__(self, args: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        super().__init__(f"git {shlex.join(args)} exited {returncode}: {stderr.strip()}")
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def isolated_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for git with ``HOME=home``, no system config and no inherited ``GIT_*``.

    Also drops ``SSH_AUTH_SOCK``/``SSH_ASKPASS`` so no agent key or prompt of the caller leaks in,
    and disables terminal prompts so a missing credential fails instead of hanging.
    """
    home.mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GIT_") and k not in ("SSH_AUTH_SOCK", "SSH_ASKPASS", "XDG_CONFIG_HOME")
    }
    env.update(GIT_IDENTITY)
    env.update(
        {
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
            "LANG": "C",
        }
    )
    if extra:
        env.update(extra)
    return env


def git_client(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    check: bool = False,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``git *args`` as a client would (text output captured); raise only if ``check``."""
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise GitCommandError(args, done.returncode, done.stdout, done.stderr)
    return done


# ---------------------------------------------------------------------------------------------
# Bare repositories built from dicts of files
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class File:
    """File content for :meth:`BareRepo.commit` with an explicit mode (``executable``)."""

    content: bytes | str
    executable: bool = False


@dataclass(frozen=True)
class Symlink:
    """A symbolic link for :meth:`BareRepo.commit`; ``target`` is stored verbatim."""

    target: str


Content = bytes | str | File | Symlink
"""What a path maps to in a files dict; ``None`` (with ``replace=False``) deletes the path."""


class BareRepo:
    """A bare repository ``<root>/<name>.git`` changed through git plumbing (no work tree).

    Commits get increasing fixed timestamps, so identical inputs give identical commit ids within a
    repository's history while a rewrite always gives a new id.
    """

    def __init__(self, path: Path, home: Path) -> None:
        self.path = path
        self.home = home
        self._clock = _FIRST_COMMIT_TIME

    @classmethod
    def create(
        cls,
        root: Path,
        name: str,
        files: Mapping[str, Content] | None = None,
        *,
        branch: str = "main",
        message: str = "initial",
        home: Path | None = None,
    ) -> BareRepo:
        """Create ``root/name.git`` with ``branch`` as HEAD and, if ``files`` is given, one commit.

        ``home`` is the isolated ``HOME`` for git (default: ``root/.git-home``).
        """
        path = root.resolve() / (name if name.endswith(".git") else f"{name}.git")
        repo = cls(path, home or root.resolve() / ".git-home")
        path.parent.mkdir(parents=True, exist_ok=True)
        repo.git("init", "-q", "--bare", f"--initial-branch={branch}", str(path), git_dir=False)
        # Servers honour this (GitHub does too): fetch any reachable commit by its id.
        repo.git("config", "uploadpack.allowReachableSHA1InWant", "true")
        repo.git("config", "receive.denyNonFastForwards", "false")
        if files is not None:
            repo.commit(files, branch=branch, message=message)
        return repo

    @property
    def name(self) -> str:
        """The repository name without ``.git`` (what ``url_for`` takes)."""
        return self.path.name.removesuffix(".git")

    def git(
        self,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        git_dir: bool = True,
    ) -> str:
        """Run ``git --git-dir=<repo> *args`` with the isolated environment; return stdout."""
        argv = ["git", f"--git-dir={self.path}", *args] if git_dir else ["git", *args]
        done = subprocess.run(
            argv,
            env=isolated_env(self.home, env),
            input=input if input is not None else b"",
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise GitCommandError(
                argv[1:],
                done.returncode,
                done.stdout.decode(errors="replace"),
                done.stderr.decode(errors="replace"),
            )
        return done.stdout.decode().strip()

    def _tick(self) -> dict[str, str]:
        self._clock += 60
        stamp = f"@{self._clock} +0000"
        return {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}

    def rev_parse(self, rev: str) -> str:
        """The object id ``rev`` names (``main``, ``v1^{commit}``, ``refs/tags/x``...)."""
        return self.git("rev-parse", "--verify", "--end-of-options", rev)

    def ref_exists(self, ref: str) -> bool:
        """Whether ``ref`` resolves."""
        try:
            self.rev_parse(ref)
        except GitCommandError:
            return False
        return True

    def refs(self) -> dict[str, str]:
        """All refs as ``{"refs/heads/main": oid, ...}`` (annotated tags: the tag object id)."""
        out = self.git("for-each-ref", "--format=%(refname) %(objectname)")
        refs: dict[str, str] = {}
        for line in out.splitlines():
            name, _, oid = line.partition(" ")
            refs[name] = oid
        return refs

    def _build_tree(self, files: Mapping[str, Content | None], base: str | None) -> str:
        with tempfile.TemporaryDirectory(prefix="stoker-tree-") as scratch:
            work = Path(scratch) / "work"
            work.mkdir()
            env = {"GIT_INDEX_FILE": str(Path(scratch) / "index"), "GIT_WORK_TREE": str(work)}
            if base is not None:
                self.git("read-tree", base, env=env)
            added: list[str] = []
            removed: list[str] = []
            for rel, content in files.items():
                if rel.startswith("/") or ".." in Path(rel).parts or rel in ("", "."):
                    raise ValueError(f"not a relative repository path: {rel!r}")
                if content is None:
                    removed.append(rel)
                    continue
                target = work / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, Symlink):
                    target.symlink_to(content.target)
                else:
                    data = content.content if isinstance(content, File) else content
                    target.write_bytes(data.encode() if isinstance(data, str) else data)
                    executable = isinstance(content, File) and content.executable
                    target.chmod(0o755 if executable else 0o644)
                added.append(rel)
            if removed:
                paths = b"".join(p.encode() + b"\0" for p in removed)
                self.git("update-index", "--force-remove", "-z", "--stdin", input=paths, env=env)
            if added:
                paths = b"".join(p.encode() + b"\0" for p in added)
                self.git(
                    "update-index", "--add", "--replace", "-z", "--stdin", input=paths, env=env
                )
            return self.git("write-tree", env=env)

    def commit(
        self,
        files: Mapping[str, Content | None],
        *,
        branch: str = "main",
        message: str = "change",
        parents: Sequence[str] | None = None,
        replace: bool = True,
    ) -> str:
        """Commit on ``branch`` and return the new commit id.

        ``replace=True``: the tree holds exactly ``files``. ``replace=False``: the first parent's
        tree with ``files`` applied (a ``None`` value deletes that path). ``parents`` defaults to
        the branch tip (none for a new branch); the branch is moved to the new commit whatever its
        old value (pass other parents to rewrite history, or use :meth:`rewrite`).
        """
        ref = f"refs/heads/{branch}"
        if parents is None:
            parents = [self.rev_parse(ref)] if self.ref_exists(ref) else []
        if not replace and not parents:
            raise ValueError("replace=False needs a parent commit")
        tree = self._build_tree(files, None if replace else f"{parents[0]}^{{tree}}")
        parent_args = [arg for p in parents for arg in ("-p", p)]
        oid = self.git("commit-tree", tree, *parent_args, "-m", message, env=self._tick())
        self.git("update-ref", ref, oid)
        return oid

    def rewrite(
        self, branch: str, files: Mapping[str, Content], *, message: str = "rewritten"
    ) -> str:
        """Force-move ``branch`` to a new commit that does not descend from its current tip.

        The new commit's parent is the tip's first parent (none for a root commit), as after
        ``git commit --amend && git push --force``. Returns the new commit id.
        """
        tip = self.rev_parse(f"refs/heads/{branch}")
        parent_line = self.git("rev-list", "--parents", "-n", "1", tip).split()
        return self.commit(files, branch=branch, message=message, parents=parent_line[1:2])

    def tag(
        self, name: str, target: str = "main", *, annotated: bool = False, message: str = ""
    ) -> str:
        """Create (or move) tag ``name`` at ``target``; return the id ``refs/tags/name`` holds.

        For an annotated tag that is the tag object's id; ``rev_parse(name + "^{commit}")`` gives
        the commit.
        """
        commit = self.rev_parse(f"{target}^{{commit}}")
        if annotated:
            self.git(
                "tag", "-f", "-a", "-m", message or f"tag {name}", name, commit, env=self._tick()
            )
        else:
            self.git("tag", "-f", name, commit)
        return self.rev_parse(f"refs/tags/{name}")

    def delete_ref(self, ref: str) -> None:
        """Delete ``ref``: a full name (``refs/...``), else a branch, else a tag of that name."""
        if not ref.startswith("refs/"):
            ref = (
                f"refs/heads/{ref}" if self.ref_exists(f"refs/heads/{ref}") else f"refs/tags/{ref}"
            )
        self.git("update-ref", "-d", ref)

    def set_head(self, branch: str) -> None:
        """Point ``HEAD`` (the default branch a clone checks out) at ``branch``."""
        self.git("symbolic-ref", "HEAD", f"refs/heads/{branch}")


# ---------------------------------------------------------------------------------------------
# Processes: start with a log file, stop by PID (the leader and its own descendants only)
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (callers retry on a bind race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _descendants(pid: int) -> list[tuple[int, str]]:
    """``(pid, start time)`` of every live descendant of ``pid`` (children first)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[tuple[int, str]] = []
    queue = list(children.get(pid, []))
    while queue:
        child = queue.pop(0)
        started = _start_time(child)
        if started is not None:
            found.append((child, started))
        queue.extend(children.get(child, []))
    return found


def _alive(pid: int, started: str) -> bool:
    """Whether ``pid`` still runs the same process (not reused) and is not a zombie."""
    if _start_time(pid) != started:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class _Process:
    """A server process started in its own session, with stdout+stderr in a log file."""

    def __init__(self, argv: Sequence[str], log_path: Path, env: Mapping[str, str]) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
            )
        self.pid = self.popen.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait_until(self, ready: Any, what: str, timeout: float = _START_TIMEOUT) -> None:
        """Poll ``ready()`` until true; raise with the log if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if not self.running():
                raise GitServerError(f"{what} exited {self.popen.returncode}:\n{self.log_text()}")
            time.sleep(0.02)
        self.stop()
        raise GitServerError(f"{what} not ready after {timeout}s:\n{self.log_text()}")

    def stop(self) -> list[int]:
        """Stop the descendants, then the leader (SIGTERM, then SIGKILL); return all their PIDs.

        Descendants go first so the leader still reaps them; the leader is not reaped until the
        end, so no PID in the list can be reused meanwhile (start times are checked too).
        """
        if self.popen.returncode is not None:
            return [self.pid]
        leader = (self.pid, _start_time(self.pid) or "")
        children = _descendants(self.pid)
        for group in (children[::-1], [leader]):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for pid, started in group:
                    if _alive(pid, started):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, sig)
                if self._wait_gone(group):
                    break
        self.popen.wait(timeout=_STOP_TIMEOUT)
        return [pid for pid, _ in [leader, *children]]

    def _wait_gone(self, group: list[tuple[int, str]]) -> bool:
        deadline = time.monotonic() + _STOP_TIMEOUT
        while time.monotonic() < deadline:
            self.popen.poll()
            if not any(_alive(pid, started) for pid, started in group):
                return True
            time.sleep(0.02)
        return False


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on ``127.0.0.1:port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class _Server:
    """Context-manager plumbing shared by the servers, and their private state directory."""

    _state_prefix = "stoker-git-"
    _state_dir: Path | None = None

    @property
    def state_dir(self) -> Path:
        """The server's private directory (config, keys, logs), created by ``start()``.

        ``stop()`` removes it.
        """
        if self._state_dir is None:
            raise GitServerError(f"{type(self).__name__} is not running")
        return self._state_dir

    def _make_state(self) -> Path:
        self._state_dir = Path(tempfile.mkdtemp(prefix=self._state_prefix)).resolve()
        return self._state_dir

    def _remove_state(self) -> None:
        if self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            self._state_dir = None

    def start(self) -> Self:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# git daemon
# ---------------------------------------------------------------------------------------------


class GitDaemon(_Server):
    """``git daemon`` serving every repository under ``root`` at ``git://127.0.0.1:PORT/``."""

    _state_prefix = "stoker-gitdaemon-"

    def __init__(self, root: Path, *, enable_receive_pack: bool = False) -> None:
        self.root = root.resolve()
        self.enable_receive_pack = enable_receive_pack
        self.port = 0
        self.pids: list[int] = []
        self._proc: _Process | None = None

    def start(self) -> Self:
        """Start on a free port and wait until it accepts connections."""
        if self._proc is not None:
            return self
        home = self._make_state() / "home"
        for _attempt in range(5):
            self.port = free_port()
            argv = [
                "git",
                "daemon",
                "--reuseaddr",
                "--verbose",
                "--informative-errors",
                "--export-all",
                f"--base-path={self.root}",
                "--listen=127.0.0.1",
                f"--port={self.port}",
                "--enable=upload-pack",
                "--log-destination=stderr",
            ]
            if self.enable_receive_pack:
                argv.append("--enable=receive-pack")
            argv.append(str(self.root))
            log = self.state_dir / "daemon.log"
            log.write_bytes(b"")
            proc = _Process(argv, log, isolated_env(home))
            self._proc = proc
            try:
                # Logged once the socket listens; polling the port would leave a log entry.
                proc.wait_until(lambda p=proc: "Ready to rumble" in p.log_text(), "git daemon")
            except GitServerError:
                self._proc = None
                if "Address already in use" in proc.log_text():
                    continue
                self._cleanup()
                raise
            self.pids = [proc.pid]
            return self
        self._cleanup()
        raise GitServerError("git daemon: no free port after 5 attempts")

    def url_for(self, name: str) -> str:
        """``git://127.0.0.1:PORT/<name>.git``."""
        return f"git://127.0.0.1:{self.port}/{_repo_file(name)}"

    def client_env(self, home: Path) -> dict[str, str]:
        """A client environment (no credentials needed)."""
        return isolated_env(home)

    def log_text(self) -> str:
        """The daemon's log (``--verbose``: one line per connection and service)."""
        return self._proc.log_text() if self._proc else ""

    def stop(self) -> None:
        """Stop the daemon and the per-connection children it forked; remove its state dir."""
        if self._proc is not None:
            self.pids = self._proc.stop()
            self._proc = None
        self._cleanup()

    def _cleanup(self) -> None:
        self._remove_state()


def _repo_file(name: str) -> str:
    name = name.strip("/")
    return name if name.endswith(".git") else f"{name}.git"


# ---------------------------------------------------------------------------------------------
# Smart HTTP(S) via git http-backend, with basic auth
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate for ``127.0.0.1`` and ``localhost`` (PEM files)."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def make_tls_files(
    directory: Path, *, hosts: Iterable[str] = ("127.0.0.1", "localhost")
) -> TlsFiles:
    """Write a CA certificate and a CA-signed server certificate (EC P-256) into ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stoker-git-test-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stoker-git-test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key_file.chmod(0o600)
    return files


def write_askpass(directory: Path, username: str, password_file: Path) -> Path:
    """Write an ``GIT_ASKPASS`` script answering ``username`` and the content of ``password_file``.

    The password is read when git asks, never put in argv or the environment, so a test can
    rotate it by rewriting the file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "askpass.sh"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        f"  Username*) printf '%s\\n' {shlex.quote(username)} ;;\n"
        f"  *) cat {shlex.quote(str(password_file))} ;;\n"
        "esac\n"
    )
    script.chmod(0o700)
    return script


class _TokenSet(set[str]):
    """The tokens a GitHttpServer accepts: a set whose every change reaches the server at once
    (its process reads them at each request), so a test can expire one (``tokens.clear()``)."""

    def __init__(self, tokens: Iterable[str], save: Any) -> None:
        super().__init__(tokens)
        self._save = save

    def _changed(self) -> None:
        self._save(set(self))

    def add(self, token: str) -> None:
        super().add(token)
        self._changed()

    def discard(self, token: object) -> None:
        super().discard(token)
        self._changed()

    def remove(self, token: str) -> None:
        super().remove(token)
        self._changed()

    def clear(self) -> None:
        super().clear()
        self._changed()

    def update(self, *others: Iterable[str]) -> None:
        super().update(*others)
        self._changed()


class GitHttpServer(_Server):
    """Smart HTTP(S) Git server on loopback: ``git http-backend`` behind HTTP basic auth.

    Accepts ``username:password``; also any basic-auth user name with a password in ``tokens``
    (GitHub style ``x-access-token:<token>``) and ``Authorization: Bearer <token>``. Missing or
    wrong credentials get ``401`` with ``WWW-Authenticate: Basic``. Every request is kept in
    :attr:`requests` (no secrets stored). ``tls=True`` serves HTTPS with a throwaway CA in
    :attr:`ca_file` (for ``http.sslCAInfo``).

    It serves from a process of its own (``support.githttp``): no thread of the test process can
    touch its connections, as none can a real remote's.
    """

    realm = "stoker-git-tests"
    _state_prefix = "stoker-githttp-"

    def __init__(
        self,
        root: Path,
        username: str = "git",
        password: str = "s3cret-password",
        *,
        tokens: Iterable[str] = (),
        tls: bool = False,
        require_auth: bool = True,
        host: str = "127.0.0.1",
    ) -> None:
        self.root = root.resolve()
        self.host = host  # another address only in a network namespace of its own (tests/e2e)
        self.username = username
        self.password = password
        self.tokens: set[str] = _TokenSet(tokens, self._save_tokens)
        self.tls = tls
        self.require_auth = require_auth
        self.port = 0
        self.tls_files: TlsFiles | None = None
        self._proc: _Process | None = None
        self._skip = 0  # request lines before the last clear_log()

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM) that signed the server certificate (``tls=True`` only)."""
        if self.tls_files is None:
            raise GitServerError("this GitHttpServer was started without tls=True")
        return self.tls_files.ca_file

    def start(self) -> Self:
        """Start the server process on a free port and wait until it listens."""
        if self._proc is not None:
            return self
        state = self._make_state()
        if self.tls:
            self.tls_files = make_tls_files(state / "tls")
        settings = githttp.Settings(
            root=str(self.root),
            username=self.username,
            password=self.password,
            realm=self.realm,
            require_auth=self.require_auth,
            host=self.host,
            cert_file=str(self.tls_files.cert_file) if self.tls_files else None,
            key_file=str(self.tls_files.key_file) if self.tls_files else None,
        )
        config = state / githttp.CONFIG
        config.write_text(json.dumps(dataclasses.asdict(settings)))
        config.chmod(0o600)
        self._save_tokens(set(self.tokens))
        tests = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": tests, "PYTHONDONTWRITEBYTECODE": "1"}
        argv = [sys.executable, "-m", "support.githttp", str(state), str(os.getpid())]
        self._proc = _Process(argv, state / "server.log", env)
        port_file = state / githttp.PORT
        self._proc.wait_until(port_file.exists, "the git HTTP server")
        self.port = int(port_file.read_text())
        return self

    def stop(self) -> None:
        """Stop the server process (and any ``git http-backend`` it runs); remove the state."""
        if self._proc is not None:
            self._proc.stop()
            self._proc = None
        self._remove_state()

    def _save_tokens(self, tokens: set[str]) -> None:
        if self._state_dir is not None:
            githttp.write_tokens(self._state_dir, tokens)

    @property
    def requests(self) -> list[HttpRequestRecord]:
        """Every request received since the start (or the last :meth:`clear_log`), in order."""
        return githttp.read_records(self.state_dir, self._skip)

    @property
    def backend_stderr(self) -> list[str]:
        """What ``git http-backend`` wrote to stderr, one string per request that wrote any."""
        return [r.backend_stderr for r in self.requests if r.backend_stderr]

    @property
    def base_url(self) -> str:
        """``http(s)://127.0.0.1:PORT`` (or the ``host`` it was given)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def url_for(self, name: str) -> str:
        """``http(s)://127.0.0.1:PORT/<name>.git`` (no credentials in it)."""
        return f"{self.base_url}/{_repo_file(name)}"

    def client_env(
        self,
        home: Path,
        *,
        username: str | None = None,
        password: str | None = None,
        ca: bool = True,
    ) -> dict[str, str]:
        """A client environment that answers git's credential prompts through ``GIT_ASKPASS``.

        Defaults to the server's own username/password; ``ca`` adds ``GIT_SSL_CAINFO`` on TLS.
        """
        home.mkdir(parents=True, exist_ok=True)
        # One directory per call, so two environments on the same home keep their own password.
        directory = Path(tempfile.mkdtemp(prefix=".git-test-askpass-", dir=home))
        password_file = directory / "password"
        password_file.write_text(self.password if password is None else password)
        password_file.chmod(0o600)
        askpass = write_askpass(directory, username or self.username, password_file)
        extra = {"GIT_ASKPASS": str(askpass)}
        if self.tls and ca:
            extra["GIT_SSL_CAINFO"] = str(self.ca_file)
        return isolated_env(home, extra)

    def clear_log(self) -> None:
        """Forget the recorded requests."""
        self._skip = githttp.count_records(self.state_dir)

    def secrets_in_urls(self, *secrets: str) -> list[str]:
        """Request targets that contain any of ``secrets`` (expected: an empty list)."""
        return [r.target for r in self.requests if any(s and s in r.target for s in secrets)]


# ---------------------------------------------------------------------------------------------
# sshd
# ---------------------------------------------------------------------------------------------

_GIT_SERVE = r"""
import os, shlex, sys
from pathlib import Path

ROOT = Path({root!r})
with open({log!r}, "a") as log:
    log.write(os.environ.get("SSH_ORIGINAL_COMMAND", "") + "\n")
try:
    argv = shlex.split(os.environ.get("SSH_ORIGINAL_COMMAND", ""))
except ValueError:
    argv = []
if len(argv) != 2 or argv[0] not in ("git-upload-pack", "git-receive-pack", "git-upload-archive"):
    sys.exit("stoker test sshd: only git-upload-pack/git-receive-pack are served")
rel = argv[1].removeprefix("~/").lstrip("/")
target = (ROOT / rel).resolve()
if not target.is_relative_to(ROOT):
    sys.exit("stoker test sshd: repository path outside the served root: " + argv[1])
env = {{"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": {home!r},
        "GIT_CONFIG_NOSYSTEM": "1"}}
if os.environ.get("GIT_PROTOCOL"):
    env["GIT_PROTOCOL"] = os.environ["GIT_PROTOCOL"]
os.execvpe("git", ["git", argv[0][4:], str(target)], env)
"""


def _find_binary(name: str) -> str:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])
    found = shutil.which(name, path=path)
    if found is None:
        raise GitServerError(
            f"{name} not found: install openssh-server and openssh-client (make sysdeps)"
        )
    return os.path.abspath(found)


def ssh_keygen(path: Path, comment: str = "stoker-tests") -> str:
    """Generate an ed25519 key pair at ``path`` (+ ``.pub``) and return the public key line."""
    subprocess.run(
        [
            _find_binary("ssh-keygen"),
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            comment,
            "-f",
            str(path),
        ],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    return path.with_name(path.name + ".pub").read_text().strip()


def ssh_command(
    key: Path,
    known_hosts: Path,
    *,
    strict: str = "yes",
    extra: Sequence[str] = (),
) -> str:
    """A ``GIT_SSH_COMMAND``: only ``key`` and ``known_hosts``, no prompt, agent or user config."""
    argv = [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        str(key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        f"StrictHostKeyChecking={strict}",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        *extra,
    ]
    return shlex.join(argv)


class SshServer(_Server):
    """A private ``sshd`` on loopback that serves only git commands for the repos under ``root``.

    It logs in as the user running the tests (``root`` here) with a client key generated for the
    test; a ``ForceCommand`` maps ``ssh://USER@127.0.0.1:PORT/<name>.git`` to ``root/<name>.git``
    and refuses anything else (shells, paths outside ``root``). Each command is appended to
    :attr:`command_log_path`.
    """

    _state_prefix = "stoker-sshd-"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.port = 0
        self.pids: list[int] = []
        self.host_public_key = ""
        self._proc: _Process | None = None

    @property
    def client_key_path(self) -> Path:
        """The client's private key (its public half is the only authorized key)."""
        return self.state_dir / "client_ed25519"

    @property
    def host_key_path(self) -> Path:
        """The server's private host key."""
        return self.state_dir / "host_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        """A known_hosts file with the line ``[127.0.0.1]:PORT <host key>``."""
        return self.state_dir / "known_hosts"

    @property
    def command_log_path(self) -> Path:
        """One ``SSH_ORIGINAL_COMMAND`` per line, appended by the forced command."""
        return self.state_dir / "commands.log"

    @property
    def config_path(self) -> Path:
        """The generated ``sshd_config``."""
        return self.state_dir / "sshd_config"

    def start(self) -> Self:
        """Generate keys, write the config, start ``sshd -D -e -f`` and wait for it to listen."""
        if self._proc is not None:
            return self
        sshd = _find_binary("sshd")
        self._make_state().chmod(0o755)
        if os.getuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.host_public_key = ssh_keygen(self.host_key_path, "stoker-test-host")
        client_public = ssh_keygen(self.client_key_path, "stoker-test-client")
        authorized = self.state_dir / "authorized_keys"
        authorized.write_text(client_public + "\n")
        authorized.chmod(0o600)
        serve = self.state_dir / "git-serve.py"
        serve.write_text(
            _GIT_SERVE.format(
                root=str(self.root),
                log=str(self.command_log_path),
                home=str(self.state_dir / "home"),
            )
        )
        (self.state_dir / "home").mkdir(exist_ok=True)
        self.command_log_path.touch()
        self.command_log_path.chmod(0o666)
        for _attempt in range(5):
            self.port = free_port()
            self.config_path.write_text(self._config(authorized, serve))
            log = self.state_dir / "sshd.log"
            log.write_bytes(b"")
            proc = _Process([sshd, "-D", "-e", "-f", str(self.config_path)], log, os.environ)
            self._proc = proc
            try:
                proc.wait_until(
                    lambda p=proc: f"listening on 127.0.0.1 port {self.port}" in p.log_text(),
                    "sshd",
                )
            except GitServerError:
                self._proc = None
                if "Address already in use" in proc.log_text():
                    continue
                self._cleanup()
                raise
            self.pids = [proc.pid]
            self.known_hosts_path.write_text(f"[127.0.0.1]:{self.port} {self.host_public_key}\n")
            return self
        self._cleanup()
        raise GitServerError("sshd: no free port after 5 attempts")

    def _config(self, authorized: Path, serve: Path) -> str:
        return "\n".join(
            [
                f"Port {self.port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {self.host_key_path}",
                f"PidFile {self.state_dir / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "AuthenticationMethods publickey",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "HostbasedAuthentication no",
                "PermitRootLogin prohibit-password",
                f"AllowUsers {self.user}",
                "StrictModes no",
                "UsePAM no",
                "PrintMotd no",
                "PrintLastLog no",
                "PermitTTY no",
                "X11Forwarding no",
                "AllowTcpForwarding no",
                "AllowAgentForwarding no",
                "PermitUserEnvironment no",
                "AcceptEnv GIT_PROTOCOL",
                "MaxStartups 64",
                "LogLevel VERBOSE",
                f'ForceCommand "{sys.executable}" -I -S "{serve}"',
                "",
            ]
        )

    def url_for(self, name: str) -> str:
        """``ssh://USER@127.0.0.1:PORT/<name>.git``."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}/{_repo_file(name)}"

    def ssh_command(
        self, *, known_hosts: Path | None = None, key: Path | None = None, strict: str = "yes"
    ) -> str:
        """``GIT_SSH_COMMAND`` for this server (defaults: its client key and known_hosts)."""
        return ssh_command(
            key or self.client_key_path, known_hosts or self.known_hosts_path, strict=strict
        )

    def client_env(
        self, home: Path, *, known_hosts: Path | None = None, key: Path | None = None
    ) -> dict[str, str]:
        """A client environment with ``GIT_SSH_COMMAND`` set (see :meth:`ssh_command`)."""
        command = self.ssh_command(known_hosts=known_hosts, key=key)
        return isolated_env(home, {"GIT_SSH_COMMAND": command})

    def commands(self) -> list[str]:
        """The ``SSH_ORIGINAL_COMMAND`` of every session so far."""
        return self.command_log_path.read_text().splitlines()

    def log_text(self) -> str:
        """sshd's own log (``-e``, ``LogLevel VERBOSE``)."""
        return self._proc.log_text() if self._proc else ""

    def stop(self) -> None:
        """Stop sshd and the session processes it forked; remove its state dir (keys included)."""
        if self._proc is not None:
            self.pids = self._proc.stop()
            self._proc = None
        self._cleanup()

    def _cleanup(self) -> None:
        self._remove_state()


# ---------------------------------------------------------------------------------------------
# pytest fixtures (re-export them from a conftest.py to use them)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def git_root(tmp_path: Path) -> Path:
    """The directory all servers of a test serve (``tmp_path/served``)."""
    root = tmp_path / "served"
    root.mkdir()
    return root


@pytest.fixture
def git_home(tmp_path: Path) -> Path:
    """An empty ``HOME`` for git clients in a test."""
    home = tmp_path / "client-home"
    home.mkdir()
    return home


@pytest.fixture
def git_daemon(git_root: Path) -> Iterator[GitDaemon]:
    """A running :class:`GitDaemon` on ``git_root`` (receive-pack enabled)."""
    with GitDaemon(git_root, enable_receive_pack=True) as daemon:
        yield daemon


@pytest.fixture
def git_http(git_root: Path) -> Iterator[GitHttpServer]:
    """A running HTTP :class:`GitHttpServer` on ``git_root`` (user ``git``, ``TEST_TOKEN``)."""
    with GitHttpServer(git_root, tokens=[TEST_TOKEN]) as server:
        yield server


@pytest.fixture
def git_https(git_root: Path) -> Iterator[GitHttpServer]:
    """A running HTTPS :class:`GitHttpServer` on ``git_root`` with its own CA (``ca_file``)."""
    with GitHttpServer(git_root, tokens=[TEST_TOKEN], tls=True) as server:
        yield server


@pytest.fixture
def git_ssh(git_root: Path) -> Iterator[SshServer]:
    """A running :class:`SshServer` on ``git_root``."""
    with SshServer(git_root) as server:
        yield server
