"""The quality gate: may a freshly trained candidate replace the champion?

Two kinds of checks, each reported with the numbers behind it:

- absolute: every metric in ``QualityGate.min_metrics`` (a floor) and ``max_metrics`` (a ceiling);
- relative: on the *same holdout*, the candidate may not be worse than the champion on the primary
  metric and on every gated metric by more than the tolerance: ``max_regression`` (absolute, in the
  metric's units) or ``max_relative_regression`` (a fraction of the champion's value). "Worse" follows
  the metric's direction: lower for ROC AUC, higher for RMSE or log loss.
  The first model of a name has no champion: only the absolute checks apply.

:func:`evaluate_gate` is the one check, whoever asks: the workflow's ``gate`` step (champion scored on
the candidate's holdout by the trainer) and approval outside the workflow (:func:`assess_registered`,
for versions registered by hand, whose gate outcome was never recorded). :func:`gate_record` is the
form stored on the version, which the registry checks before approving or promoting it.

Pure: no AWS, no numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from driftline.config import QualityGate

HIGHER_IS_BETTER = frozenset(
    {"roc_auc", "pr_auc", "average_precision", "f1", "accuracy", "precision", "recall", "r2", "balanced_accuracy"}
)
LOWER_IS_BETTER = frozenset(
    {"log_loss", "calibration_error", "ece", "brier", "brier_score", "rmse", "mae", "mse", "mape"}
)

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
        return {
            "metric": self.metric,
            "kind": self.kind,
            "passed": self.passed,
            "message": self.message,
            "value": self.value,
            "threshold": self.threshold,
        }


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
        return {
            "passed": self.passed,
            "reasons": self.reasons,
            "summary": self.summary,
            "checks": [c.to_dict() for c in self.checks],
        }


def _number(metrics: Mapping[str, Any], name: str) -> float | None:
    v = metrics.get(name)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def evaluate_gate(
    candidate: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    gate: QualityGate,
    champion_version: int | None = None,
    champion_note: str = "",
) -> GateResult:
    """Check candidate metrics against the gate; ``champion`` holds the champion's metrics on the same
    holdout, or None when there is no champion yet. ``champion_note`` explains missing champion metrics."""
    checks: list[GateCheck] = []
    gated = list(dict.fromkeys([gate.primary_metric, *gate.min_metrics, *gate.max_metrics]))
    have = ", ".join(sorted(candidate)) or "none"
    for name in gated:
        value = _number(candidate, name)
        if value is None:
            checks.append(
                GateCheck(
                    name,
                    "present",
                    False,
                    f"{name} is missing or not a finite number in the candidate's metrics (it has: {have})",
                )
            )
            continue
        if name in gate.min_metrics:
            floor = gate.min_metrics[name]
            ok = value >= floor
            checks.append(
                GateCheck(name, "min", ok, f"{name} {value:.4f} {'>=' if ok else '<'} floor {floor:.4f}", value, floor)
            )
        if name in gate.max_metrics:
            ceiling = gate.max_metrics[name]
            ok = value <= ceiling
            checks.append(
                GateCheck(
                    name, "max", ok, f"{name} {value:.4f} {'<=' if ok else '>'} ceiling {ceiling:.4f}", value, ceiling
                )
            )
        if champion is None:
            continue
        base = _number(champion, name)
        who = f"champion v{champion_version}" if champion_version is not None else "champion"
        if base is None:
            why = f" ({champion_note})" if champion_note else ""
            checks.append(
                GateCheck(
                    name,
                    "regression",
                    False,
                    f"{name} of the {who} on the same holdout is missing, so the candidate "
                    f"cannot be compared with it{why}",
                )
            )
            continue
        up = higher_is_better(name, gate)
        worse_by = (base - value) if up else (value - base)
        tolerance = regression_tolerance(base, gate.absolute_regression, gate.max_relative_regression)
        ok = worse_by <= tolerance + 1e-12
        limit = base - tolerance if up else base + tolerance
        rule = tolerance_text(gate.absolute_regression, gate.max_relative_regression, limit, up)
        relation = "better than or equal to" if worse_by <= 0 else ("within tolerance of" if ok else "worse than")
        checks.append(
            GateCheck(
                name,
                "regression",
                ok,
                f"{name} {value:.4f} is {relation} the {who}'s {base:.4f} ({rule})",
                value,
                limit,
            )
        )
    return GateResult(passed=all(c.passed for c in checks), checks=checks)


def regression_tolerance(base: float, absolute: float | None, relative: float | None) -> float:
    """How much worse than the champion's ``base`` a value may be, in the metric's units.

    Relative when configured (``relative`` x |base|, so it scales with RMSE's units), else absolute.
    Shared with the canary's quality check so both judge regressions the same way.
    """
    if relative is not None:
        return relative * abs(base)
    return absolute if absolute is not None else 0.0


def tolerance_text(absolute: float | None, relative: float | None, limit: float, higher_better: bool) -> str:
    """The configured tolerance as users wrote it, with the bound it gives on this champion."""
    bound = f"at least {limit:.4f}" if higher_better else f"at most {limit:.4f}"
    if relative is not None:
        return f"max_relative_regression {relative:g}: {bound}"
    return f"max_regression {absolute:g}"


@dataclass(frozen=True)
class ChampionEvidence:
    """The champion a version is judged against, and how its metrics were obtained."""

    version: int
    metrics: Mapping[str, Any] | None
    same_holdout: bool
    note: str = ""

    @property
    def basis(self) -> str:
        return "same_holdout" if self.same_holdout else "registered_metrics"


def assess_registered(
    metrics: Mapping[str, Any],
    lineage: Mapping[str, Any],
    gate: QualityGate,
    champion_version: int | None,
    champion_metrics: Mapping[str, Any] | None,
) -> tuple[GateResult, ChampionEvidence | None]:
    """The gate for a version registered outside the workflow (``driftline train``, by hand).

    The champion's numbers come from the version's lineage when the trainer scored that same champion
    on the version's own holdout (``train_and_register`` records ``champion_metrics`` with
    ``parent_version``), which is the like-for-like comparison the workflow makes. Otherwise they are
    the champion's registered metrics, measured on *its* holdout, and every regression message says so.
    """
    if champion_version is None:
        return evaluate_gate(metrics, None, gate), None
    lineage_metrics = lineage.get("champion_metrics")
    if lineage.get("parent_version") == champion_version and isinstance(lineage_metrics, Mapping):
        evidence = ChampionEvidence(champion_version, dict(lineage_metrics), same_holdout=True)
    else:
        note = (
            "the champion's registered metrics, measured on its own holdout: this version's lineage "
            "has no score of the champion on this version's holdout"
        )
        evidence = ChampionEvidence(champion_version, dict(champion_metrics or {}), same_holdout=False, note=note)
    result = evaluate_gate(metrics, evidence.metrics or {}, gate, champion_version)
    if not evidence.same_holdout:
        result = GateResult(
            result.passed,
            [
                GateCheck(c.metric, c.kind, c.passed, f"{c.message} [{evidence.note}]", c.value, c.threshold)
                if c.kind == "regression"
                else c
                for c in result.checks
            ],
        )
    return result, evidence


def gate_record(
    result: GateResult, champion: ChampionEvidence | None, *, evaluated_by: str, evaluated_at: str
) -> dict[str, Any]:
    """What is stored on the version (``ModelVersion.gate``) and checked by the registry: the outcome,
    its reasons, and against which champion and on which rows it was decided."""
    return {
        **result.to_dict(),
        "champion_version": champion.version if champion else None,
        "comparison": champion.basis if champion else "no_champion",
        "evaluated_by": evaluated_by,
        "evaluated_at": evaluated_at,
    }
