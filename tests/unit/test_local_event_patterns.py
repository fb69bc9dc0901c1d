"""EventBridge pattern matching and target input, as the local runtime routes events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from driftline.local.event_patterns import PatternError, json_path, matches, target_input

EVENT: dict[str, Any] = {
    "version": "0",
    "id": "1",
    "source": "driftline.ingest",
    "detail-type": "FeatureDataAccepted",
    "account": "123456789012",
    "time": "2026-11-26T01:02:03Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {
        "feature_set": "credit_default",
        "has_labels": True,
        "rows_accepted": 1500,
        "score": 0.25,
        "tags": ["a", "b"],
        "owner": None,
        "nested": {"ip": "10.0.0.7", "name": "Credit-Default"},
    },
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"source": ["driftline.ingest"]}, True),
        ({"source": ["driftline.monitoring", "driftline.ingest"]}, True),
        ({"source": ["driftline.monitoring"]}, False),
        (
            {"source": ["driftline.ingest"], "detail-type": ["FeatureDataAccepted"], "detail": {"has_labels": [True]}},
            True,
        ),
        ({"detail": {"has_labels": [False]}}, False),
        ({"detail": {"has_labels": [1]}}, False),  # booleans never equal numbers
        ({"detail": {"rows_accepted": [1500.0]}}, True),  # numbers compare numerically
        ({"detail": {"rows_accepted": ["1500"]}}, False),
        ({"detail": {"owner": [None]}}, True),
        ({"detail": {"missing": [None]}}, False),
        ({"detail": {"tags": ["b"]}}, True),  # arrays match when any element matches
        ({"detail": {"nested": {"name": [{"prefix": "Credit"}]}}}, True),
        ({"detail": {"nested": {"name": [{"prefix": {"equals-ignore-case": "credit"}}]}}}, True),
        ({"detail": {"nested": {"name": [{"suffix": "default"}]}}}, False),
        ({"detail": {"nested": {"name": [{"equals-ignore-case": "credit-default"}]}}}, True),
        ({"detail": {"nested": {"name": [{"wildcard": "Credit-*ault"}]}}}, True),
        ({"detail": {"feature_set": [{"anything-but": ["credit_default"]}]}}, False),
        ({"detail": {"feature_set": [{"anything-but": {"prefix": "fraud"}}]}}, True),
        ({"detail": {"rows_accepted": [{"numeric": [">", 1000, "<=", 1500]}]}}, True),
        ({"detail": {"score": [{"numeric": ["<", 0.2]}]}}, False),
        ({"detail": {"has_labels": [{"numeric": [">", 0]}]}}, False),
        ({"detail": {"missing": [{"exists": False}]}}, True),
        ({"detail": {"feature_set": [{"exists": False}]}}, False),
        ({"detail": {"feature_set": [{"exists": True}]}}, True),
        ({"detail": {"nested": {"ip": [{"cidr": "10.0.0.0/24"}]}}}, True),
        ({"detail": {"nested": {"ip": [{"cidr": "10.0.1.0/24"}]}}}, False),
        ({"$or": [{"source": ["x"]}, {"detail": {"has_labels": [True]}}]}, True),
        ({"detail": {"feature_set": {"nested": ["no"]}}}, False),  # a nested pattern needs an object in the event
    ],
)
def test_matches(pattern: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, EVENT) is expected
    assert matches(json.dumps(pattern), EVENT) is expected


@pytest.mark.parametrize(
    "pattern",
    [
        "{not json",
        {},
        {"source": "driftline.ingest"},
        {"source": []},
        {"source": [{"prefix": "a", "suffix": "b"}]},
        {"detail": {"rows_accepted": [{"numeric": [">"]}]}},
        {"source": [{"regex": "x"}]},
        {"$or": [{"source": ["a"]}]},
    ],
)
def test_invalid_patterns_are_rejected(pattern: Any) -> None:
    with pytest.raises(PatternError):
        matches(pattern, EVENT)


def test_no_pattern_matches_nothing() -> None:
    assert matches(None, EVENT) is False


def test_json_path() -> None:
    assert json_path(EVENT, "$") == EVENT
    assert json_path(EVENT, "$.detail.nested.ip") == "10.0.0.7"
    assert json_path(EVENT, "$.detail.tags[1]") == "b"
    assert json_path(EVENT, "$['detail-type']") == "FeatureDataAccepted"
    assert json_path(EVENT, "$.detail.nope.deeper") is None
    with pytest.raises(PatternError, match="must start with"):
        json_path(EVENT, "detail")


def test_target_input() -> None:
    assert target_input({"Input": '{"model": "m"}'}, EVENT) == '{"model": "m"}'
    assert json.loads(target_input({"InputPath": "$.detail.nested"}, EVENT)) == EVENT["detail"]["nested"]
    assert json.loads(target_input({}, EVENT)) == EVENT
    transformer = {
        "InputTransformer": {
            "InputPathsMap": {"fs": "$.detail.feature_set", "n": "$.detail.rows_accepted"},
            "InputTemplate": '{"feature_set": "<fs>", "rows": <n>, "rule": "<aws.events.rule-name>"}',
        }
    }
    assert json.loads(target_input(transformer, EVENT, rule_name="r1")) == {
        "feature_set": "credit_default",
        "rows": 1500,
        "rule": "r1",
    }
