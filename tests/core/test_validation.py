"""GatewaySync validation: every problem at once, each with its field path and a fix."""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest

from core.helpers import manifest_with
from stoker_core.errors import InvalidInput
from stoker_core.model import DesignerPolicy, DriftPolicy
from stoker_core.schema import crd
from stoker_core.validation import check_literal_path, load

BASE = manifest_with({"default": {"mappings": [{"source": "a", "destination": "b"}]}})


def problems(doc: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidInput) as info:
        load(doc)
    return {(p.field or p.path or ""): p.message for p in info.value.problems}


def with_changes(**paths: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    for dotted, value in paths.items():
        node = doc
        keys = dotted.split("__")
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node.setdefault(k, {})
        node[keys[-1]] = value
    return doc


def test_original_crd_defaults_apply() -> None:
    gs = load(BASE)
    assert gs.spec.gateway.port == 8088
    assert gs.spec.gateway.tls is False
    assert gs.spec.gateway.api.secret_key == "apiKey"
    assert gs.spec.polling.enabled is True
    assert gs.spec.polling.interval == "60s"
    d = gs.spec.sync.defaults
    assert d.exclude_patterns == ("**/.git/", "**/.gitkeep", "**/.resources/**")
    assert d.sync_period == 30
    assert d.designer_session_policy is DesignerPolicy.PROCEED
    assert (d.dry_run, d.paused) == (False, False)
    assert d.drift_policy is DriftPolicy.REPORT
    assert d.rollback_on_failure is True
    assert gs.spec.paused is False


def test_all_problems_are_reported_at_once_with_field_paths() -> None:
    doc = manifest_with(
        {
            "site": {
                "mappings": [
                    {"source": "a", "destination": "b"},
                    {"source": "c", "destination": "d"},
                    {"source": "e", "destination": "/etc"},
                ],
                "syncPeriod": 2,
                "designerSessionPolicy": "sometimes",
            }
        }
    )
    doc["spec"]["gateway"]["tls"] = "yes"
    found = problems(doc)
    assert "spec.sync.profiles.site.mappings[2].destination" in found
    assert '"/etc"' in found["spec.sync.profiles.site.mappings[2].destination"]
    assert (
        "relative to the data directory" in found["spec.sync.profiles.site.mappings[2].destination"]
    )
    assert "spec.gateway.tls" in found
    assert "spec.sync.profiles.site.designerSessionPolicy" in found
    assert "proceed, wait, fail" in found["spec.sync.profiles.site.designerSessionPolicy"]


def test_semantic_problems_are_all_reported_too() -> None:
    doc = manifest_with(
        {"site": {"mappings": [{"source": "/abs", "destination": "../up"}], "syncPeriod": 2}},
        defaults={"vars": {"my-var": "x"}},
    )
    doc["spec"]["polling"] = {"interval": "soon"}
    found = problems(doc)
    assert set(found) >= {
        "spec.sync.profiles.site.mappings[0].source",
        "spec.sync.profiles.site.mappings[0].destination",
        "spec.sync.profiles.site.syncPeriod",
        "spec.sync.defaults.vars.my-var",
        "spec.polling.interval",
    }


def test_unknown_fields_are_rejected_by_name() -> None:
    doc = with_changes(spec__sync__profiles__default__mappings=[{"source": "a", "destinaton": "b"}])
    found = problems(doc)
    assert "spec.sync.profiles.default.mappings[0].destinaton" in found
    assert "unknown field" in found["spec.sync.profiles.default.mappings[0].destinaton"]
    assert "spec.sync.profiles.default.mappings[0].destination" in found


@pytest.mark.parametrize("key", ["my-var", "my.var", "1var"])
def test_invalid_var_keys_are_named_r17(key: str) -> None:
    found = problems(with_changes(spec__sync__defaults={"vars": {key: "v"}}))
    message = found[f"spec.sync.defaults.vars.{key}"]
    assert f'"{key}"' in message
    assert "identifier" in message


@pytest.mark.parametrize("vars_", [{"projectName": "x", "siteNumber": "1", "_private": "y"}, {}])
def test_valid_var_keys_pass_r17(vars_: dict[str, str]) -> None:
    load(with_changes(spec__sync__defaults={"vars": vars_}))


def test_unquoted_number_in_vars_gets_a_quoting_hint() -> None:
    found = problems(with_changes(spec__sync__defaults={"vars": {"site": 7}}))
    assert "quote it" in found["spec.sync.defaults.vars.site"]


def test_empty_profiles_and_mappings_are_refused() -> None:
    assert "spec.sync.profiles" in problems(with_changes(spec__sync__profiles={}))
    found = problems(with_changes(spec__sync__profiles__default__mappings=[]))
    assert "spec.sync.profiles.default.mappings" in found


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("repo", "--upload-pack=touch /tmp/x"),
        ("repo", "-oProxyCommand=id@host:repo"),
        ("repo", "https://git.example.com/a b.git"),
        ("repo", "https://git.example.com/a.git\n"),
        ("ref", "--output=/etc/passwd"),
        ("ref", "main\tx"),
    ],
)
def test_repositories_and_refs_that_git_could_read_as_options_are_refused(
    field: str, value: str
) -> None:
    found = problems(with_changes(**{f"spec__git__{field}": value}))
    assert 'not starting with "-"' in found[f"spec.git.{field}"]


