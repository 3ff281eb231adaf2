"""Long random crash soak (`make bench`): random commits, a real `stoker sync` killed with
SIGKILL at a random instant, recovery, and a check that the data directory is exactly the old
or the new commit. Bounded by SOAK_SECONDS (default 300) and SOAK_ROUNDS (default 500);
`--quick`: 5 s and 5 rounds."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import GIT_ENV, gatewaysync
from results import Result, arguments

from stoker_agent.applying import Applier

CR = gatewaysync("soak", "{source: p, destination: projects, allowEmpty: true}")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, env=GIT_ENV, capture_output=True, text=True
    ).stdout.strip()


def files_of(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".stoker"]
        for name in filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = path.read_bytes()
    return out


def mutate(repo: Path, rng: random.Random) -> None:
    tree = repo / "p"
    existing = [p for p in tree.rglob("*") if p.is_file()] if tree.exists() else []
    for _ in range(rng.randint(1, 60)):
        choice = rng.random()
        if existing and choice < 0.3:
            victim = existing.pop(rng.randrange(len(existing)))
            victim.unlink()
        elif existing and choice < 0.6:
            rng.choice(existing).write_bytes(os.urandom(rng.randint(0, 20000)))
        else:
            new = (
                tree
                / f"proj{rng.randint(0, 9)}"
                / f"d{rng.randint(0, 20)}"
                / f"f{rng.randint(0, 999)}.json"
            )
            new.parent.mkdir(parents=True, exist_ok=True)
            new.write_bytes(os.urandom(rng.randint(0, 20000)))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", "soak")


def main() -> int:
    args = arguments(__doc__).parse_args()
    result = Result("soak", "Crash soak", "bench/soak.py", args.quick)
    seconds = float(os.environ.get("SOAK_SECONDS", "5" if args.quick else "300"))
    rounds = int(os.environ.get("SOAK_ROUNDS", "5" if args.quick else "500"))
    rng = random.Random(int(os.environ.get("SOAK_SEED", "42")))
    work = Path(tempfile.mkdtemp(prefix="stoker-soak-"))
    try:
        repo, data, cr = work / "repo", work / "data", work / "cr.yaml"
        cr.write_text(CR)
        repo.mkdir()
        data.mkdir()
        git(repo, "init", "-q", "-b", "main")
        mutate(repo, rng)
        base = [
            sys.executable,
            "-m",
            "stoker_agent.cli",
            "sync",
            "--cr",
            str(cr),
            "--repo",
            str(repo),
            "--data-dir",
            str(data),
            "--gateway-name",
            "g",
        ]
        subprocess.run(base, check=True, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + seconds
        killed = completed = bad = 0
        for round_ in range(rounds):
            if time.monotonic() > deadline:
                break
            old = files_of(data)
            mutate(repo, rng)
            proc = subprocess.Popen(base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.0, 1.2))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            else:
                completed += 1
            proc.wait()
            Applier(str(data)).recover()
            after = files_of(data)
            if after != old:
                want = files_of(repo / "p")
                after_rel = {k.removeprefix("projects/"): v for k, v in after.items()}
                if after_rel != want:
                    result.findings.append(
                        f"round {round_}: data directory is neither the old nor the new commit"
                    )
                    bad += 1
                    break
            if (data / ".stoker/txn").exists():
                result.findings.append(f"round {round_}: a transaction directory was left behind")
                bad += 1
                break
            subprocess.run(base, check=True, stdout=subprocess.DEVNULL)  # converge
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.description = (
        "Random commits (1 to 60 files added, changed or removed, up to 20 KB each); a real "
        "`stoker sync` killed with SIGKILL at a random instant, recovery, then a check that the "
        "data directory is exactly the old or the new commit and no transaction is left behind."
    )
    result.conditions = {"time bound": f"{seconds:g} s", "round bound": str(rounds)}
    result.table(
        "Rounds",
        ["syncs killed mid-flight", "syncs completed", "torn or stray states"],
        [[killed, completed, bad]],
    )
    result.goal("states neither old nor new commit", bad, 0, unit="")
    result.write(args.out)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
