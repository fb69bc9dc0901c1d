"""Which capture prefixes a bake window reads, and timestamp parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from driftline.contracts import hour_prefixes
from driftline.contracts import record_time as parse_ts


def test_hour_prefixes_cover_the_window_inclusively() -> None:
    start = datetime(2026, 11, 26, 22, 59, 30, tzinfo=UTC)
    end = datetime(2026, 11, 27, 0, 0, 5, tzinfo=UTC)
    assert hour_prefixes("captures", "m", start, end) == [
        "captures/model=m/2026/11/26/22/",
        "captures/model=m/2026/11/26/23/",
        "captures/model=m/2026/11/27/00/",
    ]
    assert hour_prefixes("feedback", "m", end, start) == []


def test_hour_prefixes_use_utc() -> None:
    cet = timezone(timedelta(hours=1))
    start = datetime(2026, 11, 27, 0, 30, tzinfo=cet)  # 23:30 UTC the day before
    assert hour_prefixes("captures", "m", start, start) == ["captures/model=m/2026/11/26/23/"]


def test_parse_ts() -> None:
    assert parse_ts("2026-11-26T01:02:03.123456+00:00") == datetime(2026, 11, 26, 1, 2, 3, 123456, tzinfo=UTC)
    assert parse_ts("2026-11-26T01:02:03").tzinfo == UTC  # type: ignore[union-attr]
    assert parse_ts("yesterday") is None and parse_ts(None) is None and parse_ts(5) is None
