"""The serving handler end to end on moto: real registry, S3 artifacts, Firehose captures, DynamoDB.

Each test registers model versions through ``driftline.registry.store`` with the reference ONNX
model (whose formula is known, so predictions can be checked exactly), then calls the Lambda
handler with API Gateway REST proxy events.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from driftline import aws as aws_mod
from driftline import capture_format
from driftline.registry.artifacts import ArtifactRef, put_artifact
from driftline.registry.store import Registry
from driftline.serving import reference_model
from driftline.serving.events import LocalContext, proxy_event
from driftline.serving.validation import InputValidator

MODEL = "credit-default"
JSON_CT = {"Content-Type": "application/json"}


class Api:
    """Calls the handler like API Gateway would and decodes the answer."""

    def __init__(self, serve: Any) -> None:
        self.serve = serve

    def __call__(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, raw: str | None = None
    ) -> tuple[int, Any, dict[str, list[str]]]:
        text = raw if raw is not None else (json.dumps(body) if body is not None else None)
        hdrs = dict(JSON_CT if text is not None else {}, **(headers or {}))
        path, _, query = path.partition("?")
        resp = self.serve.handler(proxy_event(method, path, text, headers=hdrs, query=query), LocalContext())
        return resp["statusCode"], json.loads(resp["body"]), dict(resp.get("multiValueHeaders") or {})

    def predict(self, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        status, out, _ = self("POST", f"/v1/models/{MODEL}/predict", body, headers)
        return status, out


@pytest.fixture
def schema(credit_fs: Any) -> dict[str, Any]:
    return credit_fs.input_schema()


@pytest.fixture
def reg(aws: dict[str, str]) -> Registry:
    return Registry.from_env()


def register(
    reg: Registry,
    env: dict[str, str],
    schema: dict[str, Any],
    seed: int,
    *,
    approve: bool = True,
    pin_version: bool = True,
) -> int:
    v = reg.next_version(MODEL)
    ref = put_artifact(
        env["ARTIFACTS_BUCKET"], f"models/{MODEL}/v{v}/model.onnx", reference_model.build(schema, seed=seed)
    )
    if not pin_version:
        ref = ArtifactRef(uri=ref.uri, sha256=ref.sha256, version_id=None, size=ref.size)
    reg.register(
        MODEL,
        version=v,
        algorithm="reference",
        input_schema=schema,
        artifacts={"onnx": ref},
        metrics={"roc_auc": 0.7 + seed / 100},
        feature_set="credit_default",
        feature_set_version=1,
    )
    if approve:
        reg.approve(MODEL, v, "tester", "ok")
    return v


@pytest.fixture
def api(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    monkeypatch.setenv("CAPTURE_MODE", "sync")
    monkeypatch.setenv("CHAMPION_TTL_SECONDS", "0.3")
    from lambdas import serve

    serve._State.service = None
    yield Api(serve)
    serve._State.service = None


@pytest.fixture
def champion(api: Api, reg: Registry, aws: dict[str, str], schema: dict[str, Any]) -> int:
    v = register(reg, aws, schema, seed=1)
    reg.promote(MODEL, v, "tester", "first champion")
    return v


def rows(schema: dict[str, Any], n: int, seed: int = 0) -> list[dict[str, Any]]:
    return reference_model.example_rows(schema, n, seed=seed)


def captures(env: dict[str, str], prefix: str = f"captures/model={MODEL}/") -> list[dict[str, Any]]:
    s3 = aws_mod.client("s3")
    out: list[dict[str, Any]] = []
    listing = s3.list_objects_v2(Bucket=env["CAPTURES_BUCKET"], Prefix=prefix).get("Contents", [])
    for obj in sorted(listing, key=lambda o: o["Key"]):
        body = s3.get_object(Bucket=env["CAPTURES_BUCKET"], Key=obj["Key"])["Body"].read().decode()
        for line in body.splitlines():
            if line:
                rec = json.loads(line)
                assert rec["v"] == capture_format.FORMAT_VERSION and "cols" in rec, (
                    rec
                )  # per request and role, by column
                out.extend({**row, "_key": obj["Key"]} for row in capture_format.expand(rec) or [])
    return out


# ---------------------------------------------------------------- happy paths
def emf_lines(text: str) -> list[dict[str, Any]]:
    """EMF blobs printed by the handler, with metric values summed (EMF allows value arrays)."""
    out = []
    for line in text.splitlines():
        if line.startswith('{"_aws"'):
            blob = json.loads(line)
            names = {m["Name"] for m in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
            out.append({k: (sum(v) if k in names and isinstance(v, list) else v) for k, v in blob.items()})
    return out


def test_records_are_answered_by_the_champion_and_captured(
    api: Api, champion: int, schema: dict[str, Any], aws: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    batch = rows(schema, 25, seed=3)
    capsys.readouterr()
    status, out = api.predict({"records": batch}, headers={"X-Request-Id": "client-42"})
    assert status == 200, out
    (emf,) = emf_lines(capsys.readouterr().out)
    assert (emf["model"], emf["version"], emf["Requests"], emf["Rows"]) == (MODEL, str(champion), 1, 25)
    assert emf["LatencyMs"] > 0 and "Errors" not in emf
    assert {"model", "version"} <= set(emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0])
    X = InputValidator(schema).validate(batch).X
    expected = reference_model.expected(schema, X, seed=1)
    preds = out["predictions"]
    assert out["model"] == MODEL and out["request_id"] == "client-42"
    assert [p["request_id"] for p in preds] == [f"client-42:{i}" for i in range(25)]
    assert {p["version"] for p in preds} == {champion}
    assert np.allclose([p["probability"] for p in preds], expected, atol=1e-6)
    assert [p["label"] for p in preds] == [int(e > 0.5) for e in expected]

    caps = captures(aws)
    assert len(caps) == 25
    s3, bucket = aws_mod.client("s3"), aws["CAPTURES_BUCKET"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"captures/model={MODEL}/")["Contents"]]
    lines = [ln for k in keys for ln in s3.get_object(Bucket=bucket, Key=k)["Body"].read().splitlines() if ln]
    assert len(lines) == 1  # one v2 record for the 25-row request, not 25
    hour = datetime.now(UTC).strftime("%Y/%m/%d/%H")
    assert all(c["_key"].startswith(f"captures/model={MODEL}/{hour}/") for c in caps)
    first = caps[0]
    assert set(first) - {"_key"} == {
        "request_id",
        "model",
        "version",
        "role",
        "ts",
        "latency_ms",
        "features",
        "prediction",
    }
    assert (first["model"], first["version"], first["role"]) == (MODEL, champion, "champion")
    by_id = {c["request_id"]: c for c in caps}
    assert by_id["client-42:7"]["features"] == batch[7]
    assert by_id["client-42:7"]["prediction"] == {k: preds[7][k] for k in ("label", "probability", "probabilities")}


def test_describe_and_openapi(api: Api, champion: int, schema: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    status, info, _ = api("GET", f"/v1/models/{MODEL}")
    assert status == 200
    assert info["champion"]["version"] == champion
    assert info["champion"]["input_schema"] == schema
    assert info["champion"]["metrics"] == {"roc_auc": 0.71}
    assert info["traffic"] == {"mode": "none", "percent": 0} and info["challenger"] is None
    status, own, _ = api("GET", f"/v1/models/{MODEL}/openapi.json")  # authorized: the model's own schema
    assert status == 200 and "/v1/models/credit-default/predict" in own["paths"]
    assert own["components"]["schemas"]["CreditDefaultRecord"]["properties"]["age"]["maximum"] == 100
    status, out, _ = api("GET", "/v1/models/nope/openapi.json")
    assert (status, out["error"]["code"]) == (404, "unknown_model")


def test_unauthenticated_openapi_has_no_model_details_and_no_aws_call(
    api: Api, champion: int, schema: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    api("GET", f"/v1/models/{MODEL}")  # the service exists and the model is loaded
    calls: list[str] = []
    svc = api.serve._State.service

    def list_models() -> list[str]:
        calls.append("scan")
        return [MODEL]

    def aliases(m: str) -> None:
        calls.append(m)

    monkeypatch.setattr(svc.registry, "list_models", list_models)
    monkeypatch.setattr(svc.deployments, "aliases", aliases)
    for path in ("/openapi.json", f"/openapi.json?model={MODEL}", "/openapi.json?model=nope"):
        status, doc, _ = api("GET", path)
        text = json.dumps(doc)
        assert status == 200 and "/v1/models/{model}/predict" in doc["paths"]
        assert MODEL not in text and "CreditDefault" not in text
        assert not [f["name"] for f in schema["features"] if f'"{f["name"]}"' in text], "a feature name leaked"
        assert not [c for f in schema["features"] for c in f.get("categories") or () if f'"{c}"' in text]
    assert calls == []
    assert api("GET", "/health")[0] == 404  # API Gateway answers /health itself; the function has no route
    monkeypatch.undo()
    assert api.serve.init_before_requests("on-demand") is None
    assert api.serve.init_before_requests("provisioned-concurrency") == {"loaded": [MODEL], "failed": {}}


def test_entities_read_features_from_the_online_store(
    api: Api, champion: int, schema: dict[str, Any], aws: dict[str, str]
) -> None:
    batch = rows(schema, 3, seed=5)
    ddb = aws_mod.client("dynamodb")
    for i, r in enumerate(batch):
        stored = {k: v for k, v in r.items() if k != "channel"}
        ddb.put_item(
            TableName=aws["ONLINE_TABLE"],
            Item={
                "pk": {"S": f"credit_default#C{i}"},
                "event_ts": {"N": "1"},
                "feature_set_version": {"N": "1"},
                "features": {"S": json.dumps(stored)},
            },
        )
    status, by_records = api.predict({"records": [dict(r, channel="online") for r in batch]})
    assert status == 200
    status, by_entities = api.predict({"entities": ["C0", "C1", "C2"], "features": {"channel": "online"}})
    assert status == 200, by_entities
    strip = [{k: p[k] for k in ("label", "probability")} for p in by_entities["predictions"]]
    assert strip == [{k: p[k] for k in ("label", "probability")} for p in by_records["predictions"]]
    status, override = api.predict({"entities": [{"customer_id": "C0", "channel": "online", "age": 99}]})
    status_r, direct = api.predict({"records": [dict(batch[0], channel="online", age=99)]})
    assert status == status_r == 200
    assert override["predictions"][0]["probability"] == direct["predictions"][0]["probability"]
    status, out = api.predict({"entities": ["C0", "C9"], "features": {"channel": "online"}})
    assert status == 404 and out["error"]["code"] == "unknown_entity"
    assert out["error"]["details"] == [
        {
            "row": 1,
            "field": None,
            "entity": "C9",
            "message": ("row 1: entity 'C9' has no features in the online store (feature set 'credit_default')"),
        }
    ]
    status, out = api.predict({"entities": ["C0"]})
    assert status == 422 and out["error"]["details"][0]["field"] == "channel"


def test_feedback_is_stored_as_json_lines(api: Api, champion: int, aws: dict[str, str]) -> None:
    status, out, _ = api(
        "POST",
        f"/v1/models/{MODEL}/feedback",
        {"labels": [{"request_id": "r:0", "label": 1}, {"request_id": "r:1", "label": 0}]},
    )
    assert status == 202, out
    assert out["accepted"] == 2
    hour = datetime.now(UTC).strftime("%Y/%m/%d/%H")
    key = out["object"].split("/", 3)[3]
    assert key.startswith(f"feedback/model={MODEL}/{hour}/") and key.endswith(".jsonl")
    body = aws_mod.client("s3").get_object(Bucket=aws["CAPTURES_BUCKET"], Key=key)["Body"].read().decode()
    lines = [json.loads(x) for x in body.splitlines()]
    assert [(x["request_id"], x["label"]) for x in lines] == [("r:0", 1), ("r:1", 0)]
    assert all(x["ts"] for x in lines)
    status, out, _ = api("POST", f"/v1/models/{MODEL}/feedback", {"labels": [{"request_id": "r", "label": 7}]})
    assert status == 422 and "one of 0, 1" in out["error"]["details"][0]["message"]


# ---------------------------------------------------------------- model lifecycle
def test_promotion_changes_the_answering_version_within_the_ttl(
    api: Api, champion: int, reg: Registry, schema: dict[str, Any], aws: dict[str, str]
) -> None:
    batch = rows(schema, 2)
    assert {p["version"] for p in api.predict({"records": batch})[1]["predictions"]} == {champion}
    v2 = register(reg, aws, schema, seed=2)
    reg.promote(MODEL, v2, "tester", "better")
    t0 = time.monotonic()
    while True:
        versions = {p["version"] for p in api.predict({"records": batch})[1]["predictions"]}
        if versions == {v2}:
            break
        assert time.monotonic() - t0 < 2.0, "promotion not picked up within the TTL"
        time.sleep(0.05)
    X = InputValidator(schema).validate(batch).X
    probs = [p["probability"] for p in api.predict({"records": batch})[1]["predictions"]]
    assert np.allclose(probs, reference_model.expected(schema, X, seed=2), atol=1e-6)
    reg.rollback(MODEL, "tester", "regression spotted")
    time.sleep(0.35)
    assert {p["version"] for p in api.predict({"records": batch})[1]["predictions"]} == {champion}


def test_unknown_model_and_no_champion(api: Api, reg: Registry, aws: dict[str, str], schema: dict[str, Any]) -> None:
    status, out = api("POST", "/v1/models/nope/predict", {"records": [{}]})[:2]
    assert (status, out["error"]["code"]) == (404, "unknown_model")
    register(reg, aws, schema, seed=1, approve=False)
    status, out = api.predict({"records": rows(schema, 1)})
    assert (status, out["error"]["code"]) == (503, "no_champion")
    assert "no champion yet" in out["error"]["message"]
    status, info, _ = api("GET", f"/v1/models/{MODEL}")
    assert status == 200 and info["champion"] is None


def test_tampered_artifact_is_refused_with_503(
    api: Api, reg: Registry, aws: dict[str, str], schema: dict[str, Any]
) -> None:
    v = register(reg, aws, schema, seed=1, pin_version=False)
    reg.promote(MODEL, v, "tester", "ship")
    aws_mod.client("s3").put_object(
        Bucket=aws["ARTIFACTS_BUCKET"],
        Key=f"models/{MODEL}/v{v}/model.onnx",
        Body=reference_model.build(schema, seed=666),
    )
    status, out = api.predict({"records": rows(schema, 1)})
    assert status == 503, out
    assert out["error"]["code"] == "model_unavailable"
    assert "failed the integrity check" in out["error"]["message"]
    text = json.dumps(out)
    assert "s3://" not in text and "sha256" not in text.lower()  # no storage details to clients


def test_shadow_scores_the_challenger_without_answering_with_it(
    api: Api, champion: int, reg: Registry, aws: dict[str, str], schema: dict[str, Any]
) -> None:
    v2 = register(reg, aws, schema, seed=2)
    reg.set_challenger(MODEL, v2, "shadow", 0)
    status, out = api.predict({"records": rows(schema, 4)}, headers={"X-Request-Id": "sh"})
    assert status == 200 and {p["version"] for p in out["predictions"]} == {champion}
    caps = captures(aws)
    assert sorted((c["role"], c["version"]) for c in caps) == [("champion", champion)] * 4 + [("shadow", v2)] * 4
    assert {c["request_id"] for c in caps if c["role"] == "shadow"} == {f"sh:{i}" for i in range(4)}


def test_canary_splits_rows_sticky_per_request_id(
    api: Api, champion: int, reg: Registry, aws: dict[str, str], schema: dict[str, Any]
) -> None:
    v2 = register(reg, aws, schema, seed=2)
    reg.set_challenger(MODEL, v2, "canary", 50)
    batch = rows(schema, 60)
    first = api.predict({"records": batch}, headers={"X-Request-Id": "can"})[1]["predictions"]
    again = api.predict({"records": batch}, headers={"X-Request-Id": "can"})[1]["predictions"]
    versions = [p["version"] for p in first]
    assert versions == [p["version"] for p in again]  # sticky
    assert 15 <= versions.count(v2) <= 45 and set(versions) == {champion, v2}
    X = InputValidator(schema).validate(batch).X
    e1, e2 = reference_model.expected(schema, X, seed=1), reference_model.expected(schema, X, seed=2)
    for p, a, b in zip(first, e1, e2, strict=True):
        assert p["probability"] == pytest.approx(b if p["version"] == v2 else a, abs=1e-6)
    roles = {(c["role"], c["version"]) for c in captures(aws)}
    assert roles == {("champion", champion), ("challenger", v2)}


# ---------------------------------------------------------------- bad input: always the right 4xx
def _bad_cases(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any], int, str]]:
    good = rows(schema, 1, seed=11)[0]
    return [
        ("malformed JSON", {"raw": '{"records": [}'}, 400, "malformed_json"),
        ("wrong content type", {"raw": "{}", "headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type"),
        ("missing field", {"body": {"records": [{k: v for k, v in good.items() if k != "age"}]}}, 422, "invalid_rows"),
        ("extra field", {"body": {"records": [dict(good, agee=3)]}}, 422, "invalid_rows"),
        ("mistyped field", {"body": {"records": [dict(good, num_accounts=[1])]}}, 422, "invalid_rows"),
        ("string in numeric", {"body": {"records": [dict(good, balance="12")]}}, 422, "invalid_rows"),
        (
            "NaN literal",
            {"raw": json.dumps({"records": [dict(good, balance=1.5)]}).replace("1.5", "NaN")},
            422,
            "invalid_rows",
        ),
        ("unknown category", {"body": {"records": [dict(good, region="mars")]}}, 422, "invalid_rows"),
        ("1,001 rows", {"body": {"records": [good] * 1001}}, 413, "too_many_rows"),
        ("10 MB body", {"raw": json.dumps({"records": [good], "pad": "x" * 10_000_000})}, 413, "body_too_large"),
        (
            "unknown entity",
            {"body": {"entities": ["nobody"], "features": {"channel": "online"}}},
            404,
            "unknown_entity",
        ),
        (
            "bad X-Request-Id",
            {"body": {"records": [good]}, "headers": {"X-Request-Id": "a b"}},
            400,
            "invalid_request_id",
        ),
        ("empty body", {"raw": ""}, 400, "empty_body"),
    ]


def test_every_bad_input_gets_its_4xx(api: Api, champion: int, schema: dict[str, Any]) -> None:
    for name, req, status, code in _bad_cases(schema):
        got, out, _ = api(
            "POST", f"/v1/models/{MODEL}/predict", req.get("body"), req.get("headers"), raw=req.get("raw")
        )
        assert (got, out["error"]["code"]) == (status, code), (name, out)
        assert out["error"]["message"] and out["request_id"]


def test_a_malformed_body_is_reported_before_an_unknown_model(api: Api, champion: int) -> None:
    """The client's own mistake first: fixing the model name alone would not make the request work."""
    got, out, _ = api("POST", "/v1/models/no-such-model/predict", None, None, raw='{"records": [}')
    assert (got, out["error"]["code"]) == (400, "malformed_json")
    got, out, _ = api("POST", "/v1/models/no-such-model/predict", {"records": [{}]}, None)
    assert got == 404


