"""Quality gate: absolute floors/ceilings, regression against the champion on the same holdout."""

from __future__ import annotations

import math

import pytest

from driftline.config import QualityGate
from driftline.registry.store import ModelVersion, gate_refusal
from driftline.retraining.gate import (
    assess_registered,
    evaluate_gate,
    gate_record,
    higher_is_better,
    regression_tolerance,
)

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


# ---- relative tolerance (error metrics such as rmse live in the label's units)
RMSE_GATE = QualityGate(min_metrics={}, max_metrics={"rmse": 10.0}, primary_metric="rmse", max_relative_regression=0.05)


def test_relative_tolerance_scales_with_the_champion() -> None:
    champ = {"rmse": 8.0}
    ok = evaluate_gate({"rmse": 8.39}, champ, RMSE_GATE, champion_version=2)
    assert ok.passed, ok.reasons
    bad = evaluate_gate({"rmse": 8.5}, champ, RMSE_GATE, champion_version=2)
    assert bad.reasons == [
        "rmse 8.5000 is worse than the champion v2's 8.0000 (max_relative_regression 0.05: at most 8.4000)"
    ]
    # higher is better: the bound is below the champion
    auc = QualityGate(min_metrics={}, max_relative_regression=0.1)
    r = evaluate_gate({"roc_auc": 0.70}, {"roc_auc": 0.80}, auc, champion_version=1)
    assert r.reasons == [
        "roc_auc 0.7000 is worse than the champion v1's 0.8000 (max_relative_regression 0.1: at least 0.7200)"
    ]


def test_regression_tolerance() -> None:
    assert regression_tolerance(20.0, 0.01, None) == 0.01
    assert regression_tolerance(-20.0, None, 0.05) == pytest.approx(1.0)  # of the magnitude
    assert regression_tolerance(0.0, None, 0.05) == 0.0
    assert regression_tolerance(3.0, None, None) == 0.0


# ---- a version registered outside the workflow, judged at approval time
LINEAGE = {"parent_version": 1, "champion_metrics": {"rmse": 2.0}}


def test_regression_candidate_far_over_its_ceiling_fails() -> None:
    # the case: rmse 3.5x its ceiling; no champion yet, so only the absolute checks apply
    result, evidence = assess_registered({"rmse": 35.0}, {}, RMSE_GATE, None, None)
    assert evidence is None and not result.passed
    assert result.reasons == ["rmse 35.0000 > ceiling 10.0000"]


def test_champion_scored_on_the_versions_holdout_is_preferred() -> None:
    result, evidence = assess_registered({"rmse": 2.05}, LINEAGE, RMSE_GATE, 1, {"rmse": 9.0})
    assert evidence is not None and evidence.same_holdout and evidence.basis == "same_holdout"
    assert result.passed, result.reasons  # within 5% of 2.0 (the champion's own 9.0 is not used)
    worse, _ = assess_registered({"rmse": 2.2}, LINEAGE, RMSE_GATE, 1, {"rmse": 9.0})
    assert not worse.passed and "champion v1's 2.0000" in worse.reasons[0]


def test_another_champion_falls_back_to_its_registered_metrics_and_says_so() -> None:
    result, evidence = assess_registered({"rmse": 9.6}, LINEAGE, RMSE_GATE, 4, {"rmse": 9.0})
    assert evidence is not None and not evidence.same_holdout
    assert not result.passed
    (reason,) = result.reasons
    assert reason.startswith("rmse 9.6000 is worse than the champion v4's 9.0000")
    assert "measured on its own holdout" in reason
    missing, _ = assess_registered({"rmse": 5.0}, {}, RMSE_GATE, 4, {})
    assert not missing.passed and "of the champion v4 on the same holdout is missing" in missing.reasons[0]


def test_gate_record_says_against_what() -> None:
    result, evidence = assess_registered({"rmse": 2.05}, LINEAGE, RMSE_GATE, 1, None)
    rec = gate_record(result, evidence, evaluated_by="approve by alice", evaluated_at="2026-12-01T00:00:00")
    assert rec["passed"] is True and rec["champion_version"] == 1 and rec["comparison"] == "same_holdout"
    assert rec["evaluated_by"] == "approve by alice" and rec["checks"] and rec["reasons"] == []
    first = gate_record(evaluate_gate({"rmse": 1.0}, None, RMSE_GATE), None, evaluated_by="x", evaluated_at="t")
    assert first["champion_version"] is None and first["comparison"] == "no_champion"


# ---- the refusal every approve/promote path shares
def _mv(status: str = "candidate") -> ModelVersion:
    return ModelVersion(model="house", version=3, status=status, created_at="", created_by="")


def test_gate_refusal() -> None:
    failed = gate_record(
        evaluate_gate({"rmse": 35.0}, None, RMSE_GATE), None, evaluated_by="approve by bob", evaluated_at="t"
    )
    msg = gate_refusal("approve", _mv(), failed, override=False)
    assert msg == (
        "cannot approve 'house' v3: it failed the quality gate (with no champion to compare with, "
        "evaluated by approve by bob): rmse 35.0000 > ceiling 10.0000; to approve it anyway, say why: "
        "driftline models approve --model house --version 3 --override-gate --reason '...' (the "
        "override and the reason go to the audit trail)"
    )
    assert gate_refusal("approve", _mv(), failed, override=True) is None
    assert "it is rejected and can never be approved" in str(gate_refusal("approve", _mv("rejected"), failed, False))
    promote = gate_refusal(
        "promote", _mv("approved"), {**failed, "champion_version": 2, "comparison": "same_holdout"}, False
    )
    assert promote is not None and "against champion v2 on the same holdout" in promote
    assert "driftline models promote --model house --version 3 --override-gate" in promote
    passed = gate_record(evaluate_gate({"rmse": 1.0}, None, RMSE_GATE), None, evaluated_by="x", evaluated_at="t")
    assert gate_refusal("approve", _mv(), passed, override=False) is None
    assert gate_refusal("approve", _mv(), {}, override=False) is None  # nothing to enforce
