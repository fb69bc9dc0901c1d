"""Drift-check history in the control table: ``pk=DRIFT#<model>, sk=<window_end ISO>``.

One item per checked window: its verdict, the alarm streak (consecutive drifted windows) and where
the report is. The previous item gives the next window's start and the streak it continues. A window
handed to the scale-out workflow is recorded at once with status ``running`` (it is taken: the next
scheduled window starts after it) and completed by the workflow's reduce step (a verdict, ``incomplete``
or ``failed``); like a window without verdict it neither extends nor breaks a streak. The item
kind is :class:`~driftline.control_items.DriftCheck` (``HistoryEntry`` here); reads and writes go
through :class:`~driftline.control_store.ControlStore`. Standard library and botocore only.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from driftline.contracts import DRIFT_RUNNING
from driftline.control_items import DriftCheck as HistoryEntry
from driftline.control_store import ControlStore

__all__ = [
    "FAILED",
    "INCOMPLETE",
    "LEASE_SECONDS",
    "NO_VERDICT",
    "RUNNING",
    "DriftHistory",
    "HistoryEntry",
    "Lease",
    "streak_after",
]

RUNNING = DRIFT_RUNNING
"""The scale-out workflow is checking the window."""
FAILED = "failed"
"""The window could not be read (Athena's query failed, the execution failed or was stopped): no verdict."""
INCOMPLETE = "incomplete"
"""Some shards did not report: no verdict (never a partial result as complete)."""
NO_VERDICT = frozenset({RUNNING, FAILED, INCOMPLETE})
"""Statuses of scaled-out windows without a verdict: checked again only by hand, never automatically
(an automatic re-check would read the whole large window in-process)."""

COMPLETE_ATTEMPTS = 10
"""Conditional writes :meth:`DriftHistory.complete` tries before giving up (each conflict means a
look-back added late rows in between: a handful at most per check)."""

LEASE_SECONDS = 900.0
"""How long one run holds a model's drift-check lease: Lambda's longest timeout, so a run that died
without releasing it blocks the model's checks no longer than any run could have lasted."""


def streak_after(before: int, ok: bool, performance_degraded: bool, drifted: bool) -> int:
    """The alarm streak of a window following one with streak ``before``.

    A drifted window extends it, a judged window without drift ends it, and a window with too little
    data (not ``ok``, no performance verdict) says nothing either way: it keeps the streak as it was.
    """
    if not (ok or performance_degraded):
        return before
    return before + 1 if drifted else 0


class Lease:
    """A held drift-check lease: its holder id and the late-capture scan mark read with it."""

    def __init__(self, holder: str, late_mark: str) -> None:
        self.holder = holder
        self.late_mark = late_mark


class DriftHistory:
    """The drift checks of every model in one control table."""

    def __init__(self, table_name: str, client: Any | None = None, *, leaseless: bool = False) -> None:
        """
        Parameters
        ----------
        table_name:
            The control table.
        client:
            A botocore DynamoDB client; ``aws.client("dynamodb")`` on first use when omitted.
        leaseless:
            The writer does not hold the model's drift lease (the scale-out reduce step), so a look-back
            may add late rows to an item between its read and its write: :meth:`put` then writes through
            :meth:`complete`, conditional on the ``late_rows`` the entry carries.
        """
        self.table_name = table_name
        self.store = ControlStore(table_name, client)
        self.leaseless = leaseless

    @classmethod
    def from_env(cls, client: Any | None = None) -> DriftHistory:
        from driftline import aws

        return cls(aws.env("CONTROL_TABLE"), client)

    def put(self, e: HistoryEntry) -> None:
        """Write ``e`` (a re-check overwrites its window); without the lease, see :meth:`complete`."""
        if self.leaseless:
            self.complete(e, e.late_rows)
        else:
            self.store.put_drift_check(e)

    def without_lease(self) -> DriftHistory:
        """The same table for a writer that holds no lease (its :meth:`put` never loses late rows)."""
        return DriftHistory(self.table_name, self.store.client, leaseless=True)

    def complete(self, e: HistoryEntry, seen_late_rows: int) -> HistoryEntry:
        """Write ``e`` over the item it was computed from, whose ``late_rows`` read ``seen_late_rows``.

        Writers without the model's lease (the scale-out reduce step) race the look-back, which adds late
        rows to the item meanwhile: the write is conditional on the count read, and on a conflict the
        count is read again, merged into ``e`` and the write retried, so no late row is lost. Returns ``e``
        as written."""
        for _ in range(COMPLETE_ATTEMPTS):
            if self.store.put_drift_check_if_late_rows(e, seen_late_rows):
                return e
            current = self.get(e.model, e.window_end)
            seen_late_rows = current.late_rows if current else 0
            e.late_rows = seen_late_rows
        raise RuntimeError(
            f"{e.model}: the history item of the window ending {e.window_end} kept changing; "
            f"{COMPLETE_ATTEMPTS} conditional writes failed"
        )

    def get(self, model: str, window_end: str) -> HistoryEntry | None:
        """The window ending at ``window_end`` (consistent read)."""
        return self.store.drift_check(model, window_end)

    def claim(self, e: HistoryEntry) -> bool:
        """Record ``e`` (status ``running``) unless a running check of its window is already recorded."""
        return self.store.claim_drift_window(e)

    def fail_running(self, e: HistoryEntry, message: str, checked_at: str) -> bool:
        """Mark the running window ``e`` failed with ``message`` while it still runs under its execution
        (False: it was completed or settled meanwhile)."""
        return self.store.fail_running_drift_check(e.model, e.window_end, e.execution_arn, FAILED, message, checked_at)

    def previous(self, model: str, before: str) -> HistoryEntry | None:
        """The latest check whose window ended before ``before``."""
        found = self.store.drift_checks(model, 1, before=before)
        return found[0] if found else None

    def latest(self, model: str) -> HistoryEntry | None:
        recent = self.list(model, limit=1)
        return recent[0] if recent else None

    def list(self, model: str, limit: int = 24) -> list[HistoryEntry]:
        """Most recent first."""
        return self.store.drift_checks(model, limit)

    @contextmanager
    def lease(self, model: str, *, clock: Any = time.time) -> Iterator[Lease | None]:
        """Hold the model's drift-check lease for the block (None: another run holds it).

        One run at a time per model, so a retried or overlapping schedule never checks a window twice
        nor counts late rows twice; released on the way out, even when the check raised.
        """
        holder = uuid.uuid4().hex
        mark = self.store.try_acquire_drift_lease(model, holder, float(clock()), LEASE_SECONDS)
        if mark is None:
            yield None
            return
        try:
            yield Lease(holder, mark)
        finally:
            self.store.release_drift_lease(model, holder)

    def record_late(self, model: str, lease: Lease, new_mark: str, counts: dict[str, int]) -> bool:
        """Add late rows per window end and move the scan mark to ``new_mark`` in one transaction
        (False: the lease or the mark changed under this run; nothing was added)."""
        ok = self.store.record_late_rows(model, lease.holder, lease.late_mark, new_mark, counts)
        if ok:
            lease.late_mark = new_mark
        return ok

    def set_streak(self, e: HistoryEntry) -> None:
        """Store ``e``'s streak and alarm (recomputed after an earlier window was checked again)."""
        self.store.set_drift_streak(e.model, e.window_end, e.streak, e.alarm)
