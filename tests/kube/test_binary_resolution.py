"""Binary resolution: Python and build.sh agree, and missing binaries fail loudly."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from support.kubeenv import TESTENV_DIR, TestEnvError, cache_key, resolve_assets

BUILD = TESTENV_DIR / "build.sh"


def run_build(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run build.sh with ``env`` added to a copy of the environment."""
    return subprocess.run(
        ["bash", str(BUILD), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def fake_assets(directory: Path) -> Path:
    """A directory with executable stand-ins named kube-apiserver and etcd."""
    directory.mkdir(parents=True)
    for name in ("kube-apiserver", "etcd"):
        (directory / name).write_text("#!/bin/sh\n")
        (directory / name).chmod(0o755)
    return directory


def test_the_python_cache_key_matches_the_build_script() -> None:
    result = run_build("--key", env={})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == cache_key()
    assert cache_key().startswith("v1.")


def test_kubebuilder_assets_wins_in_both_resolvers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assets = fake_assets(tmp_path / "assets")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    assert resolve_assets() == assets
    result = run_build("--no-build", env={"KUBEBUILDER_ASSETS": str(assets)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == str(assets)


def test_the_cache_directory_is_found_by_both_resolvers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_assets(tmp_path / "cache" / cache_key())
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("STOKER_TESTENV_CACHE", str(tmp_path / "cache"))
    assert resolve_assets() == tmp_path / "cache" / cache_key()
    result = run_build("--no-build", env={"STOKER_TESTENV_CACHE": str(tmp_path / "cache")})
    assert result.stdout.splitlines()[-1] == str(tmp_path / "cache" / cache_key())


def test_missing_binaries_fail_with_one_message_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("STOKER_TESTENV_CACHE", str(tmp_path / "empty"))
    with pytest.raises(TestEnvError, match=r"make testenv.*Go 1\.24.*KUBEBUILDER_ASSETS"):
        resolve_assets()
    env = {k: v for k, v in os.environ.items() if k != "KUBEBUILDER_ASSETS"}
    result = subprocess.run(
        ["bash", str(BUILD), "--no-build"],
        env={**env, "STOKER_TESTENV_CACHE": str(tmp_path / "empty")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "make testenv" in result.stderr
    assert "KUBEBUILDER_ASSETS" in result.stderr


def test_kubebuilder_assets_without_binaries_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    with pytest.raises(TestEnvError, match="does not hold executable kube-apiserver and etcd"):
        resolve_assets()
