"""The sidecar injection decision: the documented denials, the patch, and the deliberate
differences (paused CRs, pods without a data volume, default profile, volume-name collisions)."""

from __future__ import annotations

import copy
from typing import Any

from core.helpers import manifest_with
from stoker_core.injection import InjectionSettings, decide
from stoker_core.validation import load


def cr(
    paused: bool = False,
    auth: dict[str, Any] | None = None,
    profiles: tuple[str, ...] = ("default",),
) -> Any:
    doc = manifest_with(
        {p: {"mappings": [{"source": "p", "destination": "projects"}]} for p in profiles}
    )
    doc["spec"]["paused"] = paused
    if auth:
        doc["spec"]["git"]["auth"] = auth
    return load(doc)


def pod(
    annotations: dict[str, str] | None = None, volumes: tuple[str, ...] = ("data",)
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "ignition-0",
            "annotations": {"stoker.io/inject": "true", **(annotations or {})},
            "labels": {"app.kubernetes.io/name": "ignition"},
        },
        "spec": {
            "containers": [
                {
                    "name": "gateway",
                    "volumeMounts": [{"name": "data", "mountPath": "/usr/local/bin/ignition/data"}],
                }
            ],
            "volumes": [{"name": v, "emptyDir": {}} for v in volumes],
        },
    }


def apply_patch(doc: dict[str, Any], patch: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """A tiny RFC 6902 'add' applier (all the webhook emits)."""
    out = copy.deepcopy(doc)
    for op in patch:
        assert op["op"] == "add"
        *parents, last = [
            p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]
        ]
        node = out
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node.insert(len(node) if last == "-" else int(last), op["value"])
        else:
            node[last] = op["value"]
    return out


def test_pods_that_did_not_ask_are_left_alone() -> None:
    plain = pod()
    plain["metadata"]["annotations"] = {}
    assert decide(plain, "plant", {"site": cr()}).patch == ()


