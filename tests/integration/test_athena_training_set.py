"""Training sets built by Athena (the local Athena on DuckDB behind moto's API) against the in-process
join: equal row for row on random data, "no training rows" when nothing is in range, pending uploads
never read, the lineage's hash stable across reruns and the query and its execution recorded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.athena_tables import athena_workgroup, database_name
from driftline.contracts import curated_key, pending_key
from driftline.features.athena_training_set import (
    AthenaTrainingSet,
    TrainingQueryError,
    build_training_set_athena,
)
from driftline.features.curated import curated_files
from driftline.features.schema import FeatureSet, parse_feature_set
from driftline.features.tables import TIMESTAMP_TYPE, curated_schema
from driftline.features.training_set import TrainingSetError, build_training_set
from driftline.local.provision import provision_catalog, provision_data
from tests.support.local_athena import REGION, athena_emulator

ACCOUNT = "123456789012"
START = datetime(2026, 11, 1, tzinfo=UTC)
ENTITIES = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def small_fs() -> FeatureSet:
    return parse_feature_set(
        {
            "name": "pit_small",
            "version": 1,
            "entity": ["user_id"],
            "timestamp": "event_ts",
            "features": [
                {"name": "x", "type": "float", "nullable": True},
                {"name": "n", "type": "int", "nullable": True},
                {"name": "c", "type": "categorical", "nullable": True, "categories": ["p", "q"]},
            ],
            "labels": [{"name": "y", "task": "binary_classification"}],
        }
    )


@pytest.fixture(scope="module")
def env(platform_def: Any, credit_fs: Any, small_fs: FeatureSet) -> Iterator[dict[str, Any]]:
    with athena_emulator() as emu:
        clients = emu.clients
        provision_data(platform_def, clients, REGION, ACCOUNT)
        provision_catalog(platform_def, clients, REGION, ACCOUNT, [credit_fs, small_fs])
        yield {
            "clients": clients,
            "bucket": str(platform_def.bucket_name("features", ACCOUNT, REGION)),
            "database": database_name(platform_def),
            "workgroup": athena_workgroup(platform_def).name,
            "athena": clients("athena"),
        }


def _clear(env: dict[str, Any], prefix: str) -> None:
    s3 = env["clients"]("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env["bucket"], Prefix=prefix):
        for o in page.get("Contents", []):
            s3.delete_object(Bucket=env["bucket"], Key=o["Key"])


def _upload(env: dict[str, Any], fs: FeatureSet, rows: list[dict[str, Any]], upload_id: str) -> list[str]:
    """Curated files of one upload, as ingest writes them (one per UTC day)."""
    schema = curated_schema(fs)
    table = pa.Table.from_pylist(rows, schema=schema)
    s3 = env["clients"]("s3")
    keys = []
    for key, body in curated_files(table, fs.name, fs.timestamp, upload_id, max_workers=1):
        s3.put_object(Bucket=env["bucket"], Key=key, Body=body)
        keys.append(key)
    return keys


def _athena(env: dict[str, Any], fs: FeatureSet, **kwargs: Any) -> AthenaTrainingSet:
    return build_training_set_athena(
        fs,
        env["bucket"],
        database=env["database"],
        workgroup=env["workgroup"],
        athena_client=env["athena"],
        client=env["clients"],
        poll_interval_s=0.02,
        timeout_s=60,
        **kwargs,
    )


def _at(minute: int) -> datetime:
    """Minutes plus 7 ms (sub-second precision survives both engines); a label event at a feature row's
    minute has exactly its time, and one whole hours later sits exactly on a whole-hour max age."""
    return START + timedelta(minutes=minute, milliseconds=7)


def _feature_row(entity: str, minute: int, seed: int, label: int | None = None) -> dict[str, Any]:
    return {
        "user_id": entity,
        "event_ts": _at(minute),
        "x": None if seed % 5 == 0 else seed / 3,
        "n": None if seed % 4 == 0 else seed,
        "c": None if seed % 6 == 0 else "pq"[seed % 2],
        "y": label,
    }


# feature rows: (entity, minute) unique (curated rows are unique per entity and time); whole hours over
# three UTC days, so the join crosses partitions and a max age of whole hours lands exactly on a row
feature_keys = st.lists(
    st.tuples(st.sampled_from(ENTITIES), st.integers(0, 72).map(lambda h: h * 60)), min_size=1, max_size=40, unique=True
)


@st.composite
def label_events(draw: st.DrawFn, feats: list[tuple[str, int]]) -> list[tuple[str, int, int | None]]:
    """Label events: many exactly at a feature row's time, others at random times (before any feature
    row too), entities without features ("z"), duplicates and null labels."""
    exact = st.sampled_from(feats).map(lambda f: (f[0], f[1]))
    other = st.tuples(st.sampled_from([*ENTITIES, "z"]), st.integers(-60, 73 * 60))
    shift = st.one_of(st.integers(-90, 90), st.integers(-1, 3).map(lambda h: h * 60))  # whole hours: max-age edges
    shifted = st.tuples(st.sampled_from(feats), shift).map(lambda x: (x[0][0], x[0][1] + x[1]))
    when = draw(st.lists(st.one_of(exact, other, shifted), min_size=1, max_size=30))
    return [(e, m, draw(st.sampled_from([None, 0, 1]))) for e, m in when]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    feats=feature_keys,
    uploads=st.integers(1, 3),
    max_age_minutes=st.one_of(st.none(), st.sampled_from([0, 60, 120, 180]), st.integers(0, 2000)),
)
def test_athena_equals_in_process_row_for_row(
    env: dict[str, Any],
    small_fs: FeatureSet,
    data: st.DataObject,
    feats: list[tuple[str, int]],
    uploads: int,
    max_age_minutes: int | None,
) -> None:
    labels = data.draw(label_events(feats))
    _clear(env, f"curated/{small_fs.name}/")
    rows = [_feature_row(e, m, seed=i * 13 + m) for i, (e, m) in enumerate(feats)]
    for u in range(uploads):
        part = rows[u::uploads]
        if part:
            _upload(env, small_fs, part, f"upload-{u}")
    spine = pa.table(
        {
            "user_id": pa.array([e for e, _, _ in labels], pa.string()),
            "event_ts": pa.array([_at(m) for _, m, _ in labels], TIMESTAMP_TYPE),
            "y": pa.array([y for _, _, y in labels], pa.int64()),
        }
    )
    max_age = None if max_age_minutes is None else timedelta(minutes=max_age_minutes)
    try:
        expected = build_training_set(
            small_fs, env["bucket"], labels=spine, max_feature_age=max_age, client=env["clients"]
        )
    except TrainingSetError:
        with pytest.raises(TrainingSetError, match="no training rows"):
            _athena(env, small_fs, labels=spine, max_feature_age=max_age)
        return
    got = _athena(env, small_fs, labels=spine, max_feature_age=max_age)
    assert got.table.schema.equals(expected.table.schema, check_metadata=True)
    assert got.table.to_pylist() == expected.table.to_pylist()
    assert (got.label_rows, got.unmatched_labels) == (expected.label_rows, expected.unmatched_labels)
    assert got.sha256 == expected.sha256  # same content, same snapshot bytes


def test_curated_label_events_equal_in_process_and_lineage_is_stable(env: dict[str, Any], small_fs: FeatureSet) -> None:
    _clear(env, f"curated/{small_fs.name}/")
    rows = [_feature_row(e, m, seed=m, label=(m % 3 or None) and m % 2) for e in ENTITIES for m in range(0, 2880, 97)]
    _upload(env, small_fs, rows[::2], "u1")
    _upload(env, small_fs, rows[1::2], "u2")
    expected = build_training_set(small_fs, env["bucket"], client=env["clients"])
    first = _athena(env, small_fs)
    second = _athena(env, small_fs)
    assert first.table.to_pylist() == expected.table.to_pylist()
    assert first.sha256 == second.sha256 == expected.sha256
    lineage = first.lineage()
    assert set(expected.lineage()) < set(lineage)
    assert lineage["engine"] == "athena"
    assert lineage["query"].startswith("UNLOAD (SELECT") and f"{env['database']}" in lineage["query"]
    assert lineage["query_execution_id"] == first.query_execution_id != second.query_execution_id
    assert lineage["data_scanned_bytes"] > 0
    assert [o["key"] for o in lineage["object_versions"]] == [o["key"] for o in expected.lineage()["object_versions"]]
    # one day only: fewer partitions read, only that day's label events
    day = _athena(env, small_fs, days=("2026-11-01", "2026-11-01"))
    assert {r["event_ts"].date().isoformat() for r in day.table.to_pylist()} == {"2026-11-01"}
    assert 0 < day.data_scanned_bytes < first.data_scanned_bytes


def test_no_data_in_range_is_no_training_rows_naming_the_range(env: dict[str, Any], small_fs: FeatureSet) -> None:
    _clear(env, f"curated/{small_fs.name}/")
    _upload(env, small_fs, [_feature_row("a", m, seed=m, label=1) for m in range(0, 600, 60)], "u1")
    with pytest.raises(TrainingSetError, match=r"no training rows: no curated data .* days 2020-01-01 to 2020-01-31"):
        _athena(env, small_fs, days=("2020-01-01", "2020-01-31"))
    with pytest.raises(
        TrainingSetError, match=r"no training rows: .* no labelled rows in days 2027-01-01 to 2027-01-31"
    ):
        _athena(env, small_fs, days=("2027-01-01", "2027-01-31"))
    # curated data in range, labels far later than any feature row allows with the max age
    late = pa.table(
        {
            "user_id": pa.array(["a"], pa.string()),
            "event_ts": pa.array([START + timedelta(hours=20)], TIMESTAMP_TYPE),
            "y": pa.array([1], pa.int64()),
        }
    )
    with pytest.raises(TrainingSetError, match=r"no training rows: none of the 1 label events .* within 1:00:00"):
        _athena(env, small_fs, labels=late, max_feature_age=timedelta(hours=1))


def test_pending_upload_in_range_is_never_read(env: dict[str, Any], small_fs: FeatureSet) -> None:
    _clear(env, f"curated/{small_fs.name}/")
    s3 = env["clients"]("s3")
    _upload(env, small_fs, [_feature_row("a", m, seed=m, label=1) for m in range(0, 600, 60)], "u1")
    # u2 is committing: its file for day 2 exists, its pending marker too
    _upload(env, small_fs, [_feature_row("b", 1440 + m, seed=m, label=0) for m in range(0, 600, 60)], "u2")
    s3.put_object(Bucket=env["bucket"], Key=pending_key(small_fs.name, "u2"), Body=b"")
    assert s3.list_objects_v2(Bucket=env["bucket"], Prefix=curated_key(small_fs.name, "2026-11-02", "u2"))["KeyCount"]
    with pytest.raises(TrainingSetError, match=r"upload\(s\) u2 .* commit has not finished"):
        _athena(env, small_fs)
    # outside the pending upload's days the build runs, and equals the in-process one (which skips u2)
    got = _athena(env, small_fs, days=("2026-11-01", "2026-11-01"))
    expected = build_training_set(small_fs, env["bucket"], client=env["clients"])
    assert got.table.to_pylist() == expected.table.to_pylist()
    assert {r["user_id"] for r in got.table.to_pylist()} == {"a"}


def test_failed_query_names_athena_reason(env: dict[str, Any], small_fs: FeatureSet) -> None:
    _clear(env, f"curated/{small_fs.name}/")
    _upload(env, small_fs, [_feature_row("a", m, seed=m, label=1) for m in range(0, 600, 60)], "u1")
    with pytest.raises(TrainingQueryError, match=r"training-set query .* failed: .*"):
        build_training_set_athena(
            small_fs,
            env["bucket"],
            database="no_such_database",
            workgroup=env["workgroup"],
            athena_client=env["athena"],
            client=env["clients"],
            poll_interval_s=0.02,
        )
