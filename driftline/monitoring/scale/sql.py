"""The Athena queries of the scale-out drift check, each a named template (golden-tested on DuckDB).

Written in the subset of Trino that DuckDB also runs once sqlglot has transpiled it (the local
platform answers Athena with DuckDB): ``from_iso8601_timestamp``, ``UNNEST … WITH
ORDINALITY``, ``element_at``, ``array_agg(… ORDER BY …)``. The constructs every Athena query shares are
not written here but taken from :mod:`driftline.athena_queries`, their one home: identifiers and
literals (:func:`~driftline.athena_queries.identifier`, :func:`~driftline.athena_queries.string_literal`),
the shard of a request id (:func:`~driftline.athena_queries.shard_expression`, whose Python twin is
:func:`driftline.monitoring.scale.shards.shard_of`) and the ``UNLOAD`` wrapper
(:func:`~driftline.athena_queries.unload`).

``SHARDS_SELECT`` (unloaded by :meth:`ShardQuery.render`) is one pass over the window: the champion's
captures of the monitored version whose ``ts`` lies in [start, end) (every copy of a delivery: the
summarize step keeps one per row id), their rows unnested with their outputs under their row ids
(``<request id>:<position>``, :func:`driftline.capture_format.row_id`), the feedback labels of each row
id gathered in stored order (the summarize step applies the label binding rules,
:class:`driftline.serving.labels.Labels`, so SQL does not re-implement them), and a shard number last,
as Athena's ``partitioned_by`` needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from driftline.athena_queries import identifier, shard_expression, string_literal, unload
from driftline.capture_tables import HOUR_PARTITION

__all__ = [
    "HOUR_COLUMN",
    "MALFORMED_COLUMN",
    "MAX_SHARDS",
    "SHARDS_SELECT",
    "SHARD_COLUMN",
    "ShardQuery",
    "row_struct_fields",
]

MAX_SHARDS = 100
"""Shards at most: Athena writes at most 100 partitions per UNLOAD (the local Athena enforces it too), which
also keeps the shard files well under the 1000 keys moto's Distributed Map reads in its one listing."""
HOUR_COLUMN = HOUR_PARTITION
"""The captures and feedback tables' projected partition (``yyyy/MM/dd/HH``, the Firehose hour layout)."""
SHARD_COLUMN = "shard"
"""The partition column the shard files are written under (``shard=<k>/``)."""
MALFORMED_COLUMN = "malformed_line"
"""1 on the marker row of a malformed capture line (the summarize step counts and drops those rows)."""
SHARD_KEY = "request_key"
"""The column of ``captured`` the shard is computed from: the request id, so a request's rows stay together."""

