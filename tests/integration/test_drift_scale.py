"""The scale-out drift check's summarize and reduce steps against moto S3, fed by the shard query run on
DuckDB: the same window through both paths gives the same drift results; missing, failed or malformed
shards end the check ``incomplete`` naming them; a failed Athena query ends it ``failed`` with its message."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from driftline import aws as aws_mod
from driftline.capture_format import columnar, dict_columns, request_record, row_id
from driftline.contracts import drift_run_name, drift_shard_data_prefix, drift_shard_summary_key
from driftline.drift import Profile
from driftline.monitoring import Context, run_check
from driftline.monitoring.history import RUNNING, DriftHistory, HistoryEntry
from driftline.monitoring.scale import ShardFileError, ShardQuery, reduce_check, summarize_shard_object
from driftline.monitoring.scale.reduce import FAILED, INCOMPLETE
from driftline.registry.artifacts import ArtifactRef, read_verified
from tests.fixtures.drift_scale import capture_records, captures_schema, unload_to, with_hour
from tests.integration.test_monitoring_check import (
    MODEL,
    T0,
    credit_rows,
    drain,
    observe,
    register_champion,
    score,
    window,
    write_feedback,
)

DB = "driftline_test"


def write_v2_captures(
    fs: Any,
    version: int,
    start: datetime,
    n: int,
    seed: int,
    shift: float = 0.0,
    role: str = "champion",
    caller: str | None = None,
    per_request: int = 4,
    columns: bool = False,
) -> list[str]:
    """``n`` captured rows as v2 records of ``per_request`` rows each (v3, the rows by column, with
    ``columns``, as the serving writer writes them); returns the row ids labels name."""
    cols = credit_rows(fs, n, seed, shift)
    probs = score(cols)
    lines, row_ids = [], []
    for first in range(0, n, per_request):
        rid = uuid.uuid4().hex
        idx = range(first, min(n, first + per_request))
        rows = [{k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in cols.items()} for i in idx]
        outputs = []
        for i in idx:
            p = float(probs[i])
            outputs.append({"label": int(p > 0.5), "probability": p, "probabilities": {"0": 1 - p, "1": p}})
        ts = (start + timedelta(seconds=first * (3000 / n))).isoformat()
        rec = request_record(
            request_id=rid,
            model=MODEL,
            version=version,
            role=role,
            ts=ts,
            latency_ms=0.05,
            rows=rows,
            outputs=outputs,
            caller=caller,
        )
        if columns:
            by_column = dict_columns(rows)
            assert by_column is not None
            rec = columnar(rec, by_column)
        lines.append(json.dumps(rec))
        row_ids += [row_id(rid, j) for j in range(len(rows))]
    key = f"captures/model={MODEL}/{start:%Y/%m/%d/%H}/{MODEL}-{uuid.uuid4().hex}"
    aws_mod.client("s3").put_object(Bucket=aws_mod.env("CAPTURES_BUCKET"), Key=key, Body="\n".join(lines).encode())
    return row_ids


def _objects(bucket: str, prefix: str) -> list[str]:
    s3 = aws_mod.client("s3")
    out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out += s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().decode().splitlines()
    return [line for line in out if line.strip()]


def _feature_set() -> Any:
    from driftline.features.schema import load_feature_set
    from tests.conftest import FEATURE_SETS

    return load_feature_set(FEATURE_SETS / "credit_default.yaml")


def _profile() -> Profile:
    from driftline.registry.store import Registry

    reg = Registry.from_env()
    champion = reg.aliases(MODEL).champion
    assert champion is not None
    ref = reg.get_version(MODEL, champion).artifacts["profile"]
    ref = ref if isinstance(ref, ArtifactRef) else ArtifactRef.from_dict(ref)
    return Profile.from_json(read_verified(ref))


def _shard_files(env: dict[str, str], version: int, tmp: Path, shards: int, run: str) -> list[str]:
    """Run the shard query on DuckDB over the bucket's captures and feedback (typed as the Glue table
    declares them); upload the shard files."""
    bucket = env["CAPTURES_BUCKET"]
    caps = with_hour(capture_records(_objects(bucket, f"captures/model={MODEL}/")))
    labels = with_hour(json.loads(line) for line in _objects(bucket, f"feedback/model={MODEL}/"))
    for lab in labels:
        lab["label"] = str(lab["label"])  # the JSON SerDe reads a string column
        lab.setdefault("by", None)
    profile = _profile()
    features = [c for c in profile.columns if profile.columns[c].role == "feature"]
    captures_table = pa.Table.from_pylist(caps, schema=captures_schema(_feature_set()))
    row_fields = [f.name for f in captures_table.schema.field("rows").type.value_type]
    q = ShardQuery(
        DB,
        "captures_m",
        "feedback_m",
        version,
        T0,
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=1, minutes=20),
        T0 + timedelta(days=1),
        features,
        row_fields,
        shards,
        f"s3://{bucket}/{drift_shard_data_prefix(MODEL, run)}",
    )
    feedback_schema = pa.schema([(c, pa.string()) for c in ("request_id", "label", "ts", "by", "hour")])
    tables = {
        "captures_m": captures_table,
        "feedback_m": pa.Table.from_pylist(
            [{c: lab.get(c) for c in feedback_schema.names} for lab in labels], schema=feedback_schema
        ),
    }
    keys = []
    s3 = aws_mod.client("s3")
    for path in unload_to(q.render(), tables, DB, tmp):
        key = drift_shard_data_prefix(MODEL, run) + str(path.relative_to(tmp))
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        keys.append(key)
    return keys


def _summarize_all(env: dict[str, str], run: str, keys: list[str]) -> None:
    profile = _profile()
    for key in keys:
        summarize_shard_object(
            env["CAPTURES_BUCKET"],
            key,
            drift_shard_summary_key(MODEL, run, key),
            profile,
            client=aws_mod.client("s3"),
        )


def _event(version: int, run: str, **extra: Any) -> dict[str, Any]:
    start, end = window(0)
    return {"model": MODEL, "version": version, "run": run, "window_start": start, "window_end": end, **extra}


def _result(env: dict[str, str], uri: str) -> dict[str, Any]:
    key = uri.split("/", 3)[3]
    return json.loads(aws_mod.client("s3").get_object(Bucket=env["REPORTS_BUCKET"], Key=key)["Body"].read())


def test_same_window_through_both_paths_gives_the_same_drift(
    aws: dict[str, str], credit_fs: Any, tmp_path: Path
) -> None:
    v = register_champion(credit_fs)
    ids = write_v2_captures(credit_fs, v, T0, 400, seed=2, shift=1.0, caller="alice")
    write_v2_captures(credit_fs, v, T0, 30, seed=3, role="shadow")
    dup = _objects(aws["CAPTURES_BUCKET"], f"captures/model={MODEL}/")[:5]  # at-least-once delivery
    aws_mod.client("s3").put_object(
        Bucket=aws["CAPTURES_BUCKET"], Key=f"captures/model={MODEL}/{T0:%Y/%m/%d/%H}/redelivered", Body="\n".join(dup)
    )
    rng = np.random.default_rng(0)
    write_feedback(ids[:200], rng.integers(0, 2, 200).tolist(), T0 + timedelta(minutes=50), by="alice")
    write_feedback(ids[200:300], [1] * 100, T0 + timedelta(minutes=40), by="mallory")  # forged: never counts
    start, end = window(0)
    in_process = run_check(MODEL, window_start=start, window_end=end)
    a = _result(aws, in_process["result_uri"])

    run = drift_run_name(MODEL, end)
    keys = _shard_files(aws, v, tmp_path, 8, run)
    assert 1 < len(keys) <= 8
    _summarize_all(aws, run, keys)
    scaled = reduce_check(
        _event(v, run), ctx=Context.from_env(), client=aws_mod.client("s3"), now=T0 + timedelta(hours=2)
    )
    b = _result(aws, scaled["result_uri"])

    assert scaled["engine"] == "workflow" and b["status"] == a["status"] == "ok"
    assert b["n_current"] == a["n_current"] == 400
    assert b["drifted_columns"] == a["drifted_columns"] and b["prediction_drifted"] == a["prediction_drifted"]
    assert set(b["columns"]) == set(a["columns"])
    for name, col in a["columns"].items():
        other = b["columns"][name]
        assert other["method"] == col["method"] and other["drifted"] == col["drifted"], name
        for k in ("statistic", "p_value"):
            if col[k] is None:
                assert other[k] is None, (name, k)
            else:
                assert other[k] == pytest.approx(col[k], rel=1e-9, abs=1e-12), (name, k)
    assert a["performance"]["n_labels"] == b["performance"]["n_labels"] == 200
    for metric, value in a["performance"]["metrics"].items():
        assert b["performance"]["metrics"][metric]["current"] == pytest.approx(value["current"]), metric
    assert b["captures"]["shards"] == len(keys)
    assert (b["weighting"], b["share_drifted"]) == (a["weighting"], pytest.approx(a["share_drifted"]))
    assert b["quality"]["status"] == a["quality"]["status"] == "ok"
    for name, q in a["quality"]["columns"].items():  # the merged counts give the in-process rates
        other = b["quality"]["columns"][name]
        assert (other["missing_rate"], other["unseen_category_rate"]) == (q["missing_rate"], q["unseen_category_rate"])
        assert other["out_of_range_rate"] in (None, q["out_of_range_rate"]), name  # None: declared bounds widen it


def test_a_shard_without_summary_makes_the_check_incomplete(
    aws: dict[str, str], credit_fs: Any, tmp_path: Path
) -> None:
    v = register_champion(credit_fs)
    write_v2_captures(credit_fs, v, T0, 300, seed=4, shift=1.0)
    probes = observe(aws)
    run = drift_run_name(MODEL, window(0)[1])
    keys = _shard_files(aws, v, tmp_path, 4, run)
    _summarize_all(aws, run, keys[1:])  # the first shard's task failed after its retries
    out = reduce_check(_event(v, run), ctx=Context.from_env(), client=aws_mod.client("s3"), now=T0 + timedelta(hours=2))
    assert out["status"] == INCOMPLETE and keys[0] in out["message"]
    assert not out["drifted"] and not out["alarm"] and out["drifted_columns"] == []
    doc = _result(aws, out["result_uri"])
    assert doc["captures"]["missing_shards"] == [keys[0]] and doc["status"] == INCOMPLETE
    alerts = drain(probes["alerts-probe"])
    assert len(alerts) == 1 and keys[0] in alerts[0]["Message"] and "incomplete" in alerts[0]["Subject"]
    assert drain(probes["events-probe"]) == []


def test_a_malformed_shard_file_is_named(aws: dict[str, str], credit_fs: Any, tmp_path: Path) -> None:
    v = register_champion(credit_fs)
    write_v2_captures(credit_fs, v, T0, 200, seed=5)
    run = drift_run_name(MODEL, window(0)[1])
    keys = _shard_files(aws, v, tmp_path, 2, run)
    bad = drift_shard_data_prefix(MODEL, run) + "shard=9/truncated"
    aws_mod.client("s3").put_object(Bucket=aws["CAPTURES_BUCKET"], Key=bad, Body=b"PAR1\x00\x01 not parquet")
    _summarize_all(aws, run, keys)
    with pytest.raises(ShardFileError, match="truncated"):
        _summarize_all(aws, run, [bad])
    out = reduce_check(_event(v, run), ctx=Context.from_env(), client=aws_mod.client("s3"), now=T0 + timedelta(hours=2))
    assert out["status"] == INCOMPLETE and bad in out["message"] and "Parquet" in out["message"]


def test_a_failed_query_records_a_failed_check_with_athenas_message(aws: dict[str, str], credit_fs: Any) -> None:
    v = register_champion(credit_fs)
    probes = observe(aws)
    reason = "TABLE_NOT_FOUND: line 4:8: Table 'awsdatacatalog.db.captures_m' does not exist"
    failure = {"QueryExecution": {"Status": {"State": "FAILED", "StateChangeReason": reason}}}
    run = drift_run_name(MODEL, window(0)[1])
    out = reduce_check(
        _event(v, run, query_error=failure["QueryExecution"]),
        ctx=Context.from_env(),
        client=aws_mod.client("s3"),
        now=T0 + timedelta(hours=2),
    )
    assert out["status"] == FAILED and reason in out["message"]
    assert reason in _result(aws, out["result_uri"])["message"]
    alerts = drain(probes["alerts-probe"])
    assert len(alerts) == 1 and reason in alerts[0]["Message"]


def test_reduce_completes_the_running_item_keeping_its_listing_and_late_rows(
    aws: dict[str, str], credit_fs: Any
) -> None:
    """The failed outcome keeps the dispatch's listed_until (late rows stay counted) and the late rows the
    look-back added while the workflow ran; a later window judged meanwhile gets its streak recomputed."""
    v = register_champion(credit_fs)
    history = DriftHistory.from_env()
    start, end = window(0)
    s1, e1 = window(1)
    history.put(HistoryEntry(MODEL, start, end, v, RUNNING, listed_until=end, execution_arn="arn:e", late_rows=7))
    history.put(HistoryEntry(MODEL, s1, e1, v, "ok", drifted=True, streak=1, alarm=True))  # saw window 0 neutral
    run = drift_run_name(MODEL, end)
    out = reduce_check(
        _event(v, run, listed_until=end, query_error="HIVE_BAD_DATA: boom"),
        ctx=Context.from_env(),
        client=aws_mod.client("s3"),
        now=T0 + timedelta(hours=2),
    )
    assert out["status"] == FAILED
    done = history.get(MODEL, end)
    assert done is not None and done.status == FAILED and done.listed_until == end
    assert done.late_rows == 7 and done.execution_arn == "arn:e"
    after = history.get(MODEL, e1)
    assert after is not None and after.streak == 1  # a failed window keeps the streak as it was


def test_a_window_judged_while_the_workflow_ran_gets_its_streak_from_the_verdict(
    aws: dict[str, str], credit_fs: Any, tmp_path: Path
) -> None:
    """The next window was checked while this one was running (neutral, streak carried); once reduce finds
    this one drifted, the next one's streak counts it."""
    v = register_champion(credit_fs)
    write_v2_captures(credit_fs, v, T0, 400, seed=2, shift=1.0)
    history = DriftHistory.from_env()
    start, end = window(0)
    s1, e1 = window(1)
    history.put(HistoryEntry(MODEL, start, end, v, RUNNING, listed_until=end, execution_arn="arn:e"))
    history.put(HistoryEntry(MODEL, s1, e1, v, "ok", dataset_drifted=True, drifted=True, streak=1, reasons=["x"]))
    run = drift_run_name(MODEL, end)
    _summarize_all(aws, run, _shard_files(aws, v, tmp_path, 4, run))
    out = reduce_check(_event(v, run), ctx=Context.from_env(), client=aws_mod.client("s3"), now=T0 + timedelta(hours=2))
    assert out["status"] == "ok" and out["drifted"] and out["streak"] == 1
    after = history.get(MODEL, e1)
    persistence = Context.from_env().config.model(MODEL).drift.persistence_windows
    assert after is not None and after.streak == 2 and after.alarm == (persistence <= 2)
    assert out["restreaked"] == ([e1] if after.alarm else [])


