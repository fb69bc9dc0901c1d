"""The platform's event bus: publishing one :class:`~driftline.contracts.EventType` through an injected client.

EventBridge's ``PutEvents`` answers HTTP 200 even when it drops an entry: the failure is only in
``FailedEntryCount`` and the entry's ``ErrorCode``. Every publisher (ingest, the drift check, retrain
requests) must treat that as a failure, or a ``FeatureDataAccepted``/``DriftDetected`` event is lost
while the caller reports success; :meth:`EventBus.publish` checks it once for all of them and raises
:class:`EventRejectedError`.

The client is injected (``client=``; ``aws.client("events")`` is built on first use when omitted).
Standard library only at import: the ingest and drift Lambdas import this.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from driftline.contracts import EventType

__all__ = ["EventBus", "EventRejectedError"]


class EventRejectedError(RuntimeError):
    """EventBridge did not accept the event (``FailedEntryCount`` > 0, or no event id)."""

    def __init__(self, event_type: EventType, bus: str, code: str, message: str) -> None:
        super().__init__(
            f"EventBridge refused the {event_type.detail_type} event on bus {bus!r}: {code} {message}".rstrip()
        )
        self.event_type = event_type
        self.bus = bus
        self.code = code
        self.error_message = message


class EventBus:
    """One EventBridge bus, by name. Cheap to construct; thread-safe as its client is."""

    def __init__(self, name: str, client: Any | None = None) -> None:
        """
        Parameters
        ----------
        name:
            The bus name (``EVENT_BUS_NAME``; ``Platform.event_bus``).
        client:
            A botocore EventBridge client; ``aws.client("events")`` on first use when omitted.
        """
        self.name = name
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from driftline import aws

            self._client = aws.client("events")
        return self._client

    def publish(self, event_type: EventType, detail: Mapping[str, Any], *, time: datetime | None = None) -> str:
        """Put one event of ``event_type`` on the bus.

        Parameters
        ----------
        event_type:
            What is published (source and detail-type, from :mod:`driftline.contracts`).
        detail:
            The event's detail (JSON-serializable).
        time:
            The event's time (default: EventBridge's receipt time).

        Returns
        -------
        str
            The event id EventBridge assigned (what consumers, e.g. the decision log, refer to).

        Raises
        ------
        EventRejectedError
            When EventBridge reports the entry as failed.
        """
        entry = event_type.entry(dict(detail), self.name)
        if time is not None:
            entry["Time"] = time
        resp = self.client.put_events(Entries=[entry])
        got = (resp.get("Entries") or [{}])[0]
        if resp.get("FailedEntryCount") or "EventId" not in got:
            raise EventRejectedError(
                event_type, self.name, str(got.get("ErrorCode") or ""), str(got.get("ErrorMessage") or "")
            )
        return str(got["EventId"])
