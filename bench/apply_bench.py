"""Apply benchmarks (agent issue): `stoker sync` against rsync on the same trees, whole processes.

Goals, as ratios measured in this one run:
- full apply of a 10,000-file (~150 MB) Ignition tree <= 1x `rsync -a --delete --fsync`
  and <= 2x plain `rsync -a --delete`;
- a one-file change no slower than plain rsync on the same change;
- peak RSS of a full apply of a ~1 GB repository (20,000 text files + ten 50 MB binaries)
  under 150 MB.

`--quick` runs the same steps on 500 files and a 2 MB "large" repository (numbers not gated).
"""

from __future__ import annotations

import compileall
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import GIT_ENV, gatewaysync  # noqa: E402
from ignition_tree import ignition_files  # noqa: E402
from results import Chart, Result, arguments  # noqa: E402

STOKER = [sys.executable, "-m", "stoker_agent.cli"]
CR = gatewaysync("bench", "{source: projects, destination: projects}")


def run(cmd: list[str]) -> float:
    """Wall time of a whole process (the best of three would hide first-run costs; one run is
    what a user waits for, and both tools pay the same cold or warm page cache).

    Every run starts with no dirty page cache (an untimed `sync` first): otherwise the first
    tool to flush would also write back what ran before it (building the repository writes
    it twice, as loose objects then as a pack), and the tools after it would not.
    """
    os.sync()
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=GIT_ENV)
    return time.perf_counter() - start


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
    ]


def in_running_agent(repo: Path, data: Path, cr: Path) -> float:
    """A one-file change as the long-running agent (or `stoker sync --watch`) makes it: Python
    and its imports are paid once, before; then one sync of a new commit."""
    import yaml

    from stoker_agent.standalone import Identity, SyncSettings, run_once
    from stoker_core.validation import load

    settings = SyncSettings(
        gatewaysync=load(yaml.safe_load(cr.read_text())),
        profile=None,
        identity=Identity(gateway_name="gw"),
        repo=str(repo),
        ref=None,
        data_dir=str(data),
    )
    run_once(settings)  # warm: the data directory is already at the tip
    (repo / "projects/project001/project.json").write_text('{"title": "changed again"}')
    subprocess.run(["git", "-C", str(repo), "commit", "-qam", "two"], check=True, env=GIT_ENV)
    start = time.perf_counter()
    outcome = run_once(settings)
    elapsed = time.perf_counter() - start
    if outcome.record.result != "Synced":
        raise RuntimeError(f"in-process sync: {outcome.record.result} {outcome.record.error}")
    return elapsed


def ten_thousand(
    work: Path, cr: Path, count: int = 10_000, rounds: int = 3
) -> tuple[list[tuple[str, float, float]], float]:
    """Median full-apply and one-file times per tool over `rounds` rounds, the tools' order
    rotated each round: this machine's disk swings several-fold within minutes (see the
    notes), and a single run would credit whichever tool happened to run in a calm moment."""
    rng = random.Random(3)
    files = [(p, c + b"y" * rng.randint(8000, 22000)) for p, c in ignition_files(count)]
    repo = work / "repo10k"
    make_repo(repo, files)
    src = repo / "projects"
    tools: list[tuple[str, Callable[[Path], list[str]]]] = [
        ("stoker sync", lambda d: stoker_sync(repo, d, cr)),
        ("rsync -a --delete", lambda d: ["rsync", "-a", "--delete", f"{src}/", f"{d}/projects/"]),
        (
            "rsync -a --delete --fsync",
            lambda d: ["rsync", "-a", "--delete", "--fsync", f"{src}/", f"{d}/projects/"],
        ),
    ]
    full: dict[str, list[float]] = {label: [] for label, _ in tools}
    one: dict[str, list[float]] = {label: [] for label, _ in tools}
    agent = 0.0
    for r in range(rounds):
        order = tools[r % len(tools) :] + tools[: r % len(tools)]
        dirs: dict[str, Path] = {}
        for label, cmd_for in order:
            data = work / f"data-{r}-{label.split()[0]}-{len(dirs)}"
            (data / "projects").mkdir(parents=True)
            full[label].append(run(cmd_for(data)))
            dirs[label] = data
        (repo / "projects/project000/project.json").write_text(f'{{"title": "changed {r}"}}')
        subprocess.run(["git", "-C", str(repo), "commit", "-qam", "one"], check=True, env=GIT_ENV)
        for label, cmd_for in order:
            one[label].append(run(cmd_for(dirs[label])))
        if r == rounds - 1:
            agent = in_running_agent(repo, dirs["stoker sync"], cr)
        for data in dirs.values():
            drop(data)
    drop(repo)
    timed = [
        (label, statistics.median(full[label]), statistics.median(one[label])) for label, _ in tools
    ]
    return timed, agent


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