def test_routes_and_methods(api: Api, champion: int) -> None:
    status, out, headers = api("DELETE", f"/v1/models/{MODEL}")
    assert (status, out["error"]["code"], headers["Allow"]) == (405, "method_not_allowed", ["GET"])
    assert api("GET", f"/v1/models/{MODEL}/predict")[0] == 405
    assert api("GET", "/v2/anything")[0] == 404
    assert api("PUT", "/openapi.json")[0] == 405
    assert api("POST", f"/v1/models/{MODEL}/predict/", {"records": [{}]})[0] == 422  # trailing slash tolerated
    assert api("GET", f"/v1/models/{MODEL}/predict/")[0] == 405
    status, out, _ = api("POST", f"/v1/models/{MODEL}/predict", raw="{", headers={"X-Request-Id": "mine-1"})
    assert (status, out["request_id"]) == (400, "mine-1")  # errors carry the client's id too
    resp = api.serve.handler({"not": "an api gateway event"}, LocalContext())
    assert resp["statusCode"] == 400


def test_log_lines_carry_the_lambda_context_and_the_gateway_request_id(api: Api, champion: int) -> None:
    """The keys Powertools' inject_lambda_context would add, set once per sandbox plus per-request ids."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(api.serve.logger.registered_formatter)
    logging.getLogger(api.serve.logger.name).addHandler(handler)
    api.serve._State.log_cold = None  # a fresh sandbox
    try:
        ctx = LocalContext()
        for rid in ("gw-1", "gw-2"):
            ev = proxy_event("POST", f"/v1/models/{MODEL}/predict", "{", headers=JSON_CT, request_id=rid)
            assert api.serve.handler(ev, ctx)["statusCode"] == 400
    finally:
        logging.getLogger(api.serve.logger.name).removeHandler(handler)
    first, second = (json.loads(line) for line in buf.getvalue().splitlines())
    for line, rid, cold in ((first, "gw-1", True), (second, "gw-2", False)):
        assert line["message"] == "client error" and line["code"] == "malformed_json"
        assert line["correlation_id"] == rid and line["cold_start"] is cold
        assert line["function_request_id"] == ctx.aws_request_id
        assert line["function_name"] == ctx.function_name and line["function_arn"] == ctx.invoked_function_arn
        assert line["function_memory_size"] == ctx.memory_limit_in_mb
