"""The in-cluster agent's environment: required variables named, varsFrom files read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stoker_core.errors import InvalidInput
from stoker_k8s.agentports import AgentEnv


def test_missing_variables_are_named() -> None:
    with pytest.raises(InvalidInput, match="POD_NAMESPACE, CR_NAME"):
        AgentEnv.from_environ({"POD_NAME": "p"})


def test_defaults_and_vars_from_files(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("s3cret-site-key\n")
    env = AgentEnv.from_environ(
        {
            "POD_NAME": "gw-0",
            "POD_NAMESPACE": "plant",
            "CR_NAME": "site",
            "STOKER_VAR_FILES": json.dumps({"siteKey": str(secret)}),
        }
    )
    assert (env.profile, env.gateway_name, env.cr_namespace) == ("default", "gw-0", "plant")
    assert env.gateway_url == "http://localhost:8088"
    assert env.read_vars() == {"siteKey": "s3cret-site-key"}
    broken = AgentEnv.from_environ(
        {
            "POD_NAME": "gw-0",
            "POD_NAMESPACE": "plant",
            "CR_NAME": "s",
            "STOKER_VAR_FILES": json.dumps({"x": str(tmp_path)}),
        }
    )
    with pytest.raises(InvalidInput, match="cannot read varsFrom x"):
        broken.read_vars()  # a directory: unreadable
    waiting = AgentEnv.from_environ(
        {
            "POD_NAME": "gw-0",
            "POD_NAMESPACE": "plant",
            "CR_NAME": "s",
            "STOKER_VAR_FILES": json.dumps({"y": str(tmp_path / "none")}),
        }
    )
    assert waiting.read_vars() == {}  # not mounted yet: the sync names its Secret and waits


def test_each_mounted_secret_file_is_named_with_its_purpose_and_secret() -> None:
    env = AgentEnv.from_environ(
        {
            "POD_NAME": "gw-0",
            "POD_NAMESPACE": "plant",
            "CR_NAME": "site",
            "API_KEY_FILE": "/etc/stoker/api-key/apiKey",
            "GIT_TOKEN_FILE": "/etc/stoker/git-token/token",
            "STOKER_SECRET_FILES": json.dumps(
                {
                    "/etc/stoker/api-key/apiKey": "ignition-api-key",
                    "/etc/stoker/git-token/token": "stoker-github-token-site",
                }
            ),
        }
    )
    key, token = env.secret_files()
    assert (key.secret, key.gateway_only) == ("ignition-api-key", True)
    assert token.secret == "stoker-github-token-site"
    assert token.purpose.startswith("the GitHub App token the controller publishes")
    assert not token.gateway_only
