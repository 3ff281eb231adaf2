"""The image tarballs `make images` writes import on an air-gapped machine with either tool a
plant has: containerd (`ctr images import`, what the cluster itself does) and Docker (`docker
load`, which before Docker 25 reads only the tarball's `manifest.json`). No Docker engine runs
here; skopeo's docker-archive reader, an independent implementation of the format `docker
load` takes, reads each tarball by its full name and verifies every blob."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "build" / "images"
KEYS = ["controller", "agent", "ignition-sim"]
# Part of the real-pod suite: like every test here it fails, never passes or skips, when no
# cluster is up (tests/test_e2e_suite.py), so `make e2e` is what runs it.
pytestmark = pytest.mark.usefixtures("cluster")


def skopeo(*args: str) -> str:
    done = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("key", KEYS)
def test_each_image_tarball_loads_as_a_docker_archive_under_its_full_name(
    key: str, tmp_path: Path
) -> None:
    tarball = IMAGES / f"{key}.oci.tar"
    name = (IMAGES / f"{key}.ref").read_text().strip()
    assert json.loads(skopeo("list-tags", f"docker-archive:{tarball}"))["Tags"] == [name]
    # A whole copy reads and checks every blob against its digest, as a load does.
    skopeo("copy", "-q", f"docker-archive:{tarball}:{name}", f"oci:{tmp_path / 'copy'}:x")
    config = json.loads(skopeo("inspect", "--config", f"docker-archive:{tarball}"))
    assert config["config"]["User"], "the image names its non-root user"
    assert not config["config"]["User"].startswith("0"), config["config"]["User"]


@pytest.mark.parametrize("key", KEYS)
def test_each_image_tarball_is_also_an_oci_archive(key: str) -> None:
    tarball = IMAGES / f"{key}.oci.tar"
    manifest = json.loads(skopeo("inspect", "--raw", f"oci-archive:{tarball}"))
    assert manifest["layers"], manifest
