"""The failures one validation job collects: a row mask and a reported check per failed check.

Each job (a column, the duplicate-key check) fills its own :class:`Failures`, so jobs can run on
threads and be merged in definition order: results do not depend on thread timing.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from driftline.features.schema import FeatureSet
from driftline.features.validation.arrays import take_rows
from driftline.features.validation.result import Check

__all__ = ["Failures"]


class Failures:
    """Failed checks of one job over ``raw``: a row mask per check id and a :class:`Check` per failure."""

    def __init__(self, raw: pa.Table, fs: FeatureSet, sample_rows: int) -> None:
        self.raw = raw
        self.fs = fs
        self.k = sample_rows
        self.n = raw.num_rows
        self.masks: dict[str, np.ndarray] = {}
        self.checks: list[Check] = []

    def sample(self, mask: np.ndarray, columns: list[str]) -> list[dict[str, Any]]:
        """The first failing rows (as many as the report shows): row number and raw values."""
        idx = np.flatnonzero(mask)[: self.k]
        if idx.size == 0:
            return []
        taken = {c: take_rows(self.raw.column(c), idx).to_pylist() for c in columns if c in self.raw.column_names}
        return [{"row": int(r), **{c: _jsonable(v[i]) for c, v in taken.items()}} for i, r in enumerate(idx)]

    def fail(
        self,
        check: str,
        column: str | None,
        mask: np.ndarray,
        message: str,
        hint: str = "",
        *,
        details: dict[str, Any] | None = None,
        sample_columns: list[str] | None = None,
    ) -> None:
        """Record ``check`` on ``column`` for the rows in ``mask`` (nothing when none);
        ``{count}`` in ``message`` becomes the number of rows."""
        count = int(mask.sum())
        if count == 0:
            return
        cid = f"{check}:{column}" if column else check
        self.masks[cid] = self.masks[cid] | mask if cid in self.masks else mask
        cols = sample_columns if sample_columns is not None else ([column] if column else [])
        self.checks.append(
            Check(
                check, column, "error", count, message.format(count=count), hint, self.sample(mask, cols), details or {}
            )
        )

    def child(self) -> Failures:
        """A run collecting one job's failures, so jobs can run on threads and merge in order."""
        return Failures(self.raw, self.fs, self.k)

    def merge(self, other: Failures) -> None:
        """Add a child's failures after this run's own (masks of the same check id are joined)."""
        for cid, mask in other.masks.items():
            self.masks[cid] = self.masks[cid] | mask if cid in self.masks else mask
        self.checks.extend(other.checks)


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)
