"""docs/quickstart.md part 2, after `kind create cluster`, run as written on the test cluster.

Every command block of part 2 runs line by line in bash, in a scratch directory that links to
this checkout's `examples/` and `adapters/` (the doc runs "from a clone of this repository"),
with only these changes, each listed in SUBSTITUTE or SKIP below: the placeholders (your Git
URL, the API token the gateway shows) get the test's values, `/tmp/` is the test's scratch
directory, and steps that need Docker, kind, a browser or pip are not run (the images are those
`make images` built, under the same names; `stoker` comes from the project's .venv). The
test stands in for the user where the doc says to click: it creates the gateway's API key in
its data volume. Runs last but for test_real_pods.py: it installs Stoker itself, as the doc
says, after the session's release is gone (test_helm_lifecycle.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from conftest import ROOT
from e2e.conftest import STATE, Cluster
from e2e.gateways import (
    GATEWAY_UID,
    RELEASE,
    SIM,
    SYSTEM,
    Plant,
    helm,
    helm_binary,
    log,
    wait_for,
)
from support.gitservers import BareRepo
from support.ignition_sim_resources import write_api_token

DOC = (ROOT / "docs" / "quickstart.md").read_text()
PART2 = DOC[DOC.index("## 2. On a kind cluster") : DOC.index("## Next")]
# The doc's gateway image: the simulator image is tagged with its name on the node.
IGNITION = "docker.io/inductiveautomation/ignition:8.3"
SKIP = {
    "kind ": "the cluster is the test cluster",
    "docker build ": "no Docker here: `make images` built the same recipe under the same names",
    "python3 -m venv": "the project's .venv holds `stoker` already",
    "~/.stoker-venv/bin/pip": "as above",
    'export PATH="$HOME/.stoker-venv': "as above",
    "kubectl -n plant port-forward": "a browser step; the test reaches the gateway directly",
}
SECTION = re.compile(r"^### (2\.\d) ", re.MULTILINE)


def blocks() -> list[tuple[str, list[str]]]:
    """(section, command lines) of each plain (shell) code block of part 2, in order."""
    found: list[tuple[str, list[str]]] = []
    section, fence, lines = "2", None, []
    for line in PART2.splitlines():
        if fence is None and (heading := SECTION.match(line)):
            section = heading.group(1)
        elif fence is None and line.startswith("```"):
            fence, lines = line[3:].strip(), []
        elif fence is not None and line.startswith("```"):
            if fence == "":
                found.append((section, [x for x in lines if x.strip()]))
            fence = None
        elif fence is not None:
            lines.append(line)
    return found


def yaml_file(after: str) -> str:
    """The YAML block that follows the sentence naming `after` (e.g. `ignition-blue.yaml`)."""
    start = PART2.index(f"`{after}`")
    return re.search(r"```yaml\n(.*?)```", PART2[start:], re.DOTALL).group(1)  # type: ignore[union-attr]


class Shell:
    """Runs the doc's lines in bash, one session (so `cd` carries), failing on the first error."""

    def __init__(self, cwd: Path, env: dict[str, str], substitute: dict[str, str]) -> None:
        self.cwd, self.env, self.substitute = cwd, env, substitute
        self.ran: list[str] = []

    def run(self, line: str) -> str:
        """Run one documented line (after substitutions); its output."""
        for old, new in self.substitute.items():
            line = line.replace(old, new)
        # `stoker plan` exits 2 while changes are pending, as the doc says.
        check = " || test $? -eq 2" if line.startswith("stoker plan") else ""
        state = f"{self.cwd}/.pwd"  # the working directories `cd` and `cd -` need
        script = (
            f'cd "$(sed -n 2p {state})"; cd "$(sed -n 1p {state})"; {line}{check}; '
            f'printf "%s\\n%s\\n" "$PWD" "${{OLDPWD:-$PWD}}" > {state}'
        )
        done = subprocess.run(
            ["bash", "-ec", script], cwd=self.cwd, env=self.env,
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        self.ran.append(line)
        assert done.returncode == 0, f"`{line}` failed: {done.stdout}{done.stderr}"
        return done.stdout


def test_the_quickstarts_cluster_steps_run_as_written_and_sync_the_gateway(
    cluster: Cluster, plant: Plant, tmp_path: Path
) -> None:
    # The session's release was uninstalled by test_helm_lifecycle.py; make sure of it.
    helm(cluster, "uninstall", RELEASE, "--namespace", SYSTEM, "--ignore-not-found", "--wait")
    work = tmp_path / "clone"
    work.mkdir()
    for name in ("examples", "adapters"):
        (work / name).symlink_to(ROOT / name)
    (work / ".pwd").write_text(f"{work}\n{work}\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    remote = BareRepo.create(plant.git.root, "plant-config-quickstart")
    remote.git("config", "http.receivepack", "true")  # an anonymous push, as to a fresh repo
    token = SIM["api_token"]
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "PATH": f"{Path(helm_binary()).parent}:{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        "KUBECONFIG": str(cluster.kubeconfig),
        "GIT_AUTHOR_NAME": "Plant Engineer",
        "GIT_AUTHOR_EMAIL": "engineer@plant.invalid",
        "GIT_COMMITTER_NAME": "Plant Engineer",
        "GIT_COMMITTER_EMAIL": "engineer@plant.invalid",
    }
    shell = Shell(
        work,
        env,
        {
            "https://github.com/YOU/plant-config.git": plant.git.url_for(remote.name),
            "stoker:PASTE-THE-SECRET-HERE": token,
            "/tmp/": f"{scratch}/",
        },
    )
    (work / "ignition-blue.yaml").write_text(yaml_file("ignition-blue.yaml"))
    plant_yaml = yaml_file("plant.yaml").replace(
        "https://github.com/YOU/plant-config.git", plant.git.url_for(remote.name)
    )
    (work / "plant.yaml").write_text(plant_yaml)
    volume = gateway_volume(cluster)
    skipped = []
    try:
        for section, lines in blocks():
            if section == "2.4":
                create_api_key(cluster, shell, volume, token)
            for line in lines:
                reason = next((why for start, why in SKIP.items() if line.startswith(start)), "")
                if reason:
                    skipped.append(f"{line}  ({reason})")
                    continue
                out = shell.run(line)
                if "jsonpath='{.spec.initContainers[*].name}'" in line:
                    assert "stoker-agent" in out.split(), out  # "The last command prints …"
        log("quickstart steps not run: " + "; ".join(skipped))
        synced = volume / "projects" / "blue" / "project.json"
        wait_for("the agent to sync projects blue and global", synced.is_file, timeout=240)
        assert (volume / "projects" / "global" / "project.json").is_file()
        assert synced.stat().st_uid == GATEWAY_UID
    finally:
        shell.run("kubectl -n plant delete gs plant --ignore-not-found --wait=true")
        helm(cluster, "uninstall", "stoker", "--namespace", "stoker-system", "--ignore-not-found")
        cluster.core.delete_namespace("plant")
        cluster.core.delete_persistent_volume("quickstart-data")
    unused = [start for start in SKIP if not any(line.startswith(start) for line in skipped)]
    assert not unused, f"SKIP lists steps the doc no longer has: {unused}"


def gateway_volume(cluster: Cluster) -> Path:
    """The quickstart gateway's claim (5Gi, default class) gets a hostPath volume on the node,
    and the node holds the simulator image under the doc's Ignition image name."""
    path = STATE / "volumes" / "quickstart"
    path.mkdir(parents=True, exist_ok=True)
    shutil.chown(path, GATEWAY_UID, GATEWAY_UID)
    cluster.core.create_persistent_volume(
        {
            "metadata": {"name": "quickstart-data"},
            "spec": {
                "capacity": {"storage": "5Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": str(path), "type": "Directory"},
                "claimRef": {"namespace": "plant", "name": "data-ignition-blue-0"},
            },
        }
    )
    subprocess.run(
        ["ctr", "-a", str(STATE / "containerd.sock"), "-n", "k8s.io", "images", "tag",
         "--force", SIM["name"], IGNITION],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return path


def create_api_key(cluster: Cluster, shell: Shell, volume: Path, token: str) -> None:
    """What 2.4 asks the user to do in the gateway's web interface: an API key `stoker` that
    may write, without a secure channel. The simulator reads keys at boot: restart its pod."""
    shell.run("kubectl -n plant rollout status statefulset/ignition-blue --timeout=180s")
    name, secret = token.split(":", 1)
    write_api_token(volume, name, secret=secret)
    (volume / "projects").mkdir(exist_ok=True)  # a gateway's data directory has one
    for path in volume.rglob("*"):
        shutil.chown(path, GATEWAY_UID, GATEWAY_UID)
    shell.run("kubectl -n plant delete pod ignition-blue-0 --wait=true")
    shell.run("kubectl -n plant rollout status statefulset/ignition-blue --timeout=180s")
