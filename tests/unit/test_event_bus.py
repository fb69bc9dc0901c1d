"""The event bus adapter: one PutEvents entry per event, a refused entry is an error (no AWS)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from driftline.contracts import DRIFT_DETECTED, RETRAIN_REQUESTED
from driftline.event_bus import EventBus, EventRejectedError


class _Events:
    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response
        self.entries: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.entries += Entries
        return self.response


def test_publish_returns_the_event_id() -> None:
    events = _Events({"FailedEntryCount": 0, "Entries": [{"EventId": "e-1"}]})
    when = datetime(2024, 1, 1, tzinfo=UTC)
    assert EventBus("bus", events).publish(DRIFT_DETECTED, {"model": "m"}, time=when) == "e-1"
    (entry,) = events.entries
    assert (entry["Source"], entry["DetailType"], entry["EventBusName"]) == (
        DRIFT_DETECTED.source,
        DRIFT_DETECTED.detail_type,
        "bus",
    )
    assert json.loads(entry["Detail"]) == {"model": "m"} and entry["Time"] == when


@pytest.mark.parametrize(
    "response",
    [
        {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}]},
        {"FailedEntryCount": 0, "Entries": [{}]},
    ],
)
def test_a_refused_entry_raises_a_named_error(response: dict[str, Any]) -> None:
    with pytest.raises(EventRejectedError, match="RetrainRequested") as got:
        EventBus("bus", _Events(response)).publish(RETRAIN_REQUESTED, {"model": "m"})
    assert got.value.bus == "bus" and got.value.event_type is RETRAIN_REQUESTED
    assert isinstance(got.value, RuntimeError)  # callers that caught RuntimeError still do


def test_the_default_client_is_built_on_first_publish(monkeypatch: pytest.MonkeyPatch) -> None:
    from driftline import aws

    built: list[str] = []
    events = _Events({"Entries": [{"EventId": "x"}]})

    def client(name: str) -> _Events:
        built.append(name)
        return events

    monkeypatch.setattr(aws, "client", client)
    bus = EventBus("bus")
    assert built == []
    bus.publish(DRIFT_DETECTED, {})
    assert built == ["events"]