SHARDS_SELECT = """WITH raw AS (
  SELECT request_id, caller, ts, outputs, "index", features, prediction,
         coalesce(role, 'champion') AS role, part, coalesce(v, 1) AS v,
         CASE WHEN coalesce(v, 1) = 2 THEN rows END AS v2_rows,
         CASE WHEN coalesce(v, 1) = 3 THEN cols END AS v3_cols,
         CASE WHEN coalesce(v, 1) = 3 AND cardinality(outputs) > 0 THEN sequence(1, cardinality(outputs))
              END AS v3_positions,
         request_id IS NULL OR (coalesce(v, 1) = 2 AND (rows IS NULL OR outputs IS NULL
           OR cardinality(rows) <> cardinality(outputs)
           OR ("index" IS NOT NULL AND cardinality("index") <> cardinality(rows))))
           OR (coalesce(v, 1) = 3 AND (cols IS NULL OR outputs IS NULL
           OR ("index" IS NOT NULL AND cardinality("index") <> cardinality(outputs)){columns_mismatch})) AS malformed,
         coalesce(role, 'champion') = 'champion' AND version = {version} AND coalesce("test", false) = false
           AND try(from_iso8601_timestamp(ts)) >= from_iso8601_timestamp({start})
           AND try(from_iso8601_timestamp(ts)) < from_iso8601_timestamp({end}) AS wanted
  FROM {captures_table}
  WHERE {hour} BETWEEN {first_hour} AND {last_hour}
),
captured AS (
  SELECT CASE WHEN c.malformed THEN NULL
              WHEN c.v = 2 THEN c.request_id || ':' || CAST(coalesce(element_at(c."index", u.n), u.n - 1) AS varchar)
              WHEN c.v = 3 THEN c.request_id || ':' || CAST(coalesce(element_at(c."index", w.n), w.n - 1) AS varchar)
              ELSE c.request_id END AS row_id,
         coalesce(c.request_id, '') AS {shard_key}, CASE WHEN NOT c.malformed THEN c.caller END AS caller,
{row_columns}         CASE WHEN c.malformed THEN NULL WHEN c.v = 2 THEN element_at(c.outputs, u.n)
              WHEN c.v = 3 THEN element_at(c.outputs, w.n) ELSE c.prediction END AS output,
         CASE WHEN c.malformed THEN 1 END AS {malformed_column}
  FROM raw c
  LEFT JOIN UNNEST(c.v2_rows) WITH ORDINALITY AS u({row_aliases}, n) ON true
  LEFT JOIN UNNEST(c.v3_positions) AS w(n) ON true
  WHERE (c.malformed AND coalesce(u.n, w.n, 1) = 1)
     OR (NOT c.malformed AND c.wanted AND (c.v NOT IN (2, 3) OR u.n IS NOT NULL OR w.n IS NOT NULL))
),
labels AS (
  SELECT request_id, array_agg(label ORDER BY ts) AS label_values, array_agg("by" ORDER BY ts) AS label_by
  FROM {feedback_table}
  WHERE {hour} BETWEEN {first_hour} AND {labels_last_hour}
  GROUP BY request_id
)
SELECT x.row_id AS request_id, x.caller AS caller,
{feature_columns}       x.output AS output,
       l.label_values AS label_values, l.label_by AS label_by,
       x.{malformed_column} AS {malformed_column},
       {shard} AS {shard_column}
FROM captured x
LEFT JOIN labels l ON l.request_id = x.row_id"""
"""One row per captured row of the window with its shard last (as Athena's ``partitioned_by`` needs), plus
one marker row per malformed capture line; the shard key is the only ``request_key`` column in scope, so
the shared shard expression names it unqualified.

One scan of the captures (Athena bills bytes scanned, and JSON is read whole): ``raw`` classifies every
line of the listed hours once, and the two ``LEFT JOIN UNNEST`` keep the lines without ``rows`` (v1
captures, malformed lines) next to the unnested v2 rows and v3 positions; a line has at most one of the
two (the other is null for its version), so each line gives its own rows once. The query streams:
nothing in it holds a record's rows beyond the record itself.
Copies of a delivery (at least once) are NOT removed here: a window function
that numbers them carries every record's nested ``rows``/``outputs`` through the engine's window operator,
whose memory then grows with the window (the local engine failed 2M rows at 512 MB). Every copy of a row
has the same row id, so it lands in the same shard, and the summarize step keeps the first copy of each
row id over the whole shard (:func:`driftline.monitoring.scale.shards.first_copies`).

- v3 records (``v = 3``, ``cols``: one array per feature) give one row per output: the positions
  ``1..cardinality(outputs)`` are unnested and each feature is ``element_at`` of its array. Trino zips
  several arrays with ``UNNEST(a, b, …) WITH ORDINALITY``, but sqlglot passes that through unchanged and
  DuckDB's ``unnest`` takes one list, so the local engine refuses it (``No function matches
  unnest(INTEGER[], VARCHAR[])``); one unnested ``sequence`` and ``element_at`` (a constant-time list
  index on both engines) is the portable form. A v3 record whose ``index`` or any column of the table's
  features disagrees in length with its outputs is malformed, like :func:`driftline.capture_format.expand`
  says (a column absent from the line reads as null, as a missing key of a v2 row does).
- v2 records (``v = 2``) give one row per element of ``rows``; v1 captures (no ``v``, one line per row,
  ``features``/``prediction``, :mod:`driftline.capture_format`) give one row each, their row id being their
  ``request_id`` (a v2 row id always holds a ``:``, so the two never collide).
- a malformed line (the JSON SerDe's ``ignore.malformed.json`` turns a line that is not a JSON object into a
  row of NULLs: no request id; or a v2 record whose ``rows``/``outputs``/``index`` disagree, which
  :func:`driftline.capture_format.expand` refuses) is counted like the in-process reader counts bad lines:
  whatever its time, role or version, once per line, as one row with ``malformed_line = 1`` and no features.
- test traffic (``"test": true``, issue 21) is left out like another role's captures.
- a ``ts`` that is not an ISO 8601 time leaves its record out (``try``), as the in-process reader skips a
  record without a time, instead of failing the whole query.
"""


def _hour(t: datetime) -> str:
    return string_literal(f"{t.astimezone(UTC):%Y/%m/%d/%H}")