@pytest.mark.parametrize(
    "repo",
    ["https://git.example.com/plant/config.git", "git@github.com:plant/config.git", "/srv/git/c"],
)
def test_ordinary_repository_urls_and_paths_pass(repo: str) -> None:
    assert load(with_changes(spec__git__repo=repo)).spec.git.repo == repo


def test_two_auth_methods_are_refused() -> None:
    ref = {"secretRef": {"name": "s", "key": "k"}}
    found = problems(with_changes(spec__git__auth={"token": ref, "sshKey": ref}))
    assert "exactly one" in found["spec.git.auth"]


def test_dot_dot_that_stays_inside_is_accepted_b28() -> None:
    load(
        with_changes(
            spec__sync__profiles__default__mappings=[{"source": "a/../b", "destination": "x/../y"}]
        )
    )


def test_wrong_api_version_and_kind_are_named() -> None:
    found = problems(with_changes(apiVersion="v1", kind="ConfigMap"))
    assert set(found) == {"apiVersion", "kind"}


def test_bad_patch_glob_is_reported() -> None:
    mapping = {"source": "a", "destination": "b", "patches": [{"file": "[x", "set": {"a": "1"}}]}
    found = problems(with_changes(spec__sync__profiles__default__mappings=[mapping]))
    assert "spec.sync.profiles.default.mappings[0].patches[0].file[0]" in found


def test_vars_from_names_are_checked_and_may_not_repeat_a_var() -> None:
    mapping = [{"source": "a", "destination": "b"}]
    doc = manifest_with(
        {
            "default": {
                "mappings": mapping,
                "vars": {"site": "x"},
                "varsFrom": [
                    {"name": "site", "secretKeyRef": {"name": "s", "key": "k"}},
                    {"name": "bad-name", "secretKeyRef": {"name": "s", "key": ""}},
                ],
            }
        }
    )
    found = problems(doc)
    assert "also set in vars" in found["spec.sync.profiles.default.varsFrom[0].name"]
    assert "identifier" in found["spec.sync.profiles.default.varsFrom[1].name"]
    assert "spec.sync.profiles.default.varsFrom[1].secretKeyRef.key" in found


def test_H13_a_flood_of_template_openers_in_a_path_is_checked_in_linear_time() -> None:
    flood = '"{{"' * 100_000  # the quadratic scan took 2.5 s for 8,000; this would take minutes
    started = time.monotonic()
    assert not list(check_literal_path("f", flood + "/x", what="repository root"))
    assert list(check_literal_path("f", flood + "{{x}}/../..", what="repository root"))
    doc = with_changes(
        spec__sync__profiles__default__mappings=[{"source": '"{{"' * 8000, "destination": "b"}]
    )
    with contextlib.suppress(InvalidInput):
        load(doc)  # the webhook's check: 4 s before
    assert time.monotonic() - started < 5  # a liveness bound; it takes milliseconds


