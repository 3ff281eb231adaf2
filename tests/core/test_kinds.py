"""Which documents `stoker validate` checks, skips or rejects by their kind, and the periods
the command line takes in the CR's own forms."""

from __future__ import annotations

import pytest

from stoker_core.durations import parse_period
from stoker_core.kinds import Verdict, classify


@pytest.mark.parametrize(
    ("document", "verdict"),
    [
        ({"apiVersion": "stoker.io/v1alpha1", "kind": "GatewaySync"}, Verdict.GATEWAYSYNC),
        ({"apiVersion": "v1", "kind": "Secret"}, Verdict.OTHER),
        ({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway"}, Verdict.OTHER),
        ({"apiVersion": "stoker.io/v1alpha1", "kind": "GatewaySycn"}, Verdict.WRONG),
        ({"apiVersion": "v1", "kind": "gatewaysync"}, Verdict.WRONG),
        ({"apiVersion": "v1", "kind": "GatewaySyncs"}, Verdict.WRONG),
        ({"apiVersion": "stoker.io/v1alpha1", "kind": "GatewayRollout"}, Verdict.WRONG),
        ({"apiVersion": "stoker.io/v1alpha1"}, Verdict.WRONG),
        (["a", "list"], Verdict.WRONG),
    ],
)
def test_a_document_is_a_gatewaysync_another_apis_kind_or_a_mistake(
    document: object, verdict: Verdict
) -> None:
    assert classify(document).verdict is verdict


def test_a_near_miss_names_the_kind_it_is_near() -> None:
    assert classify({"kind": "GatewaySycn"}).problem == (
        '"GatewaySycn" is unknown; did you mean GatewaySync?'
    )


def test_a_very_long_kind_is_judged_without_comparing_it_letter_by_letter() -> None:
    assert classify({"apiVersion": "v1", "kind": "G" * 1_000_000}).verdict is Verdict.OTHER


@pytest.mark.parametrize(
    ("text", "seconds"), [("30", 30.0), ("2.5", 2.5), ("30s", 30.0), ("1m30s", 90.0), ("0", 0.0)]
)
def test_a_period_is_seconds_or_a_go_duration(text: str, seconds: float) -> None:
    assert parse_period(text) == seconds


@pytest.mark.parametrize("text", ["ten", "", "30 s", "-", "1e3"])
def test_a_period_that_is_neither_says_both_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r'seconds \("30"\) or a duration'):
        parse_period(text)
