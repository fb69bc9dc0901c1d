"""Late captures: rows that reached S3 after the check of the window their ``ts`` lies in.

A scheduled window ends ``allowed_lateness`` before its check (:mod:`driftline.monitoring.window`), yet a
capture can still land later (Firehose retries, a stalled stream). Nothing would ever read it: the
next window starts where the checked one ended. So every check first looks back:

- each checked window's history item records ``listed_until``, the last second of S3 ``LastModified``
  its read covered (the second before its listing started, so an object dated in that second is
  counted both as read and as late rather than neither);
- the model's drift lease item keeps a scan mark: the last second a previous look-back covered;
- a look-back lists the hour prefixes of the checked windows that ended within :data:`LATE_HORIZON`
  (at most :data:`LATE_WINDOWS` of them) and opens only the objects dated after
  ``max(scan mark, listed_until)`` and up to its own mark: the objects delivered since the previous
  run, so the captures of a window are read at most twice (by its check and by the next look-back);
- rows of the champion role and the window's version whose ``ts`` falls in a checked window are added
  to that window's ``late_rows`` and the scan mark moves, in one conditional transaction, so a retried
  run never counts the same objects twice;
- a window whose late rows exceed ``late_recheck_share`` of the rows it was checked with (any late row
  when it had fewer than ``min_window_rows``) is checked again by the same check code, when the
  champion is still the version it was checked for. Streaks of the windows after it are recomputed;
  an alert is sent only when the re-check starts an alarm that no neighbouring window had raised;
- a scaled-out window without verdict (``running``, ``failed``, ``incomplete``) carries the dispatch's
  ``listed_until``, so its late rows are counted like any other's, but it is never re-checked
  automatically: an in-process re-check would read the whole large window. A running window's late rows
  are carried into the item its reduce step writes; a failed or incomplete one is checked again by hand.

Runs are serialized per model by the drift lease (:meth:`DriftHistory.lease`): two overlapping runs
never check a window twice nor count late rows twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from driftline.captures_store import CapturesStore, ReadStats
from driftline.contracts import record_time
from driftline.monitoring.history import NO_VERDICT, RUNNING, DriftHistory, HistoryEntry, Lease, streak_after
from driftline.monitoring.window import iso, parse_time

__all__ = [
    "LATE_HORIZON",
    "LATE_WINDOWS",
    "MAX_LATE_ROWS",
    "LateReport",
    "LateWindow",
    "Recheck",
    "count_late",
    "look_back",
    "needs_recheck",
    "restreak",
    "restreak_after",
    "scan_mark",
]

log = logging.getLogger(__name__)

LATE_WINDOWS = 24
"""Checked windows a look-back covers at most (the newest ones)."""
LATE_HORIZON = timedelta(hours=24)
"""Windows that ended longer ago than this are not looked at again (Firehose retries delivery for at most
a day), and hour prefixes are listed at most this far past the newest window's end."""
MAX_LATE_ROWS = 1_000_000
"""Late rows one look-back counts at most (the count is then a lower bound and says so)."""


def scan_mark(wall: datetime) -> datetime:
    """The last whole second of S3 ``LastModified`` a read starting at ``wall`` is sure to have covered
    (S3 dates objects to the second; an object dated in the current second may land after the listing)."""
    return wall.astimezone(UTC).replace(microsecond=0) - timedelta(seconds=1)


@dataclass(frozen=True)
class Recheck:
    """Why a window is checked again: its previous history item and the late rows that triggered it."""

    previous: HistoryEntry
    late_rows: int
    next_alarmed: bool
    """The window after it had raised an alarm already (its alert covers this episode)."""


@dataclass
class LateWindow:
    """One checked window in which a look-back found late rows."""

    window_start: str
    window_end: str
    late_rows: int
    """Found by this look-back."""
    late_rows_since_check: int
    """Arrived since the window's latest check (this look-back's included)."""
    rechecked: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_start": self.window_start,
            "window_end": self.window_end,
            "late_rows": self.late_rows,
            "late_rows_since_check": self.late_rows_since_check,
            "rechecked": self.rechecked,
            **({"note": self.note} if self.note else {}),
        }


