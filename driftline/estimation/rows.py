"""A window's estimation inputs row by row, so the scale-out drift check estimates as the in-process one does.

CBPE needs every row's served probabilities and predicted class (ROC AUC ranks the whole window; the band
subsamples it with a seeded generator); DLE needs every row's expected absolute and squared error (from
the loss models, which read the row's features). :class:`EstimationRows` holds exactly those per-row
values, plus each row's segment of every ``drift.segments`` column, and nothing else.

Row order decides the result to the last bit (the band's subsample picks rows by position, sums are
rounded in order), and the two paths read a window in different orders (the in-process reader in
capture-object order, the workflow shard by shard). So both put the rows in one canonical order before
estimating: by :func:`order_keys` (the first 8 bytes of the MD5 of the row id, unsigned), ties kept in
arrival order. Two row ids of one window sharing those 8 bytes (about one window in 300,000 at ten
million rows) may then sit in another order on the two paths, which can change the band by a sampling
difference and the sums by rounding; nothing else can.

A shard writes its rows as a Parquet side file (no pickle) whose SHA-256 and row count the shard summary
records; :func:`read_rows` refuses a file that does not match them, so a damaged file ends the check
``incomplete`` instead of giving an estimate of part of the window.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["ROWS_FORMAT", "EstimationRows", "RowsFileError", "order_keys", "read_rows"]

ROWS_FORMAT = "driftline.estimation.rows/1"
_SEGMENT_PREFIX = "segment:"
_VALUE_PREFIX = "v"


class RowsFileError(ValueError):
    """A side file that is not the rows its shard summary describes (hash, size, layout)."""


def order_keys(row_ids: Sequence[str]) -> np.ndarray:
    """Each row's canonical order key (see the module): uint64 from the MD5 of its row id."""
    out = np.empty(len(row_ids), dtype=np.uint64)
    for i, rid in enumerate(row_ids):
        out[i] = int.from_bytes(hashlib.md5(str(rid).encode(), usedforsecurity=False).digest()[:8], "big")
    return out


@dataclass
class EstimationRows:
    """Per-row estimation inputs: ``values`` [N, C] served class probabilities (CBPE) or [N, 2] expected
    absolute and squared errors (DLE, NaN where unusable); ``pred`` the predicted class index (CBPE; -1
    unknown); ``usable`` the rows an estimate uses; ``segments`` column -> each row's segment code (an
    index into that column's segment values, ``len(values)`` for ``__other__``)."""

    kind: str
    keys: np.ndarray
    values: np.ndarray
    pred: np.ndarray
    usable: np.ndarray
    segments: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return int(self.keys.shape[0])

    def take(self, index: np.ndarray) -> EstimationRows:
        """The rows at ``index`` (positions or a boolean mask), in that order."""
        return EstimationRows(
            self.kind,
            self.keys[index],
            self.values[index],
            self.pred[index],
            self.usable[index],
            {c: codes[index] for c, codes in self.segments.items()},
        )

    def ordered(self) -> EstimationRows:
        """The rows in canonical order (by key; ties in their current order)."""
        return self.take(np.argsort(self.keys, kind="stable"))

    @classmethod
    def concat(cls, kind: str, width: int, parts: Sequence[EstimationRows]) -> EstimationRows:
        """The rows of several shards, one after the other (empty parts allowed)."""
        for p in parts:
            if p.kind != kind or p.values.shape[1] != width:
                raise RowsFileError(f"rows of kind {p.kind!r} width {p.values.shape[1]}, expected {kind!r} {width}")
        # a segment column some shard lacks has no estimate (the window's check reports the column missing)
        columns = sorted(set.intersection(*(set(p.segments) for p in parts))) if parts else []
        if not parts:
            return cls.empty(kind, width)
        return cls(
            kind,
            np.concatenate([p.keys for p in parts]),
            np.concatenate([p.values for p in parts]),
            np.concatenate([p.pred for p in parts]),
            np.concatenate([p.usable for p in parts]),
            {c: np.concatenate([p.segments[c] for p in parts]) for c in columns},
        )

    @classmethod
    def empty(cls, kind: str, width: int, segments: Sequence[str] = ()) -> EstimationRows:
        return cls(
            kind,
            np.empty(0, np.uint64),
            np.empty((0, width)),
            np.empty(0, np.int64),
            np.empty(0, bool),
            {c: np.empty(0, np.int64) for c in segments},
        )

    def to_parquet(self) -> bytes:
        """The side file's bytes: one column per value, the segment codes, the kind in the metadata."""
        cols: dict[str, pa.Array] = {"key": pa.array(self.keys, pa.uint64())}
        for j in range(self.values.shape[1]):
            cols[f"{_VALUE_PREFIX}{j}"] = pa.array(self.values[:, j], pa.float64())
        cols["pred"] = pa.array(self.pred, pa.int64())
        cols["usable"] = pa.array(self.usable, pa.bool_())
        for c, codes in self.segments.items():
            cols[_SEGMENT_PREFIX + c] = pa.array(codes, pa.int64())
        table = pa.table(cols).replace_schema_metadata({"format": ROWS_FORMAT, "kind": self.kind})
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        return buf.getvalue()


def read_rows(body: bytes, *, sha256: str, rows: int) -> EstimationRows:
    """Parse a side file, refusing one whose SHA-256 or row count is not what its summary recorded."""
    got = hashlib.sha256(body).hexdigest()
    if got != sha256:
        raise RowsFileError(f"its SHA-256 is {got}, the shard summary recorded {sha256}")
    try:
        table = pq.read_table(io.BytesIO(body))
    except (pa.ArrowException, OSError, ValueError) as e:
        raise RowsFileError(f"not a readable Parquet file ({e})") from None
    meta: Mapping[bytes, bytes] = table.schema.metadata or {}
    if meta.get(b"format") != ROWS_FORMAT.encode() or table.num_rows != rows:
        raise RowsFileError(f"not {ROWS_FORMAT} rows of {rows} rows ({table.num_rows} rows, metadata {dict(meta)})")
    names = table.column_names
    width = sum(1 for n in names if n.startswith(_VALUE_PREFIX) and n[1:].isdigit())
    missing = [n for n in ("key", "pred", "usable", *(f"{_VALUE_PREFIX}{j}" for j in range(width))) if n not in names]
    if missing or not width:
        raise RowsFileError(f"the side file lacks column(s) {missing or ['v0']}")

    def numpy(name: str, dtype: type) -> np.ndarray:
        return np.asarray(table.column(name).to_numpy(), dtype=dtype)

    values = np.column_stack([numpy(f"{_VALUE_PREFIX}{j}", np.float64) for j in range(width)])
    segments = {n[len(_SEGMENT_PREFIX) :]: numpy(n, np.int64) for n in names if n.startswith(_SEGMENT_PREFIX)}
    kind = meta.get(b"kind", b"").decode()
    return EstimationRows(
        kind, numpy("key", np.uint64), values, numpy("pred", np.int64), numpy("usable", bool), segments
    )
