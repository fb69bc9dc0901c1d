"""Canary (and shadow) judgement: is the challenger at least as healthy as the champion?

Compared per role over the bake window, from the inference captures (and feedback labels when they
exist):

- error rate: rows whose captured prediction is an error record or not a valid prediction; breach when
  the challenger's rate exceeds the champion's by more than ``max_error_rate``;
- latency: p95 of the captured ``latency_ms``; breach when the challenger's p95 is above
  ``max_latency_ratio`` times the champion's *and* above an absolute floor (ratios of microsecond
  latencies are noise, not a regression). Not judged in shadow mode: the shadow runs after the
  champion in the same request, so its captured latency includes the champion's;
- quality, when both sides have at least ``min_labels`` labeled rows: the gate's primary metric (or
  accuracy / RMSE) may not be worse than the champion's by more than the gate's tolerance
  (``max_regression``, or ``max_relative_regression`` of the champion's value).

Too little challenger traffic (fewer than ``min_rows``) with no breach is *inconclusive*, not a
failure: a canary that saw nothing proves nothing either way, so the workflow bakes longer and, if
traffic never comes, ends without promoting or rejecting (the champion keeps serving, the candidate
stays approvable). A breach seen on few rows is still a breach. NumPy only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from driftline.captures_store import label_for
from driftline.retraining.gate import regression_tolerance, tolerance_text
from driftline.serving.labels import Labels

MIN_CANARY_ROWS = 20
LATENCY_FLOOR_MS = 5.0


@dataclass(frozen=True)
class CanaryLimits:
    max_error_rate: float
    max_latency_ratio: float
    max_regression: float | None
    primary_metric: str = "roc_auc"
    max_relative_regression: float | None = None
    min_rows: int = MIN_CANARY_ROWS
    min_labels: int = 100
    latency_floor_ms: float = LATENCY_FLOOR_MS


@dataclass
class RoleSample:
    """What one side (champion, or challenger/shadow) did during the bake."""

    rows: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    truth: list[Any] = field(default_factory=list)
    predicted: list[Any] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    @property
    def error_rate(self) -> float:
        return self.errors / self.rows if self.rows else 0.0

    def p(self, q: float) -> float | None:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else None

    def quality(self, task: str, positive: Any) -> dict[str, float]:
        """Metrics on the labeled rows: accuracy and ROC AUC (binary), or RMSE and MAE (regression)."""
        if not self.truth:
            return {}
        if task == "regression":
            y = np.asarray(self.truth, dtype=float)
            v = np.asarray(self.predicted, dtype=float)
            return {"rmse": float(np.sqrt(np.mean((y - v) ** 2))), "mae": float(np.mean(np.abs(y - v)))}
        out = {"accuracy": float(np.mean([str(t) == str(p) for t, p in zip(self.truth, self.predicted, strict=True)]))}
        if positive is not None and len(self.scores) == len(self.truth):
            auc = roc_auc([str(t) == str(positive) for t in self.truth], self.scores)
            if auc is not None:
                out["roc_auc"] = auc
        return out

    def to_dict(self, task: str, positive: Any) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 6),
            "latency_p50_ms": self.p(50),
            "latency_p95_ms": self.p(95),
            "labeled_rows": len(self.truth),
            "quality": self.quality(task, positive),
        }


def roc_auc(positive: Iterable[bool], scores: Iterable[float]) -> float | None:
    """Mann-Whitney ROC AUC with average ranks for ties; None unless both classes are present."""
    y = np.asarray(list(positive), dtype=bool)
    s = np.asarray(list(scores), dtype=float)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=float)
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _valid_prediction(p: Any, task: str) -> tuple[bool, Any, float | None]:
    """(valid, predicted label or value, score) of one captured prediction."""
    if not isinstance(p, Mapping) or "error" in p:
        return False, None, None
    if task == "regression":
        v = _finite(p.get("value"))
        return v is not None, v, v
    prob = _finite(p.get("probability"))
    ok = "label" in p and prob is not None and 0.0 <= prob <= 1.0
    return ok, p.get("label"), prob if ok else None


def summarize(
    records: Iterable[Mapping[str, Any]], labels: Labels, champion: int, challenger: int, task: str
) -> tuple[RoleSample, RoleSample]:
    """Split capture records into (champion, challenger) samples; challenger rows are role
    ``challenger`` or ``shadow`` of the challenger version. A row is labeled by the first label that
    counts for its caller (:func:`driftline.captures_store.label_for`): nobody else's label moves the
    quality comparison."""
    champ, chall = RoleSample(), RoleSample()
    for rec in records:
        version, role = rec.get("version"), rec.get("role")
        if version == champion and role == "champion":
            side = champ
        elif version == challenger and role in ("challenger", "shadow"):
            side = chall
        else:
            continue
        side.rows += 1
        ok, pred, score = _valid_prediction(rec.get("prediction"), task)
        if "error" in rec or not ok:
            side.errors += 1
            continue
        lat = rec.get("latency_ms")
        if isinstance(lat, (int, float)) and math.isfinite(lat):
            side.latencies_ms.append(float(lat))
        found, truth = label_for(labels, rec)
        if found:
            side.truth.append(truth)
            side.predicted.append(pred)
            side.scores.append(score if score is not None else math.nan)
    return champ, chall


Verdict = Literal["healthy", "breached", "inconclusive"]


@dataclass(frozen=True)
class CanaryDecision:
    healthy: bool
    reasons: list[str]
    notes: list[str]
    champion: dict[str, Any]
    challenger: dict[str, Any]
    inconclusive: bool = False
    """Too little challenger traffic to judge, and nothing breached on what there was."""

    @property
    def verdict(self) -> Verdict:
        return "healthy" if self.healthy else "inconclusive" if self.inconclusive else "breached"

    @property
    def summary(self) -> str:
        if self.healthy:
            return "canary healthy: " + "; ".join(self.notes)
        if self.inconclusive:
            return "canary inconclusive: " + "; ".join(self.reasons)
        return "canary breached: " + "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "verdict": self.verdict,
            "reasons": self.reasons,
            "notes": self.notes,
            "summary": self.summary,
            "champion": self.champion,
            "challenger": self.challenger,
        }


def decide(
    champ: RoleSample, chall: RoleSample, limits: CanaryLimits, *, task: str, mode: str, positive: Any = None
) -> CanaryDecision:
    """Compare the two samples against the limits; every breach is a reason, every pass a note.

    Too few challenger rows is listed first among the reasons; alone it makes the decision
    inconclusive, with any other breach the decision is breached.
    """
    reasons: list[str] = []
    notes: list[str] = []
    too_few = chall.rows < limits.min_rows
    if too_few:
        reasons.append(
            f"insufficient canary traffic: the challenger handled {chall.rows} rows during the "
            f"bake (at least {limits.min_rows} are needed to judge it); the champion keeps "
            f"serving"
        )
    excess = chall.error_rate - champ.error_rate
    line = f"error rate {chall.error_rate:.2%} vs champion {champ.error_rate:.2%} (limit +{limits.max_error_rate:.2%})"
    (reasons if excess > limits.max_error_rate else notes).append(line)
    c95, h95 = chall.p(95), champ.p(95)
    if mode == "shadow":
        notes.append("latency not compared in shadow mode (the shadow runs after the champion)")
    elif c95 is not None and h95 is not None:
        ratio = c95 / h95 if h95 > 0 else math.inf
        breach = ratio > limits.max_latency_ratio and c95 > limits.latency_floor_ms
        line = (
            f"p95 latency {c95:.3f} ms vs champion {h95:.3f} ms (ratio {ratio:.2f}, limit "
            f"{limits.max_latency_ratio:g}x above {limits.latency_floor_ms:g} ms)"
        )
        (reasons if breach else notes).append(line)
    n_c, n_h = len(chall.truth), len(champ.truth)
    if min(n_c, n_h) >= limits.min_labels:
        qc, qh = chall.quality(task, positive), champ.quality(task, positive)
        metric = (
            limits.primary_metric
            if limits.primary_metric in qc and limits.primary_metric in qh
            else ("rmse" if task == "regression" else "accuracy")
        )
        lower_better = metric in ("rmse", "mae")
        worse_by = (qc[metric] - qh[metric]) if lower_better else (qh[metric] - qc[metric])
        tolerance = regression_tolerance(qh[metric], limits.max_regression, limits.max_relative_regression)
        bound = qh[metric] + tolerance if lower_better else qh[metric] - tolerance
        rule = tolerance_text(limits.max_regression, limits.max_relative_regression, bound, not lower_better)
        line = f"{metric} on {n_c} labeled rows {qc[metric]:.4f} vs champion {qh[metric]:.4f} ({rule})"
        (reasons if worse_by > tolerance + 1e-12 else notes).append(line)
    else:
        notes.append(
            f"quality not compared: {n_c} challenger and {n_h} champion rows have feedback labels "
            f"(need {limits.min_labels} each)"
        )
    return CanaryDecision(
        healthy=not reasons,
        reasons=reasons,
        notes=notes,
        champion=champ.to_dict(task, positive),
        challenger=chall.to_dict(task, positive),
        inconclusive=too_few and len(reasons) == 1,
    )
