"""`make demo`: the bundled example synced into a gateway's data directory, against the project's
Ignition gateway simulator, step by step: a plan, a first sync, a change, a deletion, a refusal
(emptying a managed folder) and a commit the gateway rejects, rolled back. No network needed.

Everything is left in the work directory (default `build/demo`) to look at afterwards; the
commands it prints run from the checkout's root. `main(work, on_step)` lets a test look at the
data directory, the status file and the simulator after every step.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.gateway_data import write_gateway_data  # noqa: E402
from support.ignition_sim import GatewaySimulator, running  # noqa: E402

CR = HERE / "gatewaysyncs/multiple-profiles.yaml"
MARKER = ".stoker-demo"  # a work directory the demo made, and may empty again
BLUE = "services/ignition-blue"
HOME_VIEW = f"{BLUE}/projects/blue/com.inductiveautomation.perspective/views/Home/view.json"
SHIFTS = f"{BLUE}/projects/blue/ignition/script-python/shifts"
DEV = f"{BLUE}/config/resources/dev"
CORE = "config/resources/core"
ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Demo",
    "GIT_AUTHOR_EMAIL": "demo@stoker.invalid",
    "GIT_COMMITTER_NAME": "Demo",
    "GIT_COMMITTER_EMAIL": "demo@stoker.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "NO_COLOR": "1",
}

OnStep = Callable[[str, "Demo"], None]


class Demo:
    """The work directory, its repository and data directory, and the running simulator."""

    def __init__(self, work: Path, sim: GatewaySimulator | None = None) -> None:
        self.work = work
        self.repo = work / "config-repo"
        self.data = work / "ignition-blue-data"
        self.token = work / "api-token"
        self.sim = sim
        self.codes: dict[str, int] = {}

    def shown(self, path: Path) -> str:
        """`path` as the user types it from the checkout's root."""
        try:
            return str(path.relative_to(ROOT))
        except ValueError:
            return str(path)

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(self.repo), *args],
            check=True,
            env=ENV,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip()

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        sha = self.git("rev-parse", "--short=12", "HEAD")
        print(f"$ git -C {self.shown(self.repo)} commit -m {message!r}   -> commit {sha}")
        return sha

    def stoker(self, *args: str) -> int:
        """Run `stoker` as the user would, printing the command and its output."""
        words = [a if not a.startswith("/") else self.shown(Path(a)) for a in args]
        print("$ .venv/bin/stoker " + " ".join(words), flush=True)
        done = subprocess.run(
            [sys.executable, "-m", "stoker_agent.cli", *args],
            check=False,
            cwd=ROOT,
            env=ENV,
            capture_output=True,
            text=True,
        )
        for line in (done.stdout + done.stderr).splitlines():
            print("  " + line)
        print(f"  (exit code {done.returncode})", flush=True)
        return done.returncode

    def sync(self, *extra: str) -> int:
        assert self.sim is not None
        return self.stoker(
            "sync",
            *self.identity(),
            "--data-dir",
            str(self.data),
            "--gateway-url",
            self.sim.url,
            "--api-token-file",
            str(self.token),
            *extra,
        )

    def identity(self, gateway: str = "blue") -> list[str]:
        return [
            "--cr",
            str(CR),
            "--repo",
            str(self.repo),
            "--gateway-name",
            f"ignition-{gateway}",
            "--profile",
            gateway,
        ]


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def prepare(work: Path) -> Demo:
    """A fresh work directory: the example as a Git repository, and a commissioned gateway's
    data directory with its own core collection and an API token."""
    if work.exists():
        if not (work / MARKER).exists():
            raise SystemExit(f"{work} exists and was not made by the demo; give another --work")
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / MARKER).write_text("made by examples/demo.py; `make demo` empties it again\n")
    demo = Demo(work)
    shutil.copytree(HERE / "config-repo", demo.repo)
    demo.git("init", "-q", "-b", "main")
    demo.data.mkdir()
    demo.token.write_text(write_gateway_data(demo.data, quick_start=False) + "\n")
    demo.token.chmod(0o600)
    return demo


