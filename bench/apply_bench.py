"""Apply benchmarks (agent issue): `stoker sync` against rsync on the same trees, whole processes.

Every kind of sync (issue 18): a full apply, a one-file change with the full check not due and
due, and a no-change re-sync, each against plain rsync in the same round; 7 interleaved rounds.

Goals, as ratios of medians measured in this one run (issue 18):
- full apply of a 10,000-file (~150 MB) Ignition tree <= 1x `rsync -a --delete --fsync`
  and <= 1.5x plain `rsync -a --delete`;
- one-file change, cold process: <= 0.6x plain rsync with the full check not due, <= 1x with it
  due; in a running agent with the check due (push to applied) <= 0.6x;
- no-change re-sync <= 0.8x plain rsync;
- peak RSS of a full apply of a ~1 GB repository (20,000 text files + ten 50 MB binaries)
  under 150 MB.

`--quick` runs the same steps on 500 files, 3 rounds, and a 2 MB "large" repository (numbers
not gated).
"""

from __future__ import annotations

import compileall
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import GIT_ENV, gatewaysync  # noqa: E402
from ignition_tree import PATCHED, config_files, ignition_files  # noqa: E402
from results import Chart, Result, arguments  # noqa: E402

# `stoker` as users run it: the console script installed beside this Python (`python -m` would
# add runpy's start-up, some 4 ms); the module where no script is installed.
_SCRIPT = Path(sys.executable).with_name("stoker")
STOKER = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "stoker_agent.cli"]
CR = gatewaysync("bench", "{source: projects, destination: projects}")
# The 10,000-file tree adds a config collection (1%) whose mapping renders files: templates and
# a patch (the whole mapping is rendered again at every commit: a template may name the commit).
RENDERED = (
    "{source: projects, destination: projects}\n"
    "          - {source: config, destination: config, template: true, patches: "
    f'[{{file: "{PATCHED.removeprefix("config/")}", '
    'set: {systemName: "{{.GatewayName}}"}}]}'
)
CONFIG_SHARE = 100  # one file in this many is a config file of the rendering mapping
OUTPUT: list[str] = [""]  # the last process's standard output (see run)


def run(cmd: list[str]) -> float:
    """Wall time of a whole process (the best of three would hide first-run costs; one run is
    what a user waits for, and both tools pay the same cold or warm page cache).

    Every run starts with no dirty page cache (an untimed `sync` first): otherwise the first
    tool to flush would also write back what ran before it (building the repository writes
    it twice, as loose objects then as a pack), and the tools after it would not.
    """
    os.sync()
    with tempfile.TemporaryFile() as out:  # a file, not a pipe: nobody waits on a reader
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=out, env=GIT_ENV)
        elapsed = time.perf_counter() - start
        out.seek(0)
        OUTPUT[0] = out.read().decode("utf-8", "replace")
    return elapsed


def drop(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def make_repo(repo: Path, files: Iterable[tuple[str, bytes]]) -> None:
    for rel, content in files:
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=GIT_ENV)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=GIT_ENV)
    subprocess.run(
        ["git", "-C", str(repo), "-c", "gc.auto=0", "commit", "-q", "-m", "b"],
        check=True,
        env=GIT_ENV,
    )
    # Packed, as a fetched repository is, and no background auto-gc during the measurements.
    subprocess.run(["git", "-C", str(repo), "gc", "-q"], check=True, env=GIT_ENV)


def stoker_sync(repo: Path, data: Path, cr: Path) -> list[str]:
    return [
        *STOKER,
        "sync",
        "--cr",
        str(cr),
        "--repo",
        str(repo),
        "--data-dir",
        str(data),
        "--gateway-name",
        "gw",
        "--output",
        "json",
    ]


KINDS = (
    "full apply into an empty directory",
    # Once after a full apply: folding the apply's ctimes into the manifest (stoker_core.manifest)
    # rewrites its base; every later one-file sync appends a line to its log.
    "one-file change, the first after the full apply (full check not due)",
    "one-file change, full check not due",
    "one-file change, full check due",
    "no-change re-sync",
)
AGENT_KINDS = (
    "one-file change, full check not due (in a running agent)",
    "one-file change, full check due (in a running agent: push to applied)",
    "the due full check, run after that sync (in a running agent)",
)
# The whole-process row each running-agent row is compared with.
FULL, FIRST, NOT_DUE, DUE, SAME = KINDS
COMPARED_WITH = dict(zip(AGENT_KINDS, (NOT_DUE, DUE, SAME), strict=True))
# What every cold `stoker sync` pays before it reads anything: Python's start-up and the sync
# command's imports, measured as the same command asked only for its help.
STARTUP = "start-up: `stoker sync --help` (Python and the sync command's imports)"
# The part of that floor Stoker cannot cut: Python and the libraries of its fixed stack.
STACK = "Python importing attrs, cattrs, click and PyYAML (the stack's floor)"
STACK_IMPORTS = [sys.executable, "-c", "import attrs, cattrs, click, yaml"]


