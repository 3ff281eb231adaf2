"""Secrets never reach text: known values, URL user-info and auth headers are masked."""

from __future__ import annotations

import time

import pytest

from stoker_core.redaction import MASK, redact


@pytest.mark.parametrize(
    ("text", "secrets", "hidden"),
    [
        ("clone failed for token ghp_abcdef123456", ["ghp_abcdef123456"], "ghp_abcdef123456"),
        ("fatal: https://x-access-token:s3cr3t@github.com/o/r.git", [], "s3cr3t"),
        ("https://user:pa55word@git.example/r.git", [], "pa55word"),
        ("Authorization: Bearer abcdefghijklmnop", [], "abcdefghijklmnop"),
        ("X-Ignition-API-Token: keyid:secretvalue", [], "secretvalue"),
        ("token with trailing newline", ["newline\n"], "newline"),
    ],
)
def test_secrets_are_masked(text: str, secrets: list[str], hidden: str) -> None:
    out = redact(text, secrets)
    assert hidden not in out
    assert MASK in out


def test_tiny_secrets_do_not_shred_messages() -> None:
    assert redact("a normal message", ["a"]) == "a normal message"


def test_longer_secret_wins_over_its_prefix() -> None:
    assert redact("value=abcdef", ["abcd", "abcdef"]) == f"value={MASK}"


def test_H13_redaction_takes_time_linear_in_the_text() -> None:
    text = "a" * 200_000 + " https://user:pw@host/x"  # the scheme scan restarted at every letter
    started = time.monotonic()
    assert redact(text).endswith(" https://***@host/x")
    assert time.monotonic() - started < 5  # a liveness bound: 2 s for 40,000 letters before