def test_injects_a_native_sidecar_with_env_mounts_probes_and_security() -> None:
    decision = decide(pod(), "plant", {"site": cr()})
    assert decision.allowed
    result = apply_patch(pod(), decision.patch)
    [agent] = result["spec"]["initContainers"]
    assert agent["name"] == "stoker-agent"
    assert agent["restartPolicy"] == "Always"
    env = {e["name"]: e.get("value") for e in agent["env"]}
    assert env["PROFILE"] == "default"  # D1: no annotation means the default profile
    assert env["GATEWAY_NAME"] == "ignition"  # D2: the label, as the controller uses
    assert env["DATA_PATH"] == "/usr/local/bin/ignition/data"
    assert env["CR_NAME"] == "site"
    assert "GIT_TOKEN_FILE" not in env  # R31: no auth, no credentials
    assert agent["startupProbe"]["failureThreshold"] == 150  # R15
    assert agent["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "data", "mountPath": "/usr/local/bin/ignition/data"} in agent["volumeMounts"]
    assert result["metadata"]["annotations"]["stoker.io/cr-name"] == "site"  # R26
    assert result["metadata"]["labels"]["stoker.io/agent"] == "true"


def test_token_auth_mounts_only_the_token_secret() -> None:
    auth = {"token": {"secretRef": {"name": "git-token", "key": "token"}}}
    result = apply_patch(pod(), decide(pod(), "plant", {"site": cr(auth=auth)}).patch)
    env = {e["name"]: e.get("value") for e in result["spec"]["initContainers"][0]["env"]}
    assert env["GIT_TOKEN_FILE"] == "/etc/stoker/git-credentials/token"
    secrets = [v["secret"]["secretName"] for v in result["spec"]["volumes"] if "secret" in v]
    assert secrets == ["ignition-api-key", "git-token"]


def test_documented_denials() -> None:
    assert decide(pod(), "plant", {}).message == "no GatewaySync CR found in namespace 'plant'"
    two = decide(pod(), "plant", {"a": cr(), "b": cr()})
    assert not two.allowed
    assert "multiple GatewaySync CRs in namespace 'plant': [a, b]" in two.message
    missing = decide(pod({"stoker.io/cr-name": "nope"}), "plant", {"site": cr()})
    assert missing.message == "GatewaySync 'nope' not found in namespace 'plant'"
    bad_profile = decide(pod({"stoker.io/profile": "east"}), "plant", {"site": cr()})
    assert bad_profile.message == "profile 'east' not found in GatewaySync 'site'"


def test_a_paused_cr_still_gets_the_sidecar_differs() -> None:
    decision = decide(pod(), "plant", {"site": cr(paused=True)})
    assert decision.allowed
    assert decision.patch
    assert "paused" in decision.warnings[0]


def test_a_pod_without_a_data_volume_is_admitted_without_the_sidecar_b19() -> None:
    decision = decide(pod(volumes=("config",)), "plant", {"site": cr()})
    assert decision.allowed
    assert decision.patch == ()
    assert "stoker.io/data-volume" in decision.warnings[0]
    assert (decision.event, decision.cr) == ("NoDataVolume", "site")  # a Warning event there
    assert "pod ignition-0 " in decision.warnings[0]
    unnamed = pod(volumes=())
    unnamed["metadata"] = {**unnamed["metadata"], "name": "", "generateName": "ignition-7f9c-"}
    assert "pod ignition-7f9c-* " in decide(unnamed, "plant", {"site": cr()}).warnings[0]
    named = decide(
        pod({"stoker.io/data-volume": "config"}, volumes=("config",)), "plant", {"site": cr()}
    )
    assert named.patch


def test_volume_names_never_collide_with_the_pods_b19() -> None:
    crowded = pod(volumes=("data", "stoker-repo", "stoker-tmp"))
    result = apply_patch(crowded, decide(crowded, "plant", {"site": cr()}).patch)
    names = [v["name"] for v in result["spec"]["volumes"]]
    assert len(names) == len(set(names))
    assert "stoker-repo-2" in names


def test_injection_is_idempotent() -> None:
    once = apply_patch(pod(), decide(pod(), "plant", {"site": cr()}).patch)
    again = decide(once, "plant", {"site": cr()})
    assert (again.allowed, again.patch, again.message) == (True, (), "already injected")


def test_agent_image_precedence() -> None:
    annotated = pod({"stoker.io/agent-image": "registry.local/stoker:dev"})
    result = apply_patch(
        annotated, decide(annotated, "plant", {"site": cr()}, InjectionSettings()).patch
    )
    assert result["spec"]["initContainers"][0]["image"] == "registry.local/stoker:dev"


def test_vars_from_secrets_are_mounted_into_the_agent_only() -> None:
    doc_profiles = {
        "default": {
            "mappings": [{"source": "p", "destination": "projects"}],
            "varsFrom": [
                {"name": "siteKey", "secretKeyRef": {"name": "site-secrets", "key": "key"}}
            ],
        }
    }
    from core.helpers import manifest_with as with_profiles

    gs = load(with_profiles(doc_profiles))
    result = apply_patch(pod(), decide(pod(), "plant", {"site": gs}).patch)
    agent = result["spec"]["initContainers"][0]
    env = {e["name"]: e.get("value") for e in agent["env"]}
    assert env["STOKER_VAR_FILES"] == '{"siteKey": "/etc/stoker/vars/site-secrets/key"}'
    volume = next(v for v in result["spec"]["volumes"] if v["name"] == "stoker-vars")
    assert volume["secret"]["secretName"] == "site-secrets"
    gateway = result["spec"]["containers"][0]
    assert all(m["name"] != "stoker-vars" for m in gateway.get("volumeMounts", []))


MALFORMED_PODS = [
    {"metadata": "ignition-0", "spec": {}},
    {"metadata": {"annotations": ["stoker.io/inject", "true"]}, "spec": {}},
    {"metadata": {"annotations": {"stoker.io/inject": "true", "stoker.io/cr-name": ["x"]}}},
    {"metadata": {"labels": {"app": 1}}, "spec": {}},
    {"metadata": {"annotations": {"stoker.io/inject": "true"}}, "spec": "none"},
    {"metadata": {"annotations": {"stoker.io/inject": "true"}}, "spec": {"volumes": {"a": 1}}},
    {
        "metadata": {"annotations": {"stoker.io/inject": "true"}},
        "spec": {"volumes": [{"name": []}]},
    },
    {
        "metadata": {"annotations": {"stoker.io/inject": "true"}},
        "spec": {"containers": [{"name": "g", "volumeMounts": [{"name": "data", "mountPath": 7}]}]},
    },
    {"metadata": {"annotations": {"stoker.io/inject": "true"}}, "spec": {"initContainers": ["x"]}},
]


def test_H12_a_malformed_pod_is_admitted_untouched_with_a_reason() -> None:
    for bad in MALFORMED_PODS:
        decision = decide(bad, "plant", {"gs": cr()})
        assert (decision.allowed, decision.patch) == (True, ()), bad
        assert "admitted untouched" in decision.warnings[0]


def agent_of(decision: Any) -> dict[str, Any]:
    [container] = apply_patch(pod(), decision.patch)["spec"]["initContainers"]
    return dict(container)


def test_H12_the_agent_s_mounts_never_collide_with_the_gateway_s_data_path() -> None:
    gs = cr(auth={"sshKey": {"secretRef": {"name": "git", "key": "id"}}})
    for path, seen_at in [
        ("/tmp", "/ignition-data"),
        ("/tmp/", "/ignition-data"),
        ("/repo", "/ignition-data"),
        ("/etc/stoker/api-key", "/ignition-data"),
        ("/etc/stoker/git-credentials", "/ignition-data"),
        ("/etc", "/ignition-data"),  # a parent of the agent's mounts
        ("/", "/ignition-data"),
        ("/tmp/ignition", "/ignition-data"),  # inside one of them
        ("data", "/ignition-data"),  # not absolute
        ("/etc/stoker-data", "/etc/stoker-data"),  # a look-alike prefix is clear
        ("/usr/local/bin/ignition/data", "/usr/local/bin/ignition/data"),
    ]:
        gateway = pod()
        gateway["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] = path
        agent = agent_of(decide(gateway, "plant", {"gs": gs}))
        paths = [m["mountPath"] for m in agent["volumeMounts"]]
        assert len(set(paths)) == len(paths), path
        nested = [(a, b) for a in paths for b in paths if a != b and b.startswith(a + "/")]
        assert nested == [], path
        [data] = [m for m in agent["volumeMounts"] if m["name"] == "data"]
        env = {e["name"]: e.get("value") for e in agent["env"]}
        assert (data["mountPath"], env["DATA_PATH"]) == (seen_at, seen_at), path
