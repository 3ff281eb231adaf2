"""Code shown in README.md runs, and prints what its comments say it prints."""

from __future__ import annotations

import contextlib
import io
import re

from conftest import ROOT

BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
EXPECTED = re.compile(r"^\s*print\(.*\)\s*#\s*(.+)$", re.MULTILINE)


def test_readme_python_examples_run_and_print_what_they_claim() -> None:
    blocks = BLOCK.findall((ROOT / "README.md").read_text())
    assert blocks, "README.md should show how to use stoker_core from a script"
    for block in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, "README.md", "exec"), {})
        expected = EXPECTED.findall(block)
        assert out.getvalue().splitlines() == [e.strip() for e in expected]