def main() -> int:
    args = arguments(__doc__).parse_args()
    installed_as_a_wheel()
    count, texts, blobs, blob_mib = (500, 500, 2, 1) if args.quick else (10_000, 20_000, 10, 50)
    result = Result("apply", "Applying", "bench/apply_bench.py", args.quick)
    work = Path(os.environ.get("STOKER_BENCH_DIR") or "/tmp") / f"stoker-apply-bench-{os.getpid()}"
    work.mkdir(parents=True)
    cr = work / "cr.yaml"
    cr.write_text(CR)
    try:
        timed, agent_one = ten_thousand(work, cr, count, rounds=1 if args.quick else 3)
        rss_kib = one_gigabyte(work, cr, texts, blobs, blob_mib)
    finally:
        drop(work)
    times = {label: (full, one) for label, full, one in timed}
    s_full, s_one = times["stoker sync"]
    r_full, r_one = times["rsync -a --delete"]
    f_full, _ = times["rsync -a --delete --fsync"]
    big = f"{texts:,} text files + {blobs} × {blob_mib} MiB binaries"
    result.description = (
        "The same Ignition-shaped tree with about 15 KB per file; whole processes (`stoker sync` "
        "including Python start-up) against `rsync` on the same source and destination. Each "
        "time is the median of three rounds, the tools' order rotated each round, and every run "
        "starts with no dirty page cache."
    )
    rsync = subprocess.run(["rsync", "--version"], capture_output=True, text=True, check=False)
    version = rsync.stdout.split()[2] if rsync.stdout.count(" ") > 2 else "?"
    result.conditions = {"files": f"{count:,}", "large repository": big, "rsync": version}
    result.table(
        f"{count:,} files, whole processes",
        ["tool", "full apply (s)", "one-file change (s)"],
        [[f"`{label}`", f"{full:.2f}", f"{one:.2f}"] for label, full, one in timed]
        + [["`stoker` in a running agent (imports paid once; no goal)", "", f"{agent_one:.2f}"]],
    )
    result.goal("full apply / `rsync --fsync`", s_full / f_full, 1.0)
    result.goal("full apply / plain rsync", s_full / r_full, 2.0)
    result.goal("one-file change / plain rsync", s_one / r_one, 1.0)
    result.goal(f"peak RSS, full apply of {big}", rss_kib / 1024, 150.0, unit="MiB")
    result.chart(
        Chart(
            file="apply.png",
            title=f"stoker sync vs rsync, {count:,} files (whole processes)",
            kind="bar",
            xlabel="",
            ylabel="seconds",
            series={
                "full apply": {"x": [t[0] for t in timed], "y": [round(t[1], 3) for t in timed]},
                "one-file change": {
                    "x": [t[0] for t in timed],
                    "y": [round(t[2], 3) for t in timed],
                },
            },
        )
    )
    result.write(args.out)
    return result.exit_code()


if __name__ == "__main__":
    sys.exit(main())
