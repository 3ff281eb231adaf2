"""`spec.git.sparse`: only the files under the gateway's mapped sources are fetched.

Real servers (git daemon, git over HTTPS with a token); the mirror is inspected with git itself
to see which file contents it holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.gitservers import TEST_TOKEN, BareRepo, GitDaemon, GitHttpServer

CR = """apiVersion: stoker.io/v1alpha1
kind: GatewaySync
metadata: {name: plant}
spec:
  git: {repo: unused, ref: main, sparse: true}
  gateway: {api: {secretName: k}}
  sync:
    profiles:
      default:
        mappings:
          - {source: "sites/{{.GatewayName}}/projects", destination: projects}
          - {source: shared/config.json, destination: config/shared.json}
"""

FILES = {
    "sites/blue/projects/p/project.json": '{"title": "blue"}',
    "sites/blue/projects/p/views/v/view.json": '{"v": 1}',
    "shared/config.json": '{"shared": true}',
    "sites/red/projects/p/project.json": '{"title": "red"}',  # another gateway's: never fetched
    "media/big.bin": b"\x00" * 300_000,  # nobody maps it: never fetched
}


def stoker_sync(cr: Path, url: str, data: Path, *extra: str) -> dict[str, object]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stoker_agent.cli",
            "sync",
            "--cr",
            str(cr),
            "--repo",
            url,
            "--ref",
            "main",
            "--data-dir",
            str(data),
            "--gateway-name",
            "blue",
            "--output",
            "json",
            "--mirror-dir",
            str(mirror_of(data)),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, object] = json.loads(done.stdout)
    return report


def mirror_of(data: Path) -> Path:
    """Where these tests keep the mirror of `data`: beside it, never inside it."""
    return data.parent / "mirror"


def blobs_held(mirror: Path, repo: BareRepo, commit: str) -> dict[str, bool]:
    """Every file path at `commit` -> whether the mirror holds its content."""
    listing = repo.git("ls-tree", "-r", "--full-tree", commit).splitlines()
    paths = {line.split()[2]: line.split("\t", 1)[1] for line in listing}
    missing = subprocess.run(
        ["git", "-C", str(mirror), "rev-list", "--objects", "--missing=print", commit],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    absent = {item[1:] for item in missing if item.startswith("?")}
    return {path: oid not in absent for oid, path in paths.items()}


@pytest.fixture
def cr(tmp_path: Path) -> Path:
    path = tmp_path / "cr.yaml"
    path.write_text(CR)
    return path


def test_sparse_fetch_brings_only_the_mapped_sources(
    git_root: Path, cr: Path, tmp_path: Path
) -> None:
    repo = BareRepo.create(git_root, "plant", FILES)
    repo.git("config", "uploadpack.allowFilter", "true")
    data = tmp_path / "data"
    data.mkdir()
    with GitDaemon(git_root) as daemon:
        first = stoker_sync(cr, daemon.url_for("plant"), data)
        assert first["result"] == "Synced"
        assert sorted(first["added"]) == [  # type: ignore[call-overload]
            "config/shared.json",
            "projects/p/project.json",
            "projects/p/views/v/view.json",
        ]
        mirror = mirror_of(data)
        held = blobs_held(mirror, repo, repo.rev_parse("main"))
        assert held == {
            "sites/blue/projects/p/project.json": True,
            "sites/blue/projects/p/views/v/view.json": True,
            "shared/config.json": True,
            "sites/red/projects/p/project.json": False,
            "media/big.bin": False,
        }

        second = repo.commit(
            {"sites/blue/projects/p/views/v/view.json": '{"v": 2}', "media/big.bin": b"\x01"},
            replace=False,
        )
        update = stoker_sync(cr, daemon.url_for("plant"), data)
    assert update["modified"] == ["projects/p/views/v/view.json"]
    assert (data / "projects/p/views/v/view.json").read_text() == '{"v": 2}'
    held = blobs_held(mirror, repo, second)
    assert held["sites/blue/projects/p/views/v/view.json"]
    assert not held["media/big.bin"]
    assert not held["sites/red/projects/p/project.json"]


def test_a_server_without_partial_clone_sends_everything_and_the_sync_still_works(
    git_root: Path, cr: Path, tmp_path: Path
) -> None:
    repo = BareRepo.create(git_root, "plant", FILES)  # uploadpack.allowFilter left unset
    data = tmp_path / "data"
    data.mkdir()
    with GitDaemon(git_root) as daemon:
        report = stoker_sync(cr, daemon.url_for("plant"), data)
    assert report["result"] == "Synced"
    assert (data / "config/shared.json").read_text() == '{"shared": true}'
    assert all(blobs_held(mirror_of(data), repo, repo.rev_parse("main")).values())


def test_sparse_fetch_over_https_uses_the_token_for_the_file_fetch_too(
    git_https: GitHttpServer, git_root: Path, cr: Path, tmp_path: Path
) -> None:
    repo = BareRepo.create(git_root, "plant", FILES)
    repo.git("config", "uploadpack.allowFilter", "true")
    token = tmp_path / "token"
    token.write_text(TEST_TOKEN + "\n")
    data = tmp_path / "data"
    data.mkdir()
    report = stoker_sync(
        cr,
        git_https.url_for("plant"),
        data,
        "--git-token-file",
        str(token),
        "--git-ca-file",
        str(git_https.ca_file),
    )
    assert report["result"] == "Synced"
    held = blobs_held(mirror_of(data), repo, repo.rev_parse("main"))
    assert not held["media/big.bin"]
    assert held["shared/config.json"]
    assert os.path.exists(data / "projects/p/views/v/view.json")
    assert git_https.secrets_in_urls(TEST_TOKEN) == []
