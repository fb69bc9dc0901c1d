"""Confidence-based performance estimation (CBPE) for classifiers: quality without labels.

If a model's probabilities are calibrated, the probability ``q`` it gives a row *is* the chance
that the row's label is the positive class. Summing ``q`` over the rows predicted positive gives the
expected number of true positives, summing ``1 - q`` the expected false positives, and so on: the
expected confusion matrix of a window, from which accuracy, precision, recall and F1 follow.
ROC AUC is estimated the way NannyML does it: rank rows by the model's score and build the
expected ROC curve from the cumulative calibrated ``q`` (expected positives) and ``1 - q``
(expected negatives) down the ranking.

This holds under covariate shift (the inputs move, ``P(label | inputs)`` does not); under concept
shift the calibration is wrong and so is the estimate, which is why realized performance from
feedback labels is shown next to it when labels exist.

Confidence band: the realized metric of a window varies even when the calibrated probabilities are
exactly right, because each label is a coin flip with chance ``q``. The band simulates that
variation (labels drawn from ``q``, :data:`BAND_SIMULATIONS` times, the realized metric computed each
time) and is ``estimate ± BAND_SIGMAS * std``, as NannyML's ±3 sampling-error bounds. Above
:data:`BAND_MAX_ROWS` rows the simulation runs on a random subsample and the standard deviation is
scaled by ``sqrt(subsample / rows)`` (it shrinks as one over the square root of the row count).
The calibration map is itself fitted on a finite holdout, so the training run also fits it on
:data:`CALIBRATION_DRAWS` bootstrap resamples of the holdout; the spread of the estimate over those
maps is the calibration's share of the uncertainty, added in quadrature to the sampling share
(measured on the same subsample above :data:`BAND_MAX_ROWS` rows: it does not shrink with rows). A
covariate shift that moves rows into score ranges the holdout barely covered widens the band.
What no band covers: a shift that changes ``P(label | score)`` itself (concept shift, or covariate
shift the model's score does not see), which realized performance from labels catches later.

numpy only: the drift Lambda runs it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from driftline.estimation.calibration import Calibration

__all__ = [
    "BAND_MAX_ROWS",
    "BAND_SIGMAS",
    "BAND_SIMULATIONS",
    "CALIBRATION_DRAWS",
    "CBPE_METRICS",
    "calibrated",
    "estimate_cbpe",
    "expected_metrics",
    "realized_metrics",
]

CBPE_METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1")
BAND_SIGMAS = 3.0
BAND_SIMULATIONS = 200
BAND_MAX_ROWS = 50_000
CALIBRATION_DRAWS = 20


def calibrated(probabilities: np.ndarray, calibrations: Sequence[Calibration]) -> np.ndarray:
    """[N, C] calibrated class probabilities.

    Binary models carry one calibration (of the positive class); multiclass models one per class
    (one-vs-rest), after which each row is renormalized to sum to one.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probabilities must be an [N, C] matrix with C >= 2, not shape {p.shape}")
    if p.shape[1] == 2:
        if len(calibrations) != 1:
            raise ValueError(f"a binary model needs 1 calibration, not {len(calibrations)}")
        q1 = calibrations[0].apply(p[:, 1])
        return np.column_stack([1.0 - q1, q1])
    if len(calibrations) != p.shape[1]:
        raise ValueError(f"a {p.shape[1]}-class model needs {p.shape[1]} calibrations, not {len(calibrations)}")
    q = np.column_stack([cal.apply(p[:, c]) for c, cal in enumerate(calibrations)])
    total = q.sum(axis=1, keepdims=True)
    uniform = np.full_like(q, 1.0 / q.shape[1])
    out: np.ndarray = np.divide(q, total, out=uniform, where=total > 0)
    return out


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


def _classes(n_classes: int) -> list[int]:
    """The classes scored one-vs-rest: the positive class of a binary model, every class otherwise."""
    return [1] if n_classes == 2 else list(range(n_classes))