@dataclass
class LateReport:
    """What one look-back found (the result JSON's ``late``)."""

    windows: list[LateWindow] = field(default_factory=list)
    windows_scanned: int = 0
    objects_read: int = 0
    truncated: bool = False
    notes: list[str] = field(default_factory=list)
    raised: list[HistoryEntry] = field(default_factory=list)
    """Later windows whose alarm a re-check turned on (their streak now reaches ``persistence_windows``)."""
    starts_alarm: bool = False
    """One of ``raised`` follows a window without alarm: nobody was alerted about this alarm yet."""

    @property
    def rows(self) -> int:
        return sum(w.late_rows for w in self.windows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "windows_scanned": self.windows_scanned,
            "objects_read": self.objects_read,
            "truncated": self.truncated,
            "windows": [w.to_dict() for w in self.windows],
            "notes": list(self.notes),
        }


def needs_recheck(e: HistoryEntry, share: float, min_rows: int) -> bool:
    """Whether ``e``'s late rows call for checking it again (more than ``share`` of its rows, or any
    late row when it had fewer than ``min_rows``). Never for a scaled-out window without verdict."""
    if e.late_rows <= 0 or e.status in NO_VERDICT:
        return False
    return e.n_current < min_rows or e.late_rows > share * e.n_current


def count_late(
    store: CapturesStore,
    model: str,
    entries: list[HistoryEntry],
    mark: str,
    until: datetime,
    now: datetime,
    stats: ReadStats,
) -> dict[str, int]:
    """Late rows per window end among ``entries``: rows of objects dated in ``(max(mark, listed_until), until]``.

    Parameters
    ----------
    store, model:
        The captures bucket and the model.
    entries:
        The checked windows to look at (ones without ``listed_until`` are skipped).
    mark:
        The previous look-back's scan mark ("" before the first).
    until:
        This look-back's scan mark.
    now:
        The time of the check (bounds the hours listed together with :data:`LATE_HORIZON`).
    stats:
        Updated as objects are read.

    Returns
    -------
    dict[str, int]
        Late rows by window end (windows without late rows left out).
    """
    scanned = [e for e in entries if e.listed_until]
    if not scanned:
        return {}
    base = (
        parse_time(mark, "late scan mark") if mark else max(parse_time(e.listed_until, "listed_until") for e in scanned)
    )
    groups: dict[datetime, list[HistoryEntry]] = {}
    for e in scanned:
        lower = max(base, parse_time(e.listed_until, "listed_until"))
        if lower < until:
            groups.setdefault(lower, []).append(e)
    counts: dict[str, int] = {}
    for lower, group in sorted(groups.items()):
        spans = sorted(
            (parse_time(e.window_start, "window_start"), parse_time(e.window_end, "window_end"), e) for e in group
        )
        first, last = spans[0][0], max(s[1] for s in spans)
        rows = store.captures(
            model,
            first,
            last,
            stats=stats,
            max_records=MAX_LATE_ROWS,
            include_end=False,
            list_until=min(max(now, until), last + LATE_HORIZON),
            keep=_champion_of({e.version for e in group}),
            modified=(lower, until),
        )
        for row in rows:
            ts = record_time(row.get("ts"))
            for start, end, e in spans:
                if ts is not None and start <= ts < end and row.get("version") == e.version:
                    counts[e.window_end] = counts.get(e.window_end, 0) + 1
                    break
    return counts


def _champion_of(versions: set[int | None]) -> Callable[[Mapping[str, Any]], bool]:
    """The check's own filter: the champion role's rows of the versions the windows were checked for."""
    return lambda rec: rec.get("role", "champion") == "champion" and rec.get("version") in versions


def restreak(entries: list[HistoryEntry], since: str, persistence: int) -> list[HistoryEntry]:
    """Recompute streaks and alarms of the windows after ``since`` (oldest first) from the one before.

    Parameters
    ----------
    entries:
        Checked windows, oldest first, including the re-checked one ending at ``since``.
    since:
        The window end of the earliest re-checked window.
    persistence:
        Drifted windows in a row an alarm needs.

    Returns
    -------
    list[HistoryEntry]
        The entries whose streak or alarm changed (updated in place).
    """
    changed = []
    before: HistoryEntry | None = None
    for e in entries:
        if e.window_end > since and before is not None:
            judged = e.performance_degraded or "estimated_performance" in e.reasons  # a verdict without drift rows
            streak = streak_after(before.streak, e.status == "ok", judged, e.drifted)
            alarm = e.drifted and streak >= persistence
            if (streak, alarm) != (e.streak, e.alarm):
                e.streak, e.alarm = streak, alarm
                changed.append(e)
        before = e
    return changed


