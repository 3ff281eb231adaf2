"""Input nested deeper than Python's stack, given to the real `stoker`: a CR, a gateways file,
and files planted in the data directory (the gateway can write it). Each is refused or set
right with a message, never a RecursionError traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.helpers import manifest_with
from support.stokercli import run_stoker

DEEP = "a: " + "[" * 5000 + "]" * 5000 + "\n"  # YAML (and JSON) nested 5,000 levels


def _refused_naming(path: Path, *args: str) -> None:
    done = run_stoker(*args)
    assert done.returncode == 1, done.stderr
    assert f"{path}: nests lists or mappings too deeply" in done.stderr
    assert "Traceback" not in done.stderr


def _cr_for(tmp_path: Path) -> Path:
    cr = tmp_path / "cr.yaml"
    profile = {"default": {"mappings": [{"source": "p", "destination": "projects"}]}}
    cr.write_text(json.dumps(manifest_with(profile)))  # JSON is YAML
    return cr


def test_a_cr_nested_too_deeply_is_refused_naming_the_file(tmp_path: Path) -> None:
    cr = tmp_path / "deep.yaml"
    cr.write_text(DEEP)
    sync = ["sync", "--cr", str(cr), "--repo", str(tmp_path), "--data-dir", str(tmp_path)]
    _refused_naming(cr, "validate", str(cr))
    _refused_naming(cr, *sync, "--gateway-name", "gw")


def test_a_gateways_file_nested_too_deeply_is_refused_naming_it(
    make_repo: Any, tmp_path: Path
) -> None:
    repo = make_repo({"p/a.json": "{}"})
    gateways = tmp_path / "gateways.yaml"
    gateways.write_text(DEEP)
    plan = ["plan", "--cr", str(_cr_for(tmp_path)), "--repo", str(repo), "--base-ref", "HEAD"]
    _refused_naming(gateways, *plan, "--gateways", str(gateways))


def test_state_files_planted_too_deep_in_the_data_directory_are_set_right(
    make_repo: Any, tmp_path: Path
) -> None:
    files: dict[str, bytes | str] = {
        "p/proj/a/resource.json": '{"scope": "G", "attributes": {}}',
        "p/proj/a/view.json": "{}",
    }
    repo = make_repo(files)
    cr = _cr_for(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    args = ["sync", "--cr", str(cr), "--repo", str(repo), "--data-dir", str(data)]
    args += ["--gateway-name", "gw", "--output", "json"]
    assert run_stoker(*args).returncode == 0
    deep = "[" * 100_000 + "]" * 100_000
    (data / "projects/proj/a/resource.json").write_text(deep)
    (data / ".stoker/manifest.json").write_text('{"version": 3, "files": ' + deep + "}")

    done = run_stoker(*args)

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "damaged manifest" in done.stderr
    assert json.loads(done.stdout)["modified"] == ["projects/proj/a/resource.json"]
    assert (data / "projects/proj/a/resource.json").read_text() == files["p/proj/a/resource.json"]
