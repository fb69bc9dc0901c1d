"""The time window a scheduled check covers.

Windows are half-open, ``[start, end)``, so consecutive checks never count a capture twice. By
default a check covers everything since the previous check's end (from the control table), or the
last hour on the first run, capped at ``MAX_WINDOW`` so a model that was not checked for weeks
does not make one check read weeks of captures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DEFAULT_WINDOW = timedelta(hours=1)
MAX_WINDOW = timedelta(days=7)


class WindowError(ValueError):
    """A window the caller gave that cannot be used."""


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @property
    def start_iso(self) -> str:
        return iso(self.start)

    @property
    def end_iso(self) -> str:
        return iso(self.end)

    def contains(self, ts: datetime) -> bool:
        return self.start <= ts < self.end


def iso(ts: datetime) -> str:
    """UTC ISO-8601 with seconds (the control-table sort key and the reports prefix use it)."""
    return ts.astimezone(UTC).isoformat(timespec="seconds")


def parse_time(value: str, name: str) -> datetime:
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError):
        raise WindowError(f"{name} {value!r} is not an ISO-8601 time such as 2026-11-26T01:00:00+00:00") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def resolve(start: str | None, end: str | None, last_end: str | None, now: datetime) -> tuple[Window, list[str]]:
    """The window to check, and notes about adjustments made to it."""
    notes: list[str] = []
    end_ts = parse_time(end, "window_end") if end else now.astimezone(UTC).replace(microsecond=0)
    if start:
        start_ts = parse_time(start, "window_start")
    elif last_end:
        start_ts = parse_time(last_end, "previous window end")
    else:
        start_ts = end_ts - DEFAULT_WINDOW
    if start_ts >= end_ts:
        if start or end:
            raise WindowError(f"window_start {iso(start_ts)} is not before window_end {iso(end_ts)}")
        start_ts = end_ts - DEFAULT_WINDOW  # the previous check ended in the future (clock skew)
    if end_ts - start_ts > MAX_WINDOW:
        if start:
            raise WindowError(
                f"the window {iso(start_ts)} to {iso(end_ts)} is longer than {MAX_WINDOW.days} days; "
                f"check it in smaller windows"
            )
        notes.append(f"the previous check ended at {iso(start_ts)}; only the last {MAX_WINDOW.days} days are checked")
        start_ts = end_ts - MAX_WINDOW
    return Window(start_ts, end_ts), notes
