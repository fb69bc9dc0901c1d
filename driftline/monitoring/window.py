"""The time window a scheduled check covers.

Windows are half-open, ``[start, end)``, so consecutive checks never count a capture twice. By
default a check covers everything since the previous check's end (from the control table), or the
last hour on the first run, capped at ``MAX_WINDOW`` so a model that was not checked for weeks
does not make one check read weeks of captures.

Captures reach S3 late (Firehose buffers them), so a scheduled check ends its window
``allowed_lateness`` before now: a window ``[start, end)`` is checked only after ``end + lateness``,
when its captures have landed. A window the caller gives is checked as given, and
:func:`checked_early` says when its lateness had not passed yet. A scheduled window shorter than
:data:`MIN_SCHEDULED_WINDOW` is not due (:class:`NotDueError`): a retried run right after a check would
otherwise check a sliver of seconds (EventBridge delivers a target at least once).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = [
    "DEFAULT_WINDOW",
    "MAX_WINDOW",
    "MIN_SCHEDULED_WINDOW",
    "NotDueError",
    "Window",
    "WindowError",
    "checked_early",
    "iso",
    "parse_time",
    "resolve",
]

DEFAULT_WINDOW = timedelta(hours=1)
MAX_WINDOW = timedelta(days=7)
MIN_SCHEDULED_WINDOW = timedelta(seconds=10)
"""Shorter scheduled windows are duplicate deliveries of one schedule tick (the shortest schedule is a
minute), not windows of their own."""


class WindowError(ValueError):
    """A window the caller gave that cannot be used."""


class NotDueError(Exception):
    """The scheduled window is empty or too short: the previous check already covers up to ``end``."""

    def __init__(self, covered_until: datetime, due_after: datetime) -> None:
        super().__init__(
            f"the previous check covered the captures up to {iso(covered_until)}; the next window is due "
            f"after {iso(due_after)}"
        )
        self.covered_until = covered_until
        self.due_after = due_after


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


def resolve(
    start: str | None,
    end: str | None,
    last_end: str | None,
    now: datetime,
    lateness: timedelta = timedelta(0),
) -> tuple[Window, list[str]]:
    """The window to check, and notes about adjustments made to it.

    Parameters
    ----------
    start, end:
        The caller's window (ISO-8601), or None for the scheduled default.
    last_end:
        Where the previous check ended (the default start).
    now:
        The time of the check.
    lateness:
        How long captures may take to land: the default end is ``now - lateness``.

    Raises
    ------
    WindowError
        A window the caller gave that cannot be used.
    NotDueError
        The scheduled window would start at or after its end, or be shorter than
        :data:`MIN_SCHEDULED_WINDOW`, because the previous check already covers it.
    """
    notes: list[str] = []
    end_ts = parse_time(end, "window_end") if end else (now - lateness).astimezone(UTC).replace(microsecond=0)
    if start:
        start_ts = parse_time(start, "window_start")
    elif last_end:
        start_ts = parse_time(last_end, "previous window end")
        if not end and end_ts - start_ts < MIN_SCHEDULED_WINDOW:
            raise NotDueError(start_ts, start_ts + MIN_SCHEDULED_WINDOW + lateness)
    else:
        start_ts = end_ts - DEFAULT_WINDOW
    if start_ts >= end_ts:
        raise WindowError(f"window_start {iso(start_ts)} is not before window_end {iso(end_ts)}")
    if end_ts - start_ts > MAX_WINDOW:
        if start:
            raise WindowError(
                f"the window {iso(start_ts)} to {iso(end_ts)} is longer than {MAX_WINDOW.days} days; "
                f"check it in smaller windows"
            )
        notes.append(f"the previous check ended at {iso(start_ts)}; only the last {MAX_WINDOW.days} days are checked")
        start_ts = end_ts - MAX_WINDOW
    return Window(start_ts, end_ts), notes


def checked_early(window: Window, lateness: timedelta, now: datetime) -> bool:
    """Whether captures of ``window`` may still land after ``now`` (its end plus lateness is later)."""
    return window.end + lateness > now
