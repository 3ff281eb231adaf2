"""Fetching exactly the commit the controller resolved into a private bare repository.

Credentials never reach `.git/config`, argv or error texts: a token travels as an
`http.extraHeader` through git's environment-only configuration (GIT_CONFIG_COUNT), an SSH key is
copied to a private 0600 file for the duration of one command, and every message is redacted.
"""

from __future__ import annotations

import base64
import logging
import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from stoker_agent import gitexec
from stoker_agent.credentials import Credentials as Credentials  # callers import it from here too
from stoker_core.errors import InvalidInput, TemporaryError
from stoker_core.redaction import redact

log = logging.getLogger("stoker.git")
SHA = re.compile(r"^[0-9a-f]{40}$")
KEEP_REF = "refs/stoker/synced"
# The commits last fetched by id, newest last, one a line: Stoker's own file in the mirror (no
# other writer), so a rollback to one of them needs no network.
FETCHED_FILE = "stoker-fetched"
FETCHED_KEPT = 64
FETCH_TIMEOUT = 300  # seconds; a hung server must not hang the agent


class GitFetchError(TemporaryError):
    """A fetch failed for a reason that may pass (network, server); retry with backoff."""


class RefGone(InvalidInput):
    """The ref or commit no longer exists on the remote (deleted, or force-pushed away)."""