def _counts_metrics(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, used: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 from per-class counts, macro-averaged over the ``used`` classes."""
    if not used.any():
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    prec = [_ratio(tp[i], tp[i] + fp[i]) for i in np.flatnonzero(used)]
    rec = [_ratio(tp[i], tp[i] + fn[i]) for i in np.flatnonzero(used)]
    f1 = [_ratio(2 * tp[i], 2 * tp[i] + fp[i] + fn[i]) for i in np.flatnonzero(used)]
    return {"precision": float(np.mean(prec)), "recall": float(np.mean(rec)), "f1": float(np.mean(f1))}


def _expected_auc(score: np.ndarray, q: np.ndarray, order: np.ndarray | None = None) -> float:
    """Area under the expected ROC curve (ties in ``score`` form one step, as a diagonal); ``order``
    is the descending ranking of ``score`` when the caller already has it."""
    order = np.argsort(-score, kind="mergesort") if order is None else order
    s, w = score[order], q[order]
    pos, neg = float(w.sum()), float((1.0 - w).sum())
    if pos <= 0 or neg <= 0:
        return float("nan")
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    gpos = np.add.reduceat(w, starts)
    gneg = np.add.reduceat(1.0 - w, starts)
    above = np.concatenate(([0.0], np.cumsum(gpos)[:-1]))
    return float(np.sum(gneg * (above + gpos / 2.0)) / (pos * neg))


def expected_metrics(
    q: np.ndarray, scores: np.ndarray, pred: np.ndarray, orders: Sequence[np.ndarray] | None = None
) -> dict[str, float]:
    """CBPE metrics of one window: ``q`` [N, C] calibrated, ``scores`` [N, C] the model's own
    probabilities (the ranking for ROC AUC), ``pred`` [N] the predicted class indices; ``orders`` the
    rankings of the scored classes, computed once when several calibrations score the same window."""
    n, n_classes = q.shape
    pred = np.asarray(pred, dtype=np.int64)
    out: dict[str, float] = {"accuracy": float(np.mean(q[np.arange(n), pred]))}
    cls = _classes(n_classes)
    tp, fp, fn = np.zeros(len(cls)), np.zeros(len(cls)), np.zeros(len(cls))
    used = np.zeros(len(cls), dtype=bool)
    aucs = []
    for i, c in enumerate(cls):
        is_pred = pred == c
        tp[i] = float(q[is_pred, c].sum())
        fp[i] = float((1.0 - q[is_pred, c]).sum())
        fn[i] = float(q[~is_pred, c].sum())
        used[i] = tp[i] + fp[i] + fn[i] > 0
        aucs.append(_expected_auc(scores[:, c], q[:, c], None if orders is None else orders[i]))
    out.update(_counts_metrics(tp, fp, fn, used))
    finite = [a for a in aucs if np.isfinite(a)]
    out["roc_auc"] = float(np.mean(finite)) if finite else float("nan")
    return out


def _avg_ranks(score: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (the Mann-Whitney form of ROC AUC)."""
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    ends = np.append(starts[1:], s.size)
    ranks = np.empty(s.size)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def _label_metrics(y: np.ndarray, pred: np.ndarray, ranks: Sequence[np.ndarray], n_classes: int) -> dict[str, float]:
    out: dict[str, float] = {"accuracy": float(np.mean(y == pred))}
    cls = _classes(n_classes)
    tp, fp, fn = np.zeros(len(cls)), np.zeros(len(cls)), np.zeros(len(cls))
    used = np.zeros(len(cls), dtype=bool)
    aucs = []
    for i, c in enumerate(cls):
        is_y, is_pred = y == c, pred == c
        tp[i] = float(np.sum(is_y & is_pred))
        fp[i] = float(np.sum(~is_y & is_pred))
        fn[i] = float(np.sum(is_y & ~is_pred))
        used[i] = tp[i] + fp[i] + fn[i] > 0
        n1 = int(is_y.sum())
        n0 = y.size - n1
        if n1 and n0:
            aucs.append((float(ranks[i][is_y].sum()) - n1 * (n1 + 1) / 2.0) / (n1 * n0))
    out.update(_counts_metrics(tp, fp, fn, used))
    out["roc_auc"] = float(np.mean(aucs)) if aucs else float("nan")
    return out


def realized_metrics(y: np.ndarray, scores: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The same metrics from true labels ``y`` (class indices), defined as :func:`expected_metrics`
    defines their expectations (binary: of the positive class; multiclass: macro one-vs-rest)."""
    y = np.asarray(y, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    ranks = [_avg_ranks(scores[:, c]) for c in _classes(scores.shape[1])]
    return _label_metrics(y, np.asarray(pred, dtype=np.int64), ranks, scores.shape[1])


def _draw_labels(q: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if q.shape[1] == 2:
        return (rng.random(q.shape[0]) < q[:, 1]).astype(np.int64)
    u = rng.random((q.shape[0], 1))
    drawn: np.ndarray = np.minimum((np.cumsum(q, axis=1) < u).sum(axis=1), q.shape[1] - 1)
    return drawn


def sampling_std(
    q: np.ndarray, scores: np.ndarray, pred: np.ndarray, *, seed: int = 0, simulations: int = BAND_SIMULATIONS
) -> dict[str, float]:
    """Standard deviation of each realized metric when labels are drawn from ``q`` (see the module)."""
    n = q.shape[0]
    rng = np.random.default_rng(seed)
    scale = 1.0
    if n > BAND_MAX_ROWS:
        idx = rng.choice(n, BAND_MAX_ROWS, replace=False)
        q, scores, pred = q[idx], scores[idx], pred[idx]
        scale = float(np.sqrt(BAND_MAX_ROWS / n))
    ranks = [_avg_ranks(scores[:, c]) for c in _classes(q.shape[1])]
    runs: dict[str, list[float]] = {m: [] for m in CBPE_METRICS}
    for _ in range(simulations):
        got = _label_metrics(_draw_labels(q, rng), pred, ranks, q.shape[1])
        for m in CBPE_METRICS:
            if np.isfinite(got[m]):
                runs[m].append(got[m])
    return {m: float(np.std(v)) * scale if len(v) > 1 else float("nan") for m, v in runs.items()}


def estimate_cbpe(
    probabilities: np.ndarray,
    pred: np.ndarray,
    calibrations: Sequence[Calibration],
    *,
    draws: Sequence[Sequence[Calibration]] = (),
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """``metric -> (estimate, standard deviation)`` for one window of served probabilities and labels.

    ``draws`` are the bootstrap calibrations (see the module); without them the standard deviation
    is the sampling share only.
    """
    scores = np.asarray(probabilities, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.int64)
    q = calibrated(scores, calibrations)
    est = expected_metrics(q, scores, pred)
    std = sampling_std(q, scores, pred, seed=seed)
    if len(draws) > 1:  # the calibration share does not shrink with rows: a subsample measures it as well
        if scores.shape[0] > BAND_MAX_ROWS:
            idx = np.random.default_rng(seed + 1).choice(scores.shape[0], BAND_MAX_ROWS, replace=False)
            scores, pred = scores[idx], pred[idx]
        orders = [np.argsort(-scores[:, c], kind="mergesort") for c in _classes(scores.shape[1])]
        runs = [expected_metrics(calibrated(scores, d), scores, pred, orders) for d in draws]
        for m in CBPE_METRICS:
            spread = float(np.nanstd([r[m] for r in runs]))
            std[m] = float(np.hypot(std[m], spread)) if np.isfinite(spread) else std[m]
    return {m: (est[m], std[m]) for m in CBPE_METRICS}
