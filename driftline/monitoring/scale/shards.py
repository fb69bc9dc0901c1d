"""The summarize step of the scale-out drift check: one shard file in, one mergeable summary out.

A shard file is Parquet written by Athena's UNLOAD (:meth:`driftline.monitoring.scale.sql.ShardQuery.render`):
one row per captured row, with its request id, caller, feature columns, the model's output and the
feedback labels stored for the request id, plus one marker row per malformed capture line (counted here
and reported by the reduce step as the in-process reader reports bad lines). The step summarizes the
features and the prediction against the profile (:func:`driftline.drift.summary.summarize`, exact
counts that add up across shards) and binds labels to predictions with the same rule as the in-process check
(:class:`~driftline.serving.labels.Labels`: the caller's own or a labeler's label, the first one that
counts), keeping the matched (label, prediction) pairs: labels are sparse, so the reduce step can hold
them all and compute the task metrics exactly as the in-process path does.

Athena may write one shard as several files, and the query keeps every copy of a redelivered capture
(all in the same shard): so the Map item of a shard's first file (in key order) reads every file of the
shard and keeps one copy per row id (:func:`first_copies`), and the items of its other files write empty
summaries naming it. The merged counts then hold every row once, however the shard was split.

The summary is written to a key derived from the shard file's key (idempotent: a retried or repeated
invocation overwrites the same object). A shard file that cannot be read writes an ``error`` document
there instead and raises, so the workflow retries it and the reduce step can name it.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from driftline.drift.feature_set import PREDICTION_COLUMN
from driftline.drift.profile import Profile
from driftline.drift.summary import summarize
from driftline.monitoring.scale.sql import MALFORMED_COLUMN
from driftline.serving.labels import Label, Labels

if TYPE_CHECKING:
    from driftline.monitoring.scale.estimates import ShardEstimation

__all__ = [
    "SHARD_SUMMARY_FORMAT",
    "ShardFileError",
    "first_copies",
    "frame_of",
    "matched_labels",
    "shard_of",
    "summarize_shard",
    "summarize_shard_object",
]

SHARD_SUMMARY_FORMAT = "driftline.drift.shard/1"
MAX_SHARD_BYTES = 512 * 1024 * 1024
"""A shard file larger than this is refused (raise the shard count instead): it must fit a worker."""


class ShardFileError(Exception):
    """A shard file that is not the UNLOAD's Parquet (truncated, another format, missing columns)."""


def shard_of(request_id: str, shards: int) -> int:
    """The shard the query puts ``request_id`` in: what :func:`driftline.athena_queries.shard_expression`
    computes on Trino and DuckDB (the first 8 bytes of the MD5 as a signed big-endian 64-bit number, its
    absolute value modulo ``shards``)."""
    head = int.from_bytes(hashlib.md5(request_id.encode(), usedforsecurity=False).digest()[:8], "big", signed=True)
    return abs(head) % shards


def _plain(value: Any) -> Any:
    """Parquet maps arrive as lists of (key, value) pairs; the prediction readers expect dicts."""
    if isinstance(value, list) and value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return {str(k): _plain(v) for k, v in value}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    return value


