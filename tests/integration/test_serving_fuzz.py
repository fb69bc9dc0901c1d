"""Property: whatever a client sends, the endpoint answers with a JSON body and never a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline import aws as aws_mod
from driftline.registry.artifacts import put_artifact
from driftline.registry.store import Registry
from driftline.serving import reference_model
from driftline.serving.events import LocalContext, proxy_event

MODEL = "credit-default"

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


@pytest.fixture
def served(aws: dict[str, str], credit_fs: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    monkeypatch.setenv("CAPTURE_MODE", "sync")
    schema = credit_fs.input_schema()
    reg = Registry.from_env()
    v = reg.next_version(MODEL)
    ref = put_artifact(aws["ARTIFACTS_BUCKET"], f"models/{MODEL}/v{v}/model.onnx", reference_model.build(schema))
    reg.register(MODEL, version=v, input_schema=schema, artifacts={"onnx": ref}, feature_set="credit_default")
    reg.approve(MODEL, v, "t", "ok")
    reg.promote(MODEL, v, "t", "ok")
    row = reference_model.example_rows(schema, 1, seed=1, null_share=0.0)[0]
    aws_mod.client("dynamodb").put_item(
        TableName=aws["ONLINE_TABLE"],
        Item={
            "pk": {"S": "credit_default#C1"},
            "event_ts": {"N": "1"},
            "feature_set_version": {"N": "1"},
            "features": {"S": json.dumps(row)},
        },
    )
    from lambdas import serve

    serve._State.service = None
    yield serve, row
    serve._State.service = None


@st.composite
def mutated_record(draw: st.DrawFn, row: dict[str, Any]) -> Any:
    rec = dict(row)
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["set", "drop", "add"]))
        key = draw(st.sampled_from(sorted(rec))) if rec else "age"
        if action == "set":
            rec[key] = draw(json_values)
        elif action == "drop":
            rec.pop(key, None)
        else:
            rec[draw(st.text(max_size=8))] = draw(json_values)
    return rec


@st.composite
def request(draw: st.DrawFn, row: dict[str, Any]) -> tuple[str, str, str | None, dict[str, str]]:
    kind = draw(st.sampled_from(["records", "entities", "any_json", "text", "route"]))
    method, path = "POST", f"/v1/models/{MODEL}/predict"
    if kind == "records":
        body: Any = {"records": draw(st.lists(mutated_record(row), min_size=0, max_size=3))}
        if draw(st.booleans()):
            body[draw(st.sampled_from(["features", "entities", "x"]))] = draw(json_values)
        text: str | None = json.dumps(body, allow_nan=True)
    elif kind == "entities":
        items = draw(
            st.lists(
                st.one_of(st.just("C1"), json_values, mutated_record(row).map(lambda r: {**r, "customer_id": "C1"})),
                max_size=3,
            )
        )
        body = {"entities": items}
        if draw(st.booleans()):
            body["features"] = draw(st.one_of(st.just({"channel": "online"}), json_values))
        text = json.dumps(body, allow_nan=True)
    elif kind == "any_json":
        text = json.dumps(draw(json_values), allow_nan=True)
    elif kind == "text":
        text = draw(st.one_of(st.text(max_size=60), st.none()))
    else:
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
        path = draw(
            st.one_of(
                st.sampled_from(
                    [
                        "/health",
                        "/openapi.json",
                        f"/v1/models/{MODEL}",
                        f"/v1/models/{MODEL}/feedback",
                        "/v1/models/Nope!/predict",
                        "/v1/models//predict",
                        "/",
                    ]
                ),
                st.text(max_size=30).map(lambda t: "/" + t),
            )
        )
        text = json.dumps(draw(json_values), allow_nan=True)
    headers = draw(
        st.sampled_from(
            [
                {"Content-Type": "application/json"},
                {"content-type": "application/json; charset=utf-8"},
                {},
                {"Content-Type": "text/plain"},
                {"Content-Type": "application/json; charset=utf-16"},
                {"Content-Type": "application/json", "X-Request-Id": "ok-1"},
                {"Content-Type": "application/json", "X-Request-Id": " bad id "},
            ]
        )
    )
    return method, path, text, headers


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=st.data())
def test_random_requests_never_get_a_5xx(served: tuple[Any, Any], data: st.DataObject) -> None:
    serve, row = served
    method, path, text, headers = data.draw(request(row))
    resp = serve.handler(proxy_event(method, path, text, headers=headers), LocalContext())
    status = resp["statusCode"]
    body = json.loads(resp["body"])
    assert status < 500, (method, path, text, headers, body)
    if status >= 400:
        assert body["error"]["status"] == status and body["error"]["message"]


# A checked-in corpus of bodies that once broke the endpoint (issue 16): each must get a 4xx JSON answer.
HOSTILE_BODIES = [
    '{"records": [{"age": ' + "9" * 5000 + "}]}",  # past Python's 4,300-digit int limit
    '{"records": [{"age": 1}], "x": ' + "1" * 4301 + "}",
    '{"entities": ["' + "\\ud800" + '"]}',  # a lone surrogate, echoed in the error message
    '{"records": [{"employment_type": "' + "\\udfff" + '"}]}',
    '{"records": [{"\\ud800": 1}]}',
    '{"records": [{"age": -' + "1" * 10000 + "}]}",
    '{"records": [{"age": 1e400}]}',
    '{"records": [{"age": 1' + "0" * 400 + ".5}]}",
]


@pytest.mark.parametrize("path", [f"/v1/models/{MODEL}/predict", f"/v1/models/{MODEL}/feedback"])
@pytest.mark.parametrize("text", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
def test_hostile_corpus_gets_a_4xx(served: tuple[Any, Any], text: str, path: str) -> None:
    serve, _ = served
    resp = serve.handler(proxy_event("POST", path, text, headers={"Content-Type": "application/json"}), LocalContext())
    assert 400 <= resp["statusCode"] < 500, resp
    body = json.loads(resp["body"])
    assert body["error"]["status"] == resp["statusCode"] and body["error"]["message"]
    json.dumps(body, ensure_ascii=False).encode("utf-8")  # the answer itself is valid UTF-8
