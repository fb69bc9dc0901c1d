"""The Athena queries of the scale-out drift check, each a named template (golden-tested on DuckDB).

Written in the subset of Trino that DuckDB also runs once sqlglot has transpiled it (the local
platform answers Athena with DuckDB): ``from_iso8601_timestamp``, ``ROW_NUMBER``, ``UNNEST … WITH
ORDINALITY``, ``element_at``, ``array_agg(… ORDER BY …)``, ``strpos``/``substr``/``md5``. Neither
engine shares a hash function that returns a number, so the shard of a request id is read off the
first three hex digits of its MD5 (the same shard on both engines, 4096 buckets folded onto N).

``SHARDS_UNLOAD`` is one pass over the window: the champion's captures of the monitored version
whose ``ts`` lies in [start, end), one copy per (request id, role, part) (delivery is at least once),
their rows unnested with their outputs under their row ids (``<request id>:<position>``,
:func:`driftline.capture_format.row_id`), the feedback labels of each row id gathered in stored
order (the summarize step applies the label binding rules, :class:`driftline.serving.labels.Labels`,
so SQL does not re-implement them), and a shard number last, as Athena's ``partitioned_by`` needs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from driftline.capture_tables import HOUR_PARTITION

__all__ = [
    "HOUR_COLUMN",
    "MAX_SHARDS",
    "SHARDS_UNLOAD",
    "ShardQuery",
    "quote_ident",
    "quote_literal",
    "row_struct_fields",
    "shard_expression",
]

MAX_SHARDS = 100
"""Shards at most: Athena writes at most 100 partitions per UNLOAD (the local Athena enforces it too), which
also keeps the shard files well under the 1000 keys moto's Distributed Map reads in its one listing."""
HOUR_COLUMN = HOUR_PARTITION
"""The captures and feedback tables' projected partition (``yyyy/MM/dd/HH``, the Firehose hour layout)."""
HASH_DIGITS = 3
"""Hex digits of the request id's MD5 that pick its shard (16**3 buckets folded onto the shard count)."""

SHARDS_UNLOAD = """\
UNLOAD (
WITH caps AS (
  SELECT request_id, caller, ts, rows, outputs, "index",
         ROW_NUMBER() OVER (PARTITION BY request_id, role, part ORDER BY ts) AS copy_no
  FROM {captures_table}
  WHERE {hour} BETWEEN {first_hour} AND {last_hour}
    AND role = 'champion' AND version = {version}
    AND from_iso8601_timestamp(ts) >= from_iso8601_timestamp({start})
    AND from_iso8601_timestamp(ts) < from_iso8601_timestamp({end})
),
captured AS (
  SELECT c.request_id || ':' || CAST(coalesce(element_at(c."index", u.n), u.n - 1) AS varchar) AS row_id,
         c.request_id AS request_key, c.caller AS caller,
{row_columns}         element_at(c.outputs, u.n) AS output
  FROM caps c
  CROSS JOIN UNNEST(c.rows) WITH ORDINALITY AS u({row_aliases}, n)
  WHERE c.copy_no = 1
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
       {shard} AS shard
FROM captured x
LEFT JOIN labels l ON l.request_id = x.row_id
) TO {location} WITH (format = 'PARQUET', compression = 'ZSTD', partitioned_by = ARRAY['shard'])"""
"""One row per captured row of the window, sharded by request id, written as Parquet under ``location``."""

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quote_ident(name: str) -> str:
    """A Trino identifier in double quotes (quotes doubled), refusing control characters."""
    if not name or any(ord(ch) < 32 for ch in name):
        raise ValueError(f"identifier {name!r} is empty or holds control characters")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A Trino string literal (quotes doubled), refusing control characters."""
    if any(ord(ch) < 32 for ch in value):
        raise ValueError(f"literal {value!r} holds control characters")
    return "'" + value.replace("'", "''") + "'"


def shard_expression(column: str, shards: int) -> str:
    """``mod(<first HASH_DIGITS hex digits of md5(column) as a number>, shards)``, portable Trino/DuckDB."""
    if not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"shards must be 1..{MAX_SHARDS}, got {shards}")
    hexed = f"lower(to_hex(md5(to_utf8({column}))))"
    digits = [
        f"(strpos('0123456789abcdef', substr({hexed}, {i + 1}, 1)) - 1) * {16 ** (HASH_DIGITS - 1 - i)}"
        for i in range(HASH_DIGITS)
    ]
    return f"mod({' + '.join(digits)}, {shards})"


def _hour(t: datetime) -> str:
    return quote_literal(f"{t.astimezone(UTC):%Y/%m/%d/%H}")


def _iso(t: datetime) -> str:
    return quote_literal(t.astimezone(UTC).isoformat())


@dataclass(frozen=True)
class ShardQuery:
    """The parameters of :data:`SHARDS_UNLOAD` for one window of one model."""

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
    rows yields one column per field, named by position (:func:`row_struct_fields` reads them)."""
    shards: int
    location: str
    """``s3://bucket/prefix/`` the shard files are written under (must be empty: Athena refuses otherwise)."""

    def render(self) -> str:
        if not self.location.startswith("s3://") or not self.location.endswith("/"):
            raise ValueError(f"UNLOAD location must be s3://…/, got {self.location!r}")
        if not self.features:
            raise ValueError("no feature columns to read")
        table = f"{quote_ident(self.database)}.{{}}"
        position = {f.lower(): i for i, f in enumerate(self.row_fields)}
        absent = [f for f in self.features if f.lower() not in position]
        if absent:
            raise ValueError(f"the captures table's rows have no field {', '.join(absent)}")
        picked = [(f, position[f.lower()]) for f in self.features]
        row_columns = "".join(f"         u.f_{i} AS f_{i},\n" for _, i in picked)
        cols = "".join(f"       x.f_{i} AS {quote_ident(f)},\n" for f, i in picked)
        return SHARDS_UNLOAD.format(
            captures_table=table.format(quote_ident(self.captures_table)),
            feedback_table=table.format(quote_ident(self.feedback_table)),
            hour=quote_ident(HOUR_COLUMN),
            first_hour=_hour(self.start),
            last_hour=_hour(max(self.start, self.list_until)),
            labels_last_hour=_hour(max(self.start, self.labels_until)),
            version=int(self.version),
            start=_iso(self.start),
            end=_iso(self.end),
            feature_columns=cols,
            row_columns=row_columns,
            row_aliases=", ".join(f"f_{i}" for i in range(len(self.row_fields))),
            shard=shard_expression("x.request_key", self.shards),
            location=quote_literal(self.location),
        )


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
