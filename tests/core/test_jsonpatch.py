"""sjson-style JSON patches: only the addressed value changes; every other byte is kept."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stoker_core.errors import PatchError
from stoker_core.jsonpatch import apply_patch, encode_value, split_path


def patch(doc: str, **settings: str) -> str:
    return apply_patch(doc.encode(), settings, path="f.json").decode()


def test_string_value_replaces_only_that_value_r19() -> None:
    doc = '{"SystemName":"old","enabled":true}'
    assert patch(doc, SystemName="gateway-1") == '{"SystemName":"gateway-1","enabled":true}'


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("true", "true"),
        ("9090", "9090"),
        ("3.140", "3.140"),
        ("12345678901234567890", "12345678901234567890"),
        ("null", "null"),
        ('"quoted"', '"quoted"'),
        ("plain text", '"plain text"'),
        ('{"b":1,"a":[1,2]}', '{"a":[1,2],"b":1}'),
        ("NaN", '"NaN"'),
        ("Infinity", '"Infinity"'),
    ],
)
def test_values_are_decoded_as_json_when_they_parse_r19(raw: str, stored: str) -> None:
    assert encode_value(raw) == stored


def test_nested_array_path_is_set_r19() -> None:
    doc = '{"networkInterfaces":[{"address":"a"},{"address":"b"}]}'
    out = patch(doc, **{"networkInterfaces.1.address": "10.0.0.2"})
    assert json.loads(out)["networkInterfaces"] == [{"address": "a"}, {"address": "10.0.0.2"}]


def test_formatting_and_key_order_are_kept() -> None:
    doc = '{\n  "z": 1,\n  "port":   8088 ,\n  "a": {"deep": [1, 2]}\n}\n'
    out = patch(doc, port="9090")
    assert out == '{\n  "z": 1,\n  "port":   9090 ,\n  "a": {"deep": [1, 2]}\n}\n'


def test_new_keys_and_intermediate_objects_are_created() -> None:
    out = patch('{"a": 1}', **{"b.c": "x"})
    assert out == '{"a": 1,"b":{"c":"x"}}'


def test_minus_one_appends_and_indexes_past_the_end_pad_with_null() -> None:
    assert patch('{"l": [1]}', **{"l.-1": "2"}) == '{"l": [1,2]}'
    assert patch('{"l": []}', **{"l.2": "x"}) == '{"l": [null,null,"x"]}'


def test_escaped_dot_addresses_a_key_containing_a_dot() -> None:
    assert split_path("a\\.b.c") == ["a.b", "c"]
    assert json.loads(patch('{"a.b": 1}', **{"a\\.b": "2"})) == {"a.b": 2}


def test_set_keys_are_applied_in_sorted_order_b23() -> None:
    # "a" replaces the object, then "a.b" edits inside the new value: order decides the outcome.
    first = apply_patch(b"{}", {"a.b": "2", "a": '{"b":1,"c":3}'}, path="f")
    second = apply_patch(b"{}", {"a": '{"b":1,"c":3}', "a.b": "2"}, path="f")
    assert first == second == b'{"a":{"b":2,"c":3}}'


def test_invalid_json_file_is_an_error_naming_it_r19() -> None:
    with pytest.raises(PatchError, match="file is not valid JSON") as info:
        apply_patch(b"not json", {"a": "1"}, path="config/x.json")
    assert "config/x.json" in str(info.value)


def test_setting_inside_a_scalar_is_an_error() -> None:
    with pytest.raises(PatchError, match="inside a number; only objects and arrays"):
        apply_patch(b'{"a": 1}', {"a.b": "2"}, path="f")


def test_array_step_needs_a_number() -> None:
    with pytest.raises(PatchError, match="addresses an array"):
        apply_patch(b'{"a": [1]}', {"a.x": "2"}, path="f")


def test_utf8_bom_is_kept() -> None:
    out = apply_patch(b'\xef\xbb\xbf{"a": 1}', {"a": "2"}, path="f")
    assert out == b'\xef\xbb\xbf{"a": 2}'


json_scalars = st.one_of(st.integers(), st.booleans(), st.none(), st.text(max_size=8))
json_docs = st.dictionaries(
    st.text(alphabet="abcxyz", min_size=1, max_size=4),
    st.one_of(json_scalars, st.lists(json_scalars, max_size=3)),
    max_size=5,
)


@given(
    doc=json_docs,
    key=st.text(alphabet="abcxyz", min_size=1, max_size=4),
    value=st.text(max_size=10),
)
def test_same_source_and_inputs_always_give_the_same_bytes(
    doc: dict[str, object], key: str, value: str
) -> None:
    source = json.dumps(doc, indent=2).encode()
    once = apply_patch(source, {key: value}, path="f")
    again = apply_patch(source, {key: value}, path="f")
    assert once == again
    result = json.loads(once)
    assert result[key] == json.loads(encode_value(value))
    assert {k: v for k, v in result.items() if k != key} == {
        k: v for k, v in doc.items() if k != key
    }
