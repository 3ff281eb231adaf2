"""`stoker plan --diff`, several gateways and Markdown previews, through the real `stoker` command:
rendered diffs with secrets masked in every output, both commits named, bounded comments."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from conftest import ROOT, commit_tree, git
from support.stokercli import run_stoker

SECRET = "Zq8x-s3cr3t-\u00e9-pa55w0rd"
PERSPECTIVE = "com.inductiveautomation.perspective"
VIEW = f"p/{PERSPECTIVE}/views/Main"
SCHEMA = json.loads((ROOT / "docs" / "schemas" / "plan.schema.json").read_text())

CR = """\
apiVersion: stoker.io/v1alpha1
kind: GatewaySync
metadata:
  name: site
  namespace: plant
spec:
  git:
    repo: https://git.example/plant.git
    ref: main
  gateway:
    api:
      secretName: ignition-api-key
  sync:
    defaults:
      varsFrom:
        - name: dbPassword
          secretKeyRef: {name: db, key: password}
    profiles:
      default:
        mappings:
          - source: p
            destination: projects/{{.GatewayName}}
          - source: cfg
            destination: config/resources/external
            patches:
              - file: "**/config.json"
                set: {password: "{{.Vars.dbPassword}}"}
"""
BASE = {
    "p/project.json": '{"title": "Plant"}\n',
    f"{VIEW}/view.json": '{"root": {"type": "flex"}}\n',
    f"{VIEW}/resource.json": '{"files": ["view.json"]}\n',
    "p/logo.png": b"\x89PNG\r\n\x1a\n\0\0",
    "cfg/ignition/database-connection/db/config.json": '{"url": "jdbc:x"}\n',
    "cfg/ignition/database-connection/db/resource.json": "{}\n",
}
HOSTILE = "\x1b[2J\x1b]0;pwned\x07 ```` @octocat <script>alert(1)</script> \u202e"


def stoker(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed `stoker` console command, as a user or a CI job does."""
    return run_stoker(*args, console=True)


def fragments(secret: str, size: int = 6) -> set[str]:
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


@pytest.fixture
def pr(make_repo: Any, tmp_path: Path) -> dict[str, Any]:
    """A repository whose HEAD changes a view, the logo and the database config of BASE."""
    repo = make_repo(BASE)
    base = git(repo, "rev-parse", "HEAD")
    head = commit_tree(
        repo,
        {
            **BASE,
            f"{VIEW}/view.json": '{"root": {"type": "flex", "note": "' + HOSTILE + '"}}\n',
            "p/logo.png": b"\x89PNG\r\n\x1a\n\0\0\1",
            "cfg/ignition/database-connection/db/config.json": '{"url": "jdbc:y"}\n',
        },
    )
    cr = tmp_path / "cr.yaml"
    cr.write_text(CR)
    secret = tmp_path / "db-password"
    secret.write_text(SECRET + "\n")
    return {"repo": repo, "base": base, "head": head, "cr": cr, "secret": secret}


