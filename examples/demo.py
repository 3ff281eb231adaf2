"""`make demo`: a real sync of the bundled example into a fresh data directory, against the
project's Ignition gateway simulator, then a second commit synced incrementally. No network."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.ignition_sim import running  # noqa: E402
from support.ignition_sim_resources import write_api_token  # noqa: E402

STOKER = [sys.executable, "-m", "stoker_agent.cli"]
ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Demo",
    "GIT_AUTHOR_EMAIL": "demo@stoker.invalid",
    "GIT_COMMITTER_NAME": "Demo",
    "GIT_COMMITTER_EMAIL": "demo@stoker.invalid",
}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, env=ENV, capture_output=True)


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def sync(repo: Path, data: Path, url: str, token: Path) -> int:
    args = [
        "sync",
        "--cr",
        str(HERE / "gatewaysyncs/multiple-profiles.yaml"),
        "--repo",
        str(repo),
        "--data-dir",
        str(data),
        "--gateway-name",
        "ignition-blue",
        "--profile",
        "blue",
        "--gateway-url",
        url,
        "--api-token-file",
        str(token),
    ]
    print("$ stoker " + " ".join(args), flush=True)
    return subprocess.run([*STOKER, *args], check=False).returncode


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="stoker-demo-"))
    try:
        repo, data = work / "config-repo", work / "ignition-data"
        shutil.copytree(HERE / "config-repo", repo)
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "example config")
        data.mkdir()
        token = work / "api-token"
        token.write_text(write_api_token(data, collection="local"))
        with running(data) as sim:
            banner(f"gateway simulator at {sim.url}; first sync of gateway ignition-blue")
            if sync(repo, data, sim.url, token) != 0:
                return 1
            banner("what the gateway loaded")
            for name, project in sorted(sim.loaded_projects().items()):
                print(f"  project {name}: {len(project.resources)} resources")
            print(f"  scans: {', '.join(f'{s.kind} ({s.trigger})' for s in sim.scans)}")
            view = repo / (
                "services/ignition-blue/projects/blue/"
                "com.inductiveautomation.perspective/views/Home/view.json"
            )
            view.write_text(view.read_text().replace("{", '{\n  "custom": {"demo": 2},', 1))
            git(repo, "commit", "-q", "-am", "edit the Home view")
            banner("second commit: an incremental sync rewrites one file")
            if sync(repo, data, sim.url, token) != 0:
                return 1
            banner("status written for monitoring: .stoker/status.json")
            print((data / ".stoker/status.json").read_text())
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
