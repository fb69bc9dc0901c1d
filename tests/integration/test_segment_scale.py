"""Segments on both paths of the scheduled check (issue 19: identical results): the same window checked
in-process and through the scale-out steps (the shard query on DuckDB, per-shard summaries on moto S3, the
reduce step) gives the same per-segment verdicts, because shard summaries carry one summary per segment
and merge like the rest."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from driftline import aws as aws_mod
from driftline.contracts import drift_run_name
from driftline.drift import build_profile_for_feature_set
from driftline.monitoring import run_check
from driftline.monitoring.scale import reduce_check
from driftline.registry.artifacts import put_artifact
from driftline.registry.store import Registry
from tests.integration.test_drift_scale import _event, _result, _shard_files, _summarize_all, write_v2_captures
from tests.integration.test_monitoring_check import MODEL, T0, credit_rows, ctx_with, score, window


def _champion(fs: Any) -> int:
    reg = Registry.from_env()
    version = reg.next_version(MODEL)
    ref = credit_rows(fs, 4000, seed=1)
    profile = build_profile_for_feature_set(fs, ref, score(ref), model=MODEL, version=version, segments=["region"])
    art = put_artifact(
        aws_mod.env("ARTIFACTS_BUCKET"),
        f"models/{MODEL}/v{version}/profile.json",
        profile.to_json().encode(),
        "application/json",
    )
    reg.register(
        MODEL,
        version=version,
        algorithm="hist_gradient_boosting",
        input_schema=fs.input_schema(),
        feature_set=fs.name,
        feature_set_version=fs.version,
        feature_set_fingerprint=fs.fingerprint,
        artifacts={"profile": art},
        metrics={"roc_auc": 0.8, "accuracy": 0.75, "f1": 0.6, "log_loss": 0.5},
    )
    reg.approve(MODEL, version, "tester", "test champion")
    reg.promote(MODEL, version, "tester", "test champion")
    return version


def _segments_on(data: dict[str, Any]) -> None:
    data["models"][0]["drift"].update(segments=["region"], min_segment_rows=50)


def test_segments_are_the_same_through_both_paths(aws: dict[str, str], credit_fs: Any, tmp_path: Path) -> None:
    v = _champion(credit_fs)
    write_v2_captures(credit_fs, v, T0, 600, seed=2)
    write_v2_captures(credit_fs, v, T0 + timedelta(minutes=5), 200, seed=3, shift=1.0)
    ctx = ctx_with(_segments_on)
    start, end = window(0)
    a = _result(aws, run_check(MODEL, window_start=start, window_end=end, ctx=ctx)["result_uri"])

    run = drift_run_name(MODEL, end)
    keys = _shard_files(aws, v, tmp_path, 6, run)
    assert len(keys) > 1
    _summarize_all(aws, run, keys)
    scaled = reduce_check(_event(v, run), ctx=ctx, client=aws_mod.client("s3"), now=T0 + timedelta(hours=2))
    b = _result(aws, scaled["result_uri"])

    assert scaled["engine"] == "workflow" and a["n_current"] == b["n_current"] == 800
    sa, sb = a["segments"]["region"], b["segments"]["region"]
    assert sa["status"] == sb["status"] == "ok" and sa["drifted_segments"] == sb["drifted_segments"]
    assert sa["drifted_segments"], "the shifted rows should drift some region"
    assert a["drifted_segments"] == b["drifted_segments"]
    assert list(sa["values"]) == list(sb["values"])
    for value, ra in sa["values"].items():
        rb = sb["values"][value]
        for key in ("rows", "status", "dataset_drifted", "drifted_columns", "quality"):
            assert ra[key] == rb[key], (value, key)
        assert rb["share_drifted"] == pytest.approx(ra["share_drifted"]) if ra["share_drifted"] is not None else True
        for col, c in ra["columns"].items():
            other = rb["columns"][col]
            assert (other["method"], other["drifted"]) == (c["method"], c["drifted"]), (value, col)
            assert other["score"] == pytest.approx(c["score"], rel=1e-9, abs=1e-12), (value, col)
        assert rb["estimated_performance"] == ra["estimated_performance"]  # no estimator: the same reason
    assert ("segment_drift" in scaled["reasons"]) == bool(sb["drifted_segments"])