def _no_verdict_note(e: HistoryEntry) -> str:
    if e.status == RUNNING:
        return "not re-checked: the scale-out workflow is still checking it (its late rows are kept)"
    if e.status in NO_VERDICT:
        return f"not re-checked: its scale-out check ended {e.status}; check it again by hand"
    return ""


def restreak_after(
    history: DriftHistory, model: str, oldest: str, since: str, persistence: int
) -> tuple[list[HistoryEntry], bool]:
    """Recompute and store the streaks after the window ending at ``since`` (windows from ``oldest`` on).

    Returns
    -------
    tuple[list[HistoryEntry], bool]
        The windows whose alarm turned on, and whether one of them follows a window without alarm
        (nobody was alerted about it yet): :attr:`LateReport.raised` and :attr:`LateReport.starts_alarm`.
    """
    fresh = sorted((e for e in history.list(model, LATE_WINDOWS) if e.window_end >= oldest), key=lambda e: e.window_end)
    was = {e.window_end: e.alarm for e in fresh}
    raised = []
    for e in restreak(fresh, since, persistence):
        history.set_streak(e)
        if e.alarm and not was[e.window_end]:
            raised.append(e)
    before = {b.window_end: a for a, b in pairwise(fresh)}
    return raised, any(e.window_end in before and not before[e.window_end].alarm for e in raised)


def look_back(
    history: DriftHistory,
    store: CapturesStore,
    model: str,
    lease: Lease,
    *,
    now: datetime,
    wall: datetime,
    share: float,
    min_rows: int,
    persistence: int,
    recheck: Callable[[Recheck], str],
) -> LateReport:
    """Count late rows of the recently checked windows, record them, and re-check the windows they call for.

    Parameters
    ----------
    history, store, model:
        The control table, the captures bucket and the model.
    lease:
        The model's drift lease, held by this run (its scan mark is read and moved).
    now:
        The time of the check (which windows are recent).
    wall:
        The clock S3 dates objects with (this look-back's scan mark).
    share, min_rows, persistence:
        ``late_recheck_share``, ``min_window_rows`` and ``persistence_windows`` of the model.
    recheck:
        Checks one window again; returns "" when it did, else why not (a note).

    Returns
    -------
    LateReport
        The windows with late rows and what was done about them.
    """
    report = LateReport()
    recent = [
        e for e in history.list(model, LATE_WINDOWS) if parse_time(e.window_end, "window_end") >= now - LATE_HORIZON
    ]
    until = scan_mark(wall)
    stats = ReadStats()
    counts = count_late(store, model, recent, lease.late_mark, until, now, stats)
    report.windows_scanned = sum(1 for e in recent if e.listed_until)
    report.objects_read, report.truncated = stats.n_objects, stats.truncated
    if report.truncated:
        report.notes.append(f"the look-back for late captures stopped at {MAX_LATE_ROWS:,} rows; more may be late")
    if not history.record_late(model, lease, iso(until), counts):
        report.notes.append("late captures were not counted: another run moved the scan mark (it counts them)")
        return report
    by_end = {e.window_end: e for e in recent}
    for e in sorted(recent, key=lambda e: e.window_end):
        n = counts.get(e.window_end, 0)
        e.late_rows += n
        # a window still due from an earlier run (its re-check failed, or another version) is listed again
        if n or needs_recheck(e, share, min_rows):
            report.windows.append(LateWindow(e.window_start, e.window_end, n, e.late_rows, note=_no_verdict_note(e)))
    due = [w for w in report.windows if needs_recheck(by_end[w.window_end], share, min_rows)]
    if not due:
        return report
    ordered = sorted(recent, key=lambda e: e.window_end)
    for w in due:
        later = [e for e in ordered if e.window_end > w.window_end]
        why_not = recheck(Recheck(by_end[w.window_end], w.late_rows_since_check, bool(later and later[0].alarm)))
        w.rechecked, w.note = not why_not, why_not
    first = min((w.window_end for w in due if w.rechecked), default=None)
    if first is not None:
        report.raised, report.starts_alarm = restreak_after(history, model, ordered[0].window_end, first, persistence)
    log.info(
        "%s: %d late rows in %d windows, %d re-checked",
        model,
        report.rows,
        len(report.windows),
        sum(w.rechecked for w in due),
    )
    return report
