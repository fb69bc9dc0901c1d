"""Every Athena query Driftline sends, written once, in the portable subset of Trino (Athena engine v3)
and DuckDB (the local Athena, :mod:`driftline.local.athena`).

``tests/unit/test_local_athena.py`` golden-tests each of them on DuckDB: the transpiled text and the
result on known data. A query added here gets a golden test there. Rules of the subset:

- no ``ASOF JOIN`` (Athena's Trino has none): point-in-time joins are a range join plus ``ROW_NUMBER``;
- exact aggregates only in results compared across engines (``approx_*`` use different sketches);
- hash sharding with :func:`shard_expression` (MD5-based, evaluated identically by both engines;
  Trino's ``xxhash64`` has no DuckDB counterpart);
- identifiers are validated, literals quoted here: callers never paste text into SQL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = [
    "UNLOAD_COMPRESSIONS",
    "identifier",
    "point_in_time_join",
    "point_in_time_training_set",
    "shard_expression",
    "string_literal",
    "unload",
]

UNLOAD_COMPRESSIONS = ("GZIP", "SNAPPY", "ZSTD", "NONE")
"""Parquet compressions both Athena's UNLOAD and the local engine write."""

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,254}")


def identifier(name: str) -> str:
    """A Glue/Athena identifier (lower case, letters, digits, ``_``), double-quoted; anything else is refused."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not an Athena identifier: {name!r} (lower-case letters, digits and '_')")
    return f'"{name}"'


def _qualified(name: str) -> str:
    return ".".join(identifier(part) for part in name.split("."))


def string_literal(value: str) -> str:
    """A SQL string literal (``'`` doubled)."""
    if "\x00" in value:
        raise ValueError("a SQL string literal cannot hold NUL")
    return "'" + value.replace("'", "''") + "'"


def shard_expression(column: str, shards: int) -> str:
    """The shard (0 … shards-1) of a row by a hash of ``column``: the first 8 bytes of its MD5 as a
    signed big-endian 64-bit number, truncated remainder, absolute value. Trino and the local engine
    compute the same shard for the same value."""
    if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= 100_000:
        raise ValueError(f"shards must be an integer from 1 to 100000, got {shards!r}")
    return f"abs(from_big_endian_64(substr(md5(to_utf8(CAST({identifier(column)} AS varchar))), 1, 8)) % {shards})"


def point_in_time_join(
    *,
    spine: str,
    features: str,
    keys: Sequence[str],
    spine_time: str,
    feature_time: str,
    columns: Sequence[str],
) -> str:
    """For every spine row, the feature row with the same keys and the latest ``feature_time`` not after
    its ``spine_time`` (no row: NULL features). Portable form of an ASOF join: range join + ``ROW_NUMBER``.

    ``spine`` and ``features`` are tables (``db.table`` or ``table``); ties at the same feature time keep
    one row (the engine's choice, as Athena's).
    """
    if not keys or not columns:
        raise ValueError("point_in_time_join needs at least one key and one feature column")
    on = " AND ".join(f"f.{identifier(k)} = s.{identifier(k)}" for k in keys)
    part = ", ".join(f"s.{identifier(k)}" for k in keys)
    picked = ", ".join(f"f.{identifier(c)} AS {identifier(c)}" for c in columns)
    out_cols = ", ".join(identifier(c) for c in columns)
    spine_cols = ", ".join(identifier(k) for k in keys)
    return (
        f"SELECT {spine_cols}, {identifier(spine_time)}, {out_cols} FROM ("  # noqa: S608  # nosec B608 - names pass identifier()
        f"SELECT s.*, {picked}, ROW_NUMBER() OVER (PARTITION BY {part}, s.{identifier(spine_time)} "
        f"ORDER BY f.{identifier(feature_time)} DESC) AS driftline_rank "
        f"FROM {_qualified(spine)} AS s LEFT JOIN {_qualified(features)} AS f "
        f"ON {on} AND f.{identifier(feature_time)} <= s.{identifier(spine_time)}"
        f") AS ranked WHERE driftline_rank = 1"
    )


def point_in_time_training_set(
    *,
    table: str,
    keys: Sequence[str],
    time: str,
    labels: Sequence[str],
    columns: Sequence[str],
    feature_time_as: str,
    days: tuple[str | None, str | None] = (None, None),
    feature_days: tuple[str | None, str | None] = (None, None),
    max_age_seconds: int | None = None,
    spine: tuple[str, str, str, str] | None = None,
) -> str:
    """The training set of one feature table: every row with a non-null first label (the label
    events, the spine) gets the feature values of the row with the same keys and the latest ``time`` at
    or before its own (and, with ``max_age_seconds``, not older than that), plus that row's time as
    ``feature_time_as`` (NULL: no row in range; the caller counts those as unmatched).

    The spine and the feature side read the same table; ``days`` / ``feature_days`` bound the ``date``
    partition of each (``YYYY-MM-DD``, inclusive; None: open) so Athena reads only those partitions.
    Range join + ``ROW_NUMBER`` as :func:`point_in_time_join`; rows of one key share no time, so the
    rank-1 row is unique. The feature side is a subquery whose WHERE holds its partition bounds, so
    both engines prune there (the local one reads only a SELECT's WHERE, not a join's ON).

    ``spine`` = (table, partition column, partition value, event id column): the label events come from
    that table's one partition instead (every row kept, told apart by the event id, which is returned
    too; ``days`` does not apply to it).
    """
    if not keys or not columns or not labels:
        raise ValueError("point_in_time_training_set needs at least one key, label and feature column")
    if max_age_seconds is not None and (
        not isinstance(max_age_seconds, int) or isinstance(max_age_seconds, bool) or max_age_seconds < 0
    ):
        raise ValueError(f"max_age_seconds must be a non-negative integer, got {max_age_seconds!r}")

    def day_filter(alias: str, bounds: tuple[str | None, str | None]) -> list[str]:
        out = []
        for op, day in ((">=", bounds[0]), ("<=", bounds[1])):
            if day is not None:
                if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
                    raise ValueError(f"partition day must be YYYY-MM-DD, got {day!r}")
                out.append(f"{alias}.{identifier('date')} {op} {string_literal(day)}")
        return out

    t, q = identifier(time), _qualified(table)
    on = [f"f.{identifier(k)} = s.{identifier(k)}" for k in keys]
    on.append(f"f.{t} <= s.{t}")
    if max_age_seconds is not None:
        on.append(f"f.{t} >= s.{t} - INTERVAL {string_literal(str(max_age_seconds))} SECOND")
    feature_where = day_filter("p", feature_days)
    feature_cols = ", ".join(f"p.{identifier(c)}" for c in dict.fromkeys((*keys, time, *columns)))
    where = f" WHERE {' AND '.join(feature_where)}" if feature_where else ""
    features = f"(SELECT {feature_cols} FROM {q} AS p{where})"  # noqa: S608  # nosec B608 - identifiers and checked days
    spine_days = day_filter("s", days)  # checked even when a spine table makes them unused
    spine_table, event = q, tuple[str, ...]()
    if spine is None:
        spine_where = [f"s.{identifier(labels[0])} IS NOT NULL", *spine_days]
        part = ", ".join(f"s.{identifier(k)}" for k in (*keys, time))
    else:
        spine_table, event = _qualified(spine[0]), (spine[3],)
        spine_where = [f"s.{identifier(spine[1])} = {string_literal(spine[2])}"]
        part = f"s.{identifier(spine[3])}"
    spine_cols = ", ".join(f"s.{identifier(c)} AS {identifier(c)}" for c in (*keys, time, *labels, *event))
    picked = ", ".join(f"f.{identifier(c)} AS {identifier(c)}" for c in columns)
    out_cols = ", ".join(identifier(c) for c in (*keys, time, *labels, *columns, feature_time_as, *event))
    return (
        f"SELECT {out_cols} FROM ("  # noqa: S608  # nosec B608 - names pass identifier(), days are checked literals
        f"SELECT {spine_cols}, {picked}, f.{t} AS {identifier(feature_time_as)}, "
        f"ROW_NUMBER() OVER (PARTITION BY {part} ORDER BY f.{t} DESC) AS driftline_rank "
        f"FROM {spine_table} AS s LEFT JOIN {features} AS f ON {' AND '.join(on)} "
        f"WHERE {' AND '.join(spine_where)}"
        f") AS ranked WHERE driftline_rank = 1"
    )


def unload(select: str, target: str, *, partitioned_by: Sequence[str] = (), compression: str = "ZSTD") -> str:
    """``UNLOAD (<select>) TO '<target>' WITH (format = 'PARQUET', ...)``; ``target`` an ``s3://`` prefix
    that must be empty (Athena refuses to write into a non-empty one)."""
    if not target.startswith("s3://") or not target.endswith("/"):
        raise ValueError(f"UNLOAD target must be an s3:// prefix ending with '/', got {target!r}")
    if compression.upper() not in UNLOAD_COMPRESSIONS:
        raise ValueError(f"compression must be one of {', '.join(UNLOAD_COMPRESSIONS)}, got {compression!r}")
    props = [f"format = {string_literal('PARQUET')}", f"compression = {string_literal(compression.upper())}"]
    if partitioned_by:
        for column in partitioned_by:
            identifier(column)
        props.append("partitioned_by = ARRAY[" + ", ".join(string_literal(c) for c in partitioned_by) + "]")
    return f"UNLOAD ({select}) TO {string_literal(target)} WITH ({', '.join(props)})"
