"""What every `stoker` command shares: `-o text|json|yaml`, NO_COLOR and --no-color, --version,
shell completion, periods in the CR's own forms, and a `validate` that fails on what only looks
like a GatewaySync (a misspelt or unknown kind, an empty file, no GatewaySync at all) and reads
standard input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import EXAMPLES
from support.ignition_sim import running
from support.ignition_sim_resources import write_api_token
from support.stokercli import BLOCKING

STOKER = str(Path(sys.executable).with_name("stoker"))
CR = EXAMPLES / "gatewaysyncs" / "single-gateway.yaml"
SECRET = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {token: x}\n"


def stoker(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, tty: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the installed `stoker`; with tty, under `script` so stdout is a terminal."""
    environment = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    environment.update(env or {})
    argv = [STOKER, *args]
    if tty:
        argv = ["script", "-qec", " ".join(argv), "/dev/null"]
    return subprocess.run(
        argv, input=stdin, capture_output=True, text=True, env=environment, check=False
    )


def test_validate_fails_on_a_misspelt_kind_that_it_used_to_pass(tmp_path: Path) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text(CR.read_text().replace("kind: GatewaySync", "kind: GatewaySycn"))
    done = stoker("validate", str(typo), "-o", "json")
    assert done.returncode == 1
    [document] = json.loads(done.stdout)["documents"]
    assert document["errors"] == [
        {"field": "kind", "message": '"GatewaySycn" is unknown; did you mean GatewaySync?'}
    ]


def test_validate_fails_on_an_unknown_stoker_kind_and_on_no_gatewaysync_at_all(
    tmp_path: Path,
) -> None:
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("apiVersion: stoker.io/v1alpha1\nkind: GatewayRollout\nmetadata: {}\n")
    assert "not a stoker.io kind" in stoker("validate", str(unknown)).stderr
    only_secret = tmp_path / "secret.yaml"
    only_secret.write_text(SECRET)
    done = stoker("validate", str(only_secret))
    assert done.returncode == 1
    assert "holds no GatewaySync" in done.stderr


def test_validate_notes_and_skips_a_secret_beside_a_gatewaysync_read_from_stdin() -> None:
    done = stoker("validate", "-", stdin=SECRET + "---\n" + CR.read_text())
    assert done.returncode == 0, done.stderr
    assert "note: <stdin> (document 1): kind Secret is not a GatewaySync; skipped" in done.stdout
    assert "valid   <stdin> (document 2): quickstart" in done.stdout


