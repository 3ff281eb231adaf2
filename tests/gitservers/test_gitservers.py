"""The test Git servers of ``support.gitservers``: real clones, fetches and auth failures."""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from support.gitservers import (
    TEST_TOKEN,
    BareRepo,
    File,
    GitDaemon,
    GitHttpServer,
    SshServer,
    Symlink,
    git_client,
    isolated_env,
    port_open,
    ssh_keygen,
)

FILES = {
    "projects/demo/project.json": '{"title": "Demo"}\n',
    "config/resources/core/db.json": '{"url": "jdbc:x"}\n',
}


@dataclass
class Remote:
    """A transport under test: how to name a repository and the client environment to use."""

    kind: str
    url_for: Callable[[str], str]
    env: dict[str, str]


@pytest.fixture(params=["git", "http", "https", "ssh"])
def remote(request: pytest.FixtureRequest, git_home: Path) -> Remote:
    """Each transport in turn, with working credentials."""
    kind = str(request.param)
    fixture = {"git": "git_daemon", "http": "git_http", "https": "git_https", "ssh": "git_ssh"}
    server = request.getfixturevalue(fixture[kind])
    return Remote(kind, server.url_for, server.client_env(git_home))


def git_out(env: dict[str, str], cwd: Path, *args: str) -> str:
    """Run a git client command that must succeed; return its stdout."""
    return git_client(list(args), env=env, cwd=cwd, check=True).stdout.strip()


