"""The outcome of a validation run: failed checks, row masks, accepted and rejected tables, report.

:class:`ValidationResult` keeps the masks, so the same run yields the curated table, the rejected
rows (with their row number and the names of the checks they failed) and a JSON-serializable report
listing every failed check with counts and sample rows.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.features.arrow_columns import is_text_dictionary
from driftline.features.schema import FeatureSet
from driftline.features.tables import curated_schema
from driftline.features.validation.arrays import decode_text, take_rows
from driftline.features.validation.parallel import thread_count

__all__ = ["ROW_NUMBERING", "Check", "Severity", "Status", "ValidationResult"]

Severity = Literal["error", "warning"]
Status = Literal["accepted", "partial", "rejected"]

ROW_NUMBERING = "row = 0-based index of the data row in the file (in a CSV file, line = row + 2)"


@dataclass
class Check:
    """One failed check on one column (or the file): what, how many rows, examples, how to fix."""

    check: str
    column: str | None
    severity: Severity
    failed_rows: int
    message: str
    hint: str = ""
    sample: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "check": self.check,
            "column": self.column,
            "severity": self.severity,
            "failed_rows": self.failed_rows,
            "message": self.message,
        }
        if self.hint:
            out["hint"] = self.hint
        if self.sample:
            out["sample"] = self.sample
        if self.details:
            out["details"] = self.details
        return out


@dataclass
class ValidationResult:
    """Outcome of :func:`validate`: the typed table, the row masks and the failed checks."""

    feature_set: FeatureSet
    raw: pa.Table
    typed: pa.Table | None
    """All rows in the curated schema's column order and values (cells that failed coercion are
    null); None when the file as a whole is unusable (missing columns). Categorical columns read
    as dictionaries stay dictionary-encoded here; :meth:`accepted_table` decodes them."""
    masks: dict[str, np.ndarray]
    """check id (``check:column``) -> rows that failed it (error checks only)."""
    checks: list[Check]
    accepted: np.ndarray
    """Rows that passed every error check (before the partial-failure policy)."""

    @property
    def rows_total(self) -> int:
        return int(self.raw.num_rows)

    @property
    def file_error(self) -> bool:
        return self.typed is None

    def accepted_mask(self, policy: str | None = None) -> np.ndarray:
        """Accepted rows under ``policy`` (default: the feature set's ``ingest.on_partial_failure``)."""
        policy = policy or self.feature_set.ingest.on_partial_failure
        if policy == "reject_file" and not self.accepted.all():
            return np.zeros(self.rows_total, dtype=bool)
        return self.accepted

    def status(self, policy: str | None = None) -> Status:
        n = int(self.accepted_mask(policy).sum())
        return "accepted" if n == self.rows_total else "rejected" if n == 0 else "partial"

    def accepted_table(self, policy: str | None = None, *, decode: bool = True) -> pa.Table:
        """Accepted rows in the curated schema (non-null keys, typed values).

        ``decode=False`` leaves categorical columns that were read dictionary-encoded as they are
        (same values, ``dictionary<string>`` type): :func:`~driftline.features.curated.curated_files`
        writes them from their codes as plain text, which saves decoding here and hashing every
        value in the Parquet writer.
        """
        schema = curated_schema(self.feature_set)
        if self.typed is None:
            return schema.empty_table()
        accepted = self.accepted_mask(policy)
        mask = None if accepted.all() else pa.array(accepted)

        def keep(col: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
            kept = col if mask is None else col.filter(mask)
            return decode_text(kept) if decode else kept

        columns = self.typed.columns
        workers = 1 if mask is None else thread_count(self.rows_total, len(columns))
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:  # Arrow's filter releases the GIL
                kept = list(pool.map(keep, columns))
        else:
            kept = [keep(c) for c in columns]
        fields = [f.with_type(c.type) for f, c in zip(schema, kept, strict=True)]
        return pa.Table.from_arrays(kept, schema=pa.schema(fields, metadata=schema.metadata))

    def row_errors(self, rows: np.ndarray | None = None) -> pa.Array:
        """The comma-separated ids of the error checks each row failed ('' when none).

        ``rows`` (row numbers) limits the work to those rows, e.g. the rejected ones.
        """
        n = self.rows_total if rows is None else len(rows)
        pieces = [pc.if_else(pa.array(m if rows is None else m[rows]), f"{cid},", "") for cid, m in self.masks.items()]
        if not pieces:
            return pa.array(np.full(n, "", dtype=object), pa.string())
        out = pieces[0] if len(pieces) == 1 else pc.binary_join_element_wise(*pieces, "")
        return pc.utf8_rtrim(out, ",")

    def rejected_table(self, policy: str | None = None) -> pa.Table:
        """Rejected rows exactly as read, plus ``_row`` (row number) and ``_errors`` (failed checks)."""
        rows = np.flatnonzero(~self.accepted_mask(policy))
        errors = self.row_errors(rows)
        errors = pc.if_else(pc.equal(errors, ""), "rejected_by_policy:reject_file", errors)
        idx = pa.array(rows, pa.int64())
        # categorical columns that the reader kept dictionary-encoded go out as the text they are
        categorical = {f.name for f in self.feature_set.features if f.type == "categorical"}
        columns, fields = [], []
        for raw_field, col in zip(self.raw.schema, self.raw.columns, strict=True):
            kept = take_rows(col, rows)
            if raw_field.name in categorical and is_text_dictionary(kept.type):
                kept = decode_text(kept, normalize=False)
            columns.append(kept)
            fields.append(raw_field.with_type(kept.type))
        taken = pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=self.raw.schema.metadata))
        return taken.append_column("_row", idx).append_column("_errors", errors)

    def report(self, policy: str | None = None, **context: Any) -> dict[str, Any]:
        """JSON-serializable report: counts, status, every failed check (errors first)."""
        policy = policy or self.feature_set.ingest.on_partial_failure
        accepted = int(self.accepted_mask(policy).sum())
        checks = sorted(self.checks, key=lambda c: (c.severity != "error", c.check, c.column or ""))
        fs = self.feature_set
        report: dict[str, Any] = {
            "feature_set": fs.name,
            "feature_set_version": fs.version,
            "feature_set_fingerprint": fs.fingerprint,
            **context,
            "status": self.status(policy),
            "policy": policy,
            "rows_total": self.rows_total,
            "rows_accepted": accepted,
            "rows_rejected": self.rows_total - accepted,
            "rows_failing_checks": int((~self.accepted).sum()),
            "row_numbering": ROW_NUMBERING,
            "checks": [c.to_dict() for c in checks],
        }
        if policy == "reject_file" and 0 < report["rows_failing_checks"] < self.rows_total:
            report["policy_note"] = (
                f"{report['rows_failing_checks']} rows failed checks and the feature "
                f"set's policy is reject_file, so no row was accepted; fix the rows "
                f"listed below and upload the whole file again"
            )
        return report
