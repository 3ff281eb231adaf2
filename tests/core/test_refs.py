"""Ref resolution over `git ls-remote` output, with the original's ref bugs fixed."""

from __future__ import annotations

import pytest

from stoker_core.errors import InvalidInput
from stoker_core.refs import parse_ls_remote, resolve, same_ref

A, B, C, D, T = ("a" * 40, "b" * 40, "c" * 40, "d" * 40, "e" * 40)
LS_REMOTE = f"""{A}\tHEAD
{A}\trefs/heads/main
{B}\trefs/heads/2.2.3
{T}\trefs/tags/2.2.3
{C}\trefs/tags/2.2.3^{{}}
{D}\trefs/tags/v1.0.0
garbage line
"""
ADVERT = parse_ls_remote(LS_REMOTE)


@pytest.mark.parametrize(
    ("ref", "commit"),
    [
        ("main", A),
        ("HEAD", A),
        ("refs/heads/main", A),
        ("refs/tags/v1.0.0", D),
        ("v1.0.0", D),
        ("f" * 40, "f" * 40),
    ],
)
def test_refs_resolve(ref: str, commit: str) -> None:
    assert resolve(ref, ADVERT) == commit


def test_annotated_tag_resolves_to_the_peeled_commit_and_wins_over_a_branch_r10() -> None:
    assert resolve("2.2.3", ADVERT) == C


def test_fully_qualified_push_refs_resolve_d9() -> None:
    assert resolve("refs/heads/2.2.3", ADVERT) == B


def test_a_leading_v_is_normalised_the_same_way_for_resolution_and_comparison_b3() -> None:
    assert resolve("1.0.0", ADVERT) == D  # the tag is v1.0.0
    assert resolve("v2.2.3", ADVERT) == C  # the tag is 2.2.3
    assert same_ref("v1.2.3", "1.2.3")
    assert same_ref("refs/tags/v1.2.3", "1.2.3")
    assert not same_ref("1.2.4", "1.2.3")


def test_unknown_ref_names_similar_ones() -> None:
    with pytest.raises(InvalidInput, match=r'ref "2\.2" not found.*similar refs: 2\.2\.3'):
        resolve("2.2", ADVERT, where="https://git.example/plant.git")


def test_branch_names_are_not_v_normalised() -> None:
    with pytest.raises(InvalidInput):
        resolve("vmain", ADVERT)
