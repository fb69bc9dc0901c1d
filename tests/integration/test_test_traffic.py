"""Test traffic end to end on moto (issue 21): 1,000 identical requests sent to check an endpoint.

Unmarked, they are captured like real traffic and make the window drift (the issue's finding, reproduced
first); sent with ``X-Driftline-Test: 1`` they are answered the same, captured with the mark, and the
scheduled check of the window sees only the real traffic.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from driftline import aws as aws_mod
from driftline.contracts import TEST_TRAFFIC_HEADER
from driftline.drift import build_profile_for_feature_set
from driftline.monitoring import run_check
from driftline.registry.artifacts import put_artifact
from driftline.registry.store import Registry
from driftline.serving import reference_model
from driftline.serving.events import LocalContext, proxy_event

MODEL = "credit-default"
N_TEST = 1000


def _columns(fs: Any, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for f in fs.features:
        values = [r.get(f.name) for r in rows]
        out[f.name] = np.asarray(values, dtype=object if f.type in ("categorical", "bool") else np.float64)
    return out


def _register(fs: Any) -> int:
    """A champion serving the reference ONNX model, with a profile of the rows real traffic is drawn from."""
    schema = fs.input_schema()
    reg = Registry.from_env()
    version = reg.next_version(MODEL)
    bucket = aws_mod.env("ARTIFACTS_BUCKET")
    reference = reference_model.example_rows(schema, 3000, seed=1, null_share=0.0)
    profile = build_profile_for_feature_set(fs, _columns(fs, reference), model=MODEL, version=version)
    reg.register(
        MODEL,
        version=version,
        algorithm="reference",
        input_schema=schema,
        feature_set=fs.name,
        feature_set_version=fs.version,
        feature_set_fingerprint=fs.fingerprint,
        artifacts={
            "onnx": put_artifact(
                bucket, f"models/{MODEL}/v{version}/model.onnx", reference_model.build(schema, seed=1)
            ),
            "profile": put_artifact(
                bucket, f"models/{MODEL}/v{version}/profile.json", profile.to_json().encode(), "application/json"
            ),
        },
        metrics={"roc_auc": 0.8, "accuracy": 0.75, "f1": 0.6, "log_loss": 0.5},
    )
    reg.approve(MODEL, version, "tester", "test champion")
    reg.promote(MODEL, version, "tester", "test champion")
    return version


@pytest.fixture
def serve(aws: dict[str, str]) -> Iterator[Any]:
    from lambdas import serve as module

    module._State.service = None
    yield module
    module._State.service = None


def _predict(serve: Any, rows: list[dict[str, Any]], headers: dict[str, str]) -> dict[str, Any]:
    event = proxy_event(
        "POST",
        f"/v1/models/{MODEL}/predict",
        json.dumps({"records": rows}),
        headers={"Content-Type": "application/json", **headers},
    )
    resp: dict[str, Any] = serve.handler(event, LocalContext())
    assert resp["statusCode"] == 200, resp["body"]
    body: dict[str, Any] = json.loads(resp["body"])
    return body


def _real(serve: Any, fs: Any) -> None:
    """400 rows of real traffic: four requests drawn like the reference."""
    for seed in range(2, 6):
        _predict(serve, reference_model.example_rows(fs.input_schema(), 100, seed=seed, null_share=0.0), {})


def _identical(serve: Any, fs: Any, headers: dict[str, str]) -> list[dict[str, Any]]:
    """1,000 identical one-row requests, as sent to check an endpoint."""
    probe = reference_model.example_rows(fs.input_schema(), 1, seed=99, null_share=0.0)
    return [_predict(serve, probe, headers)["predictions"][0] for _ in range(N_TEST)]


def _check(serve: Any, start: datetime) -> dict[str, Any]:
    """The check of [start, now], once every capture is delivered (the doc adds the stored result)."""
    serve._State.service.capture.flush()
    end = datetime.now(UTC) + timedelta(milliseconds=1)
    out: dict[str, Any] = run_check(MODEL, window_start=start.isoformat(), window_end=end.isoformat())
    key = out["result_uri"].split("/", 3)[3]
    doc = aws_mod.client("s3").get_object(Bucket=aws_mod.env("REPORTS_BUCKET"), Key=key)["Body"].read()
    out["doc"] = json.loads(doc)
    return out


def _captured(env: dict[str, str]) -> list[dict[str, Any]]:
    s3 = aws_mod.client("s3")
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env["CAPTURES_BUCKET"], Prefix="captures/"):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=env["CAPTURES_BUCKET"], Key=obj["Key"])["Body"].read().decode()
            out += [json.loads(line) for line in body.splitlines() if line.strip()]
    return out


def test_unmarked_test_requests_make_every_column_drift(aws: dict[str, str], credit_fs: Any, serve: Any) -> None:
    """The issue's finding, reproduced: without the mark the identical requests are monitored as traffic."""
    _register(credit_fs)
    start = datetime.now(UTC)
    _real(serve, credit_fs)
    _identical(serve, credit_fs, {})
    out = _check(serve, start)
    assert out["status"] == "ok" and out["n_current"] == 400 + N_TEST
    assert out["dataset_drifted"] and len(out["drifted_columns"]) >= 5


def test_marked_test_requests_are_answered_captured_and_leave_no_trace_in_the_check(
    aws: dict[str, str], credit_fs: Any, serve: Any
) -> None:
    version = _register(credit_fs)
    start = datetime.now(UTC)
    _real(serve, credit_fs)
    alone = _check(serve, start)  # the same real traffic without test requests

    start = datetime.now(UTC)
    _real(serve, credit_fs)
    answers = _identical(serve, credit_fs, {TEST_TRAFFIC_HEADER: "1"})
    out = _check(serve, start)

    assert len(answers) == N_TEST and all(a["version"] == version and "probability" in a for a in answers)
    records = _captured(aws)
    marked = [r for r in records if r.get("test") is True]
    assert len(marked) == N_TEST and len(records) == N_TEST + 8  # captured, with the mark
    assert all("test" not in r for r in records if r not in marked)

    assert out["status"] == "ok" and out["n_current"] == alone["n_current"] == 400
    for key in ("dataset_drifted", "drifted_columns", "share_drifted", "prediction_drifted", "alarm"):
        assert out[key] == alone[key], key
    assert out["doc"]["columns"] == alone["doc"]["columns"]  # every column's statistic and decision
    assert out["doc"]["captures"]["test_traffic"] == N_TEST and alone["doc"]["captures"]["test_traffic"] == 0
    read_only = ("lines", "listed_until", "test_traffic")  # what the listing opened, and the count of left-out records
    assert {k: v for k, v in out["doc"]["captures"].items() if k not in read_only} == {
        k: v for k, v in alone["doc"]["captures"].items() if k not in read_only
    }


def test_a_header_value_outside_the_documented_ones_is_a_400(aws: dict[str, str], serve: Any) -> None:
    event = proxy_event(
        "POST",
        f"/v1/models/{MODEL}/predict",
        json.dumps({"records": [{}]}),
        headers={"Content-Type": "application/json", TEST_TRAFFIC_HEADER.lower(): "yes"},
    )
    resp = serve.handler(event, LocalContext())
    body = json.loads(resp["body"])
    assert resp["statusCode"] == 400 and body["error"]["code"] == "invalid_test_header"
    assert TEST_TRAFFIC_HEADER in body["error"]["message"]