def test_validate_fails_on_an_empty_file_and_on_empty_input(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n")
    assert stoker("validate", str(empty)).returncode == 1
    assert stoker("validate", "-", stdin="").returncode == 1


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_yaml_output_carries_the_same_fields_as_json(
    command: str, example_repo: Path, tmp_path: Path
) -> None:
    args = {
        "validate": ["validate", str(CR)],
        "plan": ["plan", "--cr", str(CR), "--repo", str(example_repo), "--data-dir",
                 str(tmp_path), "--gateway-name", "gw", "--profile", "standard"],
    }[command]  # fmt: skip
    as_json = json.loads(stoker(*args, "-o", "json").stdout)
    assert yaml.safe_load(stoker(*args, "-o", "yaml").stdout) == as_json
    assert json.loads(stoker(*args, "--output", "json").stdout) == as_json


def test_errors_are_yaml_too_when_yaml_is_asked_for(example_repo: Path) -> None:
    done = stoker("plan", "--cr", str(CR), "--repo", str(example_repo), "--data-dir", "/nowhere",
                  "--gateway-name", "gw", "--profile", "standard", "-o", "yaml")  # fmt: skip
    assert done.returncode == 1
    assert yaml.safe_load(done.stdout)["errors"][0]["path"] == "/nowhere"


def test_yaml_output_escapes_bidi_and_control_characters_but_reads_back_the_same(
    example_repo: Path,
) -> None:
    trojan = "/nowhere/\u202egnp.exe\x1b[2J"  # shown reversed, and a terminal escape
    done = stoker("plan", "--cr", str(CR), "--repo", str(example_repo), "--data-dir", trojan,
                  "--gateway-name", "gw", "--profile", "standard", "-o", "yaml")  # fmt: skip
    assert "\u202e" not in done.stdout
    assert "\x1b" not in done.stdout
    assert yaml.safe_load(done.stdout)["errors"][0]["path"] == trojan


@pytest.mark.parametrize(
    ("env", "flags"),
    [({"NO_COLOR": "1"}, []), ({}, ["--no-color"]), ({}, ["--no-color", "-"])],
    ids=["NO_COLOR", "--no-color-after-the-command", "--no-color-before-the-command"],
)
def test_no_color_and_the_flag_keep_escapes_off_a_terminal(
    env: dict[str, str], flags: list[str]
) -> None:
    coloured = stoker("validate", str(CR), tty=True)
    assert "\x1b[" in coloured.stdout  # the test can fail: colours are on by default
    args = ["--no-color", "validate", str(CR)] if "-" in flags else ["validate", str(CR), *flags]
    plain = stoker(*args, env=env, tty=True)
    assert plain.returncode == 0, plain.stdout
    assert "valid" in plain.stdout
    assert "\x1b[" not in plain.stdout


def test_version_and_shell_completion() -> None:
    assert stoker("--version").stdout.startswith("stoker, version ")
    script = stoker(env={"_STOKER_COMPLETE": "bash_source"})
    assert script.returncode == 0
    assert "_stoker_completion" in script.stdout
    words = stoker(env={"_STOKER_COMPLETE": "bash_complete", "COMP_WORDS": "stoker va",
                        "COMP_CWORD": "1"})  # fmt: skip
    assert "validate" in words.stdout


@pytest.mark.parametrize(("interval", "seconds"), [("10", 10.0), ("10s", 10.0), ("1m30s", 90.0)])
def test_watch_interval_takes_the_crs_own_forms(interval: str, seconds: float) -> None:
    # A bare number is how syncPeriod is written; a Go duration how polling.interval is.
    from stoker_agent.commands.sync import sync

    args = ["--cr", "cr.yaml", "--repo", "r", "--data-dir", "d", "--interval", interval]
    with sync.make_context("sync", args) as ctx:
        assert ctx.params["interval"] == seconds


def test_readme_documents_exactly_the_exit_codes_the_code_uses() -> None:
    from conftest import ROOT
    from stoker_core.errors import ExitCode

    readme = (ROOT / "README.md").read_text()
    table = readme.split("### Exit codes (every `stoker` command)", 1)[1].split("\n\n", 2)[1]
    documented = {int(row.split("|")[1]) for row in table.splitlines()[2:]}
    assert documented == {int(code) for code in ExitCode}


def test_status_errors_are_json_on_stdout_too_when_json_is_asked_for(tmp_path: Path) -> None:
    done = stoker("status", "-o", "json", env={"HOME": str(tmp_path), "KUBECONFIG": ""})
    assert done.returncode == 1
    [error] = json.loads(done.stdout)["errors"]
    assert error["message"].startswith("no kubeconfig")


def test_the_base_install_plans_validates_and_syncs_with_a_gateway(
    example_repo: Path, tmp_path: Path
) -> None:
    # Everything only the k8s extra installs (and rich, which is gone) refuses to import.
    refused = "kubernetes,gunicorn,prometheus_client,jwt,cryptography,rich"
    multi = EXAMPLES / "gatewaysyncs" / "multiple-profiles.yaml"
    data = tmp_path / "data"
    data.mkdir()
    token = tmp_path / "api-token"
    token.write_text(write_api_token(data, collection="local") + "\n")
    identity = ["--gateway-name", "ignition-blue", "--profile", "blue"]
    source = ["--cr", str(multi), "--repo", str(example_repo), "--data-dir", str(data), *identity]

    def base(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-c", BLOCKING, refused, *args]
        return subprocess.run(argv, capture_output=True, text=True, check=False)

    assert base("validate", str(multi)).returncode == 0
    assert base("plan", *source).returncode == 2
    with running(data) as sim:
        done = base("sync", *source, "--gateway-url", sim.url, "--api-token-file", str(token))
        assert done.returncode == 0, done.stderr
        assert "blue" in sim.loaded_projects()
    # one `stoker history`: a data directory's needs no Kubernetes client, a GatewaySync's does
    assert base("history", "--data-dir", str(data)).returncode == 0
    cluster = base("history", "plant")
    assert cluster.returncode == 1
    assert "pip install 'stoker[k8s]'" in cluster.stderr


def test_validate_reads_what_kubectl_get_prints_a_list_of_gatewaysyncs() -> None:
    cr = yaml.safe_load(CR.read_text())
    listing = {"apiVersion": "v1", "kind": "List", "items": [cr, cr], "metadata": {}}
    done = stoker("validate", "-", "-o", "json", stdin=yaml.safe_dump(listing))
    assert done.returncode == 0, done.stderr
    assert [d["name"] for d in json.loads(done.stdout)["documents"]] == ["quickstart"] * 2
