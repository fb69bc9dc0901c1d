"""A re-check handed to the scale-out workflow: what the execution input carries of it, read back by the
reduce step (which then records the window as re-checked and repeats no event or alert), and hostile
values refused with a message."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from driftline.monitoring.history import HistoryEntry
from driftline.monitoring.lateness import Recheck
from driftline.monitoring.scale.dispatch import recheck_of, recheck_state

START, END = "2026-12-01T10:00:00+00:00", "2026-12-01T11:00:00+00:00"
PREP: Any = SimpleNamespace(model="m", window=SimpleNamespace(start_iso=START, end_iso=END))


def test_a_recheck_survives_the_execution_input() -> None:
    prev = HistoryEntry("m", START, END, 3, "ok", alarm=True, rechecks=2, late_rows=40, n_current=500)
    state = recheck_state(Recheck(prev, 40, next_alarmed=True))
    back = recheck_of(state, PREP)
    assert back is not None
    assert (back.late_rows, back.next_alarmed) == (40, True)
    p = back.previous
    assert (p.model, p.window_start, p.window_end, p.version) == ("m", START, END, 3)
    assert (p.status, p.alarm, p.rechecks) == ("ok", True, 2)
    assert recheck_state(None) is None and recheck_of(None, PREP) is None


@pytest.mark.parametrize(
    "state",
    [
        "late",
        {},
        {"late_rows": "40", "next_alarmed": False, "previous": {"status": "ok", "alarm": False, "rechecks": 0}},
        {"late_rows": 40, "next_alarmed": 1, "previous": {"status": "ok", "alarm": False, "rechecks": 0}},
        {"late_rows": 40, "next_alarmed": False, "previous": ["ok"]},
        {"late_rows": 40, "next_alarmed": False, "previous": {"status": "ok", "alarm": False, "rechecks": True}},
    ],
)
def test_a_malformed_recheck_is_refused_with_a_message(state: Any) -> None:
    with pytest.raises(ValueError, match="recheck must be null or"):
        recheck_of(state, PREP)
