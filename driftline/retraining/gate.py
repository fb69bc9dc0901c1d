"""The quality gate: may a freshly trained candidate replace the champion?

Two kinds of checks, each reported with the numbers behind it:

- absolute: every metric in ``QualityGate.min_metrics`` (a floor) and ``max_metrics`` (a ceiling);
- relative: on the *same holdout*, the candidate may not be worse than the champion by more than
  ``max_regression`` (absolute metric units) on the primary metric and on every gated metric.
  The first model of a name has no champion: only the absolute checks apply.

Pure: no AWS, no numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from driftline.config import QualityGate

HIGHER_IS_BETTER = frozenset({"roc_auc", "pr_auc", "average_precision", "f1", "accuracy", "precision",
                              "recall", "r2", "balanced_accuracy"})
LOWER_IS_BETTER = frozenset({"log_loss", "calibration_error", "ece", "brier", "brier_score", "rmse", "mae",
                             "mse", "mape"})

CheckKind = Literal["min", "max", "regression", "present"]


def higher_is_better(metric: str, gate: QualityGate) -> bool:
    """Direction of a metric: known names first, then the gate itself (a ceiling means lower is better)."""
    if metric in HIGHER_IS_BETTER:
        return True
    if metric in LOWER_IS_BETTER:
        return False
    return metric not in gate.max_metrics


@dataclass(frozen=True)
class GateCheck:
    metric: str
    kind: CheckKind
    passed: bool
    message: str
    value: float | None = None
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "kind": self.kind, "passed": self.passed, "message": self.message,
                "value": self.value, "threshold": self.threshold}


@dataclass(frozen=True)
class GateResult:
    passed: bool
    checks: list[GateCheck] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        """The failed checks' messages (empty when the gate passed)."""
        return [c.message for c in self.checks if not c.passed]

    @property
    def summary(self) -> str:
        if self.passed:
            return "quality gate passed: " + "; ".join(c.message for c in self.checks)
        return "quality gate failed: " + "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons, "summary": self.summary,
                "checks": [c.to_dict() for c in self.checks]}


def _number(metrics: Mapping[str, Any], name: str) -> float | None:
    v = metrics.get(name)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def evaluate_gate(candidate: Mapping[str, Any], champion: Mapping[str, Any] | None,
                  gate: QualityGate, champion_version: int | None = None,
                  champion_note: str = "") -> GateResult:
    """Check candidate metrics against the gate; ``champion`` holds the champion's metrics on the same
    holdout, or None when there is no champion yet. ``champion_note`` explains missing champion metrics."""
    checks: list[GateCheck] = []
    gated = list(dict.fromkeys([gate.primary_metric, *gate.min_metrics, *gate.max_metrics]))
    have = ", ".join(sorted(candidate)) or "none"
    for name in gated:
        value = _number(candidate, name)
        if value is None:
            checks.append(GateCheck(name, "present", False,
                                    f"{name} is missing or not a finite number in the candidate's metrics "
                                    f"(it has: {have})"))
            continue
        if name in gate.min_metrics:
            floor = gate.min_metrics[name]
            ok = value >= floor
            checks.append(GateCheck(name, "min", ok,
                                    f"{name} {value:.4f} {'>=' if ok else '<'} floor {floor:.4f}",
                                    value, floor))
        if name in gate.max_metrics:
            ceiling = gate.max_metrics[name]
            ok = value <= ceiling
            checks.append(GateCheck(name, "max", ok,
                                    f"{name} {value:.4f} {'<=' if ok else '>'} ceiling {ceiling:.4f}",
                                    value, ceiling))
        if champion is None:
            continue
        base = _number(champion, name)
        who = f"champion v{champion_version}" if champion_version is not None else "champion"
        if base is None:
            why = f" ({champion_note})" if champion_note else ""
            checks.append(GateCheck(name, "regression", False,
                                    f"{name} of the {who} on the same holdout is missing, so the candidate "
                                    f"cannot be compared with it{why}"))
            continue
        up = higher_is_better(name, gate)
        worse_by = (base - value) if up else (value - base)
        ok = worse_by <= gate.max_regression + 1e-12
        limit = base - gate.max_regression if up else base + gate.max_regression
        relation = "better than or equal to" if worse_by <= 0 else (
            "within tolerance of" if ok else "worse than")
        checks.append(GateCheck(name, "regression", ok,
                                f"{name} {value:.4f} is {relation} the {who}'s {base:.4f} "
                                f"(max_regression {gate.max_regression:g})", value, limit))
    return GateResult(passed=all(c.passed for c in checks), checks=checks)
