"""The steps a sync takes that cost the same whatever it changes, counted: git processes
(each a fork, an exec and git's own start-up) and gateway API calls, paid by every agent at
every sync (issue 18's agent CPU per sync). Git processes are counted by a `git` on PATH that
notes its command before it runs the real one, calls by the gateway simulator."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from conftest import commit_tree, git
from core.helpers import gs_with
from stoker_agent import restarts
from stoker_agent.gateway import GatewayClient, GatewaySettings, GatewayUnavailable
from stoker_agent.gitrepo import GitError, GitSnapshot
from stoker_agent.standalone import Identity, SyncSettings, run_once
from stoker_agent.syncing import FULL_CHECK_FILE
from stoker_core.status import SyncRecord
from support.ignition_sim import GatewaySimulator, running
from support.ignition_sim_resources import write_api_token
from support.loopback import accepting

SUBCOMMANDS = ("cat-file", "ls-tree", "diff-tree", "rev-parse", "fetch", "init", "update-ref")


@pytest.fixture
def started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A log of the git commands started from here on (one subcommand a line)."""
    shim, log = tmp_path / "shim", tmp_path / "git-commands.log"
    shim.mkdir()
    real = shutil.which("git")
    assert real is not None
    words = " ".join(SUBCOMMANDS)
    (shim / "git").write_text(
        "#!/bin/sh\n"
        f'for a in "$@"; do for w in {words}; do\n'
        f'  if [ "$a" = "$w" ]; then echo "$w" >> {log}; exec {real} "$@"; fi\n'
        f'done; done\nexec {real} "$@"\n'
    )
    (shim / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    log.write_text("")
    return log


def counted(log: Path) -> Counter[str]:
    return Counter(log.read_text().split())


def test_a_snapshot_that_read_a_file_reads_the_syncs_blobs_through_the_same_git_process(
    tmp_path: Path, started: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    files = {f"f{i}.json": f"content {i}" for i in range(5)}
    commit = commit_tree(repo, files)
    started.write_text("")
    with GitSnapshot(str(repo / ".git"), commit) as snapshot:
        entries = {e.path: e for e in snapshot.walk("")}
        assert snapshot.read(entries["f0.json"]) == b"content 0"  # planning reads a file
        blobs = [entries[name].blob for name in sorted(files)]
        pipeline = snapshot.pipeline(blobs)
        try:
            read = [b"".join(pipeline.next(blob)) for blob in blobs]
        finally:
            pipeline.close()
        assert read == [files[name].encode() for name in sorted(files)]
    assert counted(started)["cat-file"] == 1  # 2 before: the pipeline started its own
    with GitSnapshot(str(repo / ".git"), commit) as snapshot:
        pipeline = snapshot.pipeline(blobs)  # read after the pipeline: a reader of its own
        try:
            assert b"".join(pipeline.next(blobs[0])) == b"content 0"
        finally:
            pipeline.close()
        assert snapshot.read(entries["f3.json"]) == b"content 3"
    assert counted(started)["cat-file"] == 3


def test_a_reader_left_mid_reply_is_not_handed_to_the_pipeline(
    tmp_path: Path, started: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit = commit_tree(repo, {"dir/a.json": "a", "b.json": "b"})
    with GitSnapshot(str(repo / ".git"), commit) as snapshot:
        entries = {e.path: e for e in snapshot.walk("")}
        tree = entries["dir"]._replace(blob=git(repo, "rev-parse", f"{commit}:dir"))
        with pytest.raises(GitError, match="could not read blob"):
            snapshot.read(tree)  # a tree's content stays unread in the stream
        pipeline = snapshot.pipeline([entries["b.json"].blob])
        try:
            assert b"".join(pipeline.next(entries["b.json"].blob)) == b"b"
        finally:
            pipeline.close()
    assert counted(started)["cat-file"] == 2


@contextlib.contextmanager
def simulated_gateway(tmp_path: Path) -> Iterator[tuple[GatewaySimulator, GatewaySettings, Path]]:
    """A running gateway simulator over `tmp_path/data`, the settings to reach it with an API
    token it accepts, and its data directory."""
    data = tmp_path / "data"
    data.mkdir()
    token = tmp_path / "token"
    token.write_text(write_api_token(data, collection="local"))
    with running(data) as sim:
        yield sim, GatewaySettings(url=sim.url, token_file=str(token), timeout=5), data


def test_a_sync_that_owes_no_restart_asks_the_gateway_for_its_tasks_but_not_its_uptime(
    tmp_path: Path,
) -> None:
    with simulated_gateway(tmp_path) as (sim, gateway, data), client_of(gateway) as client:
        seen = len(sim.requests)
        settled = restarts.settle(SyncRecord(result="Synced"), client, str(data))
        asked = [r.path for r in sim.requests[seen:]]
        assert settled.result == "Synced"
        assert asked == ["/data/api/v1/restart-tasks/pending"]  # and /overview before
        # A restart-only change owed: when the gateway started decides, so it is asked.
        sim.restart_tasks = []
        (data / restarts.OWED_FILE).parent.mkdir(parents=True, exist_ok=True)
        (data / restarts.OWED_FILE).write_text('{"since": 1}')
        seen = len(sim.requests)
        assert restarts.settle(SyncRecord(result="InSync"), client, str(data)).result == "InSync"
        assert [r.path for r in sim.requests[seen:]] == [
            "/data/api/v1/restart-tasks/pending",
            "/data/api/v1/overview",
        ]
        assert not (data / restarts.OWED_FILE).exists()  # it has started since: cleared


@contextlib.contextmanager
def client_of(gateway: GatewaySettings) -> Iterator[GatewayClient]:
    client = GatewayClient(gateway, sleep=lambda _: None)
    try:
        yield client
    finally:
        client.close()


def agent_settings(repo: Path, tmp_path: Path) -> SyncSettings:
    """An agent's settings for a new commit: `projects` of `repo` fetched into a mirror, the
    full check deferred (what the agent loop sets)."""
    data = tmp_path / "data"
    data.mkdir()
    return SyncSettings(
        gatewaysync=gs_with([{"source": "projects", "destination": "projects"}]),
        profile=None,
        identity=Identity(gateway_name="gw"),
        repo=f"file://{repo}",
        ref="main",
        data_dir=str(data),
        mirror_dir=str(tmp_path / "mirror"),
        defer_check=True,
    )


def new_repo(tmp_path: Path, files: dict[str, str]) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit_tree(repo, files)
    return repo


def test_a_running_agents_new_commit_planned_from_its_changes_never_lists_the_whole_tree(
    tmp_path: Path, started: Path
) -> None:
    files = {
        f"projects/p{p}/views/v{v}/view.json": f'{{"v": {v}}}' for p in range(3) for v in range(4)
    }
    repo = new_repo(tmp_path, files)
    settings = agent_settings(repo, tmp_path)
    assert run_once(settings).record.result == "Synced"  # the first sync lists it whole
    commit_tree(repo, {**files, "projects/p1/views/v2/view.json": '{"v": "two"}'})
    started.write_text("")
    outcome = run_once(settings)
    assert outcome.record.result == "Synced"
    assert outcome.record.modified == ("projects/p1/views/v2/view.json",)
    # Planned from the commit's changes, read as tree objects by the one cat-file that reads
    # the sync's blobs: a diff-tree and two ls-tree before (3 ls-tree before that: the whole).
    steps = counted(started)
    assert (steps["cat-file"], steps["diff-tree"], steps["ls-tree"]) == (1, 0, 0)
    # The drift check of that commit (asked for a full check) lists the whole tree ahead.
    started.write_text("")
    checked = run_once(attrs.evolve(settings, defer_check=False, full_check=True))
    assert checked.record.result == "InSync"
    assert counted(started)["ls-tree"] == 1


def test_an_agents_project_sync_asks_the_gateway_7_times_on_one_connection_and_trusts_its_fetch(
    tmp_path: Path, started: Path
) -> None:
    files = {f"projects/p/views/v{v}/view.json": f'{{"v": {v}}}' for v in range(4)}
    repo = new_repo(tmp_path, files)
    (tmp_path / "gw").mkdir()
    with simulated_gateway(tmp_path / "gw") as (sim, gateway, data):
        agent = agent_settings(repo, tmp_path)
        settings = attrs.evolve(agent, data_dir=str(data), gateway=gateway)
        assert run_once(settings).record.result == "Synced"
        commit_tree(repo, {**files, "projects/p/views/v1/view.json": '{"v": "one"}'})
        commit = git(repo, "rev-parse", "HEAD")  # resolved by the controller, as in a cluster
        seen = len(sim.requests)
        started.write_text("")
        outcome = run_once(attrs.evolve(settings, commit=commit))
        asked = sim.requests[seen:]
    assert outcome.record.result == "Synced"
    assert outcome.record.commit == commit
    # A scan still running when its status is read is read again: polls of one scan count once.
    calls = [call for call, _ in itertools.groupby(f"{r.method} {r.path}" for r in asked)]
    assert calls == [
        "GET /data/api/v1/gateway-info",  # its redundancy role, before any change
        "GET /data/api/v1/designers",
        # Only a project changed: no config lock, scan or scan status (10 calls before).
        "POST /data/api/v1/scan-lock/projects",
        "POST /data/api/v1/scan/projects",
        "GET /data/api/v1/scan/projects",
        "GET /data/api/v1/projects/list",  # 11 before: gateway-info again after it
        "GET /data/api/v1/restart-tasks/pending",
    ]
    # The restart check shares the sync's connection: 2 before (a TLS handshake in a pod).
    assert len({r.peer for r in asked}) == 1
    # The new commit is fetched without looking for it first (a cat-file -e before), and not
    # read back from the ref (a rev-parse before): cat-file is planning's --batch-command
    # reader, which reads the commit's changes too (a diff-tree and two ls-tree before).
    assert counted(started) == Counter({"cat-file": 1, "fetch": 1})


TWO_KINDS = {
    "projects/p/views/v1/view.json": '{"v": 1}',
    "config/resources/core/db/a/config.json": '{"on": true}',
}


@contextlib.contextmanager
def synced_both_kinds(
    tmp_path: Path,
) -> Iterator[tuple[GatewaySimulator, SyncSettings, Path, dict[str, str]]]:
    """A simulated gateway synced with a repository of a project file and a config collection
    (into its data directory, whose own config, its API token among it, stays untouched): the
    simulator, the settings, the repository and its files."""
    repo = new_repo(tmp_path, TWO_KINDS)
    (tmp_path / "gw").mkdir()
    mappings = [{"source": s, "destination": s} for s in ("projects", "config/resources/core/db")]
    with simulated_gateway(tmp_path / "gw") as (sim, gateway, data):
        settings = attrs.evolve(
            agent_settings(repo, tmp_path),
            gatewaysync=gs_with(mappings),
            data_dir=str(data),
            gateway=gateway,
        )
        assert run_once(settings).record.result == "Synced"
        yield sim, settings, repo, dict(TWO_KINDS)


@pytest.mark.parametrize(
    ("changes", "kinds"),
    [
        ({"config/resources/core/db/a/config.json": '{"on": false}'}, ["config"]),
        (
            {
                "config/resources/core/db/a/config.json": '{"on": false}',
                "projects/p/views/v1/view.json": '{"v": "one"}',
            },
            ["projects", "config"],
        ),
    ],
)
def test_a_sync_locks_and_scans_the_kinds_its_changes_need(
    tmp_path: Path, changes: dict[str, str], kinds: list[str]
) -> None:
    with synced_both_kinds(tmp_path) as (sim, settings, repo, files):
        commit_tree(repo, {**files, **changes})
        seen = len(sim.requests)
        outcome = run_once(settings)
        asked = [(r.method, r.path) for r in sim.requests[seen:]]
    assert outcome.record.result == "Synced"
    assert [p.rsplit("/", 1)[1] for m, p in asked if m == "POST" and "/scan/" in p] == kinds
    locks = [p.rsplit("/", 1)[1] for m, p in asked if m == "POST" and "/scan-lock/" in p]
    assert locks == kinds


def test_a_scan_owed_by_an_earlier_run_is_still_asked_for_with_a_new_change_of_another_kind(
    tmp_path: Path,
) -> None:
    # The first run applied a config change and could not scan (the gateway went away): its
    # paths stay owed. The next commit changes only a project: both kinds are locked and
    # scanned, the config scan being the one still owed.
    with synced_both_kinds(tmp_path) as (sim, settings, repo, files):
        changed = {**files, "config/resources/core/db/a/config.json": '{"on": false}'}
        commit_tree(repo, changed)
        sim.fail("/data/api/v1/scan/config", 500, times=3)  # each try of the one request
        assert run_once(settings).record.result == "Error"
        commit_tree(repo, {**changed, "projects/p/views/v1/view.json": '{"v": "one"}'})
        seen = len(sim.requests)
        assert run_once(settings).record.result == "Synced"
        asked = [(r.method, r.path) for r in sim.requests[seen:]]
    posts = [p.rsplit("/v1/", 1)[1] for m, p in asked if m == "POST"]
    # The config lock the failed run took is still held: released by a scan, taken again.
    assert posts == [
        "scan-lock/projects",
        "scan-lock/config",
        "scan/config",
        "scan-lock/config",
        "scan/projects",
        "scan/config",
    ]


def test_a_resync_of_the_fetched_commit_starts_no_git_process_to_find_it(
    tmp_path: Path, started: Path
) -> None:
    repo = new_repo(tmp_path, {"projects/p/views/v/view.json": "{}"})
    commit = git(repo, "rev-parse", "HEAD")
    settings = attrs.evolve(agent_settings(repo, tmp_path), commit=commit)
    assert run_once(settings).record.result == "Synced"
    started.write_text("")
    checked = run_once(attrs.evolve(settings, defer_check=False, full_check=True))
    assert checked.record.result == "InSync"
    # The tree listed for the full check, nothing else: a cat-file -e looked for it before.
    assert counted(started) == Counter({"ls-tree": 1})
    # Within syncPeriod of that check, a resync compares the commit with itself through the
    # object reader (an empty diff: nothing listed) and stats the recorded files.
    started.write_text("")
    assert run_once(attrs.evolve(settings, defer_check=False)).record.result == "InSync"
    assert counted(started) == Counter({"cat-file": 1})
    # A commit fetched before but not the last one (a rollback) with the remote gone: the
    # fetch fails, and the mirror's copy is found then.
    commit_tree(repo, {"projects/p/views/v/view.json": '{"v": 2}'})
    newer = git(repo, "rev-parse", "HEAD")
    assert run_once(attrs.evolve(settings, commit=newer)).record.result == "Synced"
    shutil.rmtree(repo)
    back = run_once(settings)
    assert back.record.result == "Synced", back.record.error
    assert back.record.commit == commit
    assert (tmp_path / "data/projects/p/views/v/view.json").read_text() == "{}"


def resource(actor: str, stamp: str) -> str:
    """A resource.json as Ignition writes it, its last modification by `actor` at `stamp`."""
    attributes = {
        "lastModification": {"actor": actor, "timestamp": stamp},
        "lastModificationSignature": stamp.encode().hex(),
    }
    return json.dumps(
        {"scope": "G", "version": 1, "files": ["view.json"], "attributes": attributes}
    )


def test_a_one_shot_sync_lists_the_whole_tree_only_when_it_will_build_it_whole(
    tmp_path: Path, started: Path
) -> None:
    files = {f"projects/p/views/v{v}/view.json": f'{{"v": {v}}}' for v in range(4)}
    repo = new_repo(tmp_path, files)
    settings = attrs.evolve(agent_settings(repo, tmp_path), repo=str(repo), defer_check=False)
    assert run_once(settings).record.result == "Synced"
    commit_tree(repo, {**files, "projects/p/views/v1/view.json": '{"v": "one"}'})
    started.write_text("")
    outcome = run_once(settings)
    assert (outcome.record.result, outcome.from_diff) == ("Synced", True)
    # Planned from the changes: the whole tree was listed ahead for nothing (a git process),
    # and the ref resolved by a rev-parse of its own: the repository's one rev-parse (where
    # its git directory is) and the cat-file that resolves the ref, then reads the commit.
    assert counted(started) == Counter({"rev-parse": 1, "cat-file": 1})
    # A resync of that commit within syncPeriod is planned from the changes too (none).
    started.write_text("")
    resync = run_once(settings)
    assert (resync.record.result, resync.from_diff) == ("InSync", True)
    assert counted(started) == Counter({"rev-parse": 1, "cat-file": 1})
    # Asked for a full check (--full-check, the agent's drift check), it builds the tree
    # whole: listed from the start.
    started.write_text("")
    checked = run_once(attrs.evolve(settings, full_check=True))
    assert (checked.record.result, checked.from_diff) == ("InSync", False)
    assert counted(started)["ls-tree"] == 1
    # So is a new commit when the full check is due (by time).
    commit_tree(repo, {**files, "projects/p/views/v2/view.json": '{"v": "two"}'})
    check = tmp_path / "data" / FULL_CHECK_FILE
    os.utime(check, (check.stat().st_mtime - 3600,) * 2)
    started.write_text("")
    outcome = run_once(settings)
    assert (outcome.record.result, outcome.from_diff) == ("Synced", False)
    assert counted(started)["ls-tree"] == 1


def test_a_resource_json_the_gateway_stamped_does_not_make_the_next_commit_build_whole(
    tmp_path: Path, started: Path
) -> None:
    view, meta = "projects/p/views/v/view.json", "projects/p/views/v/resource.json"
    files = {view: '{"v": 1}', meta: resource("admin", "2026-01-15T10:30:00Z")}
    files.update({f"projects/p/views/w{i}/view.json": "{}" for i in range(5)})
    repo = new_repo(tmp_path, files)
    settings = agent_settings(repo, tmp_path)
    assert run_once(settings).record.result == "Synced"
    # The gateway loads the resource and stamps its resource.json (Ignition does at a scan).
    stamped = resource("external", "2026-12-06T17:00:00Z")
    (tmp_path / "data" / meta).write_text(stamped)
    commit_tree(repo, {**files, view: '{"v": 2}'})  # the next commit changes the view only
    started.write_text("")
    outcome = run_once(settings)
    assert outcome.record.result == "Synced"
    assert outcome.record.modified == (view,)
    assert outcome.from_diff
    assert (tmp_path / "data" / meta).read_text() == stamped  # kept, as a whole build keeps it
    # 3 ls-tree before that (the tree was then built whole), a diff-tree and 2 ls-tree after.
    steps = counted(started)
    assert (steps["cat-file"], steps["diff-tree"], steps["ls-tree"]) == (1, 0, 0)


def test_the_gateway_client_reads_the_environments_proxy_once_and_still_honours_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with simulated_gateway(tmp_path) as (sim, settings, _), socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # a proxy address nothing answers at
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed.getsockname()[1]}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        through_proxy = GatewayClient(settings, sleep=lambda _: None)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        direct = GatewayClient(settings, sleep=lambda _: None)
        monkeypatch.delenv("NO_PROXY")  # read when the client was made, not at each call
        try:
            with pytest.raises(GatewayUnavailable, match="checking gateway status"):
                through_proxy.ping()
            seen = len(sim.requests)
            assert direct.ping() == "RUNNING"
            assert direct.info()["redundancyRole"] == "Independent"
            assert len(sim.requests) == seen + 2
        finally:
            through_proxy.close()
            direct.close()


def test_the_gateway_client_never_sends_netrc_credentials_for_the_gateways_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests sends ~/.netrc's login for a host as Basic auth when no other auth is set: the
    # sync user's credentials for that host would go to whatever answers at the gateway's address.
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text("machine 127.0.0.1 login plant password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("NETRC", raising=False)
    with simulated_gateway(tmp_path) as (sim, settings, _):
        client = GatewayClient(settings, sleep=lambda _: None)
        try:
            assert client.ping() == "RUNNING"
            assert client.info()["redundancyRole"] == "Independent"
        finally:
            client.close()
        assert sim.requests
        assert [r.authorization for r in sim.requests] == [None] * len(sim.requests)


def test_the_gateway_client_sends_through_an_http_proxy_as_requests_did(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The client sends through requests' urllib3 pool without preparing each request with
    # requests: a proxy still gets the whole URL and its own credentials, every call.
    heard: list[bytes] = []

    def answer(conn: socket.socket) -> None:
        with conn:
            for _ in range(2):  # two calls on one kept-alive connection
                heard.append(conn.recv(65536))
                body = b'{"state": "RUNNING"}'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )

    with accepting(answer) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.replace("http://", "http://plant:s3cret@"))
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        client = GatewayClient(GatewaySettings(url="http://gw.example:8088"), sleep=lambda _: None)
        try:
            assert client.ping() == "RUNNING"
            assert client.ping() == "RUNNING"
        finally:
            client.close()
    assert len(heard) == 2
    head = heard[0].decode().split("\r\n")
    assert head[0] == "GET http://gw.example:8088/StatusPing HTTP/1.1"
    assert "Proxy-Authorization: Basic cGxhbnQ6czNjcmV0" in head  # plant:s3cret
    assert "Accept-Encoding: gzip, deflate" in head
