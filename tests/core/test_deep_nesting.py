"""JSON nested deeper than Python's stack, from anywhere Stoker reads it, is damaged input with
a message, never a RecursionError: the manifest and its delta log, a resource.json and the scan
lock record (the gateway can write them), the metadata ConfigMap."""

from __future__ import annotations

import pytest

from stoker_core import jsontext, manifestlog, metadata, scanlocks
from stoker_core.drift import normalise_resource
from stoker_core.errors import InvalidInput
from stoker_core.manifest import Manifest

DEEP = "[" * 100_000 + "]" * 100_000


def test_json_too_deep_for_the_stack_is_malformed_json() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        jsontext.loads(DEEP)
    assert jsontext.loads("[[1], {}]") == [[1], {}]


def test_a_manifest_nested_too_deeply_is_damaged_and_named() -> None:
    with pytest.raises(InvalidInput, match=r"damaged manifest.*nested too deeply") as e:
        Manifest.from_json('{"version": 3, "files": ' + DEEP + "}")
    assert e.value.problems[0].path == ".stoker/manifest.json"


def test_a_delta_log_line_nested_too_deeply_is_damaged() -> None:
    base = Manifest(commit="a" * 40, profile="default", generation="g1")
    with pytest.raises(InvalidInput, match="nested too deeply"):
        manifestlog.replay(base, '{"base": "g1", "x": ' + DEEP + "}\n")


def test_a_resource_json_nested_too_deeply_is_not_stoker_s_resource() -> None:
    assert normalise_resource(DEEP.encode()) is None


def test_a_scan_lock_record_nested_too_deeply_owns_nothing() -> None:
    assert scanlocks.parse_records(DEEP) == {}


def test_a_metadata_configmap_nested_too_deeply_is_damaged_and_names_the_key() -> None:
    with pytest.raises(InvalidInput, match="metadata ConfigMap is damaged") as e:
        metadata.decode({"commit": "a" * 40, "gatewaysync": DEEP})
    assert e.value.problems[0].field == "gatewaysync"
