"""One result format for every benchmark: a JSON file and a markdown fragment per benchmark in an
output directory, which `bench/report.py` turns into docs/benchmarks.md and its charts.

A result carries its conditions (machine, counts, sizes), tables, goals as ratios measured in the
same run (met or missed, and by how much), and chart data (drawn later, so a benchmark never needs
matplotlib).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "build" / "bench"


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of `values` by nearest rank; 0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def mean(values: list[float]) -> float:
    """The mean, 0 when empty."""
    return statistics.fmean(values) if values else 0.0


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    except OSError:
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def machine() -> dict[str, str]:
    """What the figures depend on: cores, CPU model, memory, kernel, Python, git."""
    model = "?"
    memory = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 2**20:.0f} GiB"
                break
    except OSError:
        pass
    return {
        "cores": str(os.cpu_count()),
        "cpu": model,
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "git": _first_line(["git", "--version"]).removeprefix("git version "),
        "filesystem": _first_line(["findmnt", "-no", "FSTYPE", "-T", tempfile.gettempdir()]),
    }


@dataclass
class Goal:
    """A goal measured in this run: `value <= goal`, or `value == goal` within `tolerance`."""

    label: str
    value: float
    goal: float
    unit: str = "×"
    note: str = ""
    op: str = "<="
    tolerance: float = 0.0

    @property
    def met(self) -> bool:
        """Whether the measured value is within the goal."""
        if self.op == "==":
            return abs(self.value - self.goal) <= self.tolerance
        return self.value <= self.goal

    def target(self) -> str:
        """The goal as people read it: `≤ 2×`, `= 1`."""
        return f"{'=' if self.op == '==' else '≤'} {self.goal:g}{_unit(self.unit)}"

    def verdict(self) -> str:
        """`met`, or `missed by N%` (or against what, when a percentage means nothing)."""
        if self.met:
            return "met"
        if self.op == "==" or not self.goal:
            return f"**missed** ({number(self.value)} against {self.goal:g})"
        return f"**missed** by {(self.value / self.goal - 1) * 100:.0f}%"


@dataclass
class Chart:
    """Data for one PNG chart: `bar` (categories → values per series) or `line` (x → y)."""

    file: str
    title: str
    kind: str
    xlabel: str
    ylabel: str
    series: dict[str, dict[str, list[Any]]]
    log_y: bool = False


@dataclass
class Result:
    """Everything one benchmark run measured, with its conditions."""

    name: str
    title: str
    script: str
    quick: bool
    description: str = ""
    conditions: dict[str, str] = field(default_factory=dict)
    tables: list[dict[str, Any]] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    machine: dict[str, str] = field(default_factory=machine)
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    duration_s: float = 0.0
    _t0: float = field(default_factory=time.monotonic, repr=False)

    def table(self, title: str, columns: list[str], rows: list[list[Any]]) -> None:
        """Add a table (cells are formatted as given; numbers should already be rounded)."""
        self.tables.append({"title": title, "columns": columns, "rows": rows})

    def goal(
        self,
        label: str,
        value: float,
        goal: float,
        unit: str = "×",
        note: str = "",
        *,
        op: str = "<=",
        tolerance: float = 0.0,
    ) -> Goal:
        """Record a goal and return it."""
        made = Goal(label, value, goal, unit, note, op, tolerance)
        self.goals.append(made)
        return made

    def chart(self, chart: Chart) -> None:
        """Add chart data (drawn by bench/report.py)."""
        self.charts.append(chart)

    @property
    def all_met(self) -> bool:
        """Whether every goal was met."""
        return all(g.met for g in self.goals)

    def exit_code(self) -> int:
        """0 when every goal was met or in quick mode (numbers are not gated there)."""
        return 0 if self.all_met or self.quick else 1

    def to_json(self) -> dict[str, Any]:
        """The JSON form (goals carry their verdict)."""
        data = asdict(self)
        data.pop("_t0")
        data["goals"] = [
            {**asdict(g), "met": g.met, "verdict": g.verdict(), "target": g.target()}
            for g in self.goals
        ]
        return data

    def markdown(self) -> str:
        """The markdown fragment: heading, what was measured, conditions, tables, goals, charts."""
        lines = [
            f"## {self.title}",
            "",
            f"`{self.script}`" + (" (quick mode)" if self.quick else ""),
        ]
        if self.description:
            lines += ["", self.description]
        if self.conditions:
            lines += [
                "",
                "Conditions: " + "; ".join(f"{k}: {v}" for k, v in self.conditions.items()),
            ]
        for table in self.tables:
            lines += ["", f"**{table['title']}**", "", *_md_table(table["columns"], table["rows"])]
        if self.goals:
            rows = [
                [
                    g.label,
                    f"{number(g.value)}{_unit(g.unit)}",
                    g.target(),
                    g.verdict(),
                ]
                + ([g.note] if any(x.note for x in self.goals) else [])
                for g in self.goals
            ]
            cols = ["goal", "measured", "target", "verdict"]
            if any(g.note for g in self.goals):
                cols.append("note")
            lines += ["", "**Goals** (measured in this run)", "", *_md_table(cols, rows)]
        if self.findings:
            lines += ["", *(f"- {f}" for f in self.findings)]
        for chart in self.charts:
            lines += ["", f"![{chart.title}](benchmarks/{chart.file})"]
        lines += [
            "",
            f"<sub>Run {self.started}, {self.duration_s:.0f} s; machine: "
            + ", ".join(f"{k} {v}" for k, v in self.machine.items())
            + ".</sub>",
            "",
        ]
        return "\n".join(lines)

    def write(self, out: Path) -> None:
        """Write `<name>.json` and `<name>.md` into `out` and print the fragment."""
        self.duration_s = time.monotonic() - self._t0
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{self.name}.json").write_text(json.dumps(self.to_json(), indent=2) + "\n")
        text = self.markdown()
        (out / f"{self.name}.md").write_text(text)
        print(text)
        print("RESULT: " + ("all goals met" if self.all_met else "GOAL MISSED"))


def _unit(unit: str) -> str:
    return unit if unit in ("×", "%", "") else f" {unit}"


def number(value: float) -> str:
    """A measured value: integers plain, others with two decimals."""
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _numeric(cell: Any) -> bool:
    return str(cell) != "" and str(cell)[:1] in "0123456789-≤<~"


def _md_table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    """A markdown table; a column of numbers (blanks allowed) is right-aligned."""

    def numbers(i: int) -> bool:
        cells = [r[i] for r in rows if str(r[i]) != ""]
        return bool(cells) and all(_numeric(c) for c in cells)

    align = ["---:" if i and numbers(i) else "---" for i in range(len(columns))]
    return [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join(align) + " |",
        *("| " + " | ".join(str(c) for c in row) + " |" for row in rows),
    ]


def arguments(doc: str | None) -> argparse.ArgumentParser:
    """The options every benchmark takes: --quick and --out."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small scale (what make test runs)")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"result directory (default {DEFAULT_OUT})"
    )
    return parser
