"""When the controller passes over a GatewaySync again: polling interval or growing backoff."""

from __future__ import annotations

import pytest

from stoker_core.model import Polling
from stoker_core.requeue import Failures, next_pass, record


def delays(passes: list[tuple[bool, str | None]], polling: Polling | None = None) -> list[float]:
    polling = polling or Polling()
    failures, out = Failures(), []
    for failed, request in passes:
        failures = record(failures, failed=failed, request=request)
        delay = next_pass(failures, polling, 0.5)  # jitter 0.5: the unjittered delay
        assert delay is not None
        out.append(delay)
    return out


def test_B4_backoff_grows_while_the_same_requested_ref_keeps_failing() -> None:
    bad = "v9.9.9"
    assert delays([(True, bad)] * 6) == [30, 60, 120, 240, 300, 300]


def test_a_new_requested_ref_gets_a_prompt_first_try_then_backs_off_again() -> None:
    assert delays([(True, "v1"), (True, "v1"), (True, "v2"), (True, "v2")]) == [30, 60, 30, 60]


def test_a_success_resets_the_backoff_to_the_cr_s_own_polling_interval() -> None:
    polling = Polling(interval="2m")
    assert delays([(True, None), (True, None), (False, None), (True, None)], polling) == [
        30,
        60,
        120,
        30,
    ]
    assert delays([(False, "v1")], polling) == [120]


@pytest.mark.parametrize(
    ("polling", "expected"),
    [
        (Polling(), 60.0),
        (Polling(interval="5s"), 5.0),
        (Polling(interval="1h"), 3600.0),
        (Polling(enabled=False), None),
    ],
)
def test_each_cr_is_passed_over_at_its_own_polling_interval(
    polling: Polling, expected: float | None
) -> None:
    assert next_pass(Failures(), polling, 0.5) == expected
