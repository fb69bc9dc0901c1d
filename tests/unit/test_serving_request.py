"""Request bodies: content type, size, JSON syntax, the predict body shape and entity assembly."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.serving.body import NonFinite, parse_json_body
from driftline.serving.errors import ServingError
from driftline.serving.reference_model import example_rows
from driftline.serving.request import assemble_entity_rows, parse_predict
from driftline.serving.validation import InputValidator


@pytest.fixture(scope="module")
def validator(credit_fs: Any) -> InputValidator:
    return InputValidator(credit_fs.input_schema())


def status_of(fn: Any, *args: Any, **kw: Any) -> tuple[int, str, str]:
    with pytest.raises(ServingError) as e:
        fn(*args, **kw)
    return e.value.status, e.value.code, e.value.message


# ---------------------------------------------------------------- body
@pytest.mark.parametrize(
    "ctype",
    [
        None,
        "",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
        "multipart/form-data",
    ],
)
def test_non_json_content_types_are_415(ctype: str | None) -> None:
    status, code, message = status_of(parse_json_body, "{}", content_type=ctype)
    assert (status, code) == (415, "unsupported_media_type")
    assert "application/json" in message or "UTF-8" in message


@pytest.mark.parametrize(
    "ctype", ["application/json", "Application/JSON; charset=UTF-8", "application/vnd.driftline+json"]
)
def test_json_content_types_are_accepted(ctype: str) -> None:
    assert parse_json_body('{"a": 1}', content_type=ctype) == {"a": 1}


def test_remembering_accepted_content_types_changes_no_answer() -> None:
    values = [
        "application/json",
        "text/plain",
        "application/json; charset=latin-1",
        None,
        "",
        "application/json;charset=utf-8",
        "application/x+json",
        "application/jsonx",
    ]

    def answer(ctype: str | None) -> Any:
        try:
            return parse_json_body("{}", content_type=ctype)
        except ServingError as e:
            return (e.status, e.message)

    first = [answer(v) for v in values]
    assert [answer(v) for v in values] == first  # second time: some answered from the remembered set
    assert first[0] == {} and first[1][0] == 415 and first[2][0] == 415 and first[7][0] == 415


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("{", "line 1 column 2"),
        ('{"a": 1,}', "line 1 column 9"),
        ("{'a': 1}", "line 1 column 2"),
        ("[1, 2", "line 1 column 6"),
    ],
)
def test_malformed_json_is_400_with_position(text: str, where: str) -> None:
    status, code, message = status_of(parse_json_body, text, content_type="application/json")
    assert (status, code) == (400, "malformed_json")
    assert where in message


def test_empty_body_is_400() -> None:
    assert status_of(parse_json_body, "", content_type="application/json")[:2] == (400, "empty_body")
    assert status_of(parse_json_body, None, content_type="application/json")[:2] == (400, "empty_body")


def test_too_large_body_is_413_before_parsing() -> None:
    big = '{"records": [' + ",".join(["{}"] * 600_000) + "]}"
    assert status_of(parse_json_body, big, content_type="application/json", max_bytes=1_000_000)[:2] == (
        413,
        "body_too_large",
    )
    multibyte = json.dumps({"x": "é" * 600})  # 1,200+ bytes in fewer characters
    assert status_of(parse_json_body, multibyte, content_type="application/json", max_bytes=1100)[0] == 413


def test_base64_bodies_are_decoded_and_checked() -> None:
    enc = base64.b64encode(b'{"a": 1}').decode()
    assert parse_json_body(enc, content_type="application/json", is_base64=True) == {"a": 1}
    assert status_of(parse_json_body, "%%%", content_type="application/json", is_base64=True)[:2] == (
        400,
        "malformed_body",
    )
    bad_utf8 = base64.b64encode(b'{"a": "\xff"}').decode()
    assert status_of(parse_json_body, bad_utf8, content_type="application/json", is_base64=True)[0] == 400


def test_deeply_nested_json_is_400_not_a_crash() -> None:
    assert (
        status_of(parse_json_body, "[" * 100_000 + "]" * 100_000, content_type="application/json", max_bytes=10**6)[0]
        == 400
    )


# ---------------------------------------------------------------- predict body shape
@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([], "must be a JSON object"),
        ("records", "must be a JSON object"),
        ({}, "neither 'records' and 'entities'"),
        ({"records": [{}], "entities": ["a"]}, "both 'records' and 'entities'"),
        ({"rows": []}, "unknown top-level field(s) 'rows'"),
        ({"records": {}}, "'records' must be an array"),
        ({"records": []}, "'records' is empty"),
        ({"records": [{}], "features": {}}, "'features' applies only to 'entities'"),
        ({"entities": ["a"], "features": []}, "'features' must be an object"),
        ({"entities": ["a"], "features": {"customer_id": "b"}}, "cannot set entity column"),
    ],
)
def test_wrong_shapes_are_422(validator: InputValidator, body: Any, fragment: str) -> None:
    status, _, message = status_of(parse_predict, body, validator, 1000)
    assert status == 422
    assert fragment in message


def test_too_many_rows_is_413(validator: InputValidator) -> None:
    status, code, message = status_of(parse_predict, {"records": [{}] * 1001}, validator, 1000)
    assert (status, code) == (413, "too_many_rows")
    assert "1,001 rows" in message and "1,000" in message
    assert status_of(parse_predict, {"entities": ["a"] * 11}, validator, 10)[0] == 413


def test_entity_items_are_checked_per_row(validator: InputValidator) -> None:
    with pytest.raises(ServingError) as e:
        parse_predict({"entities": ["C1", "", 3.5, True, {"income": 1}, {"customer_id": None}, 7]}, validator, 100)
    assert [(d["row"], d["field"]) for d in e.value.details] == [
        (1, None),
        (2, None),
        (3, None),
        (4, "customer_id"),
        (5, "customer_id"),
    ]


def test_entity_rows_merge_store_then_shared_then_row_values(validator: InputValidator, credit_fs: Any) -> None:
    schema = credit_fs.input_schema()
    stored_row = example_rows(schema, 1, seed=9, null_share=0.0)[0]
    stored_row["channel"] = "partner"  # a request-time feature must never come from the store
    stored = {"C1": {**stored_row, "customer_id": "C1", "event_timestamp": "x"}, "7": stored_row}
    req = parse_predict(
        {
            "entities": ["C1", {"customer_id": 7, "income": 1.5, "channel": "branch"}],
            "features": {"channel": "online", "balance": 10.0},
        },
        validator,
        100,
    )
    assert req.entities is not None
    assert req.entities.keys == ["C1", "7"]
    rows, origins = assemble_entity_rows(req.entities, stored, validator)
    assert rows[0]["channel"] == "online" and rows[1]["channel"] == "branch"
    assert rows[0]["balance"] == 10.0 and rows[1]["income"] == 1.5
    assert rows[0]["income"] == stored_row["income"]
    assert "customer_id" not in rows[0] and "event_timestamp" not in rows[0]
    assert origins[0]["channel"] == "features" and origins[1]["channel"] == "entity"
    assert origins[0]["income"] == "online_store" and origins[1]["income"] == "entity"
    validator.validate(rows, origins=origins)


def test_request_time_feature_missing_in_entity_mode_says_where_to_put_it(
    validator: InputValidator, credit_fs: Any
) -> None:
    stored_row = example_rows(credit_fs.input_schema(), 1, seed=9, null_share=0.0)[0]
    req = parse_predict({"entities": ["C1"]}, validator, 10)
    assert req.entities is not None
    rows, origins = assemble_entity_rows(req.entities, {"C1": stored_row}, validator)
    with pytest.raises(ServingError) as e:
        validator.validate(rows, origins=origins)
    (d,) = e.value.details
    assert d["field"] == "channel" and d["source"] == "request"
    assert "request-time feature" in d["message"]
    del stored_row["income"]
    rows, origins = assemble_entity_rows(req.entities, {"C1": stored_row}, validator)
    with pytest.raises(ServingError) as e:
        validator.validate(rows, origins=origins)
    assert {d["field"]: d.get("source") for d in e.value.details} == {"income": "online_store", "channel": "request"}


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
        max_leaves=20,
    )
)
def test_fast_parser_agrees_with_the_standard_library(value: Any) -> None:
    """orjson parses first; whatever it refuses falls back to ``json``. Either way the value must be what
    ``json`` itself makes of the text (NaN literals as NonFinite markers, big integers exact)."""
    text = json.dumps(value, allow_nan=True)
    got = parse_json_body(text, content_type="application/json")
    want = json.JSONDecoder(parse_constant=NonFinite).decode(text)
    assert repr(got) == repr(beyond_64_bits_as_float(want, got))


def beyond_64_bits_as_float(want: Any, got: Any) -> Any:
    """The one documented difference: orjson reads integers beyond the 64-bit range as the nearest float
    (a feature value then encodes to the same float32; only an error message shows the rounded value)."""
    if type(want) is int and type(got) is float and not -(2**63) <= want < 2**64:
        return float(want)
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return [beyond_64_bits_as_float(w, g) for w, g in zip(want, got, strict=True)]
    if isinstance(want, dict) and isinstance(got, dict) and want.keys() == got.keys():
        return {k: beyond_64_bits_as_float(v, got[k]) for k, v in want.items()}
    return want


def test_literals_orjson_refuses_still_parse_like_before() -> None:
    body = parse_json_body(
        '{"a": NaN, "b": 123456789012345678901234567890, "c": "\\ud800"}', content_type="application/json"
    )
    assert isinstance(body["a"], NonFinite) and body["a"].literal == "NaN"
    assert body["b"] == 123456789012345678901234567890 and body["c"] == "\ud800"
    assert parse_json_body("[1e400]", content_type="application/json") == [float("inf")]
