"""The test-traffic header (``X-Driftline-Test``): which values mark a request, a precise 400 for the rest,
and its place in the OpenAPI document. That marked captures stay out of monitoring is pinned in
``test_captures_store.py`` (the reader) and ``tests/integration/test_test_traffic.py`` (end to end)."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate

from driftline.contracts import TEST_TRAFFIC_HEADER
from driftline.serving.errors import ServingError
from driftline.serving.openapi import build_document
from driftline.serving.service import is_test_traffic


@pytest.mark.parametrize(
    ("header", "marked"),
    [(None, False), ("1", True), ("true", True), ("TRUE", True), (" True ", True), ("0", False), ("false", False)],
)
def test_documented_values_mark_or_unmark_the_request(header: str | None, marked: bool) -> None:
    assert is_test_traffic(header) is marked


@pytest.mark.parametrize("header", ["", "yes", "2", "on", "1,1", "tru", "x" * 500])
def test_any_other_value_is_a_400_naming_the_header_and_its_values(header: str) -> None:
    with pytest.raises(ServingError) as e:
        is_test_traffic(header)
    assert e.value.status == 400 and e.value.code == "invalid_test_header"
    assert TEST_TRAFFIC_HEADER in e.value.message and "1 or true" in e.value.message
    assert len(e.value.message) < 300  # a long hostile value is shortened, not echoed whole


def test_the_header_is_an_optional_parameter_of_predict_in_the_openapi_document(credit_fs: Any) -> None:
    doc = build_document([("credit-default", credit_fs.input_schema())], max_rows=1000, server_url="https://x/v1")
    validate(doc)
    for path in ("/v1/models/{model}/predict", "/v1/models/credit-default/predict"):
        params = {p["name"]: p for p in doc["paths"][path]["post"]["parameters"]}
        test = params[TEST_TRAFFIC_HEADER]
        assert test["in"] == "header" and test["required"] is False
        assert set(test["schema"]["enum"]) == {"1", "true", "0", "false"}
