"""`stoker plan` and `stoker validate` warn when a directory mapping owns the gateway's own `core`
collection, naming the gateway-made files a sync would delete; the bundled examples never do."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import EXAMPLES
from support.gateway_data import write_gateway_data

STOKER = [sys.executable, "-m", "stoker_agent.cli"]
CORE_CR = """\
apiVersion: stoker.io/v1alpha1
kind: GatewaySync
metadata: {name: whole-core, namespace: plant}
spec:
  git: {repo: "https://git.example/plant.git", ref: main}
  gateway: {api: {secretName: ignition-api-key}}
  sync:
    profiles:
      default:
        mappings:
          - {source: core, destination: config/resources/core, type: dir}
"""
SECURITY = "config/resources/core/ignition/security-properties/config.json"
USERS = "config/resources/core/ignition/user-source/default/users.json"
TOKEN = "config/resources/core/ignition/api-token/stoker/config.json"


def stoker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*STOKER, *args], capture_output=True, text=True, check=False)


def test_plan_warns_and_names_the_gateway_made_files_a_core_mapping_would_delete(
    make_repo: Callable[[dict[str, bytes | str]], Path], tmp_path: Path
) -> None:
    repo = make_repo({"core/ignition/system-properties/config.json": '{"systemName": "gw"}'})
    cr = tmp_path / "cr.yaml"
    cr.write_text(CORE_CR)
    data = tmp_path / "data"
    write_gateway_data(data)
    args = ["plan", "--cr", str(cr), "--repo", str(repo), "--data-dir", str(data)]
    text = stoker(*args, "--gateway-name", "gw")
    assert text.returncode == 2, text.stderr
    [warning] = [line for line in text.stderr.splitlines() if line.startswith("warning:")]
    assert "config/resources/core" in warning
    assert "config/resources/external" in warning
    assert SECURITY in warning
    assert USERS in warning
    assert TOKEN not in warning  # API tokens are kept
    assert f"- {SECURITY}" in text.stdout  # the behaviour is unchanged: it is only said
    done = stoker(*args, "--gateway-name", "gw", "--output", "json")
    [takeover] = json.loads(done.stdout)["warnings"]
    assert takeover["mapping"] == "spec.sync.profiles.default.mappings[0]"
    assert SECURITY in takeover["deletes"]
    assert TOKEN not in takeover["deletes"]


def test_validate_warns_about_a_core_mapping_and_still_passes(tmp_path: Path) -> None:
    cr = tmp_path / "cr.yaml"
    cr.write_text(CORE_CR)
    text = stoker("validate", str(cr))
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("valid")
    assert "warning:" in text.stderr
    assert "spec.sync.profiles.default.mappings[0]" in text.stderr
    done = stoker("validate", str(cr), "--output", "json")
    [warning] = json.loads(done.stdout)["documents"][0]["warnings"]
    assert warning["collection"] == "config/resources/core"


def test_no_bundled_example_owns_the_core_collection(tmp_path: Path) -> None:
    for manifest in sorted((EXAMPLES / "gatewaysyncs").glob("*.yaml")):
        done = stoker("validate", str(manifest), "--output", "json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["documents"][0]["warnings"] == [], manifest.name
        assert "warning:" not in stoker("validate", str(manifest)).stderr


def test_no_hand_written_example_resource_carries_a_gateway_stamp() -> None:
    for resource in (EXAMPLES / "config-repo").rglob("resource.json"):
        attributes = json.loads(resource.read_text()).get("attributes", {})
        assert "lastModificationSignature" not in attributes, resource
        assert "lastModification" not in attributes, resource


def test_only_template_files_hold_template_actions() -> None:
    holding = {
        str(path.relative_to(EXAMPLES / "config-repo"))
        for path in (EXAMPLES / "config-repo").rglob("*")
        if path.is_file() and "{{" in path.read_text(errors="replace")
    }
    assert holding == {
        "templates/system-properties/config.json",
        "templates/views/GatewayInfo/view.json",
    }
