"""Estimated performance on both paths of the scheduled check (issue 19: identical results): a champion with a
CBPE estimator, one window checked in-process and through the scale-out steps (the shard query on DuckDB,
per-shard summaries and estimation rows on moto S3, the reduce step) gives the same estimate, band, alarm
reason and per-segment estimates, to the last bit; a missing or damaged side file ends the check
``incomplete`` naming the shard instead of estimating part of the window."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driftline import aws as aws_mod
from driftline.contracts import drift_run_name, drift_shard_rows_key, drift_shard_summary_key
from driftline.drift import build_profile_for_feature_set
from driftline.estimation import cbpe, fit_classifier_estimator
from driftline.estimation.monitor import load_estimator
from driftline.monitoring import run_check
from driftline.monitoring.scale import reduce_check, summarize_shard_object
from driftline.monitoring.scale.dispatch import estimation_item
from driftline.monitoring.scale.estimates import ShardEstimation
from driftline.monitoring.scale.reduce import INCOMPLETE
from driftline.registry.artifacts import put_artifact
from driftline.registry.store import Registry
from tests.integration.test_drift_scale import _event, _profile, _result, _shard_files, write_v2_captures
from tests.integration.test_monitoring_check import MODEL, T0, credit_rows, ctx_with, score, window


def _champion(fs: Any) -> int:
    """A champion profiled with segments by region, with a CBPE estimator fitted on a holdout whose labels are
    drawn from the scores (so the calibration is close to the identity)."""
    reg = Registry.from_env()
    version = reg.next_version(MODEL)
    hold = credit_rows(fs, 3000, seed=1)
    p = score(hold)
    y = (np.random.default_rng(1).random(p.size) < p).astype(np.int64)
    est = fit_classifier_estimator(y, np.column_stack([1 - p, p]), (p > 0.5).astype(np.int64), [0, 1], version=version)
    profile = build_profile_for_feature_set(fs, hold, p, model=MODEL, version=version, segments=["region"])
    bucket, prefix = aws_mod.env("ARTIFACTS_BUCKET"), f"models/{MODEL}/v{version}/"
    reg.register(
        MODEL,
        version=version,
        algorithm="hist_gradient_boosting",
        input_schema=fs.input_schema(),
        feature_set=fs.name,
        feature_set_version=fs.version,
        feature_set_fingerprint=fs.fingerprint,
        artifacts={
            "profile": put_artifact(bucket, prefix + "profile.json", profile.to_json().encode(), "application/json"),
            "estimator": put_artifact(bucket, prefix + "estimator.json", est.to_json().encode(), "application/json"),
        },
        metrics={"roc_auc": est.reference["roc_auc"], "accuracy": est.reference["accuracy"]},
    )
    reg.approve(MODEL, version, "tester", "test champion")
    reg.promote(MODEL, version, "tester", "test champion")
    return version


def _settings(data: dict[str, Any]) -> None:
    data["models"][0]["drift"].update(segments=["region"], min_segment_rows=50, persistence_windows=1)
    data["models"][0]["drift"]["estimated_performance"].update(min_rows=100, tolerance=0.0)


def _summarize_with_rows(env: dict[str, str], run: str, keys: list[str]) -> None:
    """Each shard summarized as drift-shard does it when dispatch passed the estimator (its execution input's
    ``estimation`` entry: the estimator loaded and verified from that reference)."""
    reg = Registry.from_env()
    version = reg.get_version(MODEL, reg.aliases(MODEL).champion or 0)
    item = estimation_item_of(version)
    estimator, why = load_estimator({"estimator": item["estimator"]})
    profile = _profile()
    for key in keys:
        summarize_shard_object(
            env["CAPTURES_BUCKET"],
            key,
            drift_shard_summary_key(MODEL, run, key),
            profile,
            client=aws_mod.client("s3"),
            estimation=ShardEstimation(estimator, why, item["input_schema"], drift_shard_rows_key(MODEL, run, key)),
        )


def estimation_item_of(version: Any) -> dict[str, Any]:
    class _Prep:  # what estimation_item reads of a prepared check
        def __init__(self) -> None:
            self.version = version
            self.mc = ctx_with(_settings).config.model(MODEL)

    item = estimation_item(_Prep())  # type: ignore[arg-type]
    assert item is not None and item["input_schema"] == version.input_schema
    return item


def _both_paths(aws: dict[str, str], fs: Any, tmp: Path, *, shards: int = 6) -> tuple[dict[str, Any], ...]:
    v = _champion(fs)
    write_v2_captures(fs, v, T0, 500, seed=2)
    write_v2_captures(fs, v, T0 + timedelta(minutes=5), 300, seed=3, shift=1.0)
    ctx = ctx_with(_settings)
    start, end = window(0)
    in_process = run_check(MODEL, window_start=start, window_end=end, ctx=ctx)
    a = _result(aws, in_process["result_uri"])
    run = drift_run_name(MODEL, end)
    keys = _shard_files(aws, v, tmp, shards, run)
    assert len(keys) > 1
    _summarize_with_rows(aws, run, keys)
    scaled = reduce_check(_event(v, run), ctx=ctx, client=aws_mod.client("s3"), now=T0 + timedelta(hours=2))
    b = _result(aws, scaled["result_uri"])
    return in_process, a, scaled, b


@pytest.mark.parametrize("band_rows", [cbpe.BAND_MAX_ROWS, 300])
def test_estimate_is_identical_through_both_paths(
    aws: dict[str, str], credit_fs: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, band_rows: int
) -> None:
    # 300: the band's simulation runs on a seeded subsample of the window, which picks rows by position
    monkeypatch.setattr(cbpe, "BAND_MAX_ROWS", band_rows)
    in_process, a, scaled, b = _both_paths(aws, credit_fs, tmp_path)
    assert scaled["engine"] == "workflow" and a["n_current"] == b["n_current"] == 800
    ea, eb = a["estimated_performance"], b["estimated_performance"]
    assert ea["status"] == "ok" and ea["method"] == "cbpe" and ea["n_rows"] == 800
    assert eb == ea  # every metric, band, reference and message, exactly
    assert scaled["estimated_performance"] == in_process["estimated_performance"]
    assert ("estimated_performance" in scaled["reasons"]) == ea["degraded"]
    assert scaled["reasons"] == in_process["reasons"] and scaled["alarm"] == in_process["alarm"]
    sa, sb = a["segments"]["region"], b["segments"]["region"]
    assert list(sa["values"]) == list(sb["values"])
    estimated = [v for v, r in sa["values"].items() if r["estimated_performance"]]
    assert estimated, "checked segments carry their estimate"
    for value in sa["values"]:
        assert sb["values"][value]["estimated_performance"] == sa["values"][value]["estimated_performance"], value


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_damaged_side_file_makes_the_check_incomplete(
    aws: dict[str, str], credit_fs: Any, tmp_path: Path, damage: str
) -> None:
    v = _champion(credit_fs)
    write_v2_captures(credit_fs, v, T0, 400, seed=2)
    _, end = window(0)
    run = drift_run_name(MODEL, end)
    keys = _shard_files(aws, v, tmp_path, 4, run)
    _summarize_with_rows(aws, run, keys)
    s3, bucket = aws_mod.client("s3"), aws["CAPTURES_BUCKET"]
    victim = keys[0]
    rows_key = drift_shard_rows_key(MODEL, run, victim)
    if damage == "corrupt":
        body = bytearray(s3.get_object(Bucket=bucket, Key=rows_key)["Body"].read())
        body[len(body) // 2] ^= 0xFF
        s3.put_object(Bucket=bucket, Key=rows_key, Body=bytes(body))
    else:
        s3.delete_object(Bucket=bucket, Key=rows_key)
    ctx = ctx_with(_settings)
    out = reduce_check(_event(v, run), ctx=ctx, client=s3, now=T0 + timedelta(hours=2))
    assert out["status"] == INCOMPLETE
    assert victim in out["message"] and "estimation rows" in out["message"]
    assert ("SHA-256" in out["message"]) == (damage == "corrupt")
    assert _result(aws, out["result_uri"])["estimated_performance"] is None


def test_summaries_without_rows_make_the_check_incomplete(aws: dict[str, str], credit_fs: Any, tmp_path: Path) -> None:
    """Shards summarized without the estimator (an execution started before the model was estimated) do not
    give a silent missing estimate: the check says which shards lack their rows."""
    from tests.integration.test_drift_scale import _summarize_all

    v = _champion(credit_fs)
    write_v2_captures(credit_fs, v, T0, 300, seed=2)
    _, end = window(0)
    run = drift_run_name(MODEL, end)
    keys = _shard_files(aws, v, tmp_path, 3, run)
    _summarize_all(aws, run, keys)
    out = reduce_check(
        _event(v, run), ctx=ctx_with(_settings), client=aws_mod.client("s3"), now=T0 + timedelta(hours=2)
    )
    assert out["status"] == INCOMPLETE and "summarized without the estimator" in out["message"]
