"""Estimated performance (CBPE/DLE) on the scale-out drift check, equal to the in-process check's.

Shard summaries cannot carry an estimate: CBPE ranks the whole window's scores for ROC AUC and its band
subsamples the whole window, so partial estimates do not merge. Each shard instead writes its rows'
estimation inputs (:class:`~driftline.estimation.rows.EstimationRows`: served probabilities and predicted
class, or the expected losses its worker computed with the verified estimator's loss models, plus each
row's segments) as a Parquet side file; its summary records the file's SHA-256 and row count. The reduce
step reads every shard's rows, puts them in the canonical order the in-process check also uses, and runs
the same estimate (:func:`driftline.estimation.monitor.estimate_from_rows`) for the window and for each
segment: the same numbers on both paths. A side file that is missing, damaged or not what its summary
recorded makes the check ``incomplete`` naming the shard; a shard whose rows could not be computed (a loss
model that refuses the window's rows) makes the estimate ``unavailable`` with the reason, as in-process.

Reduce memory: a binary classifier's rows take 8 (key) + 16 (probabilities) + 8 (class) + 1 bytes, about
33 bytes a row; the estimate then works on a few [N] arrays (docs/performance.md has the measurement).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.drift.columns import row_key_array
from driftline.drift.engine import DriftResult
from driftline.drift.profile import Profile
from driftline.estimation.artifact import FittedEstimator
from driftline.estimation.estimate import EstimateResult, window_rows
from driftline.estimation.monitor import compute_error, estimate_from_rows
from driftline.estimation.rows import EstimationRows, RowsFileError, order_keys, read_rows
from driftline.monitoring.scale.sql import MALFORMED_COLUMN

__all__ = ["ShardEstimation", "WindowRows", "read_window_rows", "shard_rows", "window_estimates"]


@dataclass(frozen=True)
class ShardEstimation:
    """What a shard worker needs to write its estimation rows: the verified estimator (None: ``why``), the
    model's input schema (DLE encodes the features with it) and the side file's key."""

    estimator: FittedEstimator | None
    why: str
    schema: Mapping[str, Any]
    rows_key: str

    def write(self, client: Any, bucket: str, profile: Profile, table: pa.Table) -> dict[str, Any]:
        """Write the shard's rows; returns what its summary records (``error`` when they cannot be computed)."""
        if self.estimator is None or self.estimator.kind == "unavailable":
            return {"error": self.why or (self.estimator.reason if self.estimator else "no estimator")}
        try:
            rows = shard_rows(self.estimator, self.schema, profile, table)
        except Exception as e:  # onnxruntime's own error types, a loss model of another width
            return {"error": compute_error(e)}
        body = rows.to_parquet()
        client.put_object(Bucket=bucket, Key=self.rows_key, Body=body, ContentType="application/vnd.apache.parquet")
        return {
            "key": self.rows_key,
            "sha256": hashlib.sha256(body).hexdigest(),
            "rows": rows.n_rows,
            "kind": rows.kind,
            "bytes": len(body),
        }


def _plain(value: Any) -> Any:
    """Parquet maps arrive as lists of (key, value) pairs; the estimate reads dicts (as the summary does)."""
    if isinstance(value, list) and value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return {str(k): _plain(v) for k, v in value}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    return value


def shard_rows(
    estimator: FittedEstimator, schema: Mapping[str, Any], profile: Profile, table: pa.Table
) -> EstimationRows:
    """The estimation rows of one shard table (deduplicated, malformed-line markers dropped here), read as
    the in-process check reads the same rows from the capture records."""
    if MALFORMED_COLUMN in table.column_names:
        table = table.filter(pc.invert(pc.is_valid(table.column(MALFORMED_COLUMN))))
    names = {n.lower(): n for n in table.column_names}
    n = table.num_rows
    outputs = [_plain(o) if isinstance(o, dict) else {} for o in table.column(names["output"]).to_pylist()]
    columns: dict[str, list[Any]] = {}
    if estimator.kind == "dle":
        from driftline.features.encoding import model_features

        for f in model_features(schema):
            name = str(f["name"])
            columns[name] = table.column(names[name.lower()]).to_pylist() if name.lower() in names else [None] * n
    keys = order_keys([str(r) for r in table.column(names["request_id"]).to_pylist()])
    rows = window_rows(estimator, outputs, columns, schema, keys=keys)
    if profile.segments:
        from driftline.monitoring.scale.shards import frame_of

        frame = frame_of(table, profile)
        for column, seg in profile.segments.items():
            arr = row_key_array(frame, column)
            if arr is not None:
                rows.segments[column] = seg.codes(arr)
    return rows


