"""The benchmarks' own code stays tested: each runs in its quick mode (numbers not gated)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_admission_benchmark_quick_mode_runs_and_reports(tmp_path: Path) -> None:
    report = tmp_path / "admission.md"
    script = str(ROOT / "bench/admission_bench.py")
    done = subprocess.run(
        [sys.executable, script, "--quick", "--report", str(report)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = report.read_text()
    assert "| webhook | 20 | 0 |" in text
    assert "| trivial | 20 | 0 |" in text
