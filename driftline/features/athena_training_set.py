"""Point-in-time training sets built by an Athena query (DuckDB on the local platform).

:func:`driftline.features.training_set.build_training_set` reads every curated object of a feature
set into one process; past a few tens of millions of rows that is the wall. Here the join runs where
the data is: one ``UNLOAD`` of :func:`driftline.athena_queries.point_in_time_training_set` over the
feature set's Glue table writes the joined rows as Parquet under a scratch prefix, and only the result
comes back to the function.

The spine is the same as the in-process default: the curated rows with a label (label events are
curated rows, so no separate labels table is needed and both engines read the very same Glue table).
Bounds on the ``date`` partition (``days``; the feature side starts ``max_feature_age`` earlier)
make Athena read only those partitions.

The result is shaped exactly like the in-process one (same columns, types, schema metadata, sorted by
timestamp then entity, which is unique per row because curated rows are unique per entity and time)
and written as the same snapshot, so its SHA-256 identifies the content whichever engine built it.

What the SQL cannot see: which upload a row came from (Athena's ``"$path"`` is not available on the
local engine). So two guarantees of the in-process reader are kept differently: an upload whose commit
has not finished (a pending marker) with files in the queried days stops the build with a message
naming it, rather than being half read; and rows duplicated across uploads (same entity and time) are
not de-duplicated by upload order: one of them is taken.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from driftline import aws
from driftline.athena_queries import point_in_time_training_set, unload
from driftline.athena_tables import LABEL_EVENTS_PARTITION, label_events_prefix
from driftline.contracts import TRAINING_SCRATCH_PREFIX
from driftline.features.curated import curated_day, curated_root, parquet_bytes, pending_uploads, upload_of
from driftline.features.schema import FeatureSet
from driftline.features.tables import TIMESTAMP_TYPE, curated_schema
from driftline.features.training_set import (
    FEATURE_TIMESTAMP,
    InputObject,
    TrainingSet,
    TrainingSetError,
    as_arrow_table,
)
from driftline.training.sources import TRAINING_SETS_PREFIX

__all__ = [
    "ATHENA_UNLOAD_DIR",
    "EVENT_ID",
    "AthenaTrainingSet",
    "TrainingQueryError",
    "build_training_set_athena",
    "choose_join",
    "curated_bytes",
    "training_set_sql",
    "unload_prefix",
]

ATHENA_UNLOAD_DIR = "athena"
"""``training-scratch/<feature_set>/athena/<token>/``: where one build's UNLOAD writes (a fresh, empty
prefix per build, as UNLOAD requires; scratch that expires, contracts.TRAINING_SCRATCH_PREFIX)."""

EVENT_ID = "driftline_event"
"""Row number of a given label event (the label events table's last column)."""

_TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


class TrainingQueryError(RuntimeError):
    """The Athena query failed, was cancelled or did not finish in time (Athena's reason included)."""


def unload_prefix(feature_set: str, token: str) -> str:
    return f"{TRAINING_SCRATCH_PREFIX}/{feature_set}/{ATHENA_UNLOAD_DIR}/{token}/"


@dataclass
class AthenaTrainingSet(TrainingSet):
    """A training set built by Athena: the in-process lineage plus the query that made it."""

    query: str = ""
    query_execution_id: str = ""
    data_scanned_bytes: int = 0

    def lineage(self) -> dict[str, Any]:
        out = super().lineage()
        out.update(
            engine="athena",
            query=self.query,
            query_execution_id=self.query_execution_id,
            data_scanned_bytes=self.data_scanned_bytes,
        )
        return out


def _day(d: date | str | None) -> str | None:
    if d is None or isinstance(d, str):
        return d
    return d.isoformat()


def _feature_days(days: tuple[str | None, str | None], max_age: timedelta | None) -> tuple[str | None, str | None]:
    """The feature side's partitions: the events' days, starting ``max_age`` earlier (open without one)."""
    lo, hi = days
    if lo is None or max_age is None:
        return None, hi
    start = date.fromisoformat(lo) - timedelta(days=max_age.days + (1 if max_age % timedelta(days=1) else 0))
    return start.isoformat(), hi


def training_set_sql(
    fs: FeatureSet,
    database: str,
    *,
    max_feature_age: timedelta | None = None,
    days: tuple[str | None, str | None] = (None, None),
    feature_days: tuple[str | None, str | None] | None = None,
    build: str | None = None,
) -> str:
    """The SELECT that joins ``fs``'s label events to their point-in-time features (columns as the
    in-process join returns them, plus ``feature_timestamp``, NULL when unmatched). With ``build`` the
    label events are that build's partition of the ``<fs>_label_events`` table (plus ``driftline_event``)."""
    if fs.label is None:
        raise TrainingSetError(f"feature set {fs.name!r} defines no label; add one under 'labels'")
    max_age_s: int | None = None
    if max_feature_age is not None:
        if max_feature_age < timedelta(0) or max_feature_age % timedelta(seconds=1):
            raise TrainingSetError(f"max_feature_age must be whole non-negative seconds, got {max_feature_age}")
        max_age_s = int(max_feature_age.total_seconds())
    return point_in_time_training_set(
        table=f"{database}.{fs.name}",
        keys=list(fs.entity),
        time=fs.timestamp,
        labels=[lb.name for lb in fs.labels],
        columns=list(fs.feature_names),
        feature_time_as=FEATURE_TIMESTAMP,
        days=days,
        feature_days=_feature_days(days, max_feature_age) if feature_days is None else feature_days,
        max_age_seconds=max_age_s,
        spine=None
        if build is None
        else (f"{database}.{fs.name}_label_events", LABEL_EVENTS_PARTITION, build, EVENT_ID),
    )


def _in_days(day: str, bounds: tuple[str | None, str | None]) -> bool:
    return (bounds[0] is None or day >= bounds[0]) and (bounds[1] is None or day <= bounds[1])


def _committed_inputs(
    fs: FeatureSet, bucket: str, s3: Any, bounds: tuple[str | None, str | None], what: str
) -> list[InputObject]:
    """The committed curated objects in ``bounds`` (the lineage's inputs); a pending upload there stops the build."""
    listed: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=curated_root(fs.name)):
        listed += page.get("Contents", [])
    keys = [o["Key"] for o in listed]
    pending = pending_uploads(keys)
    files = [o for o in listed if o["Key"].endswith(".parquet") and "/date=" in o["Key"]]
    files = [o for o in files if _in_days(curated_day(o["Key"]), bounds)]
    blocking = sorted({upload_of(o["Key"]) for o in files} & pending)
    if blocking:
        raise TrainingSetError(
            f"upload(s) {', '.join(blocking)} of feature set {fs.name!r} have files in {what} but their commit "
            f"has not finished (s3://{bucket}/{curated_root(fs.name)}_pending/); retry when it commits, or redrive it"
        )
    if not files:
        raise TrainingSetError(
            f"no training rows: no curated data for feature set {fs.name!r} in {what} "
            f"(s3://{bucket}/{curated_root(fs.name)})"
        )
    return sorted(
        (InputObject(o["Key"], o.get("VersionId"), str(o.get("ETag", "")).strip('"'), int(o["Size"])) for o in files),
        key=lambda i: i.key,
    )


