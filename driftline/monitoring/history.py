"""Drift-check history in the control table: ``pk=DRIFT#<model>, sk=<window_end ISO>``.

One item per checked window: its verdict, the alarm streak (consecutive drifted windows) and where
the report is. The previous item gives the next window's start and the streak it continues. The item
kind is :class:`~driftline.control_items.DriftCheck` (``HistoryEntry`` here); reads and writes go
through :class:`~driftline.control_store.ControlStore`. Standard library and botocore only.
"""

from __future__ import annotations

from typing import Any

from driftline.control_items import DriftCheck as HistoryEntry
from driftline.control_store import ControlStore

__all__ = ["DriftHistory", "HistoryEntry"]


class DriftHistory:
    """The drift checks of every model in one control table."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        """
        Parameters
        ----------
        table_name:
            The control table.
        client:
            A botocore DynamoDB client; ``aws.client("dynamodb")`` on first use when omitted.
        """
        self.table_name = table_name
        self.store = ControlStore(table_name, client)

    @classmethod
    def from_env(cls, client: Any | None = None) -> DriftHistory:
        from driftline import aws

        return cls(aws.env("CONTROL_TABLE"), client)

    def put(self, e: HistoryEntry) -> None:
        self.store.put_drift_check(e)

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