def _numeric(col: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(col.type):
        return np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    if pa.types.is_null(col.type):
        return np.full(len(col), np.nan)
    return np.asarray(col.to_pylist(), dtype=object)  # strings or booleans: the engine reports the wrong type


def _prediction(output: pa.ChunkedArray) -> np.ndarray:
    """The prediction column read from the output structs (``probability``, else ``value``), as the
    in-process reader takes it from each output dict, without building one dict per row."""
    if pa.types.is_struct(output.type):
        names = [output.type.field(i).name for i in range(output.type.num_fields)]
        for field in ("probability", "value"):
            if field in names:
                return _numeric(pc.struct_field(output, field))
        return np.full(len(output), np.nan)
    values = [
        _plain(o).get("probability", _plain(o).get("value")) if isinstance(o, dict) else None
        for o in output.to_pylist()
    ]
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return np.asarray(values, dtype=object)


def frame_of(table: pa.Table, profile: Profile) -> dict[str, np.ndarray]:
    """The engine's input from one shard table (as :meth:`WindowData.frame` builds it in-process).
    Columns the table lacks are left out (the engine reports them missing)."""
    names = {n.lower(): n for n in table.column_names}  # Athena writes column names in lower case
    if "output" not in names or "request_id" not in names:
        raise ShardFileError(f"not a drift shard file: columns {sorted(names)} lack request_id/output")
    prediction = PREDICTION_COLUMN if PREDICTION_COLUMN in profile.columns else None
    frame: dict[str, np.ndarray] = {}
    for name in profile.numerical:
        if name != prediction and name.lower() in names:
            frame[name] = _numeric(table.column(names[name.lower()]))
    for name in profile.categorical:
        if name.lower() in names:
            frame[name] = np.asarray(table.column(names[name.lower()]).to_pylist(), dtype=object)
    if prediction is not None:
        frame[prediction] = _prediction(table.column(names["output"]))
    return frame


def matched_labels(
    request_ids: Sequence[Any],
    callers: Sequence[Any],
    label_values: Sequence[Any],
    label_by: Sequence[Any],
    outputs: Sequence[Mapping[str, Any]],
    labelers: Iterable[str],
) -> list[tuple[Any, Mapping[str, Any]]]:
    """(label, prediction) for every row whose request has a label that counts (first one stored)."""
    judge = Labels(labelers)
    out: list[tuple[Any, Mapping[str, Any]]] = []
    for rid, caller, values, bys, pred in zip(request_ids, callers, label_values, label_by, outputs, strict=True):
        if not values or not isinstance(rid, str):
            continue
        who = caller if isinstance(caller, str) and caller else None
        for value, by in zip(values, bys or [None] * len(values), strict=False):
            if judge.counts(Label(value, by if isinstance(by, str) and by else None, ""), who):
                out.append((value, pred))
                break
    return out


def summarize_shard(profile: Profile, table: pa.Table, labelers: Iterable[str] = ()) -> dict[str, Any]:
    """The shard document: the drift summary, the rows it holds, the malformed capture lines the query
    marked (counted, then dropped: they hold no row) and the matched (label, prediction) pairs."""
    malformed = 0
    if MALFORMED_COLUMN in table.column_names:  # shard files of an older query have no marker column
        marker = pc.is_valid(table.column(MALFORMED_COLUMN))
        malformed = int(pc.sum(marker.cast(pa.int64())).as_py() or 0)
        table = table.filter(pc.invert(marker)).drop_columns([MALFORMED_COLUMN])
    frame = frame_of(table, profile)
    n = table.num_rows
    labeled = table.filter(pc.is_valid(table.column("label_values"))) if "label_values" in table.column_names else None
    pairs: list[tuple[Any, Mapping[str, Any]]] = []
    if labeled is not None and labeled.num_rows:  # labels are sparse: dicts only for the labeled rows

        def column(name: str) -> list[Any]:
            return labeled.column(name).to_pylist() if name in labeled.column_names else [None] * labeled.num_rows

        outputs = [_plain(o) if isinstance(o, dict) else {} for o in column("output")]
        pairs = matched_labels(
            column("request_id"), column("caller"), column("label_values"), column("label_by"), outputs, labelers
        )
    return {
        "format": SHARD_SUMMARY_FORMAT,
        "rows": n,
        "malformed_lines": malformed,
        "summary": summarize(profile, frame).to_dict(),
        "labels": [[label, pred] for label, pred in pairs],
    }


def first_copies(table: pa.Table) -> tuple[pa.Table, int]:
    """The shard's rows with one copy per row id (the first in file order), and how many copies went.

    Delivery is at least once, so a capture may be stored twice; the query keeps every copy (numbering
    them there would hold every record's rows in the engine's memory, :mod:`~driftline.monitoring.scale.sql`)
    and every copy of a row lands in the same shard. Rows without a row id (the malformed-line markers)
    are all kept: each stands for one line."""
    if "request_id" not in table.column_names or table.num_rows == 0:
        return table, 0
    ids = table.column("request_id")
    position = pa.array(np.arange(table.num_rows, dtype=np.int64))
    keyed = pa.table({"request_id": ids, "position": position}).filter(pc.is_valid(ids))
    firsts = keyed.group_by("request_id", use_threads=False).aggregate([("position", "min")])
    keep = np.zeros(table.num_rows, dtype=bool)
    keep[firsts.column("position_min").to_numpy()] = True
    keep |= ~np.asarray(pc.is_valid(ids).to_numpy(zero_copy_only=False), dtype=bool)
    dropped = int(table.num_rows - keep.sum())
    return (table.filter(pa.array(keep)) if dropped else table), dropped


def read_shard(body: bytes) -> pa.Table:
    """Parse one shard file, turning any Parquet/Arrow failure into :class:`ShardFileError`."""
    try:
        return pq.read_table(io.BytesIO(body))
    except (pa.ArrowException, OSError, ValueError) as e:
        raise ShardFileError(f"not a readable Parquet file ({e})") from None


def summarize_shard_object(
    bucket: str,
    data_key: str,
    summary_key: str,
    profile: Profile,
    *,
    labelers: Iterable[str] = (),
    client: Any,
    estimation: ShardEstimation | None = None,
) -> dict[str, Any]:
    """Summarize ``s3://bucket/data_key`` into ``s3://bucket/summary_key``; returns a short receipt. With
    ``estimation`` the shard's estimation rows are written too and named in the summary (``estimate``).

    An unreadable file writes ``{"error": …}`` at the summary key (so the reduce step can quote it) and
    raises :class:`ShardFileError`."""
    files = _partition_files(client, bucket, data_key)
    size = sum(files.values())
    if size > MAX_SHARD_BYTES:
        err = f"{data_key}: its shard holds {size} bytes, above {MAX_SHARD_BYTES}; raise the shard count"
        _put(client, bucket, summary_key, {"format": SHARD_SUMMARY_FORMAT, "error": err})
        raise ShardFileError(err)
    first = min(files)
    try:
        if data_key == first:  # the shard's first file summarizes every file of the shard, one copy per row
            tables = [read_shard(client.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in sorted(files)]
            table, copies = first_copies(_concat(tables))
        else:  # covered by the first file's item: an empty summary keeps one summary per file
            table, copies = read_shard(client.get_object(Bucket=bucket, Key=data_key)["Body"].read()).slice(0, 0), 0
        doc = summarize_shard(profile, table, labelers)
    except ShardFileError as e:
        _put(client, bucket, summary_key, {"format": SHARD_SUMMARY_FORMAT, "error": f"{data_key}: {e}"})
        raise ShardFileError(f"{data_key}: {e}") from None
    doc.update(data_key=data_key, files=sorted(files) if data_key == first else [], covered_by=first, copies=copies)
    if estimation is not None:  # the rows the reduce step estimates performance from (scale/estimates.py)
        doc["estimate"] = estimation.write(client, bucket, profile, table)
    _put(client, bucket, summary_key, doc)
    return {"data_key": data_key, "summary_key": summary_key, "rows": doc["rows"], "labels": len(doc["labels"])}


def _partition_files(client: Any, bucket: str, data_key: str) -> dict[str, int]:
    """Every data file of ``data_key``'s shard (``…/shard=<k>/``, Athena may write several) and its size."""
    prefix = data_key.rsplit("/", 1)[0] + "/"
    files: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        files.update({o["Key"]: int(o["Size"]) for o in page.get("Contents", []) if not o["Key"].endswith("/")})
    if data_key not in files:
        raise ShardFileError(f"{data_key}: not in the listing of its shard {prefix}")
    return files


def _concat(tables: list[pa.Table]) -> pa.Table:
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowException, ValueError) as e:
        raise ShardFileError(f"the shard's files do not share a schema ({e})") from None


def _put(client: Any, bucket: str, key: str, doc: Mapping[str, Any]) -> None:
    body = json.dumps(doc, separators=(",", ":"), default=_json_default).encode()
    client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
