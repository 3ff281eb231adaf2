"""The original operator's end-to-end webhook-injection cases (behaviour reference §9.1) that
tests/core/test_injection.py does not already cover, run against the webhook's decision (the
API server's call into `stoker webhook` is tested in tests/k8s/test_webhook.py)."""

from __future__ import annotations

from typing import Any

import pytest

from core.helpers import manifest_with
from core.test_injection import apply_patch, cr, pod
from stoker_core.injection import decide
from stoker_core.validation import load


def agent(result: dict[str, Any]) -> dict[str, Any]:
    [container] = result["spec"]["initContainers"]
    return dict(container)


def env(result: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in agent(result)["env"]}


def injected(doc: dict[str, Any], gs: Any) -> dict[str, Any]:
    decision = decide(doc, "plant", {"test": gs})
    assert decision.allowed
    return apply_patch(doc, decision.patch)


def test_e2e_webhook_02_token_auth_and_a_named_profile_get_the_agent_and_its_volumes() -> None:
    auth = {"token": {"secretRef": {"name": "git-token", "key": "token"}}}
    doc = manifest_with(
        {p: {"mappings": [{"source": "p", "destination": "projects"}]} for p in ("standard",)}
    )
    doc["spec"]["git"]["auth"] = auth
    notes = {"stoker.io/cr-name": "test", "stoker.io/profile": "standard"}
    result = injected(pod(notes), load(doc))
    assert (agent(result)["name"], agent(result)["restartPolicy"]) == ("stoker-agent", "Always")
    assert result["metadata"]["annotations"]["stoker.io/injected"] == "true"
    assert env(result)["PROFILE"] == "standard"
    secrets = {v["secret"]["secretName"] for v in result["spec"]["volumes"] if "secret" in v}
    assert {"ignition-api-key", "git-token"} <= secrets  # the api-key and git-credentials volumes


def test_e2e_webhook_11_the_agent_image_from_the_gatewaysync_spec() -> None:
    doc = manifest_with({"default": {"mappings": [{"source": "p", "destination": "projects"}]}})
    doc["spec"]["agent"] = {"image": {"repository": "my-agent", "tag": "v2"}}
    assert agent(injected(pod(), load(doc)))["image"] == "my-agent:v2"


@pytest.mark.parametrize(
    ("volume", "path"),
    [
        ("ignition-data", "/usr/local/bin/ignition/data"),  # 12-data-volume-ignition-data
        ("data", "/data"),  # 13-data-volume-data
    ],
)
def test_e2e_webhook_12_13_the_agent_mounts_the_data_volume_where_the_gateway_does(
    volume: str, path: str
) -> None:
    doc = pod(volumes=(volume,))
    doc["spec"]["containers"][0]["volumeMounts"] = [{"name": volume, "mountPath": path}]
    result = injected(doc, cr())
    assert {"name": volume, "mountPath": path} in agent(result)["volumeMounts"]
    assert env(result)["DATA_PATH"] == path


def test_e2e_webhook_14_15_a_public_repository_gets_no_git_credentials_and_default_port() -> None:
    result = injected(pod(), cr())
    variables = env(result)
    assert "GIT_TOKEN_FILE" not in variables  # 14
    assert "GIT_SSH_KEY_FILE" not in variables
    secrets = [v["secret"]["secretName"] for v in result["spec"]["volumes"] if "secret" in v]
    assert secrets == ["ignition-api-key"]  # the API key only: no git-credentials volume
    assert (variables["GATEWAY_PORT"], variables["GATEWAY_TLS"]) == ("8088", "false")  # 15