def _iso(t: datetime) -> str:
    return string_literal(t.astimezone(UTC).isoformat())


@dataclass(frozen=True)
class ShardQuery:
    """The parameters of :data:`SHARDS_SELECT` for one window of one model."""

    database: str
    captures_table: str
    feedback_table: str
    version: int
    start: datetime
    end: datetime
    list_until: datetime
    """Last capture hour listed (Firehose files records under their arrival hour)."""
    labels_until: datetime
    """Last feedback hour read (labels arrive after their predictions)."""
    features: Sequence[str]
    """The profile's feature columns to read (matched to ``row_fields`` without regard to case)."""
    row_fields: Sequence[str]
    """Every field of the table's ``rows`` struct, in the table's order: Trino's UNNEST of an array of
    rows yields one column per field, named by position (:func:`row_struct_fields` reads them). The
    ``cols`` struct (v3) has the same fields, each an array."""
    shards: int
    location: str
    """``s3://bucket/prefix/`` the shard files are written under (must be empty: Athena refuses otherwise)."""

    def select(self) -> str:
        """The query's SELECT (what :meth:`render` unloads)."""
        if not 1 <= self.shards <= MAX_SHARDS:
            raise ValueError(f"shards must be 1..{MAX_SHARDS}, got {self.shards}")
        if not self.features:
            raise ValueError("no feature columns to read")
        position = {f.lower(): i for i, f in enumerate(self.row_fields)}
        absent = [f for f in self.features if f.lower() not in position]
        if absent:
            raise ValueError(f"the captures table's rows have no field {', '.join(absent)}")
        picked = [(f, position[f.lower()]) for f in self.features]
        row_columns = "".join(
            f"         CASE WHEN c.malformed THEN NULL WHEN c.v = 2 THEN u.f_{i} "
            f"WHEN c.v = 3 THEN element_at(c.v3_cols.{identifier(self.row_fields[i])}, w.n) "
            f"ELSE c.features.{identifier(self.row_fields[i])} END AS f_{i},\n"
            for _, i in picked
        )
        columns_mismatch = "".join(
            f"\n           OR coalesce(cardinality(cols.{identifier(f)}) <> cardinality(outputs), false)"
            for f in self.row_fields
        )
        cols = "".join(f"       x.f_{i} AS {identifier(f)},\n" for f, i in picked)
        db = identifier(self.database)
        return SHARDS_SELECT.format(
            captures_table=f"{db}.{identifier(self.captures_table)}",
            feedback_table=f"{db}.{identifier(self.feedback_table)}",
            hour=identifier(HOUR_COLUMN),
            first_hour=_hour(self.start),
            last_hour=_hour(max(self.start, self.list_until)),
            labels_last_hour=_hour(max(self.start, self.labels_until)),
            version=int(self.version),
            start=_iso(self.start),
            end=_iso(self.end),
            feature_columns=cols,
            row_columns=row_columns,
            columns_mismatch=columns_mismatch,
            row_aliases=", ".join(f"f_{i}" for i in range(len(self.row_fields))),
            shard_key=identifier(SHARD_KEY),
            shard=shard_expression(SHARD_KEY, self.shards),
            shard_column=identifier(SHARD_COLUMN),
            malformed_column=identifier(MALFORMED_COLUMN),
        )

    def render(self) -> str:
        """``UNLOAD (<select>) TO <location>``: Parquet (ZSTD) partitioned by shard."""
        return unload(self.select(), self.location, partitioned_by=[SHARD_COLUMN], compression="ZSTD")


def row_struct_fields(glue_type: str) -> list[str]:
    """The field names of ``array<struct<name:type,…>>`` (a Glue column type), nested types skipped."""
    t = glue_type.strip()
    head, tail = "array<struct<", ">>"
    if not (t.lower().startswith(head) and t.endswith(tail)):
        raise ValueError(f"not an array of structs: {glue_type!r}")
    body, fields, depth, start = t[len(head) : -len(tail)], [], 0, 0
    for i, ch in enumerate(body + ","):
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        elif ch == "," and depth == 0:
            name = body[start:i].split(":", 1)[0].strip().strip("`")
            if name:
                fields.append(name)
            start = i + 1
    return fields


def hours_between(start: datetime, end: datetime) -> int:
    """Whole hours the window's listing spans (for documentation and cost estimates)."""
    return max(1, int((end - start) / timedelta(hours=1)) + 1)