BOUNDS = [
    ("spec__git__ref", "r" * 300_000, "spec.git.ref", "maxLength"),
    ("spec__git__repo", "https://h/" + "r" * 3000, "spec.git.repo", "maxLength"),
    ("spec__polling__interval", "1" * 100 + "s", "spec.polling.interval", "maxLength"),
    (
        "spec__sync__defaults__excludePatterns",
        ["*"] * 257,
        "spec.sync.defaults.excludePatterns",
        "maxItems",
    ),
    (
        "spec__sync__defaults__excludePatterns",
        ["a" * 1025],
        "spec.sync.defaults.excludePatterns[0]",
        "maxLength",
    ),
    (
        "spec__sync__defaults__vars",
        {"site": "v" * 4097},
        "spec.sync.defaults.vars.site",
        "maxLength",
    ),
    ("spec__sync__defaults__vars", {"k" * 129: "v"}, "spec.sync.defaults.vars", "for a key"),
    (
        "spec__sync__profiles__default__mappings",
        [{"source": "s" * 1025, "destination": "b"}],
        "spec.sync.profiles.default.mappings[0].source",
        "maxLength",
    ),
    (
        "spec__sync__profiles__default__mappings",
        [{"source": "a", "destination": "d" * 1025}],
        "spec.sync.profiles.default.mappings[0].destination",
        "maxLength",
    ),
    (
        "spec__sync__profiles__default__mappings",
        [{"source": "a", "destination": "b"}] * 257,
        "spec.sync.profiles.default.mappings",
        "maxItems",
    ),
    (
        "spec__sync__profiles__default__mappings",
        [{"source": "a", "destination": "b", "patches": [{"file": "*", "set": {"a": "1"}}] * 65}],
        "spec.sync.profiles.default.mappings[0].patches",
        "maxItems",
    ),
    (
        "spec__sync__profiles__default__mappings",
        [{"source": "a", "destination": "b", "patches": [{"file": "*" * 1025, "set": {"a": "1"}}]}],
        "spec.sync.profiles.default.mappings[0].patches[0].file",
        "maxLength",
    ),
    (
        "spec__sync__profiles__default__mappings",
        [{"source": "a", "destination": "b", "patches": [{"set": {"a": "v" * 4097}}]}],
        "spec.sync.profiles.default.mappings[0].patches[0].set.a",
        "maxLength",
    ),
    (
        "spec__sync__profiles__default__varsFrom",
        [{"name": "v" * 129, "secretKeyRef": {"name": "s", "key": "k"}}],
        "spec.sync.profiles.default.varsFrom[0].name",
        "maxLength",
    ),
    (
        "spec__sync__profiles__" + "p" * 129,
        {"mappings": [{"source": "a", "destination": "b"}]},
        "spec.sync.profiles",
        "for a key",
    ),
]


@pytest.mark.parametrize(("change", "value", "field", "bound"), BOUNDS)
def test_H10_the_validator_names_the_field_and_the_bound_it_breaks(
    change: str, value: Any, field: str, bound: str
) -> None:
    found = problems(with_changes(**{change: value}))
    assert bound in found[field], found
    assert len(found[field]) < 200  # never the oversized value itself
    assert all(len(f) < 200 for f in found)


def _unbounded(schema: dict[str, Any], where: str) -> Iterator[str]:
    """Every string, list and map in a CRD schema that has no size bound."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return  # e.g. spec.agent.resources: Kubernetes' own type, validated where it is used
    kind = schema.get("type")
    if kind == "string" and "enum" not in schema and "maxLength" not in schema:
        yield where
    if kind == "array":
        if "maxItems" not in schema:
            yield where
        yield from _unbounded(schema["items"], f"{where}[]")
    if kind == "object" and "additionalProperties" in schema:
        rules = " ".join(r["rule"] for r in schema.get("x-kubernetes-validations", []))
        if "maxProperties" not in schema or "size(k)" not in rules:
            yield where
        yield from _unbounded(schema["additionalProperties"], f"{where}.*")
    for name, prop in schema.get("properties", {}).items():
        yield from _unbounded(prop, f"{where}.{name}")


def test_H10_every_string_list_and_map_a_user_writes_has_a_bound_in_the_crd() -> None:
    root = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    missing = set(_unbounded(root["properties"]["spec"], "spec"))
    # Patch `set` keys: a CEL rule there would cost profiles × mappings × patches evaluations,
    # over the API server's budget; the validator bounds them (test above).
    assert missing == {"spec.sync.profiles.*.mappings[].patches[].set"}


@pytest.mark.parametrize("limit", [0, 101, -3])
def test_a_history_limit_outside_1_to_100_is_refused_by_name(limit: int) -> None:
    doc = manifest_with({"default": {"mappings": [{"source": "p", "destination": "projects"}]}})
    doc["spec"]["historyLimit"] = limit
    assert "1-100 entries" in problems(doc)["spec.historyLimit"]
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema["properties"]["spec"]["properties"]["historyLimit"] | {"description": ""} == {
        "type": "integer",
        "format": "int64",
        "minimum": 1,
        "maximum": 100,
        "description": "",
    }
