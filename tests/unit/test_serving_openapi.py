"""The OpenAPI document: valid OpenAPI 3.1, and request schemas that agree with the validator."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

from driftline.serving.errors import ServingError
from driftline.serving.feedback import check_labels
from driftline.serving.openapi import build_document, predict_request_schema
from driftline.serving.reference_model import example_rows
from driftline.serving.validation import InputValidator


@pytest.fixture(scope="module")
def schema(credit_fs: Any) -> dict[str, Any]:
    return credit_fs.input_schema()


def test_document_is_valid_openapi_31_with_per_model_paths(schema: dict[str, Any]) -> None:
    doc = build_document([("credit-default", schema)], max_rows=1000, server_url="https://x/v1")
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert {
        "/health",
        "/openapi.json",
        "/v1/models/{model}/predict",
        "/v1/models/credit-default/predict",
        "/v1/models/credit-default",
        "/v1/models/credit-default/feedback",
    } <= set(doc["paths"])
    ref = doc["paths"]["/v1/models/credit-default/predict"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]["$ref"]
    assert ref == "#/components/schemas/CreditDefaultPredictRequest"
    record = doc["components"]["schemas"]["CreditDefaultRecord"]
    assert record["properties"]["age"] == {"type": "integer", "minimum": 18, "maximum": 100}
    assert record["properties"]["housing"]["enum"] == ["own", "rent", "mortgage", "other", None]
    assert "request-time" in record["properties"]["channel"]["description"]
    assert record["additionalProperties"] is False and "income" in record["required"]


def test_generated_schema_and_validator_agree(schema: dict[str, Any]) -> None:
    js = predict_request_schema(schema, max_rows=1000)
    validator = InputValidator(schema)
    good = example_rows(schema, 20, seed=7, null_share=0.3)
    jsonschema.validate({"records": good}, js)
    validator.validate(good)
    bad_values: list[tuple[str, Any]] = [
        ("age", 17),
        ("age", "41"),
        ("age", 41.5),
        ("housing", "castle"),
        ("autopay_enabled", 1),
        ("credit_limit", None),
        ("income", -3),
    ]
    for field, value in bad_values:
        row = dict(good[0], **{field: value})
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"records": [row]}, js)
        with pytest.raises(ServingError):
            validator.validate([row])
    jsonschema.validate(
        {"entities": ["C1", {"customer_id": 7, "channel": "online"}], "features": {"channel": "branch"}}, js
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"records": [good[0]] * 1001}, js)


def test_without_models_the_generic_document_is_still_valid() -> None:
    validate(build_document([], max_rows=10))


# ---------------------------------------------------------------- feedback bodies
LABEL = {"name": "defaulted", "task": "binary_classification", "classes": [0, 1]}


def test_feedback_labels_are_checked_against_the_classes() -> None:
    ok = check_labels({"labels": [{"request_id": "a:0", "label": 1}, {"request_id": "a:1", "label": 0}]}, LABEL)
    assert ok == [{"request_id": "a:0", "label": 1}, {"request_id": "a:1", "label": 0}]
    with pytest.raises(ServingError) as e:
        check_labels(
            {
                "labels": [
                    {"request_id": "a", "label": 2},
                    {"request_id": "", "label": 1},
                    {"request_id": "a", "label": True},
                    {"label": 1.0},
                    "x",
                    {"request_id": "b", "label": 1, "extra": 1},
                ]
            },
            LABEL,
        )
    got = [(d["row"], d["field"]) for d in e.value.details]
    assert got == [
        (0, "label"),
        (1, "request_id"),
        (2, "request_id"),
        (2, "label"),
        (3, "request_id"),
        (3, "label"),
        (4, None),
        (5, "extra"),
    ]
    assert e.value.status == 422


@pytest.mark.parametrize("body", [[], {}, {"labels": []}, {"labels": {}}, {"labels": [], "x": 1}])
def test_feedback_shapes(body: Any) -> None:
    with pytest.raises(ServingError) as e:
        check_labels(body, LABEL)
    assert e.value.status == 422


def test_feedback_regression_and_unknown_label_definition() -> None:
    reg = {"name": "y", "task": "regression", "classes": []}
    assert check_labels({"labels": [{"request_id": "a", "label": 2.5}]}, reg)[0]["label"] == 2.5
    with pytest.raises(ServingError):
        check_labels({"labels": [{"request_id": "a", "label": "high"}]}, reg)
    assert check_labels({"labels": [{"request_id": "a", "label": "high"}]}, None)[0]["label"] == "high"
    with pytest.raises(ServingError) as e:
        check_labels({"labels": [{"request_id": "a", "label": 1}] * 10_001}, None)
    assert e.value.status == 413
