"""The Go-template subset: values, trims, comments, literals, index, and refusals."""

from __future__ import annotations

import time

import pytest

from stoker_core.errors import TemplateError
from stoker_core.profiles import pod_ordinal
from stoker_core.templates import TemplateContext, render, render_file

CTX = TemplateContext(
    gateway_name="ignition-blue",
    pod_name="ignition-blue-0",
    pod_ordinal=0,
    namespace="plant",
    cr_name="site",
    ref="main",
    commit="a" * 40,
    labels={"site": "north", "app.kubernetes.io/name": "ignition"},
    vars={"deploymentMode": "prod", "projectName": "public-demo"},
)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{.GatewayName}}", "ignition-blue"),
        ("{{ .Vars.deploymentMode }}", "prod"),
        ("{{.Labels.site}}/x", "north/x"),
        ("{{.PodName}} {{.Namespace}} {{.CRName}} {{.Ref}}", "ignition-blue-0 plant site main"),
        ("{{.Commit}}", "a" * 40),
        ("{{.PodOrdinal}}", "0"),
        ('{{index .Labels "app.kubernetes.io/name"}}', "ignition"),
        ('{{ index .Vars "projectName" }}', "public-demo"),
        ("a \n {{- .Vars.deploymentMode -}} \n b", "aprodb"),
        ("x{{/* a comment */}}y", "xy"),
        ("x {{- /* trimmed comment */ -}} y", "xy"),
        ('{{"{{"}}binding{{"}}"}}', "{{binding}}"),
        ("{{`raw {{ text`}}", "raw {{ text"),
        ("no template here }}", "no template here }}"),
    ],
)
def test_supported_constructs_render(source: str, expected: str) -> None:
    assert render(source, CTX, where="t") == expected


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("{{.Vars.missing}}", 'map has no entry for key "missing"'),
        ("{{.Labels.zone}}", 'map has no entry for key "zone"'),
        ("{{.Unknown}}", "unknown field .Unknown"),
        ('{{printf "%s" .GatewayName}}', 'function "printf" is not supported'),
        ("{{if .GatewayName}}x{{end}}", '"if" is not supported'),
        ("{{range .Vars}}x{{end}}", '"range" is not supported'),
        ("{{.GatewayName | upper}}", "pipelines are not supported"),
        ("{{$x := 1}}", "variables are not supported"),
        ("{{.Vars}}", "is a map"),
        ("{{.GatewayName", "unclosed action"),
        ("{{}}", "empty action"),
    ],
)
def test_other_constructs_are_errors_naming_them(source: str, fragment: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(source, CTX, where="mappings[0].source")
    assert fragment in str(info.value)
    assert "mappings[0].source" in str(info.value)


def test_missing_key_error_names_file() -> None:
    with pytest.raises(TemplateError) as info:
        render_file(b'{"a": "{{.Vars.nope}}"}', CTX, path="config/system.json")
    assert "config/system.json" in str(info.value)
    assert '"nope"' in str(info.value)


def test_content_template_renders_json_values_r18() -> None:
    source = b'{"systemName": "{{.GatewayName}}", "mode": "{{.Vars.deploymentMode}}"}'
    out = render_file(source, CTX, path="c.json")
    assert out == b'{"systemName": "ignition-blue", "mode": "prod"}'


def test_binary_file_under_template_is_refused_r18() -> None:
    with pytest.raises(TemplateError, match="template=true on binary file is not supported"):
        render_file(b"\x00\x01{{.GatewayName}}", CTX, path="img.png")


def test_file_without_braces_is_byte_identical_r18() -> None:
    data = b"\x00binary is fine without braces\xff"
    assert render_file(data, CTX, path="x") is data


def test_oversized_template_input_is_refused() -> None:
    big = b"{{.GatewayName}}" + b"x" * (16 * 1024 * 1024)
    with pytest.raises(TemplateError, match="16 MiB"):
        render_file(big, CTX, path="big.json")


def test_non_utf8_template_input_is_refused() -> None:
    with pytest.raises(TemplateError, match="not UTF-8"):
        render_file(b"{{.GatewayName}}\xff", CTX, path="x.txt")


@pytest.mark.parametrize(
    ("pod", "labels", "expected"),
    [
        ("pod-99", {"apps.kubernetes.io/pod-index": "3"}, 3),
        ("my-gateway-2", {}, 2),
        ("my-deployment-abc12-xyz99", {}, 0),
        ("my-gateway-5", {"apps.kubernetes.io/pod-index": "not-a-number"}, 5),
    ],
)
def test_pod_ordinal_rules_r16(pod: str, labels: dict[str, str], expected: int) -> None:
    assert pod_ordinal(pod, labels) == expected


def test_ordinal_in_a_vars_template_r16() -> None:
    ctx = TemplateContext(gateway_name="g", pod_ordinal=0, vars={"projectName": "public-demo"})
    assert render("{{.Vars.projectName}}-{{.PodOrdinal}}", ctx, where="t") == "public-demo-0"


FLOOD = '"{{"' * 100_000  # the scan was quadratic: 8,000 of these took 20 s, this would take hours


def test_H13_a_flood_of_unclosed_actions_is_refused_in_linear_time() -> None:
    started = time.monotonic()
    with pytest.raises(TemplateError, match="unterminated string"):
        render_file(FLOOD.encode(), CTX, path="views/x.json")
    with pytest.raises(TemplateError, match="unclosed action"):
        render(FLOOD.replace('"', ""), CTX, where="mappings[0].source")
    assert time.monotonic() - started < 5  # a liveness bound; it takes milliseconds


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ('{{"unterminated}}', "unterminated string"),
        ('{{" {{.GatewayName}}', "unterminated string"),
        ("{{`raw}}", "unterminated raw string"),
        ("{{.GatewayName}} {{ x", "unclosed action"),
    ],
)
def test_an_action_that_does_not_close_is_an_error_even_when_a_later_one_does(
    source: str, fragment: str
) -> None:
    with pytest.raises(TemplateError, match=fragment):
        render(source, CTX, where="t")