def make_check_due(data: Path) -> None:
    """Make the next sync's full check due by the recorded time, not by sleeping: the record
    of the last full check is dated an hour back (well beyond any `syncPeriod`)."""
    from stoker_agent.syncing import FULL_CHECK_FILE

    then = time.time() - 3600
    os.utime(data / FULL_CHECK_FILE, (then, then))


def commit_one(repo: Path, text: str) -> None:
    """Commit a change of one file."""
    (repo / "projects/project000/project.json").write_text(f'{{"title": "{text}"}}')
    subprocess.run(["git", "-C", str(repo), "commit", "-qam", text], check=True, env=GIT_ENV)


class RunningAgent:
    """A sync as the long-running agent (or `stoker sync --watch`) makes it: Python and its
    imports are paid once, before; each timed sync is one new commit."""

    def __init__(self, repo: Path, data: Path, cr: Path) -> None:
        import gc

        import yaml

        from stoker_agent.cli import GC_THRESHOLDS
        from stoker_agent.standalone import Identity, SyncSettings
        from stoker_core.validation import load

        gc.set_threshold(*GC_THRESHOLDS)  # as every `stoker` process, the agent included, runs

        self.repo, self.data = repo, data
        self.settings = SyncSettings(
            gatewaysync=load(yaml.safe_load(cr.read_text())),
            profile=None,
            identity=Identity(gateway_name="gw"),
            repo=str(repo),
            ref=None,
            data_dir=str(data),
            defer_check=True,  # as the agent loop syncs a new commit
        )
        self.from_diff = False  # whether the last timed sync built its tree from the diff
        self.sync()  # warm: brings the directory to the tip

    def sync(self, *, check: bool = False) -> float:
        """One sync of whatever the tip is, timed; with `check`, the loop's drift check that
        follows a sync whose due full check was deferred (a dry run of the same commit)."""
        import attrs

        from stoker_agent.standalone import run_once

        settings = attrs.evolve(self.settings, dry_run=True, periodic_check=True)
        start = time.perf_counter()
        outcome = run_once(settings if check else self.settings)
        elapsed = time.perf_counter() - start
        self.from_diff = outcome.from_diff
        if outcome.record.result not in ("Synced", "InSync"):
            raise RuntimeError(f"in-process sync: {outcome.record.result} {outcome.record.error}")
        return elapsed


Samples = dict[str, dict[str, list[float]]]  # sync kind -> tool -> seconds, one per round
# Sync kind -> for each Stoker sync of that kind: whether it made the full check (False: it was
# planned from the commit's changes, the fast path), from its status; and whether it built its
# desired tree from `git diff-tree` (from its JSON report or, in a running agent, its outcome).
Paths = dict[str, list[tuple[bool, bool]]]


def planned(data: Path) -> tuple[bool, bool]:
    """How the last `stoker sync` into `data` was planned: (full check, tree from the diff)."""
    import json

    status = json.loads((data / ".stoker/status.json").read_text())
    return bool(status["driftChecked"]), bool(json.loads(OUTPUT[0]).get("desiredFromDiff"))


