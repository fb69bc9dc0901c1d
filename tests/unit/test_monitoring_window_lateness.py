"""Windows with allowed lateness, the lateness settings, and the late-row rules (no AWS)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from driftline.config import (
    CAPTURE_BUFFER_SECONDS,
    LATENESS_MARGIN_SECONDS,
    LOCAL_ALLOWED_LATENESS_SECONDS,
    ConfigError,
    DriftSettings,
    MonitoringSettings,
    from_context,
)
from driftline.monitoring.history import HistoryEntry, streak_after
from driftline.monitoring.lateness import needs_recheck, restreak, scan_mark
from driftline.monitoring.window import MIN_SCHEDULED_WINDOW, NotDueError, WindowError, checked_early, resolve

ROOT = Path(__file__).resolve().parents[2]
CONTEXT: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
NOW = datetime(2026, 11, 26, 12, 30, 5, 123, tzinfo=UTC)
LATE = timedelta(minutes=5)


def test_the_scheduled_window_ends_the_lateness_before_now() -> None:
    w, notes = resolve(None, None, None, NOW, LATE)
    assert w.end == (NOW - LATE).replace(microsecond=0) and w.end - w.start == timedelta(hours=1) and not notes
    w, _ = resolve(None, None, "2026-11-26T11:25:00+00:00", NOW, LATE)
    assert w.start_iso == "2026-11-26T11:25:00+00:00" and w.end_iso == "2026-11-26T12:25:05+00:00"
    assert not checked_early(w, LATE, NOW)


def test_a_window_the_caller_gives_is_honoured_and_flagged_when_early() -> None:
    w, _ = resolve("2026-11-26T11:30:00Z", "2026-11-26T12:30:00Z", None, NOW, LATE)
    assert w.end_iso == "2026-11-26T12:30:00+00:00"  # not moved back by the lateness
    assert checked_early(w, LATE, NOW)
    assert not checked_early(w, LATE, NOW + LATE)


@pytest.mark.parametrize(
    "last_end",
    [
        "2026-11-26T12:25:05+00:00",  # a retried run right after a check: nothing new
        "2026-11-26T12:24:58+00:00",  # seven seconds: a duplicate delivery, not a window
        "2026-11-26T13:00:00+00:00",  # the previous check ended in the future (clock skew)
    ],
)
def test_a_scheduled_window_the_previous_check_covers_is_not_due(last_end: str) -> None:
    with pytest.raises(NotDueError, match="the next window is due after") as err:
        resolve(None, None, last_end, NOW, LATE)
    assert err.value.due_after == err.value.covered_until + MIN_SCHEDULED_WINDOW + LATE


def test_an_explicit_end_before_the_previous_check_is_refused_not_skipped() -> None:
    with pytest.raises(WindowError, match="is not before"):
        resolve(None, "2026-11-26T11:00:00Z", "2026-11-26T12:00:00+00:00", NOW, LATE)


def test_lateness_resolution_model_then_platform_then_default() -> None:
    m = MonitoringSettings()
    assert m.lateness_seconds(DriftSettings(), local=False) == CAPTURE_BUFFER_SECONDS + LATENESS_MARGIN_SECONDS
    assert CAPTURE_BUFFER_SECONDS + LATENESS_MARGIN_SECONDS > CAPTURE_BUFFER_SECONDS  # covers the buffer
    assert m.lateness_seconds(DriftSettings(), local=True) == LOCAL_ALLOWED_LATENESS_SECONDS
    p = MonitoringSettings(allowed_lateness_seconds=900, late_recheck_share=0.2)
    assert p.lateness_seconds(DriftSettings(), local=True) == 900
    own = DriftSettings(allowed_lateness_seconds=0, late_recheck_share=0.0)
    assert p.lateness_seconds(own, local=False) == 0
    assert p.recheck_share(DriftSettings()) == 0.2 and p.recheck_share(own) == 0.0


def _ctx(mutate: Any) -> dict[str, Any]:
    ctx = copy.deepcopy(CONTEXT)
    mutate(ctx["driftline:environments"]["dev"])
    return ctx


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d.update(monitoring={"allowed_lateness_seconds": -1}),
            "'driftline:environments.dev.monitoring.allowed_lateness_seconds': -1 is not allowed: "
            "Input should be greater than or equal to 0",
        ),
        (
            lambda d: d.update(monitoring={"allowed_lateness_seconds": 10**9}),
            "monitoring.allowed_lateness_seconds': 1000000000 is not allowed: Input should be less than or equal "
            "to 86400",
        ),
        (
            lambda d: d.update(monitoring={"allowed_lateness_seconds": "5m"}),
            'monitoring.allowed_lateness_seconds\': "5m" is not allowed',
        ),
        (
            lambda d: d.update(monitoring={"late_recheck_share": 1.5}),
            "monitoring.late_recheck_share': 1.5 is not allowed: Input should be less than or equal to 1",
        ),
        (
            lambda d: d["models"][0]["drift"].update(late_recheck_share=-0.1),
            "models[0].drift.late_recheck_share': -0.1 is not allowed",
        ),
        (
            lambda d: d["models"][0]["drift"].update(allowed_lateness_seconds=-30),
            "models[0].drift.allowed_lateness_seconds': -30 is not allowed",
        ),
        (lambda d: d.update(monitoring={"lateness": 60}), "monitoring.lateness': unknown key"),
    ],
)
def test_hostile_lateness_config_is_one_line(mutate: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_context(_ctx(mutate))
    assert expected in str(err.value) and "\n" not in str(err.value)


def _entry(end_hour: int, **kw: Any) -> HistoryEntry:
    start = datetime(2026, 11, 26, end_hour - 1, tzinfo=UTC).isoformat()
    end = datetime(2026, 11, 26, end_hour, tzinfo=UTC).isoformat()
    return HistoryEntry(model="m", window_start=start, window_end=end, version=1, **{"status": "ok", **kw})


@pytest.mark.parametrize(
    ("n_current", "late_rows", "share", "expected"),
    [
        (1000, 50, 0.05, False),  # exactly the share: not more
        (1000, 51, 0.05, True),
        (1000, 0, 0.0, False),  # nothing late, nothing to do
        (1000, 1, 0.0, True),  # share 0: any late row
        (1000, 1000, 1.0, False),
        (150, 1, 0.5, True),  # below min_window_rows: any late row
    ],
)
def test_when_late_rows_recheck_a_window(n_current: int, late_rows: int, share: float, expected: bool) -> None:
    e = _entry(11, n_current=n_current, late_rows=late_rows)
    assert needs_recheck(e, share, min_rows=200) is expected


def test_streak_rule_is_shared_and_restreak_follows_it() -> None:
    assert streak_after(2, True, False, True) == 3
    assert streak_after(2, True, False, False) == 0
    assert streak_after(2, False, False, False) == 2  # too little data: says nothing
    assert streak_after(0, False, True, True) == 1  # a performance verdict counts without data drift
    chain = [
        _entry(10, drifted=True, streak=1, alarm=False),  # re-checked: now drifted
        _entry(11, drifted=True, streak=1, alarm=False),
        _entry(12, status="insufficient_data", streak=1),
        _entry(13, drifted=False, streak=0),
    ]
    changed = restreak(chain, chain[0].window_end, persistence=2)
    assert [e.window_end for e in changed] == [chain[1].window_end, chain[2].window_end]
    assert [(e.streak, e.alarm) for e in chain] == [(1, False), (2, True), (2, False), (0, False)]
    assert restreak(chain, chain[0].window_end, persistence=2) == []  # idempotent


def test_scan_mark_is_the_last_whole_second_a_read_covered() -> None:
    assert scan_mark(NOW) == datetime(2026, 11, 26, 12, 30, 4, tzinfo=UTC)
