"""Canary decision: error rate, latency (with a floor), quality on labels, and too little traffic."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest

from driftline.retraining.canary import CanaryLimits, RoleSample, decide, roc_auc, summarize
from driftline.retraining.steps import (
    CANARY_EXTEND,
    CANARY_INCONCLUSIVE,
    CANARY_PROMOTE,
    CANARY_ROLLBACK,
    canary_outcome,
)
from driftline.serving.labels import Labels

LIMITS = CanaryLimits(max_error_rate=0.01, max_latency_ratio=1.5, max_regression=0.02, min_labels=10)


def rec(i: int, role: str, version: int, prob: float = 0.3, latency: float = 0.05, label: int = 0) -> dict[str, Any]:
    return {
        "request_id": f"{role}-{i}",
        "role": role,
        "version": version,
        "latency_ms": latency,
        "prediction": {"label": label, "probability": prob},
    }


def book(labels: dict[str, Any], by: str | None = None) -> Labels:
    """Unauthenticated labels (no ``by``) for captures without a caller, unless ``by`` is given."""
    out = Labels()
    for rid, label in labels.items():
        out.add({"request_id": rid, "label": label, "ts": "2026-01-01T00:00:00+00:00", **({"by": by} if by else {})})
    return out


def sample(n: int, role: str, version: int, **kw: Any) -> list[dict[str, Any]]:
    return [rec(i, role, version, **kw) for i in range(n)]


def test_roc_auc_matches_sklearn_definition() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300).astype(bool)
    s = np.round(rng.random(300) + y * 0.3, 1)  # ties on purpose
    pos, neg = s[y], s[~y]
    wins = np.sum(pos[:, None] > neg[None, :]) + 0.5 * np.sum(pos[:, None] == neg[None, :])
    brute = wins / (len(pos) * len(neg))
    assert roc_auc(y, s) == pytest.approx(brute, abs=1e-12)
    assert roc_auc([True, True], [0.1, 0.2]) is None


def test_healthy_canary() -> None:
    champ, chall = summarize(
        sample(50, "champion", 1) + sample(50, "challenger", 2), Labels(), 1, 2, "binary_classification"
    )
    d = decide(champ, chall, LIMITS, task="binary_classification", mode="canary")
    assert d.healthy, d.reasons
    assert d.challenger["rows"] == 50 and d.champion["latency_p95_ms"] == pytest.approx(0.05)


def test_error_rate_breach_counts_invalid_predictions() -> None:
    bad = sample(45, "challenger", 2) + sample(5, "challenger", 2, prob=math.nan)
    champ, chall = summarize(sample(50, "champion", 1) + bad, Labels(), 1, 2, "binary_classification")
    assert chall.errors == 5
    d = decide(champ, chall, LIMITS, task="binary_classification", mode="canary")
    assert not d.healthy and d.reasons == ["error rate 10.00% vs champion 0.00% (limit +1.00%)"]


def test_latency_ratio_needs_the_floor() -> None:
    fast, slow = RoleSample(rows=50, latencies_ms=[0.05] * 50), RoleSample(rows=50, latencies_ms=[0.5] * 50)
    assert decide(fast, slow, LIMITS, task="binary_classification", mode="canary").healthy  # 10x but µs
    ok, bad = RoleSample(rows=50, latencies_ms=[10.0] * 50), RoleSample(rows=50, latencies_ms=[40.0] * 50)
    d = decide(ok, bad, LIMITS, task="binary_classification", mode="canary")
    assert not d.healthy and "p95 latency 40.000 ms vs champion 10.000 ms" in d.reasons[0]
    assert decide(ok, bad, LIMITS, task="binary_classification", mode="shadow").healthy


def test_configured_latency_floor_absorbs_load_noise() -> None:
    """The CI flake this reproduces: a demo canary on a loaded 2-core runner saw a 24 ms p95 beside a
    7.4 ms one. Above the default floor that is a breach; the demo environment's 50 ms floor judges it
    noise, and a real regression above the floor still breaches."""
    champ, chall = RoleSample(rows=50, latencies_ms=[7.4] * 50), RoleSample(rows=50, latencies_ms=[24.0] * 50)
    limits = CanaryLimits(max_error_rate=0.01, max_latency_ratio=3.0, max_regression=0.02, min_labels=10)
    assert not decide(champ, chall, limits, task="binary_classification", mode="canary").healthy
    demo = dataclasses.replace(limits, latency_floor_ms=50.0)
    assert decide(champ, chall, demo, task="binary_classification", mode="canary").healthy
    slow = RoleSample(rows=50, latencies_ms=[80.0] * 50)
    assert not decide(champ, slow, demo, task="binary_classification", mode="canary").healthy


def test_latency_floor_is_configured_per_model() -> None:
    from driftline.config import DeploySettings

    assert DeploySettings().latency_floor_ms == 5.0
    assert DeploySettings(latency_floor_ms=50).latency_floor_ms == 50.0
    with pytest.raises(ValueError, match="latency_floor_ms"):
        DeploySettings(latency_floor_ms=-1)


def test_too_little_traffic_is_not_healthy() -> None:
    champ, chall = summarize(
        sample(50, "champion", 1) + sample(3, "challenger", 2), Labels(), 1, 2, "binary_classification"
    )
    d = decide(champ, chall, LIMITS, task="binary_classification", mode="canary")
    assert not d.healthy and d.reasons[0].startswith("insufficient canary traffic")


def test_quality_on_feedback_labels() -> None:
    # champion predicts the truth; challenger predicts the opposite
    champ_recs = [rec(i, "champion", 1, prob=0.9 if i % 2 else 0.1, label=i % 2) for i in range(40)]
    chall_recs = [rec(i, "challenger", 2, prob=0.1 if i % 2 else 0.9, label=1 - i % 2) for i in range(40)]
    labels = book({f"{r}-{i}": i % 2 for r in ("champion", "challenger") for i in range(40)})
    champ, chall = summarize(champ_recs + chall_recs, labels, 1, 2, "binary_classification")
    d = decide(champ, chall, LIMITS, task="binary_classification", mode="canary", positive=1)
    assert not d.healthy
    assert d.reasons == ["roc_auc on 40 labeled rows 0.0000 vs champion 1.0000 (max_regression 0.02)"]
    few = CanaryLimits(max_error_rate=0.01, max_latency_ratio=1.5, max_regression=0.02, min_labels=100)
    d = decide(champ, chall, few, task="binary_classification", mode="canary", positive=1)
    assert d.healthy and any("quality not compared" in n for n in d.notes)


def test_regression_quality() -> None:
    recs = [
        {"request_id": f"a{i}", "role": "champion", "version": 1, "latency_ms": 1.0, "prediction": {"value": float(i)}}
        for i in range(30)
    ]
    recs += [
        {
            "request_id": f"b{i}",
            "role": "shadow",
            "version": 2,
            "latency_ms": 1.0,
            "prediction": {"value": float(i) + 5},
        }
        for i in range(30)
    ]
    labels = book({**{f"a{i}": float(i) for i in range(30)}, **{f"b{i}": float(i) for i in range(30)}})
    champ, chall = summarize(recs, labels, 1, 2, "regression")
    d = decide(champ, chall, LIMITS, task="regression", mode="shadow")
    assert not d.healthy and d.reasons[0].startswith("rmse on 30 labeled rows 5.0000 vs champion 0.0000")


def test_no_traffic_is_inconclusive_not_breached() -> None:
    champ, chall = summarize(sample(50, "champion", 1), Labels(), 1, 2, "binary_classification")
    d = decide(champ, chall, LIMITS, task="binary_classification", mode="canary")
    assert not d.healthy and d.inconclusive and d.verdict == "inconclusive"
    assert d.reasons == [
        "insufficient canary traffic: the challenger handled 0 rows during the bake (at least "
        "20 are needed to judge it); the champion keeps serving"
    ]
    assert d.summary.startswith("canary inconclusive: insufficient canary traffic")
    assert d.to_dict()["verdict"] == "inconclusive"


def test_a_breach_on_little_traffic_is_still_a_breach() -> None:
    broken = [rec(i, "challenger", 2, prob=math.nan) for i in range(5)]
    champ, chall = summarize(sample(50, "champion", 1) + broken, Labels(), 1, 2, "binary_classification")
    d = decide(champ, chall, LIMITS, task="binary_classification", mode="canary")
    assert d.verdict == "breached" and not d.inconclusive
    assert d.reasons[0].startswith("insufficient canary traffic") and "error rate 100.00%" in d.reasons[1]


def test_canary_outcome_extends_then_ends_inconclusive() -> None:
    assert canary_outcome("healthy", None, 2) == (CANARY_PROMOTE, 0)
    assert canary_outcome("breached", {"extensions": 1}, 2) == (CANARY_ROLLBACK, 1)
    assert canary_outcome("inconclusive", None, 2) == (CANARY_EXTEND, 1)
    assert canary_outcome("inconclusive", {"extensions": 1, "outcome": "extend"}, 2) == (CANARY_EXTEND, 2)
    assert canary_outcome("inconclusive", {"extensions": 2, "outcome": "extend"}, 2) == (CANARY_INCONCLUSIVE, 2)
    assert canary_outcome("inconclusive", None, 0) == (CANARY_INCONCLUSIVE, 0)
    assert canary_outcome("healthy", {"extensions": 2}, 2) == (CANARY_PROMOTE, 2)


def test_quality_uses_the_relative_tolerance_when_configured() -> None:
    labels = book({f"{role}-{i}": 1.0 for role in ("champion", "challenger") for i in range(40)})

    def reg(role: str, version: int, value: float) -> list[dict[str, Any]]:
        return [
            {
                "request_id": f"{role}-{i}",
                "role": role,
                "version": version,
                "latency_ms": 0.05,
                "prediction": {"value": value},
            }
            for i in range(40)
        ]

    records = reg("champion", 1, 11.0) + reg("challenger", 2, 11.4)  # rmse 10.0 vs 10.4
    champ, chall = summarize(records, labels, 1, 2, "regression")
    rel = CanaryLimits(
        max_error_rate=0.01,
        max_latency_ratio=1.5,
        max_regression=None,
        max_relative_regression=0.05,
        primary_metric="rmse",
        min_labels=10,
    )
    d = decide(champ, chall, rel, task="regression", mode="canary")
    assert d.healthy, d.reasons
    assert any("max_relative_regression 0.05: at most 10.5000" in n for n in d.notes)
    absolute = decide(champ, chall, LIMITS, task="regression", mode="canary")
    assert not absolute.healthy and "(max_regression 0.02)" in absolute.reasons[0]