def ten_thousand(
    work: Path, cr: Path, count: int = 10_000, rounds: int = 7
) -> tuple[Samples, Paths]:
    """Every sync kind, every tool, `rounds` interleaved rounds with the tools' order rotated
    each round: this machine's disk swings several-fold within minutes (see the notes), and a
    single run would credit whichever tool happened to run in a calm moment."""
    rng = random.Random(3)
    configs = count // CONFIG_SHARE
    files = [(p, c + b"y" * rng.randint(8000, 22000)) for p, c in ignition_files(count - configs)]
    files += config_files(configs)
    repo = work / "repo10k"
    make_repo(repo, files)
    # rsync copies what the mappings deliver: the repository without its .git
    copy = ["rsync", "-a", "--delete", "--exclude=/.git", f"{repo}/"]
    tools: list[tuple[str, Callable[[Path], list[str]]]] = [
        ("stoker sync", lambda d: stoker_sync(repo, d, cr)),
        ("rsync -a --delete", lambda d: [*copy, f"{d}/"]),
        ("rsync -a --delete --fsync", lambda d: [*copy[:3], "--fsync", *copy[3:], f"{d}/"]),
    ]
    samples: Samples = {kind: {label: [] for label, _ in tools} for kind in KINDS}
    samples.update({kind: {"stoker": []} for kind in (*AGENT_KINDS, STARTUP)})
    samples[STACK] = {"python": []}
    paths: Paths = {kind: [] for kind in (*KINDS, *AGENT_KINDS)}
    for r in range(rounds):
        order = tools[r % len(tools) :] + tools[: r % len(tools)]
        dirs: dict[str, Path] = {}
        for label, cmd_for in order:
            data = work / f"data-{r}-{label.split()[0]}-{len(dirs)}"
            (data / "projects").mkdir(parents=True)
            samples[FULL][label].append(run(cmd_for(data)))
            dirs[label] = data
            if label == "stoker sync":
                paths[FULL].append(planned(data))
        for kind in KINDS[1:]:
            if kind != SAME:
                commit_one(repo, f"{kind} {r}")
            if kind == DUE:
                make_check_due(dirs["stoker sync"])
            for label, cmd_for in order:
                samples[kind][label].append(run(cmd_for(dirs[label])))
                if label == "stoker sync":
                    paths[kind].append(planned(dirs[label]))
        samples[STARTUP]["stoker"].append(run([*STOKER, "sync", "--help"]))
        samples[STACK]["python"].append(run(STACK_IMPORTS))
        agent = RunningAgent(repo, dirs["stoker sync"], cr)
        commit_one(repo, f"agent {r}")
        for kind in AGENT_KINDS:
            if kind != AGENT_KINDS[2]:
                commit_one(repo, f"{kind} {r}")
            if kind == AGENT_KINDS[1]:
                make_check_due(dirs["stoker sync"])
            samples[kind]["stoker"].append(agent.sync(check=kind == AGENT_KINDS[2]))
            status = json.loads((dirs["stoker sync"] / ".stoker/status.json").read_text())
            paths[kind].append((bool(status["driftChecked"]), agent.from_diff))
        for data in dirs.values():
            drop(data)
    drop(repo)
    return samples, paths