def alive(pid: int) -> bool:
    """Whether a (non-zombie) process ``pid`` exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# --- repository helpers --------------------------------------------------------------------


def test_bare_repo_commits_tags_rewrites_and_deletes(git_root: Path) -> None:
    repo = BareRepo.create(
        git_root, "helpers", {"a.txt": "one\n", "bin/run": File("#!/bin/sh\n", executable=True)}
    )
    first = repo.rev_parse("main")
    second = repo.commit(
        {"a.txt": None, "b.txt": b"two\n", "link": Symlink("b.txt")}, replace=False
    )
    tree = repo.git("ls-tree", "-r", second)
    assert "a.txt" not in tree
    assert "100755 blob 1a2485251c33a70432394c93fb89330ef214bfc9\tbin/run" in tree
    assert "120000 blob" in tree
    assert tree.endswith("\tlink")
    assert repo.git("rev-parse", f"{second}^") == first

    light = repo.tag("v1", first)
    annotated = repo.tag("v2", "main", annotated=True, message="release 2")
    assert light == first
    assert repo.git("cat-file", "-t", annotated) == "tag"
    assert repo.rev_parse("v2^{commit}") == second

    repo.commit({"feature.txt": "f\n"}, branch="feature", parents=[first])
    rewritten = repo.rewrite("main", {"a.txt": "rewritten\n"})
    assert repo.rev_parse("main") == rewritten
    assert repo.git("rev-parse", f"{rewritten}^") == first  # same parent as the replaced tip
    ancestor = subprocess.run(
        ["git", f"--git-dir={repo.path}", "merge-base", "--is-ancestor", second, rewritten],
        env=isolated_env(repo.home),
        check=False,
    )
    assert ancestor.returncode == 1

    repo.delete_ref("feature")
    repo.delete_ref("v1")
    assert set(repo.refs()) == {"refs/heads/main", "refs/tags/v2"}
    with pytest.raises(ValueError, match="relative"):
        repo.commit({"../escape": "x"})


# --- every transport -----------------------------------------------------------------------


def test_clone_fetch_incrementally_and_by_id(
    remote: Remote, git_root: Path, tmp_path: Path
) -> None:
    repo = BareRepo.create(git_root, "config", FILES)
    first = repo.rev_parse("main")
    tag = repo.tag("v1", annotated=True)
    clone = tmp_path / "clone"

    git_client(
        ["clone", "--depth", "1", remote.url_for("config"), str(clone)], env=remote.env, check=True
    )
    assert (clone / "projects/demo/project.json").read_text() == FILES["projects/demo/project.json"]
    assert git_out(remote.env, clone, "rev-parse", "HEAD") == first

    second = repo.commit({"projects/demo/project.json": '{"title": "Two"}\n'}, replace=False)
    git_out(remote.env, clone, "fetch", "--depth", "1", "origin", "main")
    assert git_out(remote.env, clone, "rev-parse", "FETCH_HEAD") == second

    # By commit id (protocol v2 end to end) and by annotated tag.
    git_out(remote.env, clone, "fetch", "--depth", "1", "origin", first)
    assert git_out(remote.env, clone, "rev-parse", "FETCH_HEAD") == first
    git_out(remote.env, clone, "fetch", "--depth", "1", "origin", "refs/tags/v1:refs/tags/v1")
    assert git_out(remote.env, clone, "rev-parse", "refs/tags/v1") == tag
    assert git_out(remote.env, clone, "rev-parse", "v1^{commit}") == first


def test_force_pushed_branch_is_a_non_fast_forward(
    remote: Remote, git_root: Path, tmp_path: Path
) -> None:
    repo = BareRepo.create(git_root, "forced", {"a.txt": "1\n"})
    old = repo.commit({"a.txt": "2\n"})
    clone = tmp_path / "clone"
    git_client(["clone", remote.url_for("forced"), str(clone)], env=remote.env, check=True)

    new = repo.rewrite("main", {"a.txt": "2 (amended)\n"})
    strict = git_client(
        ["fetch", "origin", "refs/heads/main:refs/remotes/origin/main"],
        env=remote.env,
        cwd=clone,
    )
    assert strict.returncode != 0
    assert "non-fast-forward" in strict.stderr
    assert git_out(remote.env, clone, "rev-parse", "origin/main") == old

    forced = git_client(["fetch", "origin"], env=remote.env, cwd=clone, check=True)
    assert "(forced update)" in forced.stderr
    assert git_out(remote.env, clone, "rev-parse", "origin/main") == new
    is_ancestor = git_client(["merge-base", "--is-ancestor", old, new], env=remote.env, cwd=clone)
    assert is_ancestor.returncode == 1


def test_deleted_ref_is_an_error(remote: Remote, git_root: Path, tmp_path: Path) -> None:
    repo = BareRepo.create(git_root, "deleted", {"a.txt": "1\n"})
    repo.commit({"b.txt": "b\n"}, branch="feature")
    clone = tmp_path / "clone"
    git_client(["clone", remote.url_for("deleted"), str(clone)], env=remote.env, check=True)
    git_out(remote.env, clone, "fetch", "origin", "refs/heads/feature")

    repo.delete_ref("feature")
    gone = git_client(["fetch", "origin", "refs/heads/feature"], env=remote.env, cwd=clone)
    assert gone.returncode != 0
    assert "couldn't find remote ref refs/heads/feature" in gone.stderr


def test_missing_repository_fails(remote: Remote, tmp_path: Path) -> None:
    done = git_client(["clone", remote.url_for("nope"), str(tmp_path / "c")], env=remote.env)
    assert done.returncode != 0
    assert not (tmp_path / "c").exists()


# --- git daemon ----------------------------------------------------------------------------


def test_daemon_logs_requests_and_accepts_push(
    git_daemon: GitDaemon, git_root: Path, git_home: Path, tmp_path: Path
) -> None:
    repo = BareRepo.create(git_root, "pushed", {"a.txt": "1\n"})
    env = git_daemon.client_env(git_home)
    clone = tmp_path / "clone"
    git_client(["clone", git_daemon.url_for("pushed"), str(clone)], env=env, check=True)
    assert git_daemon.url_for("pushed") == f"git://127.0.0.1:{git_daemon.port}/pushed.git"
    assert "Request upload-pack for '/pushed.git'" in git_daemon.log_text()

    (clone / "b.txt").write_text("b\n")
    git_out(env, clone, "add", "b.txt")
    git_out(env, clone, "commit", "-q", "-m", "b")
    git_out(env, clone, "push", "-q", "origin", "main")
    assert repo.rev_parse("main") == git_out(env, clone, "rev-parse", "HEAD")


# --- HTTP ----------------------------------------------------------------------------------


def test_http_sends_basic_auth_after_401_and_no_secret_in_urls(
    git_http: GitHttpServer, git_root: Path, git_home: Path, tmp_path: Path
) -> None:
    BareRepo.create(git_root, "private", FILES)
    clone = tmp_path / "clone"
    env = git_http.client_env(git_home)
    git_client(["clone", git_http.url_for("private"), str(clone)], env=env, check=True)

    first, *rest = git_http.requests
    assert (first.status, first.auth_scheme) == (401, None)
    assert rest
    assert all(r.auth_scheme == "Basic" and r.username == "git" for r in rest)
    assert all(r.authenticated and r.status == 200 for r in rest)
    assert any(r.method == "POST" and r.path == "/private.git/git-upload-pack" for r in rest)
    assert all(r.git_protocol == "version=2" for r in git_http.requests)
    assert git_http.secrets_in_urls(git_http.password) == []
    assert git_http.password not in (clone / ".git/config").read_text()


def test_http_push_with_a_chunked_body(
    git_http: GitHttpServer, git_root: Path, git_home: Path, tmp_path: Path
) -> None:
    repo = BareRepo.create(git_root, "pushed", {"a.txt": "1\n"})
    env = git_http.client_env(git_home)
    clone = tmp_path / "clone"
    git_client(["clone", git_http.url_for("pushed"), str(clone)], env=env, check=True)
    (clone / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))  # > http.postBuffer (1 MiB)
    git_out(env, clone, "add", "big.bin")
    git_out(env, clone, "commit", "-q", "-m", "big")
    git_out(env, clone, "push", "-q", "origin", "main")
    assert repo.rev_parse("main") == git_out(env, clone, "rev-parse", "HEAD")
    pushes = [r for r in git_http.requests if r.path == "/pushed.git/git-receive-pack"]
    assert all((r.status, r.username) == (200, "git") for r in pushes)
    assert any(r.chunked and r.body_bytes > 3 * 1024 * 1024 for r in pushes)


def test_http_without_credentials_is_401(git_http: GitHttpServer, git_root: Path) -> None:
    BareRepo.create(git_root, "private", FILES)
    url = git_http.url_for("private") + "/info/refs?service=git-upload-pack"
    with requests.get(url, timeout=10) as response:
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == f'Basic realm="{git_http.realm}"'
    with requests.get(url, auth=("git", git_http.password), timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/x-git-upload-pack-advertisement"


def test_http_no_credentials_fails_without_prompting(
    git_http: GitHttpServer, git_root: Path, git_home: Path, tmp_path: Path
) -> None:
    BareRepo.create(git_root, "private", FILES)
    done = git_client(
        ["clone", git_http.url_for("private"), str(tmp_path / "c")], env=isolated_env(git_home)
    )
    assert done.returncode != 0
    assert "terminal prompts disabled" in done.stderr
    assert [r.status for r in git_http.requests] == [401]


def test_http_wrong_password_fails_with_401(
    git_http: GitHttpServer, git_root: Path, git_home: Path, tmp_path: Path
) -> None:
    BareRepo.create(git_root, "private", FILES)
    good = git_http.client_env(git_home)
    env = git_http.client_env(git_home, password="wrong-password")
    done = git_client(["clone", git_http.url_for("private"), str(tmp_path / "c")], env=env)
    assert done.returncode != 0
    assert f"Authentication failed for '{git_http.url_for('private')}/'" in done.stderr
    rejected = [r for r in git_http.requests if r.auth_scheme == "Basic"]
    assert rejected
    assert all(r.status == 401 and not r.authenticated for r in rejected)
    assert rejected[0].username == "git"
    assert "wrong-password" not in done.stderr
    assert git_http.secrets_in_urls("wrong-password") == []
    # The environment made first still has its own (right) password.
    git_client(["clone", git_http.url_for("private"), str(tmp_path / "ok")], env=good, check=True)


def test_http_token_as_password_and_bearer(
    git_http: GitHttpServer, git_root: Path, git_home: Path, tmp_path: Path
) -> None:
    BareRepo.create(git_root, "private", FILES)
    url = git_http.url_for("private")
    env = git_http.client_env(git_home, username="x-access-token", password=TEST_TOKEN)
    git_client(["clone", url, str(tmp_path / "basic")], env=env, check=True)
    assert any(r.username == "x-access-token" and r.authenticated for r in git_http.requests)

    # A bearer header from config passed in the environment, not in argv.
    bearer = isolated_env(
        git_home,
        {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Bearer {TEST_TOKEN}",
        },
    )
    git_client(["clone", url, str(tmp_path / "bearer")], env=bearer, check=True)
    assert git_http.requests[-1].auth_scheme == "Bearer"
    assert git_http.requests[-1].authenticated

    git_http.tokens.clear()  # the token expired
    done = git_client(["fetch", "origin"], env=env, cwd=tmp_path / "basic")
    assert done.returncode != 0
    assert "Authentication failed" in done.stderr
    assert git_http.secrets_in_urls(TEST_TOKEN) == []


def test_https_needs_the_ca(
    git_https: GitHttpServer, git_root: Path, git_home: Path, tmp_path: Path
) -> None:
    BareRepo.create(git_root, "private", FILES)
    url = git_https.url_for("private")
    assert url.startswith("https://127.0.0.1:")

    untrusted = git_https.client_env(git_home, ca=False)
    done = git_client(["clone", url, str(tmp_path / "no-ca")], env=untrusted)
    assert done.returncode != 0
    assert "certificate" in done.stderr
    assert any(r.error.startswith("TLS:") for r in git_https.requests)

    trusted = dict(
        untrusted,
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0="http.sslCAInfo",
        GIT_CONFIG_VALUE_0=str(git_https.ca_file),
    )
    git_client(["clone", url, str(tmp_path / "ca")], env=trusted, check=True)
    assert (tmp_path / "ca/projects/demo/project.json").is_file()


# --- SSH -----------------------------------------------------------------------------------


def test_ssh_known_hosts_and_command_log(
    git_ssh: SshServer, git_root: Path, git_home: Path, tmp_path: Path
) -> None:
    BareRepo.create(git_root, "sshrepo", FILES)
    assert git_ssh.known_hosts_path.read_text().startswith(f"[127.0.0.1]:{git_ssh.port} ssh-")
    env = git_ssh.client_env(git_home)
    git_client(["clone", git_ssh.url_for("sshrepo"), str(tmp_path / "c")], env=env, check=True)
    assert git_ssh.commands() == ["git-upload-pack '/sshrepo.git'"]
    assert "StrictHostKeyChecking=yes" in env["GIT_SSH_COMMAND"]


def test_ssh_unknown_host_key_fails(
    git_ssh: SshServer, git_root: Path, git_home: Path, tmp_path: Path
) -> None:
    BareRepo.create(git_root, "sshrepo", FILES)
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    env = git_ssh.client_env(git_home, known_hosts=empty)
    done = git_client(["clone", git_ssh.url_for("sshrepo"), str(tmp_path / "c")], env=env)
    assert done.returncode != 0
    assert "Host key verification failed" in done.stderr
    assert git_ssh.commands() == []


def test_ssh_changed_host_key_fails(
    git_ssh: SshServer, git_root: Path, git_home: Path, tmp_path: Path
) -> None:
    BareRepo.create(git_root, "sshrepo", FILES)
    other = ssh_keygen(tmp_path / "other_host_key")
    forged = tmp_path / "forged_known_hosts"
    forged.write_text(f"[127.0.0.1]:{git_ssh.port} {other}\n")
    env = git_ssh.client_env(git_home, known_hosts=forged)
    done = git_client(["clone", git_ssh.url_for("sshrepo"), str(tmp_path / "c")], env=env)
    assert done.returncode != 0
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in done.stderr
    assert git_ssh.commands() == []


def test_ssh_unknown_client_key_is_denied(
    git_ssh: SshServer, git_root: Path, git_home: Path, tmp_path: Path
) -> None:
    BareRepo.create(git_root, "sshrepo", FILES)
    stranger = tmp_path / "stranger"
    ssh_keygen(stranger)
    env = git_ssh.client_env(git_home, key=stranger)
    done = git_client(["clone", git_ssh.url_for("sshrepo"), str(tmp_path / "c")], env=env)
    assert done.returncode != 0
    assert "Permission denied (publickey)" in done.stderr


def test_ssh_serves_only_git_under_root(
    git_ssh: SshServer, git_root: Path, git_home: Path, tmp_path: Path
) -> None:
    outside = BareRepo.create(tmp_path / "elsewhere", "secret", FILES)
    env = git_ssh.client_env(git_home)
    escape = f"ssh://{git_ssh.user}@127.0.0.1:{git_ssh.port}/../elsewhere/secret.git"
    done = git_client(["clone", escape, str(tmp_path / "c")], env=env)
    assert done.returncode != 0
    assert "outside the served root" in done.stderr
    assert outside.path.is_dir()

    shell = subprocess.run(
        [
            *shlex.split(git_ssh.ssh_command()),
            "-p",
            str(git_ssh.port),
            f"{git_ssh.user}@127.0.0.1",
            "id",
        ],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    assert shell.returncode != 0
    assert "only git-upload-pack/git-receive-pack are served" in shell.stderr


# --- shutdown ------------------------------------------------------------------------------


def test_servers_stop_cleanly(git_root: Path, git_home: Path, tmp_path: Path) -> None:
    BareRepo.create(git_root, "r", {"a.txt": "1\n"})
    threads_before = set(threading.enumerate())
    servers: list[GitDaemon | GitHttpServer | SshServer] = [
        GitDaemon(git_root),
        GitHttpServer(git_root),
        GitHttpServer(git_root, tls=True),
        SshServer(git_root),
    ]
    for index, server in enumerate(servers):
        with server:
            env = server.client_env(git_home)
            dest = tmp_path / f"clone{index}"
            git_client(["clone", server.url_for("r"), str(dest)], env=env, check=True)
            assert port_open(server.port)
            state = server.state_dir
            assert state.is_dir()
        assert not port_open(server.port)
        for pid in getattr(server, "pids", []):
            assert not alive(pid), f"{type(server).__name__} left process {pid}"
        assert not state.exists()
    assert set(threading.enumerate()) <= threads_before


def test_ssh_stop_ends_an_open_session(git_root: Path, git_home: Path) -> None:
    server = SshServer(git_root).start()
    try:
        env = server.client_env(git_home)
        argv = [*shlex.split(server.ssh_command()), "-p", str(server.port), "-N"]
        session = subprocess.Popen(
            [*argv, f"{server.user}@127.0.0.1"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while "Accepted publickey" not in server.log_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert "Accepted publickey" in server.log_text()
        finally:
            server.stop()
            session.wait(timeout=10)
        assert session.returncode != 0  # the server went away under it
        assert len(server.pids) >= 2, "the per-connection sshd child was not found"
        assert not any(alive(pid) for pid in server.pids)
    finally:
        server.stop()