class Mirror:
    """A bare repository under `path` holding the commits this agent synced."""

    def __init__(
        self,
        path: str,
        url: str,
        credentials: Credentials | None = None,
        *,
        on_fetch: Callable[[float, bool], None] | None = None,
    ) -> None:
        self.path = path
        self.url = url
        self.credentials = credentials or Credentials()
        self.on_fetch = on_fetch  # told (seconds, succeeded) after each fetch from the remote

    def close(self) -> None:
        """Nothing to release: each git command cleans up after itself."""

    def fetch(self, ref: str, commit: str | None = None, *, blobless: bool = False) -> str:
        """Fetch `commit` (or the tip of `ref`) shallowly and return the commit id fetched.

        `blobless` fetches the commit and its trees only; `fetch_blobs` then brings the files
        a sync reads (a server without partial-clone support sends everything anyway).
        """
        if not os.path.isdir(os.path.join(self.path, "objects")):
            os.makedirs(self.path, exist_ok=True)
            self._git("init", "--bare", "--quiet", self.path, remote=False)
        want = commit if commit and SHA.match(commit) else None
        if want and self._synced() == want:
            return want  # the last fetch's: a resync of the same commit starts no process
        if want and want in self._fetched() and self._has(want):
            return want  # fetched before (a rollback): no network, even with the remote hung
        target = want or ref
        try:
            self._git(
                "fetch",
                "--depth=1",
                *(["--filter=blob:none"] if blobless else []),
                "--no-tags",
                "--no-write-fetch-head",
                "--",  # the URL is never read as an option
                self.url,
                f"+{target}:{KEEP_REF}",
            )
        except GitFetchError as e:
            # A commit the mirror holds without having fetched it by id (an ancestor of a tip
            # fetched by ref, or one fetched before the record was kept): looked for only now,
            # a new commit being the common case, which a look first would only delay.
            if want and self._has(want):
                log.info("fetching %s failed, the mirror has it: %s", want[:12], e)
                return want
            if want is None or ("not our ref" not in str(e) and "couldn't find" not in str(e)):
                if "couldn't find remote ref" in str(e):
                    raise RefGone.one(
                        f'ref "{ref}" does not exist in {redact(self.url)} (deleted or renamed?)',
                        field="spec.git.ref",
                    ) from None
                raise
            return self._fetch_through_ref(ref, want)
        if want:
            # `+want:KEEP_REF` succeeded: git fetched that very object and pointed the ref at
            # it (a commit, or peel would fail later), so reading the ref back is a process
            # wasted at every sync.
            self._remember(want)
            return want
        fetched = self._rev(KEEP_REF)
        self._remember(fetched)
        return fetched

    def fetch_blobs(self, commit: str, paths: Sequence[str]) -> int:
        """Fetch the files under `paths` at `commit` that the mirror lacks; return how many.

        After a blobless fetch, only these are ever read. Wanting blobs by id needs protocol
        v2 (or uploadpack.allowAnySHA1InWant); a server that refuses gets one full re-fetch.
        """
        spec = [] if "" in paths else ["--", *paths]
        listing = self._git(
            "--literal-pathspecs", "ls-tree", "-r", "-z", "--full-tree", commit, *spec, remote=False
        )
        records = (r.partition("\t")[0].split() for r in listing.split("\0") if r)
        wanted = {oid for _mode, kind, oid in records if kind == "blob"}
        present = self._git(
            "cat-file", "--batch-all-objects", "--batch-check=%(objectname)", remote=False
        )
        missing = sorted(wanted - set(present.split()))
        if not missing:
            return 0
        try:
            self._git(
                "-c",
                "fetch.negotiationAlgorithm=noop",
                "fetch",
                "--no-tags",
                "--no-write-fetch-head",
                "--filter=blob:none",
                "--stdin",
                "--",  # the URL is never read as an option
                self.url,
                stdin="".join(f"{oid}\n" for oid in missing),
            )
        except GitFetchError as e:
            log.warning("fetching files by id was refused (%s); fetching the whole commit", e)
            self._git("fetch", "--refetch", "--depth=1", "--no-tags", "--", self.url, commit)
        return len(missing)

    def _fetch_through_ref(self, ref: str, want: str) -> str:
        """For servers that refuse fetching by SHA: fetch the ref deeper until `want` appears."""
        for depth in (1, 50, 1000):
            self._git(
                "fetch",
                f"--depth={depth}",
                "--no-tags",
                "--no-write-fetch-head",
                "--",  # the URL is never read as an option
                self.url,
                f"+{ref}:{KEEP_REF}.tip",
            )
            if self._has(want):
                self._git("update-ref", KEEP_REF, want, remote=False)
                return want
        raise RefGone.one(
            f'commit {want[:12]} is not reachable from "{ref}" (force-pushed away?)',
            field="spec.git.ref",
        )

    def ls_remote(self) -> str:
        """The remote's advertisement (`git ls-remote`), with the same credentials as a fetch."""
        return self._git("ls-remote", "--", self.url, in_repo=False)

    def _synced(self) -> str | None:
        """The commit KEEP_REF names, read from its file (the mirror is Stoker's own, written
        only by the fetches here: a ref packed or missing reads as None)."""
        try:
            with open(os.path.join(self.path, KEEP_REF), "rb") as handle:
                text = handle.read(100).decode("ascii", "replace").strip()
        except OSError:
            return None
        return text if SHA.match(text) else None

    def _fetched(self) -> list[str]:
        """The commits last fetched by id (FETCHED_FILE; absent or unreadable: none)."""
        try:
            with open(os.path.join(self.path, FETCHED_FILE), "rb") as handle:
                text = handle.read(FETCHED_KEPT * 41).decode("ascii", "replace")
        except OSError:
            return []
        return [line for line in text.split() if SHA.match(line)]

    def _remember(self, sha: str) -> None:
        """Add `sha` to the commits last fetched by id, keeping the newest FETCHED_KEPT. A
        record that cannot be written only costs a later rollback a fetch."""
        kept = [*(c for c in self._fetched() if c != sha), sha][-FETCHED_KEPT:]
        path = os.path.join(self.path, FETCHED_FILE)
        try:
            with open(path + ".tmp", "w", encoding="ascii") as handle:
                handle.write("".join(f"{c}\n" for c in kept))
            os.replace(path + ".tmp", path)
        except OSError as e:
            log.debug("%s not written: %s", FETCHED_FILE, e)

    def _has(self, sha: str) -> bool:
        try:
            self._git("cat-file", "-e", f"{sha}^{{commit}}", remote=False)
        except GitFetchError:
            return False
        return True

    def _rev(self, name: str) -> str:
        return self._git("rev-parse", f"{name}^{{commit}}", remote=False).strip()

    def _git(
        self, *args: str, remote: bool = True, in_repo: bool = True, stdin: str | None = None
    ) -> str:
        if self.on_fetch is None or not remote or "fetch" not in args[:3]:
            return self._run(*args, remote=remote, in_repo=in_repo, stdin=stdin)
        started, ok = time.monotonic(), False
        try:
            out = self._run(*args, remote=remote, in_repo=in_repo, stdin=stdin)
            ok = True
            return out
        finally:
            self.on_fetch(time.monotonic() - started, ok)

    def _run(self, *args: str, remote: bool, in_repo: bool, stdin: str | None) -> str:
        with self._environment(remote) as env:
            try:
                done = gitexec.run(
                    ["--git-dir", self.path, *args] if in_repo and args[0] != "init" else args,
                    env=env,
                    input=stdin,
                    capture_output=True,
                    text=True,
                    timeout=FETCH_TIMEOUT,
                )
            except subprocess.TimeoutExpired:
                raise GitFetchError(f"git {args[0]} timed out after {FETCH_TIMEOUT}s") from None
        if done.returncode != 0:
            message = redact((done.stderr or done.stdout).strip(), self.credentials.secrets())
            raise GitFetchError(f"git {args[0]} {redact(self.url)}: {message}")
        return str(done.stdout)

    @contextmanager
    def _environment(self, remote: bool) -> Iterator[dict[str, str]]:
        env: dict[str, str] = {}  # on top of gitexec's environment, which owns the rest
        if not remote:
            yield env
            return
        creds = self.credentials
        config: list[tuple[str, str]] = []  # environment-only git config: never on disk
        if creds.token_file:
            token = _read_secret(creds.token_file)
            header = base64.b64encode(f"x-access-token:{token}".encode()).decode()
            config.append(("http.extraHeader", f"Authorization: Basic {header}"))
        if creds.ca_file:
            config.append(("http.sslCAInfo", creds.ca_file))
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for i, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{i}"] = key
            env[f"GIT_CONFIG_VALUE_{i}"] = value
        if not creds.ssh_key_file:
            yield env
            return
        private = tempfile.mkdtemp(prefix="stoker-ssh-")
        try:
            key = os.path.join(private, "key")
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(_read_secret(creds.ssh_key_file) + "\n")
            options = ["-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
            if creds.known_hosts_file:
                options += [
                    "-o",
                    "StrictHostKeyChecking=yes",
                    "-o",
                    f"UserKnownHostsFile={creds.known_hosts_file}",
                ]
            else:
                log.warning(
                    "SSH host key verification is off: set a known_hosts file to "
                    "protect against a man in the middle"
                )
                options += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
            env["GIT_SSH_COMMAND"] = "ssh " + " ".join(shlex.quote(o) for o in options)
            env.update(_passwd_wrapper(private))
            yield env
        finally:
            shutil.rmtree(private, ignore_errors=True)


NSS_WRAPPER_PATHS = (
    "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so",
    "/usr/lib/aarch64-linux-gnu/libnss_wrapper.so",
    "/usr/lib/libnss_wrapper.so",
)


def _passwd_wrapper(private: str) -> dict[str, str]:
    """ssh refuses to run for a UID with no passwd entry (containers often run as one): give it
    a private passwd entry through nss_wrapper when the entry is missing (the original's R13)."""
    uid, gid = os.getuid(), os.getgid()
    try:
        pwd.getpwuid(uid)
        return {}
    except KeyError:
        pass
    library = next((p for p in NSS_WRAPPER_PATHS if os.path.exists(p)), None)
    if library is None:
        log.warning(
            "UID %d has no passwd entry and libnss_wrapper is not installed; "
            "ssh will refuse to run (install libnss-wrapper)",
            uid,
        )
        return {}
    passwd = os.path.join(private, "passwd")
    group = os.path.join(private, "group")
    with open(passwd, "w", encoding="utf-8") as handle:
        handle.write(f"stoker:x:{uid}:{gid}:stoker:{private}:/bin/false\n")
    with open(group, "w", encoding="utf-8") as handle:
        handle.write(f"stoker:x:{gid}:\n")
    return {"LD_PRELOAD": library, "NSS_WRAPPER_PASSWD": passwd, "NSS_WRAPPER_GROUP": group}


def _read_secret(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as e:
        raise InvalidInput.one(f"cannot read credential file: {e.strerror}", path=path) from None