def one_gigabyte(
    work: Path, cr: Path, texts: int = 20_000, blobs: int = 10, blob_mib: int = 50
) -> int:
    rng = random.Random(5)
    files = [(f"projects/p{i % 50}/f{i}.txt", b"t" * rng.randint(1000, 3000)) for i in range(texts)]
    files += [(f"projects/bin/blob{i}.bin", os.urandom(blob_mib * 2**20)) for i in range(blobs)]
    repo = work / "repo1g"
    make_repo(repo, files)
    data = work / "data1g"
    data.mkdir()
    # Measured by /usr/bin/time around the stoker process: a child forked straight from this
    # benchmark would carry this process's high-water mark across exec.
    report = work / "rss.txt"
    subprocess.run(
        ["/usr/bin/time", "-f", "%M", "-o", str(report), *stoker_sync(repo, data, cr)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    own = int(report.read_text().split()[-1])
    drop(repo)
    drop(data)
    return own


def installed_as_a_wheel() -> None:
    """Give Stoker's modules their bytecode, as `pip install` of the wheel does.

    This checkout is installed editable, and with PYTHONDONTWRITEBYTECODE set (as on this
    machine and in the images) no `.pyc` is ever written for it: every `stoker` process would
    compile all of Stoker's modules from source first (≈ 30 ms), which no installed copy does.
    """
    compileall.compile_dir(HERE.parent / "src", quiet=1)


def spread(values: list[float]) -> list[str]:
    """Median, min and max of one row's rounds, as table cells."""
    return [f"{statistics.median(values):.3f}", f"{min(values):.3f}", f"{max(values):.3f}"]


def main() -> int:
    args = arguments(__doc__).parse_args()
    installed_as_a_wheel()
    count, texts, blobs, blob_mib = (500, 500, 2, 1) if args.quick else (10_000, 20_000, 10, 50)
    rounds = 3 if args.quick else 7
    result = Result("apply", "Applying", "bench/apply_bench.py", args.quick)
    work = Path(os.environ.get("STOKER_BENCH_DIR") or "/tmp") / f"stoker-apply-bench-{os.getpid()}"
    work.mkdir(parents=True)
    cr = work / "cr.yaml"
    cr.write_text(CR)
    rendered = work / "cr-rendered.yaml"
    rendered.write_text(gatewaysync("bench", RENDERED))
    try:
        samples, paths = ten_thousand(work, rendered, count, rounds=rounds)
        rss_kib = one_gigabyte(work, cr, texts, blobs, blob_mib)
    finally:
        drop(work)
    med = {kind: {t: statistics.median(v) for t, v in by.items()} for kind, by in samples.items()}
    big = f"{texts:,} text files + {blobs} × {blob_mib} MiB binaries"
    result.description = (
        "The same Ignition-shaped tree with about 15 KB per file (1% of them a config collection "
        "whose mapping renders files: templates and a patch); whole processes (`stoker sync` "
        "including Python start-up) against `rsync` on the same source and destination, for "
        "every kind of sync: a full apply into an empty directory, a new commit changing one "
        "file with the full check (drift, stray files) not due and due (its record dated "
        "beyond `syncPeriod`, no sleeping), and a re-sync with nothing changed (within "
        "`syncPeriod` of the full check: every recorded file stat'd, no folder listed). The first "
        "one-file sync after the full apply is a row of its own: it folds the ctimes the apply "
        "recorded into the manifest, rewriting its base once. Each round runs "
        f"every kind with every tool, the tools' order rotated each round; {rounds} rounds, "
        "median with min and max. Every run starts with no dirty page cache. The running-agent "
        "rows time one sync in a process that is already running (imports paid once), as the "
        "in-cluster agent and `stoker sync --watch` sync. The start-up row is the floor of "
        "every cold row: the same command asked only for its help (Python's start-up and the "
        "sync command's imports), once a round, and below it the part no change to Stoker can "
        "cut: Python importing the libraries of the fixed stack (attrs, cattrs, click, "
        "PyYAML); each cold goal's note says how much of its time those floors are."
    )
    rsync = subprocess.run(["rsync", "--version"], capture_output=True, text=True, check=False)
    version = rsync.stdout.split()[2] if rsync.stdout.count(" ") > 2 else "?"
    result.conditions = {
        "files": f"{count:,}",
        "rounds": str(rounds),
        "large repository": big,
        "rsync": version,
    }
    plain = "rsync -a --delete"
    rows = []
    for kind, by_tool in samples.items():
        base = med[COMPARED_WITH.get(kind, NOT_DUE if kind in (STARTUP, STACK) else kind)][plain]
        for tool, values in by_tool.items():
            ratio = statistics.median(values) / base
            rows.append([kind, f"`{tool}`", *spread(values), f"{ratio:.2f}"])
    result.table(
        f"{count:,} files: seconds per sync",
        ["sync", "tool", "median (s)", "min (s)", "max (s)", "÷ plain rsync (medians)"],
        rows,
    )
    result.table(
        "How each Stoker sync was planned (its status's `driftChecked`; its report's "
        "`desiredFromDiff`)",
        [
            "sync",
            "syncs",
            "planned from the commit's changes",
            "full check",
            "desired tree from `git diff-tree` (the fast path)",
        ],
        [
            [kind, len(v), sum(not c for c, _ in v), sum(c for c, _ in v), sum(d for _, d in v)]
            for kind, v in paths.items()
        ],
    )
    full, first, not_due, due, same = KINDS
    stoker = "stoker sync"
    result.goal(
        "full apply / `rsync --fsync`", med[full][stoker] / med[full][f"{plain} --fsync"], 1.0
    )
    result.goal("full apply / plain rsync", med[full][stoker] / med[full][plain], 1.5)
    startup, stack = med[STARTUP]["stoker"], med[STACK]["python"]

    def cold(kind: str) -> str:
        """Why a cold row is where it is: how much of it start-up alone takes, in this run."""
        rsync = med[kind][plain]
        return (
            f"start-up and imports {startup:.3f} s ({startup / rsync:.2f}× rsync; Python and "
            f"the stack's libraries alone {stack:.3f} s, {stack / rsync:.2f}×) of "
            f"{med[kind][stoker]:.3f} s; the sync itself {med[kind][stoker] - startup:.3f} s"
        )

    result.goal(
        "one-file change, check not due / plain rsync",
        med[not_due][stoker] / med[not_due][plain],
        0.6,
        note=cold(not_due)
        + f"; the first after the full apply, which folds its ctimes, {med[first][stoker]:.3f} s",
    )
    result.goal(
        "one-file change, check due / plain rsync",
        med[due][stoker] / med[due][plain],
        1.0,
        note=cold(due) + "; a full check walks every file, as rsync does",
    )
    result.goal(
        "one-file change, check due, running agent / plain rsync",
        med[AGENT_KINDS[1]]["stoker"] / med[due][plain],
        0.6,
        note="push to applied; the due check runs after",
    )
    result.goal(
        "no-change re-sync / plain rsync",
        med[same][stoker] / med[same][plain],
        0.8,
        note=cold(same) + "; an lstat of every recorded file, no folder listed (rsync lists all)",
    )
    result.goal(f"peak RSS, full apply of {big}", rss_kib / 1024, 150.0, unit="MiB")
    tools = [stoker, plain, f"{plain} --fsync"]
    result.chart(
        Chart(
            file="apply.png",
            title=f"stoker sync vs rsync, {count:,} files (whole processes, medians)",
            kind="bar",
            xlabel="",
            ylabel="seconds",
            series={
                kind: {"x": tools, "y": [round(med[kind][t], 3) for t in tools]} for kind in KINDS
            },
            log_y=True,
        )
    )
    result.write(args.out)
    return result.exit_code()


if __name__ == "__main__":
    sys.exit(main())
