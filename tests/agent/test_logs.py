"""Log output is structured and never carries a registered secret or a credential URL."""

from __future__ import annotations

import io
import json
import logging

import pytest

from stoker_agent import logs


@pytest.fixture(autouse=True)
def restore_root_logger() -> object:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield None
    root.handlers[:], root.level = saved[0], saved[1]


def test_json_lines_carry_fields_and_mask_secrets() -> None:
    stream = io.StringIO()
    logs.setup("info", "json", stream)
    logs.register_secret("tok-1234567890")
    logging.getLogger("stoker.test").info(
        "fetch https://u:tok-1234567890@git.example/r.git failed", extra={"commit": "abc"}
    )
    record = json.loads(stream.getvalue())
    assert record["level"] == "info"
    assert record["logger"] == "stoker.test"
    assert record["commit"] == "abc"
    assert "tok-1234567890" not in stream.getvalue()


def test_text_format_masks_exceptions_too() -> None:
    stream = io.StringIO()
    logs.setup("debug", "text", stream)
    logs.register_secret("hunter2-secret")
    try:
        raise RuntimeError("auth with hunter2-secret refused")
    except RuntimeError:
        logging.getLogger("stoker.test").exception("sync failed")
    out = stream.getvalue()
    assert "sync failed" in out
    assert "RuntimeError" in out
    assert "hunter2-secret" not in out
