"""Quality gate: absolute floors/ceilings, regression against the champion on the same holdout."""

from __future__ import annotations

import math

from driftline.config import QualityGate
from driftline.retraining.gate import evaluate_gate, higher_is_better

GATE = QualityGate(min_metrics={"roc_auc": 0.65}, max_metrics={"log_loss": 0.6}, max_regression=0.02)


def test_first_model_absolute_only() -> None:
    r = evaluate_gate({"roc_auc": 0.70, "log_loss": 0.5}, None, GATE)
    assert r.passed and r.reasons == []
    assert {c.kind for c in r.checks} == {"min", "max"}
    r = evaluate_gate({"roc_auc": 0.60, "log_loss": 0.7}, None, GATE)
    assert not r.passed
    assert r.reasons == ["roc_auc 0.6000 < floor 0.6500", "log_loss 0.7000 > ceiling 0.6000"]


def test_regression_tolerance_in_both_directions() -> None:
    champ = {"roc_auc": 0.80, "log_loss": 0.40}
    ok = evaluate_gate({"roc_auc": 0.785, "log_loss": 0.41}, champ, GATE, champion_version=3)
    assert ok.passed, ok.reasons
    bad = evaluate_gate({"roc_auc": 0.77, "log_loss": 0.43}, champ, GATE, champion_version=3)
    assert not bad.passed
    assert bad.reasons == [
        "roc_auc 0.7700 is worse than the champion v3's 0.8000 (max_regression 0.02)",
        "log_loss 0.4300 is worse than the champion v3's 0.4000 (max_regression 0.02)",
    ]
    exact = evaluate_gate({"roc_auc": 0.78, "log_loss": 0.42}, champ, GATE)  # exactly at the tolerance
    assert exact.passed


def test_missing_or_nan_metrics_fail() -> None:
    r = evaluate_gate({"roc_auc": math.nan, "log_loss": 0.5}, None, GATE)
    assert not r.passed and "roc_auc is missing or not a finite number" in r.reasons[0]
    r = evaluate_gate({"roc_auc": 0.9, "log_loss": 0.5}, {}, GATE, champion_version=1)
    assert not r.passed
    assert all("of the champion v1 on the same holdout is missing" in x for x in r.reasons)


def test_bool_is_not_a_metric() -> None:
    assert not evaluate_gate({"roc_auc": True, "log_loss": 0.1}, None, GATE).passed


def test_direction() -> None:
    assert higher_is_better("roc_auc", GATE) and not higher_is_better("rmse", GATE)
    custom = QualityGate(min_metrics={}, max_metrics={"my_loss": 1.0}, primary_metric="my_loss")
    assert not higher_is_better("my_loss", custom)
    r = evaluate_gate({"my_loss": 0.5}, {"my_loss": 0.2}, custom)
    assert not r.passed and "worse than" in r.reasons[0]
