"""A full check walks the data directory in a child process only when the tree is large enough
to pay for the child's start-up (~20 ms of CPU against ~2 ms to walk 300 files here): a fleet of
small gateways would otherwise spend ten times the CPU on every check (issue 18's fleet goal),
and only with two CPUs' worth to run on (a container's CPU limit is one quota for both)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stoker_agent import cpus
from stoker_agent.syncing import (
    WALK_APART_FROM,
    _recorded_commit_hint,
    large_enough_to_walk_apart,
)
from stoker_core.manifest import MANIFEST_PATH
from stoker_core.manifestlog import LOG_PATH


def _manifest_of(data: Path, size: int) -> Path:
    path = data / MANIFEST_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b" " * size)
    return path


def test_a_small_data_directory_is_walked_here(tmp_path: Path) -> None:
    _manifest_of(tmp_path, 300 * 200)  # some 300 files
    assert not large_enough_to_walk_apart(str(tmp_path))


def test_a_large_data_directory_is_walked_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cpus, "CGROUP_ROOT", str(tmp_path / "no-cgroup"))
    _manifest_of(tmp_path, WALK_APART_FROM)
    assert large_enough_to_walk_apart(str(tmp_path)) == (len(os.sched_getaffinity(0)) >= 2)


def test_a_first_sync_with_no_manifest_is_walked_here(tmp_path: Path) -> None:
    assert not large_enough_to_walk_apart(str(tmp_path))


def test_a_manifest_linked_to_a_large_file_is_not_followed_to_judge(tmp_path: Path) -> None:
    big = tmp_path / "elsewhere"
    big.write_bytes(b" " * (2 * WALK_APART_FROM))
    (tmp_path / "data/.stoker").mkdir(parents=True)
    os.symlink(big, tmp_path / "data" / MANIFEST_PATH)
    assert not large_enough_to_walk_apart(str(tmp_path / "data"))


def _cgroup(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "20000 100000\n"}, 0.2),  # v2, the injected agent's default 200m
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),  # v1
    ],
)
def test_a_cgroup_cpu_quota_caps_the_cpus_available(
    tmp_path: Path, files: dict[str, str], quota: float
) -> None:
    cores = len(os.sched_getaffinity(0))
    assert cpus.available(str(_cgroup(tmp_path, files))) == min(cores, quota)


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"cpu.max": "max 100000\n"},
        {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"},
        {"cpu.max": "garbage"},
        {"cpu.max": "100 0"},
    ],
)
def test_no_quota_or_an_unreadable_one_leaves_every_core_of_the_affinity(
    tmp_path: Path, files: dict[str, str]
) -> None:
    assert cpus.available(str(_cgroup(tmp_path, files))) == len(os.sched_getaffinity(0))


def test_a_large_data_directory_under_a_cpu_limit_below_two_is_walked_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One quota for both processes: the child would only take the parent's share.
    _manifest_of(tmp_path / "data", WALK_APART_FROM)
    monkeypatch.setattr(
        cpus, "CGROUP_ROOT", str(_cgroup(tmp_path / "cg", {"cpu.max": "20000 100000"}))
    )
    assert not large_enough_to_walk_apart(str(tmp_path / "data"))
    unlimited = _cgroup(tmp_path / "unlimited", {"cpu.max": "max 100000"})
    monkeypatch.setattr(cpus, "CGROUP_ROOT", str(unlimited))
    assert large_enough_to_walk_apart(str(tmp_path / "data")) == (len(os.sched_getaffinity(0)) >= 2)


def test_a_resync_is_told_by_the_commit_the_manifest_names_last(tmp_path: Path) -> None:
    # The hint that starts a resync's walk before the manifest is read: the log's last line
    # names the commit the data directory was synced to, else the base does.
    base, older, newer = "a" * 40, "b" * 40, "c" * 40
    _manifest_of(tmp_path, 0).write_text(f'{{"version":3,"generation":"g","commit":"{base}"}}')
    assert _recorded_commit_hint(str(tmp_path)) == base
    log = tmp_path / LOG_PATH
    lines = [f'{{"base":"g","seq":{n},"commit":"{c}","set":{{}}}}\n' for n, c in ((1, older),)]
    log.write_text(
        "".join(lines) + f'{{"base":"g","seq":2,"commit":"{newer}","x":"{"y" * 5000}"}}\n'
    )
    # The last line's key lies before the tail read: the base's commit is taken (a hint only).
    assert _recorded_commit_hint(str(tmp_path)) == base
    log.write_text("".join(lines) + f'{{"base":"g","seq":2,"commit":"{newer}","set":{{}}}}\n')
    assert _recorded_commit_hint(str(tmp_path)) == newer


def test_a_linked_manifest_or_log_gives_no_resync_hint(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text(f'{{"commit":"{"d" * 40}"}}')
    data = tmp_path / "data"
    (data / ".stoker").mkdir(parents=True)
    assert _recorded_commit_hint(str(data)) is None  # nothing recorded
    os.symlink(elsewhere, data / MANIFEST_PATH)
    os.symlink(elsewhere, data / LOG_PATH)
    assert _recorded_commit_hint(str(data)) is None


def test_a_fifo_or_a_folder_where_the_log_is_gives_the_base_commit_without_blocking(
    tmp_path: Path,
) -> None:
    _manifest_of(tmp_path, 0).write_text(f'{{"version":3,"generation":"g","commit":"{"e" * 40}"}}')
    os.mkfifo(tmp_path / LOG_PATH)  # opened to read, it would wait for a writer
    assert _recorded_commit_hint(str(tmp_path)) == "e" * 40
    (tmp_path / LOG_PATH).unlink()
    (tmp_path / LOG_PATH).mkdir()
    assert _recorded_commit_hint(str(tmp_path)) == "e" * 40