def plan(pr: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return stoker(
        "plan", "--cr", str(pr["cr"]), "--repo", str(pr["repo"]), "--base-ref", pr["base"], *args
    )


@pytest.mark.parametrize("output", ["text", "json", "yaml", "markdown"])
def test_a_var_file_secret_patched_into_a_file_never_appears_in_the_diff(
    pr: dict[str, Any], output: str
) -> None:
    done = plan(
        pr,
        "--gateway-name",
        "g",
        "--var-file",
        f"dbPassword={pr['secret']}",
        "--diff",
        "-o",
        output,
    )
    assert done.returncode == 2, done.stderr
    assert "<secret dbPassword>" in done.stdout
    for text in (done.stdout, done.stderr):
        for piece in fragments(SECRET) | fragments(json.dumps(SECRET)[1:-1]):
            assert piece not in text
    assert "jdbc:y" in done.stdout  # the rest of the patched file is shown


def test_plan_diff_shows_text_changes_summarises_binaries_and_sends_no_escapes(
    pr: dict[str, Any],
) -> None:
    done = plan(pr, "--gateway-name", "g", "--var-placeholder", "dbPassword", "--diff")
    assert done.returncode == 2, done.stderr
    out = done.stdout
    assert f"  view g/Main: modified (1 file)\n    ~ projects/g/{VIEW[2:]}/view.json" in out
    assert '      -{"root": {"type": "flex"}}' in out
    assert "      binary: 10 bytes -> 11 bytes" in out
    assert '      +{"url": "jdbc:y","password":"<secret dbPassword>"}' in out
    assert "\x1b" not in out
    assert "\u202e" not in out
    assert "\\x1b[2J" in out


def test_base_ref_names_both_commits_in_text_json_and_markdown(pr: dict[str, Any]) -> None:
    args = ("--gateway-name", "g", "--var-placeholder", "dbPassword")
    text = plan(pr, *args).stdout.splitlines()[0]
    assert text.endswith(f"commit {pr['head'][:12]}  base {pr['base']} {pr['base'][:12]}")
    report = json.loads(plan(pr, *args, "-o", "json").stdout)
    jsonschema.validate(report, SCHEMA)
    assert (report["commit"], report["base"]) == (
        pr["head"],
        {"ref": pr["base"], "commit": pr["base"]},
    )
    first = plan(pr, *args, "-o", "markdown").stdout.splitlines()[0]
    assert first == (
        f"### Stoker plan: `HEAD` (`{pr['head'][:12]}`) against "
        f"`{pr['base']}` (`{pr['base'][:12]}`)"
    )


def test_a_profile_with_vars_from_needs_a_var_file_or_a_placeholder(pr: dict[str, Any]) -> None:
    done = plan(pr, "--gateway-name", "g")
    assert done.returncode == 64
    assert done.stderr == (
        "error: profile default reads dbPassword from a Secret (varsFrom); give "
        "--var-file dbPassword=FILE or --var-placeholder dbPassword for each\n"
    )


def test_several_gateways_from_flags_and_from_a_file_are_planned_in_one_run(
    pr: dict[str, Any], tmp_path: Path
) -> None:
    gateways = tmp_path / "gateways.yaml"
    gateways.write_text(
        "gateways:\n  - name: north\n    labels: {site: n}\n  - name: south\n    profile: default\n"
    )
    for args in (
        ("--gateway", "north", "--gateway", "south:default"),
        ("--gateways", str(gateways)),
    ):
        done = plan(pr, *args, "--var-placeholder", "dbPassword", "--diff", "-o", "json")
        assert done.returncode == 2, done.stderr
        report = json.loads(done.stdout)
        jsonschema.validate(report, SCHEMA)
        assert report["base"]["commit"] == pr["base"]
        assert [p["gateway"] for p in report["gateways"]] == ["north", "south"]
        assert [p["resources"][0]["name"] for p in report["gateways"]] == [
            "external/ignition/database-connection/db",
            "external/ignition/database-connection/db",
        ]
        assert {d["path"] for d in report["gateways"][1]["diffs"]} >= {"projects/south/logo.png"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("gateways: []\n", "a gateways file holds `gateways:`, a list of 1 to 256 gateways"),
        ("gateways:\n  - name: a\n    profle: x\n", "gateways[0]: must be a map of"),
        ("gateways:\n  - name: a\n  - name: a\n", "gateway names must be unique: a"),
        ("gateways: [\n", "invalid YAML at line"),
    ],
)
def test_a_bad_gateways_file_is_one_line_naming_the_file(
    pr: dict[str, Any], tmp_path: Path, content: str, message: str
) -> None:
    gateways = tmp_path / "gateways.yaml"
    gateways.write_text(content)
    done = plan(pr, "--gateways", str(gateways), "--var-placeholder", "dbPassword")
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1
    assert message in done.stderr
    assert str(gateways) in done.stderr
    assert "Traceback" not in done.stderr


