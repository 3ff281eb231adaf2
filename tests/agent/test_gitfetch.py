"""The agent's Git fetch against real servers: exact commits, auth, host keys, rewritten refs,
and credentials that never leak."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from stoker_agent.gitfetch import Credentials, GitFetchError, Mirror, RefGone
from support.gitservers import TEST_TOKEN, BareRepo, GitDaemon, GitHttpServer, SshServer


def mirror(tmp_path: Path, url: str, creds: Credentials | None = None) -> Mirror:
    return Mirror(str(tmp_path / "mirror"), url, creds)


def test_fetches_the_exact_resolved_commit_not_a_newer_tip_b14(
    git_daemon: GitDaemon, git_root: Path, tmp_path: Path
) -> None:
    repo = BareRepo.create(git_root, "config", {"a.json": "1"})
    resolved = repo.rev_parse("main")
    repo.commit({"a.json": "2"})  # the branch moved on after the controller resolved it
    m = mirror(tmp_path, git_daemon.url_for("config"))
    try:
        assert m.fetch("main", resolved) == resolved
    finally:
        m.close()


def test_first_fetch_by_full_sha_works_b15(
    git_daemon: GitDaemon, git_root: Path, tmp_path: Path
) -> None:
    repo = BareRepo.create(git_root, "config", {"a.json": "1"})
    sha = repo.rev_parse("main")
    m = mirror(tmp_path, git_daemon.url_for("config"))
    try:
        assert m.fetch(sha, sha) == sha
        assert m.fetch(sha, sha) == sha  # a second fetch of a known commit needs no server
    finally:
        m.close()


def test_later_commits_fetch_incrementally_and_tags_are_peeled(
    git_daemon: GitDaemon, git_root: Path, tmp_path: Path
) -> None:
    repo = BareRepo.create(git_root, "config", {"a.json": "1"})
    repo.tag("v1.0.0", "main", annotated=True)
    first = repo.rev_parse("main")
    second = repo.commit({"a.json": "2"})
    m = mirror(tmp_path, git_daemon.url_for("config"))
    try:
        assert m.fetch("v1.0.0") == first
        assert m.fetch("main") == second
    finally:
        m.close()


def test_a_force_pushed_branch_is_followed_and_a_vanished_commit_is_a_clear_error(
    git_daemon: GitDaemon, git_root: Path, tmp_path: Path
) -> None:
    repo = BareRepo.create(git_root, "config", {"a.json": "1"})
    repo.commit({"a.json": "2"})
    old_tip = repo.rev_parse("main")
    new_tip = repo.rewrite("main", {"a.json": "rewritten"})
    m = mirror(tmp_path, git_daemon.url_for("config"))
    try:
        assert m.fetch("main") == new_tip
        assert m.fetch("main", old_tip) == old_tip  # still on the server: fetched exactly
        repo.git("reflog", "expire", "--expire=now", "--all")
        repo.git("gc", "--prune=now", "--quiet")
        fresh = mirror(tmp_path / "fresh", git_daemon.url_for("config"))
        try:
            with pytest.raises(RefGone, match="not reachable"):
                fresh.fetch("main", old_tip)
        finally:
            fresh.close()
    finally:
        m.close()


def test_a_deleted_ref_is_a_clear_error(
    git_daemon: GitDaemon, git_root: Path, tmp_path: Path
) -> None:
    repo = BareRepo.create(git_root, "config", {"a.json": "1"})
    repo.commit({"a.json": "2"}, branch="release")
    repo.delete_ref("refs/heads/release")
    m = mirror(tmp_path, git_daemon.url_for("config"))
    try:
        with pytest.raises(RefGone, match='ref "release" does not exist'):
            m.fetch("release")
    finally:
        m.close()


def test_https_token_auth_keeps_the_token_out_of_urls_config_and_errors(
    git_https: GitHttpServer, git_root: Path, tmp_path: Path
) -> None:
    BareRepo.create(git_root, "config", {"a.json": "1"})
    token = tmp_path / "token"
    token.write_text(TEST_TOKEN + "\n")
    creds = Credentials(token_file=str(token), ca_file=str(git_https.ca_file))
    m = mirror(tmp_path, git_https.url_for("config"), creds)
    try:
        assert len(m.fetch("main")) == 40
    finally:
        m.close()
    assert git_https.secrets_in_urls(TEST_TOKEN) == []
    assert any(r.authenticated for r in git_https.requests)
    for config in (tmp_path / "mirror").rglob("config"):
        assert TEST_TOKEN not in config.read_text()
    token.write_text("ghs_wrong-token-value\n")
    m = mirror(tmp_path, git_https.url_for("config"), creds)
    try:
        with pytest.raises(GitFetchError) as info:
            m.fetch("main")
    finally:
        m.close()
    assert "ghs_wrong-token-value" not in str(info.value)


def test_https_with_an_unknown_ca_fails_clearly(
    git_https: GitHttpServer, git_root: Path, tmp_path: Path
) -> None:
    BareRepo.create(git_root, "config", {"a.json": "1"})
    token = tmp_path / "token"
    token.write_text(TEST_TOKEN)
    m = mirror(tmp_path, git_https.url_for("config"), Credentials(token_file=str(token)))
    try:
        with pytest.raises(GitFetchError, match=r"(?i)certificate|SSL"):
            m.fetch("main")
    finally:
        m.close()


def test_ssh_with_known_hosts_is_strict(git_ssh: SshServer, git_root: Path, tmp_path: Path) -> None:
    BareRepo.create(git_root, "config", {"a.json": "1"})
    creds = Credentials(
        ssh_key_file=str(git_ssh.client_key_path), known_hosts_file=str(git_ssh.known_hosts_path)
    )
    m = mirror(tmp_path, git_ssh.url_for("config"), creds)
    try:
        assert len(m.fetch("main")) == 40
    finally:
        m.close()
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    strict = Credentials(ssh_key_file=str(git_ssh.client_key_path), known_hosts_file=str(empty))
    m = mirror(tmp_path / "second", git_ssh.url_for("config"), strict)
    try:
        with pytest.raises(GitFetchError, match="Host key verification failed"):
            m.fetch("main")
    finally:
        m.close()


def test_ssh_without_known_hosts_works_with_a_visible_warning(
    git_ssh: SshServer, git_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    BareRepo.create(git_root, "config", {"a.json": "1"})
    creds = Credentials(ssh_key_file=str(git_ssh.client_key_path))
    m = mirror(tmp_path, git_ssh.url_for("config"), creds)
    with caplog.at_level(logging.WARNING, logger="stoker.git"):
        try:
            assert len(m.fetch("main")) == 40
        finally:
            m.close()
    assert "host key verification is off" in caplog.text


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another UID needs root")
def test_ssh_fetch_works_as_a_uid_with_no_passwd_entry_r13(
    git_ssh: SshServer, git_root: Path
) -> None:
    BareRepo.create(git_root, "config", {"a.json": "1"})
    shared = Path(tempfile.mkdtemp(prefix="stoker-nopasswd-"))
    try:
        shared.chmod(0o777)
        key = shared / "key"
        shutil.copy(git_ssh.client_key_path, key)
        os.chown(key, 4242, 4242)
        key.chmod(0o600)
        known = shared / "known_hosts"
        shutil.copy(git_ssh.known_hosts_path, known)
        known.chmod(0o644)
        code = (
            "from stoker_agent.gitfetch import Credentials, Mirror\n"
            f"m = Mirror({str(shared / 'mirror')!r}, {git_ssh.url_for('config')!r}, "
            f"Credentials(ssh_key_file={str(key)!r}, known_hosts_file={str(known)!r}))\n"
            "print(m.fetch('main'))\nm.close()\n"
        )
        done = subprocess.run(
            [
                "setpriv",
                "--reuid",
                "4242",
                "--regid",
                "4242",
                "--clear-groups",
                sys.executable,
                "-c",
                code,
            ],
            capture_output=True,
            text=True,
            cwd="/",
            check=False,
            env={
                **os.environ,
                "HOME": "/nonexistent",
                "PYTHONPATH": str(Path(__file__).parents[2] / "src"),
            },
        )
        assert done.returncode == 0, done.stderr
        assert len(done.stdout.strip()) == 40
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_a_rollback_to_a_commit_fetched_before_asks_no_remote(
    git_daemon: GitDaemon, git_root: Path, tmp_path: Path
) -> None:
    # Rolling back in an incident must not wait on a remote that may hang (up to FETCH_TIMEOUT):
    # a commit this mirror fetched by id is taken from it. A new commit is fetched at once.
    repo = BareRepo.create(git_root, "config", {"a.json": "1"})
    first = repo.rev_parse("main")
    second = repo.commit({"a.json": "2"})
    m = mirror(tmp_path, git_daemon.url_for("config"))
    assert m.fetch("main", first) == first
    assert m.fetch("main", second) == second
    fetches: list[bool] = []
    gone = Mirror(
        str(tmp_path / "mirror"),
        f"git://127.0.0.1:{closed_port()}/config",
        on_fetch=lambda _seconds, ok: fetches.append(ok),
    )
    assert gone.fetch("main", first) == first
    assert fetches == []
    third = repo.commit({"a.json": "3"})
    with pytest.raises(GitFetchError):
        gone.fetch("main", third)
    assert fetches == [False]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
