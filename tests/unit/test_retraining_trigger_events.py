"""Parsing trigger events: every bad event is refused with the field named; opt-outs become skips."""

from __future__ import annotations

from typing import Any

import pytest

from driftline.config import PlatformConfig
from driftline.retraining.triggers import TriggerError, _OptOutError, parse_event

FS = {"credit_default", "churn"}


def _cfg(**retrain: Any) -> PlatformConfig:
    return PlatformConfig.model_validate(
        {
            "models": [
                {"name": "credit-default", "feature_set": "credit_default", "retrain": retrain},
                {"name": "credit-b", "feature_set": "credit_default", "retrain": {"on_new_labels": False}},
                {"name": "churn", "feature_set": "churn"},
            ]
        }
    )


def _bus(source: str, detail_type: str, detail: Any, id_: str = "evt-1") -> dict[str, Any]:
    return {
        "version": "0",
        "id": id_,
        "source": source,
        "detail-type": detail_type,
        "detail": detail,
        "time": "2026-11-26T01:00:00Z",
    }


def _d(detail: Any) -> dict[str, Any]:
    return _bus("driftline.monitoring", "DriftDetected", detail)


def _i(detail: Any) -> dict[str, Any]:
    return _bus("driftline.ingest", "FeatureDataAccepted", detail)


def test_drift_event() -> None:
    ev = _bus(
        "driftline.monitoring",
        "DriftDetected",
        {
            "model": "credit-default",
            "version": 3,
            "window_start": "a",
            "window_end": "b",
            "share_drifted": 0.6,
            "drifted_columns": ["income", "age"],
            "report_uri": "s3://r/x.html",
        },
    )
    (req,), skips = parse_event(ev, _cfg(), FS)
    assert skips == []
    assert (req.model, req.trigger, req.trigger_id) == ("credit-default", "drift", "evt-1")
    assert "60%" in req.reason and "income" in req.reason
    assert req.details["report_uri"] == "s3://r/x.html"
    assert "rollout_version" not in req.details  # the drifted version is not a version to roll out


def test_drift_opt_out_is_a_skip_not_an_error() -> None:
    ev = _bus("driftline.monitoring", "DriftDetected", {"model": "credit-default", "version": 1})
    with pytest.raises(_OptOutError) as e:
        parse_event(ev, _cfg(on_drift=False), FS)
    assert e.value.decision.decision == "skipped"
    assert "on_drift" in e.value.decision.reason


def test_labeled_data_fans_out_to_models_of_the_feature_set() -> None:
    ev = _bus(
        "driftline.ingest",
        "FeatureDataAccepted",
        {
            "feature_set": "credit_default",
            "upload_id": "u1",
            "rows_accepted": 900,
            "has_labels": True,
            "curated_uri": "s3://f/curated/x.parquet",
        },
    )
    reqs, skips = parse_event(ev, _cfg(), FS)
    assert [r.model for r in reqs] == ["credit-default"]
    assert [(s.model, s.decision) for s in skips] == [("credit-b", "skipped")]
    assert "on_new_labels" in skips[0].reason


def test_labeled_data_without_labels_or_rows_is_skipped() -> None:
    ev = _bus(
        "driftline.ingest",
        "FeatureDataAccepted",
        {"feature_set": "churn", "upload_id": "u1", "rows_accepted": 10, "has_labels": False},
    )
    reqs, skips = parse_event(ev, _cfg(), FS)
    assert reqs == [] and "no labels" in skips[0].reason
    ev["detail"].update(has_labels=True, rows_accepted=0)
    reqs, skips = parse_event(ev, _cfg(), FS)
    assert reqs == [] and "no rows" in skips[0].reason


def test_manual_and_schedule() -> None:
    ev = _bus("driftline.cli", "RetrainRequested", {"model": "churn", "requested_by": "alice", "reason": "why"})
    (req,), _ = parse_event(ev, _cfg(), FS)
    assert (req.trigger, req.requested_by, req.reason) == ("manual", "alice", "why")
    assert req.details == {}
    ev["detail"]["require_approval"] = True
    (req,), _ = parse_event(ev, _cfg(), FS)
    assert req.details == {"require_approval": True}
    (req,), _ = parse_event({"model": "churn", "trigger": "schedule"}, _cfg(), FS)
    assert req.trigger == "schedule" and req.trigger_id


def test_manual_request_for_a_registered_version() -> None:
    ev = _bus("driftline.cli", "RetrainRequested", {"model": "churn", "requested_by": "alice", "version": 4})
    (req,), _ = parse_event(ev, _cfg(), FS)
    assert req.details == {"rollout_version": 4}
    for bad, message in ((0, "positive version number"), ("4", "'version' must be int"), (True, "must be int")):
        ev["detail"]["version"] = bad
        with pytest.raises(TriggerError, match=message):
            parse_event(ev, _cfg(), FS)


@pytest.mark.parametrize(
    ("event", "match", "model"),
    [
        ("not an object", "must be a JSON object", "_invalid"),
        ({"foo": 1}, "unrecognised trigger event", "_invalid"),
        (_bus("driftline.monitoring", "Other", {}), "not a retraining trigger", "_invalid"),
        (_d("x"), "must be an object", "_invalid"),
        (_d({"version": 1}), "'model' is missing", "_invalid"),
        (_d({"model": "nope"}), "unknown model 'nope'", "nope"),
        (_d({"model": "churn", "version": "3"}), "'version' must be int", "churn"),
        (_d({"model": "churn", "version": True}), "'version' must be int", "churn"),
        (_i({"feature_set": "zzz", "has_labels": True, "rows_accepted": 1}), "unknown feature set 'zzz'", "_invalid"),
        (
            _i({"feature_set": "churn", "has_labels": "yes", "rows_accepted": 1}),
            "'has_labels' must be bool",
            "_invalid",
        ),
        (_i({"feature_set": "churn", "has_labels": True, "rows_accepted": -1}), "must be >= 0", "_invalid"),
        (_bus("driftline.cli", "RetrainRequested", {"model": "churn"}), "'requested_by' is missing", "churn"),
        (
            _bus(
                "driftline.cli", "RetrainRequested", {"model": "churn", "requested_by": "a", "require_approval": "yes"}
            ),
            "'require_approval' must be bool",
            "churn",
        ),
        ({"model": "Bad Name!", "trigger": "schedule"}, "unknown model", "_invalid"),
        ({"trigger": "schedule"}, "'model' is missing", "_invalid"),
    ],
)
def test_bad_events_are_refused_precisely(event: Any, match: str, model: str) -> None:
    with pytest.raises(TriggerError, match=match) as e:
        parse_event(event, _cfg(), FS)
    assert e.value.model == model
