"""Repeated events are counted on the first one within a window, like client-go's recorder."""

from __future__ import annotations

from typing import Any

from stoker_k8s.events import EventAggregator, gatewaysync_event


def body(message: str = "pod ignition-* has no data volume") -> dict[str, Any]:
    return gatewaysync_event(
        "plant",
        "site",
        "uid-1",
        reason="NoDataVolume",
        message=message,
        warning=True,
        component="t",
    )


def test_repeats_within_the_window_raise_the_count_and_later_ones_start_again() -> None:
    created: list[str] = []
    patched: list[tuple[str, dict[str, Any]]] = []
    now = [0.0]

    def create(namespace: str, event: dict[str, Any]) -> str:
        created.append(event["message"])
        return f"site.{len(created)}"

    def patch(namespace: str, name: str, changes: dict[str, Any]) -> None:
        patched.append((name, changes))

    events = EventAggregator(create, patch, window=600, clock=lambda: now[0])
    events.record("plant", body())
    now[0] = 10
    events.record("plant", body())
    events.record("plant", body("another message"))
    now[0] = 700  # the first one's window is over
    events.record("plant", body())
    assert created == [body()["message"], "another message", body()["message"]]
    assert [(name, c["count"]) for name, c in patched] == [("site.1", 2)]


def test_a_repeat_whose_event_is_gone_creates_a_new_one() -> None:
    created: list[str] = []

    def create(namespace: str, event: dict[str, Any]) -> str:
        created.append(event["reason"])
        return "site.1"

    def patch(namespace: str, name: str, changes: dict[str, Any]) -> None:
        raise LookupError("404: the event expired")

    events = EventAggregator(create, patch)
    events.record("plant", body())
    events.record("plant", body())
    assert created == ["NoDataVolume", "NoDataVolume"]
