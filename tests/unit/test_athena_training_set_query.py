"""Golden test of the Athena training-set query (athena_queries.point_in_time_training_set): its exact
text, its DuckDB translation by the local engine, and its result on known data; bad arguments refused."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pytest
from sqlglot import exp

from driftline.athena_queries import point_in_time_training_set
from driftline.local import athena_sql

GIVEN = dict(
    table="db.fs",
    keys=["user_id"],
    time="ts",
    labels=["y"],
    columns=["x"],
    feature_time_as="feature_timestamp",
    feature_days=("2026-01-01", "2026-01-03"),
    max_age_seconds=3600,
    spine=("db.fs_label_events", "build", "b1", "driftline_event"),
)

EXPECTED = (
    'SELECT "user_id", "ts", "y", "x", "feature_timestamp", "driftline_event" FROM ('
    'SELECT s."user_id" AS "user_id", s."ts" AS "ts", s."y" AS "y", s."driftline_event" AS "driftline_event", '
    'f."x" AS "x", f."ts" AS "feature_timestamp", '
    'ROW_NUMBER() OVER (PARTITION BY s."driftline_event" ORDER BY f."ts" DESC) AS driftline_rank '
    'FROM "db"."fs_label_events" AS s LEFT JOIN (SELECT p."user_id", p."ts", p."x" FROM "db"."fs" AS p '
    "WHERE p.\"date\" >= '2026-01-01' AND p.\"date\" <= '2026-01-03') AS f "
    'ON f."user_id" = s."user_id" AND f."ts" <= s."ts" AND f."ts" >= s."ts" - INTERVAL \'3600\' SECOND '
    "WHERE s.\"build\" = 'b1') AS ranked WHERE driftline_rank = 1"
)


def _t(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, 2, hour, minute, tzinfo=UTC)


def test_exact_text_and_duckdb_translation() -> None:
    sql = point_in_time_training_set(**GIVEN)  # type: ignore[arg-type]
    assert sql == EXPECTED
    assert athena_sql.to_duckdb(athena_sql.parse_statement(sql).tree) == sql  # portable as written


def test_result_on_known_data() -> None:
    features = pa.table(
        {
            "user_id": ["a", "a", "a", "b", "c"],
            "ts": pa.array([_t(1), _t(2), _t(4), _t(1), _t(1)], pa.timestamp("us", tz="UTC")),
            "x": [1.0, 2.0, 4.0, None, 9.0],
            "date": ["2026-01-02", "2026-01-02", "2026-01-02", "2026-01-02", "2025-12-31"],
        }
    )
    events = pa.table(
        {
            "user_id": ["a", "a", "a", "b", "b", "c", "z"],
            "ts": pa.array([_t(2), _t(3), _t(0), _t(2), _t(2, 1), _t(1), _t(5)], pa.timestamp("us", tz="UTC")),
            "y": [1, 0, 1, None, 1, 0, 1],
            "driftline_event": list(range(7)),
            "build": ["b1"] * 7,
        }
    )
    other_build = events.set_column(4, "build", pa.array(["b0"] * 7))
    con = duckdb.connect()
    con.register("fs", features)
    con.register("ev", pa.concat_tables([events, other_build.set_column(3, "driftline_event", pa.array(range(7, 14)))]))
    names = {"fs": "fs", "fs_label_events": "ev"}
    tree = athena_sql.parse_statement(point_in_time_training_set(**GIVEN)).tree  # type: ignore[arg-type]
    duck = athena_sql.to_duckdb(tree, lambda t: names.get(t.name) if isinstance(t, exp.Table) else None)
    rows = con.execute(duck + " ORDER BY driftline_event").fetchall()
    got = [(r[0], r[1].hour if r[1] else None, r[2], r[3], r[4].hour if r[4] else None, r[5]) for r in rows]
    assert got == [
        ("a", 2, 1, 2.0, 2, 0),  # a feature row exactly at the event's time is used
        ("a", 3, 0, 2.0, 2, 1),  # the latest at or before (hour 4 is after: never used)
        ("a", 0, 1, None, None, 2),  # before any feature row
        ("b", 2, None, None, 1, 3),  # exactly the max age (1 h) old: in; a null feature value stays null
        ("b", 2, 1, None, None, 4),  # 1 h 1 min old: outside the max age
        ("c", 1, 0, None, None, 5),  # its feature row is in a partition outside the feature days
        # (events of build b0 are not read)
        ("z", 5, 1, None, None, 6),  # unknown entity
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"keys": []}, "at least one key"),
        ({"labels": []}, "at least one key, label"),
        ({"max_age_seconds": -1}, "non-negative integer"),
        ({"max_age_seconds": 1.5}, "non-negative integer"),
        ({"feature_days": ("2026-1-1", None)}, "YYYY-MM-DD"),
        ({"days": (None, "2026-01-01' OR 1=1 --")}, "YYYY-MM-DD"),
        ({"columns": ["X"]}, "not an Athena identifier"),
        ({"spine": ("db.e", "build", "b'1", "driftline-event")}, "not an Athena identifier"),
    ],
)
def test_bad_arguments_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        point_in_time_training_set(**{**GIVEN, **change})  # type: ignore[arg-type]
