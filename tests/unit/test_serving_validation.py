"""Schema-driven validation: one precise problem per bad field, and encoding identical to training."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.features.encoding import encode_columns, model_features
from driftline.serving.body import parse_json_body
from driftline.serving.errors import ServingError
from driftline.serving.reference_model import example_rows
from driftline.serving.validation import InputValidator


@pytest.fixture(scope="module")
def schema(credit_fs: Any) -> dict[str, Any]:
    return credit_fs.input_schema()


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> InputValidator:
    return InputValidator(schema)


@pytest.fixture
def row(schema: dict[str, Any]) -> dict[str, Any]:
    return example_rows(schema, 1, seed=3, null_share=0.0)[0]


def problems(validator: InputValidator, rows: list[Any]) -> list[dict[str, Any]]:
    with pytest.raises(ServingError) as e:
        validator.validate(rows)
    assert e.value.status == 422
    assert e.value.code == "invalid_rows"
    return e.value.details


def one_problem(validator: InputValidator, row: dict[str, Any]) -> dict[str, Any]:
    found = problems(validator, [row])
    assert len(found) == 1, found
    return found[0]


def reference_encoding(schema: dict[str, Any], rows: list[dict[str, Any]]) -> np.ndarray:
    cols = {f["name"]: [r[f["name"]] for r in rows] for f in model_features(schema)}
    return encode_columns(schema, cols)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ---------------------------------------------------------------- encoding parity
def test_encoding_matches_the_shared_encoder_bit_for_bit(schema: dict[str, Any], validator: InputValidator) -> None:
    rows = example_rows(schema, 300, seed=1, null_share=0.2)
    out = validator.validate(rows)
    assert out.X.shape == (300, len(model_features(schema)))
    assert same_bits(out.X, reference_encoding(schema, rows))
    assert out.rows == rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), n=st.integers(1, 20), null_share=st.floats(0, 1))
def test_encoding_parity_property(
    schema: dict[str, Any], validator: InputValidator, seed: int, n: int, null_share: float
) -> None:
    rows = example_rows(schema, n, seed=seed, null_share=null_share)
    # integral floats in int fields and ints in float fields are accepted and encode identically
    for r in rows:
        if r["age"] is not None and seed % 2:
            r["age"] = float(r["age"])
        if r["income"] is not None and seed % 3 == 0:
            r["income"] = int(r["income"])
    assert same_bits(validator.validate(rows).X, reference_encoding(schema, rows))


def test_large_integers_round_like_the_shared_encoder(schema: dict[str, Any]) -> None:
    s = copy.deepcopy(schema)
    for f in s["features"]:
        if f["name"] == "income":
            f["max"] = None
    rows = example_rows(s, 3, seed=2, null_share=0.0)
    for r, v in zip(rows, (16777217, 2**53 + 1, 3.4e38), strict=True):
        r["income"] = v
    assert same_bits(InputValidator(s).validate(rows).X, reference_encoding(s, rows))


def test_map_unknown_policy_encodes_unknown_categories_as_nan(schema: dict[str, Any], row: dict[str, Any]) -> None:
    s = {**schema, "unknown_category": "map_unknown"}
    row["housing"] = "castle"
    out = InputValidator(s).validate([row])
    j = [f["name"] for f in model_features(s)].index("housing")
    assert math.isnan(out.X[0, j])
    assert same_bits(out.X, reference_encoding(s, [row]))


# ---------------------------------------------------------------- one problem per bad field
@pytest.mark.parametrize(
    ("field", "value", "expected", "got"),
    [
        ("age", "41", "an integer between 18 and 100", '"41" (string)'),
        ("age", 41.5, "an integer between 18 and 100", "41.5 (number)"),
        ("age", 17, "an integer between 18 and 100", "17 (integer)"),
        ("age", True, "an integer between 18 and 100", "true (boolean)"),
        ("age", None, "an integer between 18 and 100", "null"),
        ("income", -1.0, "a finite number >= 0 or null", "-1.0 (number)"),
        ("income", [1], "a finite number >= 0 or null", "an array of 1 items"),
        ("income", {"v": 1}, "a finite number >= 0 or null", "an object"),
        ("income", 10**400, "a finite number >= 0 or null", "a very large integer (integer)"),
        ("income", 1e39, "a finite number >= 0 or null", "1e+39 (number)"),
        ("utilization", 5.01, "a finite number between 0 and 5", "5.01 (number)"),
        ("housing", "castle", 'one of "own", "rent", "mortgage", "other" or null', '"castle" (string)'),
        ("housing", 1, 'one of "own", "rent", "mortgage", "other" or null', "1 (integer)"),
        ("autopay_enabled", 1, "true or false", "1 (integer)"),
        ("autopay_enabled", "true", "true or false", '"true" (string)'),
    ],
)
def test_each_bad_value_is_one_precise_problem(
    validator: InputValidator, row: dict[str, Any], field: str, value: Any, expected: str, got: str
) -> None:
    row[field] = value
    p = one_problem(validator, row)
    assert (p["row"], p["field"], p["expected"], p["got"]) == (0, field, expected, got)
    assert p["message"].startswith(f"row 0, field '{field}': expected {expected}, got {got}")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_reported_per_field(
    validator: InputValidator, row: dict[str, Any], literal: str
) -> None:
    text = json.dumps({"records": [row]}).replace(json.dumps(row["balance"]), literal, 1)
    body = parse_json_body(text, content_type="application/json")
    p = one_problem(validator, body["records"][0])
    assert p["field"] == "balance"
    assert p["got"] == f"{literal} (not a valid JSON number)"
    assert "send null for a missing value" in p["message"]


def test_overflowing_number_literal_is_not_finite(validator: InputValidator, row: dict[str, Any]) -> None:
    body = parse_json_body(
        json.dumps(row).replace(json.dumps(row["balance"]), "1e999", 1), content_type="application/json"
    )
    assert one_problem(validator, body)["got"] == "inf (number)"


def test_unknown_category_suggests_the_closest_one(validator: InputValidator, row: dict[str, Any]) -> None:
    row["card_tier"] = "golde"
    assert 'did you mean "gold"?' in one_problem(validator, row)["message"]


def test_missing_and_extra_fields(validator: InputValidator, row: dict[str, Any]) -> None:
    del row["tenure_months"]
    row["tenure_month"] = 12
    found = {p["field"]: p for p in problems(validator, [row])}
    assert set(found) == {"tenure_months", "tenure_month"}
    assert found["tenure_months"]["got"] == "nothing (the field is missing)"
    assert "no such field" in found["tenure_month"]["expected"]
    assert 'did you mean "tenure_months"?' in found["tenure_month"]["message"]


def test_nullable_fields_must_still_be_present(validator: InputValidator, row: dict[str, Any]) -> None:
    del row["income"]
    p = one_problem(validator, row)
    assert p["field"] == "income"
    assert "send null for a missing value" in p["message"]
    row["income"] = None
    validator.validate([row])


def test_problems_name_the_row_index(validator: InputValidator, schema: dict[str, Any]) -> None:
    rows: list[Any] = example_rows(schema, 5, seed=4, null_share=0.0)
    rows[1]["age"] = "x"
    rows[3] = ["not", "an", "object"]
    rows[4]["region"] = "mars"
    found = problems(validator, rows)
    assert [(p["row"], p["field"]) for p in found] == [(1, "age"), (3, None), (4, "region")]


def test_error_body_lists_at_most_100_details(validator: InputValidator, schema: dict[str, Any]) -> None:
    rows = example_rows(schema, 200, seed=5, null_share=0.0)
    for r in rows:
        r["age"] = "old"
    with pytest.raises(ServingError) as e:
        validator.validate(rows)
    body = e.value.body("rid")
    assert len(body["error"]["details"]) == 100
    assert body["error"]["details_truncated"] == 100
    assert body["request_id"] == "rid"


def test_string_and_timestamp_features_are_checked_but_not_model_inputs() -> None:
    schema = {
        "entity": ["id"],
        "features": [
            {"name": "x", "type": "float", "nullable": False},
            {"name": "note", "type": "string", "nullable": True},
            {"name": "seen", "type": "timestamp", "nullable": True},
        ],
    }
    v = InputValidator(schema)
    assert v.validate([{"x": 1.0, "note": "hi", "seen": "2026-01-01T00:00:00Z"}]).X.shape == (1, 1)
    assert v.validate([{"x": 1.0}]).X.tolist() == [[1.0]]
    with pytest.raises(ServingError) as e:
        v.validate([{"x": 1.0, "note": 3, "seen": "yesterday"}])
    assert [d["field"] for d in e.value.details] == ["note", "seen"]


# ---------------------------------------------------------------- columnar fast path
ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**53 + 1,
    2**70,
    10**400,
    1.5,
    -0.0,
    1e39,
    "x",
    "online",
    "",
    [],
    {},
    float("nan"),
]


def outcome(fn: Any) -> Any:
    try:
        out = fn()
    except ServingError as e:
        return ("error", e.status, e.code, json.dumps(e.details, sort_keys=True))
    return ("ok", out.X.shape, out.X.tobytes(), out.rows)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(8, 40),
    null_share=st.floats(0, 0.5),
    edits=st.lists(st.tuples(st.integers(0, 39), st.integers(0, 40), st.sampled_from(ODD_VALUES)), max_size=3),
    policy=st.sampled_from(["reject", "map_unknown"]),
)
def test_columnar_path_agrees_with_the_row_path(
    schema: dict[str, Any], seed: int, n: int, null_share: float, edits: list[tuple[int, int, Any]], policy: str
) -> None:
    """Batches of 8+ rows take the numpy path when every value is plainly valid; whatever it accepts
    must encode bit for bit like the row path, and whatever it declines the row path words."""
    s = dict(schema, unknown_category=policy)
    v = InputValidator(s)
    rows = example_rows(s, n, seed=seed, null_share=null_share)
    names = [f["name"] for f in s["features"]]
    for i, k, value in edits:
        row = rows[i % n]
        name = names[k % len(names)] if k < len(names) else "not_a_field"
        row[name] = value
    if edits and edits[0][1] == 40:
        del rows[edits[0][0] % n][names[0]]
    assert outcome(lambda: v.validate(rows)) == outcome(lambda: v._validate_rows(rows, None, 0))


def test_columnar_path_is_taken_for_clean_batches(schema: dict[str, Any], validator: InputValidator) -> None:
    rows = example_rows(schema, 50, seed=4, null_share=0.3)
    fast = validator._validate_columns(rows)
    assert fast is not None and same_bits(fast.X, reference_encoding(schema, rows))
    rows[7]["income"] = "12"
    assert validator._validate_columns(rows) is None