def main(work: Path, on_step: OnStep | None = None) -> int:
    """Run every step; `on_step(name, demo)` is called after each. Returns the exit status."""
    step = on_step or (lambda name, demo: None)
    demo = prepare(work)
    banner("the example configuration repository")
    demo.commit("example config")

    banner("1. plan for two gateways (empty data directories): + marks files to add, exit 2")
    for gateway in ("blue", "red"):
        empty = work / f"empty-{gateway}"
        empty.mkdir()
        demo.codes[f"plan-{gateway}"] = demo.stoker(
            "plan", *demo.identity(gateway), "--data-dir", str(empty)
        )
    step("plan", demo)

    with running(demo.data, name="ignition-blue") as sim:
        demo.sim = sim
        banner(
            f"2. first sync of gateway ignition-blue ({demo.shown(demo.data)} holds the "
            "gateway's own core collection: it is not mapped, so it is kept)"
        )
        demo.codes["first"] = demo.sync()
        kept = sorted(p for p in (demo.data / CORE).rglob("*.json") if ".resources" not in p.parts)
        print(f"  kept, as the gateway made them: {len(kept)} files under {CORE}, e.g.")
        for path in kept[:3]:
            print(f"    {path.relative_to(demo.data)}")
        step("first", demo)

        banner("3. a change: edit the Home view's title, commit, sync (~ marks a rewritten file)")
        view = demo.repo / HOME_VIEW
        view.write_text(view.read_text().replace("Blue Line Overview", "Blue Line 2 Overview", 1))
        demo.commit("Home view: say which line runs")
        demo.codes["change"] = demo.sync()
        step("change", demo)

        banner("4. a deletion: remove the script shifts from Git, commit, sync (- marks a delete)")
        shutil.rmtree(demo.repo / SHIFTS)
        demo.commit("remove the shifts script")
        demo.codes["delete"] = demo.sync()
        step("delete", demo)

        banner(
            "5. a refusal: a commit that empties the dev collection would delete every file "
            "there; Stoker refuses unless the mapping says allowEmpty: true"
        )
        shutil.rmtree(demo.repo / DEV)
        (demo.repo / DEV).mkdir()
        (demo.repo / DEV / ".gitkeep").write_text("")
        demo.commit("empty the dev collection by mistake")
        demo.codes["refuse"] = demo.sync()
        step("refuse", demo)
        demo.git("revert", "--no-edit", "HEAD")
        sha = demo.git("rev-parse", "--short=12", "HEAD")
        print(f"$ git -C {demo.shown(demo.repo)} revert HEAD   -> commit {sha}")
        demo.codes["reverted"] = demo.sync()
        step("reverted", demo)

        banner(
            "6. a commit the gateway rejects (the simulator refuses to load project blue): "
            "Stoker rolls the files back and holds that commit"
        )
        project = demo.repo / f"{BLUE}/projects/blue/project.json"
        body = json.loads(project.read_text())
        body["description"] = "needs a module this gateway lacks"
        project.write_text(json.dumps(body, indent=2) + "\n")
        demo.commit("blue: a change the gateway cannot load")
        sim.refused_projects.add("blue")
        demo.codes["reject"] = demo.sync()
        on_disk = json.loads((demo.data / "projects/blue/project.json").read_text())
        print(
            "  projects/blue/project.json on disk: description "
            f"{on_disk.get('description', '')!r} (the last good commit's file, not the "
            "rejected one)"
        )
        step("reject", demo)
        sim.refused_projects.clear()

        banner(f"status written for monitoring: {demo.shown(demo.data / '.stoker/status.json')}")
        print((demo.data / ".stoker/status.json").read_text())
        banner("every sync this gateway received, newest first")
        demo.codes["history"] = demo.stoker("history", "--data-dir", str(demo.data))
    expected = {"plan-blue": 2, "plan-red": 2, "first": 0, "change": 0, "delete": 0}
    expected.update(refuse=1, reverted=0, reject=3, history=0)
    wrong = {k: v for k, v in demo.codes.items() if expected.get(k) != v}
    print(
        f"Everything is left in {demo.shown(work)}: the repository, the data directory and the "
        "API token; the commands above run again from the checkout's root, except --gateway-url: "
        "the simulator stopped with the demo (use your gateway's URL and token)."
    )
    if wrong:
        print(f"unexpected exit codes: {wrong}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "build/demo", help="work directory")
    sys.exit(main(parser.parse_args().work.resolve()))