@dataclass
class WindowRows:
    """Every shard's rows in canonical order, or why some could not be read (data key -> reason)."""

    rows: EstimationRows | None
    failed: dict[str, str]
    """Shards whose side file is missing or damaged: the check is incomplete."""
    error: str = ""
    """A shard's rows could not be computed: the estimate is unavailable with this reason."""


def read_window_rows(
    client: Any, bucket: str, estimator: FittedEstimator, docs: Mapping[str, Any], width: int
) -> WindowRows:
    """Read each shard's side file named by its summary (``docs``: data key -> the summary's ``estimate``
    entry, None when it has none), verified against the recorded SHA-256 and row count."""
    parts: list[EstimationRows] = []
    failed: dict[str, str] = {}
    error = ""
    for data_key in sorted(docs):
        doc = docs[data_key]
        if not isinstance(doc, Mapping):
            failed[data_key] = "its summary has no estimation rows (summarized without the estimator)"
            continue
        if "error" in doc:
            error = error or f"{doc['error']} (shard {data_key})"
            continue
        try:
            body = client.get_object(Bucket=bucket, Key=str(doc["key"]))["Body"].read()
            part = read_rows(body, sha256=str(doc["sha256"]), rows=int(doc["rows"]))
            if part.kind != estimator.kind or part.values.shape[1] != width:
                raise RowsFileError(f"rows of a {part.kind} estimator of width {part.values.shape[1]}")
            parts.append(part)
        except client.exceptions.NoSuchKey:
            failed[data_key] = f"its estimation rows {doc.get('key')} are missing"
        except (RowsFileError, KeyError, TypeError, ValueError) as e:
            failed[data_key] = f"its estimation rows {doc.get('key')} are unusable: {e}"
    if failed or error:
        return WindowRows(None, failed, error)
    whole = EstimationRows.concat(estimator.kind, width, parts)
    del parts
    return WindowRows(whole.ordered(), {})


def window_estimates(
    version: Any,
    settings: Any,
    loaded: tuple[FittedEstimator | None, str],
    window: WindowRows | None,
    result: DriftResult,
    profile: Profile,
    n_rows: int,
) -> EstimateResult:
    """The window's estimate (``n_rows`` rows) from the shards' rows, and each checked segment's (put on
    ``result.segments`` as the in-process check puts them)."""
    estimator, why = loaded
    rows = window.rows if window is not None else None
    error = window.error if window is not None else ""
    estimated = estimate_from_rows(estimator, why, version, settings, rows, error, n_rows=n_rows)
    for column, res in result.segments.items():
        seg = profile.segments.get(column)
        codes = rows.segments.get(column) if rows is not None else None
        if seg is None or res.status != "ok" or (rows is not None and codes is None):
            continue
        for value, r in res.values.items():
            if r.drift is None:
                continue
            sub = rows.take(_members(seg.values, value, codes)) if rows is not None and codes is not None else None
            count = sub.n_rows if sub is not None else r.rows
            r.estimate = estimate_from_rows(estimator, why, version, settings, sub, error, n_rows=count).to_dict()
    return estimated


def _members(values: list[str], value: str, codes: np.ndarray) -> np.ndarray:
    """The rows of segment ``value``: its index among the kept values, else ``__other__`` (the last code)."""
    code = values.index(value) if value in values else len(values)
    mask: np.ndarray = codes == code
    return mask
