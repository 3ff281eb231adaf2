"""`stoker plan` and `stoker validate` on real repositories: exit codes, JSON and text output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import EXAMPLES, ROOT, commit_tree, git
from support.stokercli import run_stoker

SCHEMAS = ROOT / "docs" / "schemas"
MULTI = EXAMPLES / "gatewaysyncs" / "multiple-profiles.yaml"


def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text())


def plan_json(*args: str) -> tuple[int, dict[str, Any]]:
    done = run_stoker("plan", *args, "--output", "json")
    return done.returncode, json.loads(done.stdout)


def test_plan_of_the_example_for_two_gateways(example_repo: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    reports = {}
    for gateway in ("blue", "red"):
        code, report = plan_json(
            "--cr",
            str(MULTI),
            "--repo",
            str(example_repo),
            "--data-dir",
            str(data),
            "--gateway-name",
            f"ignition-{gateway}",
            "--profile",
            gateway,
        )
        assert code == 2
        jsonschema.validate(report, schema("plan.schema.json"))
        assert report["commit"] == git(example_repo, "rev-parse", "HEAD")
        assert report["ref"] == "HEAD"
        assert report["added"] == sorted(report["added"])
        reports[gateway] = report
    assert "projects/blue/project.json" in reports["blue"]["added"]
    assert "projects/red/project.json" in reports["red"]["added"]
    assert not any(p.startswith("projects/red/") for p in reports["blue"]["added"])


def test_plan_exits_zero_when_in_sync(make_repo: Any, tmp_path: Path) -> None:
    repo = make_repo({"p/a.json": "{}"})
    cr = tmp_path / "cr.yaml"
    cr.write_text(CR.format(source="p", dest="projects"))
    data = tmp_path / "data"
    (data / "projects").mkdir(parents=True)
    (data / "projects" / "a.json").write_text("{}")
    code, report = plan_json(
        "--cr", str(cr), "--repo", str(repo), "--data-dir", str(data), "--gateway-name", "g"
    )
    assert code == 0
    assert report["unchanged"] == 1
    assert report["added"] == report["modified"] == report["deleted"] == []


def test_base_ref_compares_two_commits_without_a_data_directory(
    make_repo: Any, tmp_path: Path
) -> None:
    repo = make_repo({"p/a.json": "1", "p/b.json": "2"})
    old = git(repo, "rev-parse", "HEAD")
    commit_tree(repo, {"p/a.json": "1", "p/b.json": "changed", "p/c.json": "3"})
    cr = tmp_path / "cr.yaml"
    cr.write_text(CR.format(source="p", dest="projects"))
    code, report = plan_json(
        "--cr", str(cr), "--repo", str(repo), "--base-ref", old, "--gateway-name", "g"
    )
    assert code == 2
    assert (report["added"], report["modified"], report["deleted"], report["unchanged"]) == (
        ["projects/c.json"],
        ["projects/b.json"],
        [],
        1,
    )
    commit_tree(repo, {"p/a.json": "1"})
    code, report = plan_json(
        "--cr", str(cr), "--repo", str(repo), "--base-ref", old, "--gateway-name", "g"
    )
    assert report["deleted"] == ["projects/b.json"]


def test_plan_reads_a_remote_repository_over_file_url(make_repo: Any, tmp_path: Path) -> None:
    repo = make_repo({"p/a.json": "1"})
    git(repo, "tag", "v1.0.0")
    cr = tmp_path / "cr.yaml"
    cr.write_text(CR.format(source="p", dest="projects"))
    data = tmp_path / "data"
    data.mkdir()
    code, report = plan_json(
        "--cr",
        str(cr),
        "--repo",
        f"file://{repo}",
        "--ref",
        "v1.0.0",
        "--data-dir",
        str(data),
        "--gateway-name",
        "g",
    )
    assert code == 2
    assert report["ref"] == "v1.0.0"
    assert report["added"] == ["projects/a.json"]


def test_plan_text_output_groups_changes_by_resource_with_marks_and_totals(
    example_repo: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "projects" / "Stale").mkdir(parents=True)
    (data / "projects" / "Stale" / "project.json").write_text("{}")
    done = run_stoker(
        "plan",
        "--cr",
        str(MULTI),
        "--repo",
        str(example_repo),
        "--data-dir",
        str(data),
        "--gateway-name",
        "ignition-blue",
        "--profile",
        "blue",
    )
    assert done.returncode == 2, done.stderr
    assert "  + project blue: added (" in done.stdout  # a whole new project is one line
    assert "project Stale: deleted (1 file)\n    - projects/Stale/project.json" in done.stdout
    assert "\x1b[" not in done.stdout  # no colour when not a terminal
    assert done.stdout.strip().splitlines()[-1].startswith("Plan: ")


def test_plan_errors_exit_1_with_all_problems_and_no_traceback(
    example_repo: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        CR.format(source="/abs", dest="../up").replace("syncPeriod: 30", "syncPeriod: 1")
    )
    data = tmp_path / "data"
    data.mkdir()
    done = run_stoker(
        "plan",
        "--cr",
        str(bad),
        "--repo",
        str(example_repo),
        "--data-dir",
        str(data),
        "--gateway-name",
        "g",
        "--output",
        "json",
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    jsonschema.validate(report, schema("errors.schema.json"))
    fields = {e["field"] for e in report["errors"]}
    assert fields == {
        "spec.sync.profiles.default.mappings[0].source",
        "spec.sync.profiles.default.mappings[0].destination",
        "spec.sync.defaults.syncPeriod",
    }
    assert len(done.stderr.strip().splitlines()) == 3


def test_unknown_ref_and_missing_data_dir_are_clear_errors(make_repo: Any, tmp_path: Path) -> None:
    repo = make_repo({"p/a.json": "1"})
    cr = tmp_path / "cr.yaml"
    cr.write_text(CR.format(source="p", dest="projects"))
    done = run_stoker(
        "plan",
        "--cr",
        str(cr),
        "--repo",
        str(repo),
        "--ref",
        "nope",
        "--data-dir",
        str(tmp_path),
        "--gateway-name",
        "g",
    )
    assert done.returncode == 1
    assert 'ref "nope" not found' in done.stderr
    done = run_stoker(
        "plan",
        "--cr",
        str(cr),
        "--repo",
        str(repo),
        "--data-dir",
        str(tmp_path / "missing"),
        "--gateway-name",
        "g",
    )
    assert done.returncode == 1
    assert "data directory does not exist" in done.stderr


def test_usage_errors_exit_64() -> None:
    assert run_stoker("plan").returncode == 64
    assert run_stoker("plan", "--cr", "x", "--repo", "y").returncode == 64
    assert run_stoker("no-such-command").returncode == 64


def test_every_example_manifest_validates() -> None:
    files = sorted(str(p) for p in (EXAMPLES / "gatewaysyncs").glob("*.yaml"))
    assert files
    done = run_stoker("validate", *files, "--output", "json")
    assert done.returncode == 0, done.stdout
    report = json.loads(done.stdout)
    jsonschema.validate(report, schema("validate.schema.json"))
    assert report["valid"] is True
    assert len([d for d in report["documents"] if "ignored" not in d]) == len(files)


def test_validate_multi_document_notes_other_kinds_and_rejects_unknown_fields(
    tmp_path: Path,
) -> None:
    multi = tmp_path / "multi.yaml"
    good = CR.format(source="p", dest="projects")
    bad = good.replace("destination:", "destinaton:")
    multi.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n" + good + "---\n" + bad
    )
    done = run_stoker("validate", str(multi), "--output", "json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    jsonschema.validate(report, schema("validate.schema.json"))
    assert report["documents"][0] == {"file": str(multi), "document": 1, "ignored": "ConfigMap"}
    assert report["documents"][1]["valid"] is True
    assert {e["field"] for e in report["documents"][2]["errors"]} == {
        "spec.sync.profiles.default.mappings[0].destinaton",
        "spec.sync.profiles.default.mappings[0].destination",
    }
    text = run_stoker("validate", str(multi))
    assert "note:" in text.stdout
    assert "ConfigMap" in text.stdout
    assert "destinaton" in text.stderr


def test_validate_reports_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [unclosed\n")
    done = run_stoker("validate", str(broken), str(tmp_path / "missing.yaml"))
    assert done.returncode == 1
    assert "invalid YAML: line" in done.stderr
    assert "cannot read" in done.stderr


@pytest.mark.parametrize("command", ["plan", "validate"])
def test_plan_and_validate_import_no_kubernetes_or_server_libraries(
    command: str, example_repo: Path, tmp_path: Path
) -> None:
    args = {
        "plan": [
            "plan",
            "--cr",
            str(MULTI),
            "--repo",
            str(example_repo),
            "--data-dir",
            str(tmp_path),
            "--gateway-name",
            "ignition-blue",
            "--profile",
            "blue",
        ],
        "validate": ["validate", str(MULTI)],
    }[command]
    probe = (  # told at exit (main ends the process): what the command had imported by then
        "import atexit, sys\nfrom stoker_agent.cli import main\n"
        "heavy = ('kubernetes', 'gunicorn', 'requests', 'prometheus_client', 'stoker_k8s')\n"
        "atexit.register(lambda: print('LOADED', [m for m in heavy if m in sys.modules]))\n"
        f"main({args!r})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert done.stdout.strip().splitlines()[-1] == "LOADED []", done.stdout + done.stderr


CR = """\
apiVersion: stoker.io/v1alpha1
kind: GatewaySync
metadata:
  name: site
spec:
  git:
    repo: https://git.example/plant.git
    ref: main
  gateway:
    api:
      secretName: ignition-api-key
  sync:
    defaults:
      syncPeriod: 30
    profiles:
      default:
        mappings:
          - source: "{source}"
            destination: "{dest}"
"""