def test_a_markdown_preview_of_a_huge_change_fits_in_a_github_comment(
    make_repo: Any, tmp_path: Path
) -> None:
    lines = "".join(f"line {i} ``` @team <b>\n" for i in range(300))
    repo = make_repo({f"p/f{i}.txt": lines for i in range(200)})
    base = git(repo, "rev-parse", "HEAD")
    commit_tree(repo, {f"p/f{i}.txt": lines.replace("line", "LINE") for i in range(200)})
    cr = tmp_path / "cr.yaml"
    cr.write_text(
        CR.replace("      varsFrom:\n        - name: dbPassword\n", "      vars: {}\n").replace(
            "          secretKeyRef: {name: db, key: password}\n", ""
        )
    )
    done = stoker(
        "plan",
        "--cr",
        str(cr),
        "--repo",
        str(repo),
        "--base-ref",
        base,
        "--gateway",
        "a",
        "--gateway",
        "b",
        "--var-placeholder",
        "dbPassword",
        "--diff",
        "-o",
        "markdown",
    )
    assert done.returncode == 2, done.stderr
    text = done.stdout
    assert len(text.encode("utf-16-le")) // 2 <= 60_000
    assert "**Gateway `b`**" in text  # every gateway's summary comes before any diff
    assert re.search(r"_Cut to stay under 60,000 characters: left out \d+ diffs", text)
    for fence in re.findall(r"^(`{3,})diff$", text, re.MULTILINE):
        assert len(fence) == 4  # longer than the ``` in the content


def test_sync_dry_run_diff_shows_changes_and_diff_alone_is_a_usage_error(
    make_repo: Any, tmp_path: Path
) -> None:
    repo = make_repo({"p/a.json": '{"v": 2}\n'})
    cr = tmp_path / "cr.yaml"
    cr.write_text(yaml.safe_dump({**yaml.safe_load(CR.replace("{{.GatewayName}}", "x"))}))
    data = tmp_path / "data"
    (data / "projects" / "x").mkdir(parents=True)
    (data / "projects" / "x" / "a.json").write_text('{"v": 1}\n')
    args = ["sync", "--cr", str(cr), "--repo", str(repo), "--data-dir", str(data)]
    args += ["--gateway-name", "g", "--var-file", "dbPassword=/dev/null"]
    done = stoker(*args, "--dry-run", "--diff")
    assert done.returncode == 2, done.stderr
    assert '      -{"v": 1}\n      +{"v": 2}\n' in done.stdout
    report = json.loads(stoker(*args, "--dry-run", "--diff", "-o", "json").stdout)
    (d,) = [d for d in report["diffs"] if d["path"] == "projects/x/a.json"]
    assert d["diff"][-2:] == ['-{"v": 1}', '+{"v": 2}']
    refused = stoker(*args, "--diff")
    assert refused.returncode == 64
    assert "--diff needs --dry-run" in refused.stderr
    assert (data / "projects" / "x" / "a.json").read_text() == '{"v": 1}\n'


def test_sync_dry_run_diff_masks_a_var_file_secret(make_repo: Any, tmp_path: Path) -> None:
    repo = make_repo({"cfg/ignition/database-connection/db/config.json": '{"url": "jdbc:x"}'})
    cr = tmp_path / "cr.yaml"
    cr.write_text(CR)
    secret = tmp_path / "db-password"
    secret.write_text(SECRET + "\n")
    data = tmp_path / "data"
    data.mkdir()
    args = ["sync", "--cr", str(cr), "--repo", str(repo), "--data-dir", str(data)]
    args += ["--gateway-name", "g", "--var-file", f"dbPassword={secret}", "--dry-run", "--diff"]
    for output in ("text", "json"):
        done = stoker(*args, "-o", output)
        assert done.returncode == 2, done.stderr
        assert "<secret dbPassword>" in done.stdout
        for piece in fragments(SECRET) | fragments(json.dumps(SECRET)[1:-1]):
            assert piece not in done.stdout + done.stderr


def test_a_var_file_too_short_to_mask_is_said(pr: dict[str, Any], tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("abc\n")
    done = plan(pr, "--gateway-name", "g", "--var-file", f"dbPassword={short}")
    assert done.returncode == 2
    assert done.stderr == (
        "warning: --var-file dbPassword: a value under 4 characters is not masked in logs or "
        "diffs (masking it would shred them)\n"
    )