def test_late_rows_counted_while_reduce_runs_are_not_lost(
    aws: dict[str, str], credit_fs: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: reduce reads the running item (7 late rows), then a look-back holding the lease adds 5
    more before reduce writes the completed item. The conditional write re-reads and keeps all 12."""
    from driftline.monitoring import publish

    v = register_champion(credit_fs)
    write_v2_captures(credit_fs, v, T0, 300, seed=6)
    history = DriftHistory.from_env()
    start, end = window(0)
    history.put(HistoryEntry(MODEL, start, end, v, RUNNING, listed_until=end, execution_arn="arn:e", late_rows=7))
    run = drift_run_name(MODEL, end)
    _summarize_all(aws, run, _shard_files(aws, v, tmp_path, 2, run))
    real_write = publish.write_report
    raced: list[bool] = []

    def write_report_then_race(*args: Any, **kwargs: Any) -> Any:
        out = real_write(*args, **kwargs)  # after reduce read the item, before it writes it
        with history.lease(MODEL) as lease:
            assert lease is not None
            raced.append(history.record_late(MODEL, lease, "2026-11-26T12:00:00+00:00", {end: 5}))
        return out

    monkeypatch.setattr(publish, "write_report", write_report_then_race)
    out = reduce_check(_event(v, run), ctx=Context.from_env(), client=aws_mod.client("s3"), now=T0 + timedelta(hours=2))
    assert raced == [True] and out["status"] == "ok"
    done = history.get(MODEL, end)
    assert done is not None and done.status == "ok" and done.late_rows == 12 and done.execution_arn == "arn:e"


def test_a_conflicting_write_is_retried_with_the_count_read_again(aws: dict[str, str]) -> None:
    """DriftHistory.complete against moto's conditional writes: stale count → re-read, merge, write."""
    history = DriftHistory.from_env()
    start, end = window(0)
    history.put(HistoryEntry(MODEL, start, end, 1, RUNNING, late_rows=3))
    done = history.complete(HistoryEntry(MODEL, start, end, 1, "ok", late_rows=1), seen_late_rows=1)
    assert done.late_rows == 3
    stored = history.get(MODEL, end)
    assert stored is not None and (stored.status, stored.late_rows) == ("ok", 3)
    fresh = history.complete(HistoryEntry(MODEL, *window(1), 1, "ok"), seen_late_rows=0)  # no item yet
    assert fresh.late_rows == 0 and history.get(MODEL, window(1)[1]) is not None