def curated_bytes(fs: FeatureSet, bucket: str, s3: Any) -> int:
    """Size of the committed curated objects of ``fs`` (one listing; pending uploads left out)."""
    listed: list[tuple[str, int]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=curated_root(fs.name)):
        listed += [(o["Key"], int(o["Size"])) for o in page.get("Contents", [])]
    pending = pending_uploads([k for k, _ in listed])
    return sum(n for k, n in listed if k.endswith(".parquet") and upload_of(k) not in pending)


def choose_join(join: str, auto_bytes: int, fs: FeatureSet, bucket: str, s3: Any) -> tuple[str, dict[str, Any]]:
    """``in_process`` or ``athena`` for ``models[].training.join`` (``auto``: Athena from ``auto_bytes`` of
    committed curated Parquet), and the decision's inputs for the lineage."""
    if join in ("in_process", "athena"):
        return join, {"join": join}
    if join != "auto":
        raise ValueError(f"training.join must be in_process, athena or auto, not {join!r}")
    size = curated_bytes(fs, bucket, s3)
    chosen = "athena" if size >= auto_bytes else "in_process"
    return chosen, {"join": "auto", "chosen": chosen, "curated_bytes": size, "join_auto_bytes": auto_bytes}


def _wait(athena: Any, qid: str, poll_s: float, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        qe: dict[str, Any] = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
        state = qe["Status"]["State"]
        if state == "SUCCEEDED":
            return qe
        if state in _TERMINAL:
            reason = qe["Status"].get("StateChangeReason") or "no reason given"
            raise TrainingQueryError(f"training-set query {qid} {state.lower()}: {reason}")
        if time.monotonic() > deadline:
            athena.stop_query_execution(QueryExecutionId=qid)
            raise TrainingQueryError(f"training-set query {qid} did not finish within {timeout_s:.0f} s; stopped")
        time.sleep(poll_s)


def _read_unloaded(s3: Any, bucket: str, prefix: str, schema: pa.Schema) -> pa.Table:
    """Every Parquet file UNLOAD wrote under ``prefix``, in the in-process join's schema."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].rsplit("/", 1)[-1].startswith(("_", "."))]
    tables = [pq.read_table(pa.BufferReader(s3.get_object(Bucket=bucket, Key=k)["Body"].read())) for k in sorted(keys)]
    arrays = []
    for f in schema:
        cols = [t.column(f.name) for t in tables if t.num_rows]
        chunks = [c for col in cols for c in pc.cast(col, f.type).chunks]
        arrays.append(pa.chunked_array(chunks, type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _result_schema(fs: FeatureSet, events: pa.Schema | None) -> pa.Schema:
    """The in-process join's output schema (plus the event id when label events were given)."""
    curated = curated_schema(fs)
    if events is None:
        spine = [curated.field(n) for n in (*fs.entity, fs.timestamp)]
        spine += [curated.field(lb.name).with_nullable(True) for lb in fs.labels]
    else:
        spine = [f for f in events if f.name != EVENT_ID]
    feats = [curated.field(n).with_nullable(True) for n in fs.feature_names]
    extra = [] if events is None else [pa.field(EVENT_ID, pa.int64())]
    return pa.schema([*spine, *feats, pa.field(FEATURE_TIMESTAMP, TIMESTAMP_TYPE), *extra])


def _label_events(fs: FeatureSet, labels: Any) -> pa.Table:
    """The given label events in the label events table's types, numbered in input order."""
    events, _ = as_arrow_table(labels, "labels")
    curated = curated_schema(fs)
    names = [*fs.entity, fs.timestamp, *(lb.name for lb in fs.labels)]
    missing = [n for n in names if n not in events.column_names]
    if missing:
        raise TrainingSetError(f"labels lack the column(s) {', '.join(missing)} of feature set {fs.name!r}")
    if events.num_rows == 0:
        raise TrainingSetError(f"no training rows: no label events were given for feature set {fs.name!r}")
    arrays, fields = [], []
    for n in names:
        try:
            arrays.append(pc.cast(events.column(n), curated.field(n).type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise TrainingSetError(
                f"labels column {n!r} is {events.column(n).type}, not {curated.field(n).type}"
            ) from None
        fields.append(pa.field(n, curated.field(n).type, nullable=events.schema.field(n).nullable))
    arrays.append(pa.array(range(events.num_rows), pa.int64()))
    fields.append(pa.field(EVENT_ID, pa.int64()))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _event_days(events: pa.Table, timestamp: str, max_age: timedelta | None) -> tuple[str | None, str | None]:
    """The feature partitions given label events can use: their first day minus the max age to their last day."""
    ts = events.column(timestamp)
    lo, hi = pc.min(ts).as_py(), pc.max(ts).as_py()
    if lo is None:
        raise TrainingSetError("no training rows: every given label event has a null timestamp")
    return _feature_days((lo.date().isoformat(), None), max_age)[0], hi.date().isoformat()


def build_training_set_athena(
    fs: FeatureSet,
    bucket: str,
    *,
    database: str,
    workgroup: str,
    athena_client: Any,
    max_feature_age: timedelta | None = None,
    days: tuple[date | str | None, date | str | None] = (None, None),
    labels: Any = None,
    output_key: str | None = None,
    client: Callable[[str], Any] = aws.client,
    poll_interval_s: float = 1.0,
    timeout_s: float = 900.0,
) -> AthenaTrainingSet:
    """The point-in-time training set of ``fs`` built by Athena and written like the in-process one.

    Label events are the curated rows with a label in ``days`` (inclusive ``date`` partitions; None:
    open), or ``labels`` (entity, timestamp and label columns), written as this build's partition of
    the ``<fs>_label_events`` table. Nothing to train on (no committed curated file in range, no label
    event, or none with a feature row in range) is a :class:`TrainingSetError` starting "no training
    rows" that names the range.
    """
    if fs.label is None:
        raise TrainingSetError(f"feature set {fs.name!r} defines no label; add one under 'labels'")
    token = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}"
    s3 = client("s3")
    events = None if labels is None else _label_events(fs, labels)
    bounds = (_day(days[0]), _day(days[1]))
    if events is None:
        feature_bounds = _feature_days(bounds, max_feature_age)
        what = f"days {bounds[0] or '(first)'} to {bounds[1] or '(last)'}"
        sql = training_set_sql(fs, database, max_feature_age=max_feature_age, days=bounds)
    else:
        feature_bounds = _event_days(events, fs.timestamp, max_feature_age)
        what = f"days {feature_bounds[0] or '(first)'} to {feature_bounds[1]}"
        sql = training_set_sql(fs, database, max_feature_age=max_feature_age, feature_days=feature_bounds, build=token)
    inputs = _committed_inputs(fs, bucket, s3, feature_bounds, what)
    if events is not None:
        s3.put_object(
            Bucket=bucket,
            Key=f"{label_events_prefix(fs.name)}{LABEL_EVENTS_PARTITION}={token}/events.parquet",
            Body=parquet_bytes(events),
        )
    target = unload_prefix(fs.name, token)
    statement = unload(sql, f"s3://{bucket}/{target}")
    qid = athena_client.start_query_execution(
        QueryString=statement, QueryExecutionContext={"Database": database}, WorkGroup=workgroup
    )["QueryExecutionId"]
    qe = _wait(athena_client, qid, poll_interval_s, timeout_s)
    scanned = int((qe.get("Statistics") or {}).get("DataScannedInBytes") or 0)
    rows = _read_unloaded(s3, bucket, target, _result_schema(fs, None if events is None else events.schema))
    if rows.num_rows == 0:
        raise TrainingSetError(f"no training rows: feature set {fs.name!r} has no labelled rows in {what}")
    joined = rows.filter(pc.is_valid(rows.column(FEATURE_TIMESTAMP)))
    if joined.num_rows == 0:
        raise TrainingSetError(
            f"no training rows: none of the {rows.num_rows} label events of feature set {fs.name!r} "
            f"has feature values in {what} at or before its timestamp"
            + (f" within {max_feature_age}" if max_feature_age else "")
        )
    order = [(fs.timestamp, "ascending"), *((e, "ascending") for e in fs.entity)]
    if events is not None:  # equal events keep their input order, as the in-process stable sort does
        joined = joined.sort_by([*order, (EVENT_ID, "ascending")]).drop_columns([EVENT_ID])
    else:
        joined = joined.sort_by(order)
    joined = joined.replace_schema_metadata(
        {"driftline.feature_set": fs.name, "driftline.feature_set_fingerprint": fs.fingerprint}
    )
    body = parquet_bytes(joined)
    digest = hashlib.sha256(body).hexdigest()
    key = output_key or f"{TRAINING_SETS_PREFIX}/{fs.name}/{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{digest[:8]}.parquet"
    metadata = {"sha256": digest, "feature-set": fs.name, "rows": str(joined.num_rows), "engine": "athena"}
    resp = s3.put_object(
        Bucket=bucket, Key=key, Body=body, ContentType="application/vnd.apache.parquet", Metadata=metadata
    )
    return AthenaTrainingSet(
        fs,
        joined,
        bucket,
        key,
        digest,
        resp.get("VersionId"),
        inputs,
        rows.num_rows,
        rows.num_rows - joined.num_rows,
        max_feature_age,
        query=statement,
        query_execution_id=qid,
        data_scanned_bytes=scanned,
    )
