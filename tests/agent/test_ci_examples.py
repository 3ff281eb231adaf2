"""The CI examples run as written: each job's shell steps, read from examples/ci/*.yml, in a
`git clone --depth 1` of a repository with a PR branch, produce the Markdown preview."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import EXAMPLES, GIT_ENV, commit_tree, git

CI = EXAMPLES / "ci"
BIN = Path(sys.executable).parent  # where this environment's `stoker` is installed

CR = """\
apiVersion: stoker.io/v1alpha1
kind: GatewaySync
metadata: {name: plant, namespace: plant}
spec:
  git: {repo: "https://git.example/plant.git", ref: main}
  gateway: {api: {secretName: ignition-api-key}}
  sync:
    defaults:
      varsFrom:
        - name: dbPassword
          secretKeyRef: {name: db, key: password}
    profiles:
      blue: &profile
        mappings:
          - source: "services/{{.GatewayName}}/projects"
            destination: projects
          - source: shared/external
            destination: config/resources/external
            patches:
              - file: "**/database-connection/*/config.json"
                set: {password: "{{.Vars.dbPassword}}", site: "{{.Labels.site}}"}
      red: *profile
"""
VIEW = "com.inductiveautomation.perspective/views/Main"
DB = "shared/external/ignition/database-connection/plant_db"


def files(title: str, extra: dict[str, str]) -> dict[str, str]:
    tree = {
        "deploy/gatewaysync.yaml": CR,
        "deploy/stoker-gateways.yaml": (CI / "stoker-gateways.yaml").read_text(),
        f"{DB}/config.json": '{"url": "jdbc:postgresql://db/plant"}\n',
        f"{DB}/resource.json": '{"scope": "A"}\n',
    }
    for gw, project in (("ignition-blue", "blue"), ("ignition-red", "red")):
        tree[f"services/{gw}/projects/{project}/project.json"] = '{"title": "' + title + '"}\n'
        tree[f"services/{gw}/projects/{project}/{VIEW}/view.json"] = '{"root": {}}\n'
        tree[f"services/{gw}/projects/Old/project.json"] = "{}\n"
    tree.update(extra)
    return tree


@pytest.fixture
def origin(tmp_path: Path) -> dict[str, str]:
    """A repository with `main` (the base) and a `pr` branch one commit ahead."""
    repo = tmp_path / "origin"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    base = commit_tree(repo, files("Blue", {}), "base")
    git(repo, "checkout", "-q", "-b", "pr")
    hostile = "```` @octocat <img src=x onerror=alert(1)> \x1b[31mred\x1b[0m \u202e"
    changed = files(
        "Blue line",
        {
            f"services/ignition-blue/projects/blue/{VIEW}/view.json": hostile + "\n",
            f"{DB}/config.json": '{"url": "jdbc:postgresql://db2/plant"}\n',
        },
    )
    del changed["services/ignition-blue/projects/Old/project.json"]
    head = commit_tree(repo, changed, "the PR")
    git(repo, "checkout", "-q", "main")
    return {"url": f"file://{repo}", "base": base, "head": head}


def shallow_clone(origin: dict[str, str], where: Path) -> Path:
    """What a CI runner checks out: the PR head alone, one commit deep."""
    git(where.parent, "clone", "-q", "--depth", "1", "--branch", "pr", origin["url"], str(where))
    assert git(where, "rev-parse", "--is-shallow-repository") == "true"
    assert git(where, "rev-list", "--count", "HEAD") == "1"
    return where


def job_env(variables: dict[str, Any], work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOKER_")}
    env.update(GIT_ENV)
    env.update({k: str(v) for k, v in variables.items()})
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env["HOME"] = str(work.parent)
    env["NO_COLOR"] = "1"
    return env


def run_steps(steps: list[str], shell: list[str], env: dict[str, str], cwd: Path) -> None:
    for step in steps:
        done = subprocess.run(
            [*shell, step], cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"step failed:\n{step}\n{done.stdout}\n{done.stderr}"


def github_steps(origin: dict[str, str]) -> Iterator[tuple[str, dict[str, str]]]:
    """The workflow's `run:` steps with GitHub's expressions filled in as for this PR."""
    workflow = yaml.safe_load((CI / "github-actions.yml").read_text())
    expressions = {
        "github.event.pull_request.base.sha": origin["base"],
        "github.event.pull_request.head.sha": origin["head"],
    }

    def fill(text: str) -> str:
        return re.sub(r"\$\{\{\s*([^}]+?)\s*\}\}", lambda m: expressions[m.group(1)], text)

    (job,) = workflow["jobs"].values()
    skipped = []
    for step in job["steps"]:
        if "run" not in step:
            continue
        if step.get("name", "").startswith("Install"):
            skipped.append(step["run"])  # the test runs the stoker being tested
            continue
        yield fill(step["run"]), {k: fill(str(v)) for k, v in step.get("env", {}).items()}
    assert skipped == ["python -m pip install stoker"]


def check_preview(markdown: str, origin: dict[str, str]) -> None:
    first = markdown.splitlines()[0]
    assert first == (
        f"### Stoker plan: `HEAD` (`{origin['head'][:12]}`) against "
        f"`{origin['base']}` (`{origin['base'][:12]}`)"
    )
    assert "**Gateway `ignition-blue`** (profile `blue`)" in markdown
    assert "**Gateway `ignition-red`** (profile `red`)" in markdown
    assert "- project `Old`: **deleted** (1 file)" in markdown
    assert "- view `blue/Main`: **modified** (1 file)" in markdown
    assert "\x1b" not in markdown
    assert "\u202e" not in markdown
    assert "`````diff" in markdown  # a fence longer than the file's ````
    assert len(markdown) < 65_536
    assert '+{"url": "jdbc:postgresql://db2/plant","password":"<secret dbPassword>"' in markdown


@pytest.mark.skipif(shutil.which("bash") is None, reason="GitHub runs steps with bash")
def test_the_github_actions_job_posts_a_preview_of_the_pull_request(
    origin: dict[str, str], tmp_path: Path
) -> None:
    work = shallow_clone(origin, tmp_path / "work")
    workflow = yaml.safe_load((CI / "github-actions.yml").read_text())
    for run, step_env in github_steps(origin):
        env = job_env({**workflow["env"], **step_env}, work)
        run_steps([run], ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"], env, work)
    check_preview((work / "stoker-plan.md").read_text(), origin)


def test_the_gitlab_job_posts_a_preview_of_the_merge_request(
    origin: dict[str, str], tmp_path: Path
) -> None:
    work = shallow_clone(origin, tmp_path / "work")
    job = yaml.safe_load((CI / "gitlab-ci.yml").read_text())["stoker-preview"]
    assert job["variables"]["GIT_DEPTH"] == "1"
    assert "python -m pip install stoker" in job["before_script"]  # not run: we test this stoker
    env = job_env(
        {
            **job["variables"],
            "CI_MERGE_REQUEST_DIFF_BASE_SHA": origin["base"],
            "CI_API_V4_URL": "http://127.0.0.1:9/api/v4",  # never called: no STOKER_NOTE_TOKEN
        },
        work,
    )
    run_steps(job["script"], ["sh", "-e", "-c"], env, work)
    check_preview((work / "stoker-plan.md").read_text(), origin)
