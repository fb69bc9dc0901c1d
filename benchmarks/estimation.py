"""Estimated performance (CBPE, DLE) throughput, memory and accuracy: driftline vs NannyML.

    .venv/bin/python benchmarks/estimation.py                      # 100k and 1M window rows
    .venv/bin/python benchmarks/estimation.py --quick              # 100k only
    .venv/bin/python benchmarks/estimation.py --nannyml-python /tmp/venv/bin/python --json out.json

Data: a binary task whose true ``P(y | x)`` is known (5 inputs, a logistic model with an
interaction), so labels can be drawn and the estimate compared with the realized value. The "model"
is the true score made overconfident (logit times 1.6, plus 0.3), so calibration has work to do. The
reference (the training holdout) has 20,000 labelled rows; the window has ``rows`` rows whose inputs
moved (mean of ``x0`` +0.5, ``x1`` 30 % wider): a covariate shift, ``P(y | x)`` unchanged.

Every method runs in its own subprocess built from the same seed, reporting its timings and peak
RSS (``ru_maxrss``); timings are the best of ``--repeat`` runs.

- driftline: ``fit_classifier_estimator`` on the reference (``fit_s``, what training pays, with the
  bootstrap calibrations of the band) and ``estimate_cbpe`` on the window (``estimate_s``, what every
  scheduled check pays, bands included).
- nannyml: ``nml.CBPE`` (binary, metrics roc_auc/accuracy/f1, one chunk holding the whole window)
  fitted on the reference and estimating the window. NannyML is not a project dependency: pass
  ``--nannyml-python`` pointing at a separate venv where ``pip install nannyml`` ran; without it the
  comparison is skipped.

DLE (regression): ``y = 2 x0 + x1 + 0.5 x2 x3 + noise``, the noise growing with ``|x0|``; the "model"
predicts ``2 x0 + x1`` (it misses the interaction). 20,000 labelled reference rows; the window's ``x0``
moves by +1 (into the noisier region). driftline: ``fit_regressor_estimator`` (two ONNX loss models)
and ``estimate_dle``; NannyML: ``nml.DLE`` (LightGBM loss model, metrics mae/rmse, one chunk).

Accuracy columns: ``<metric>_err`` = estimate - realized, ``<metric>_in_band`` = realized inside
the method's band (driftline: ±3 sd; NannyML: its lower/upper confidence boundaries).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json

REFERENCE_ROWS = 20_000
METRICS = ("roc_auc", "accuracy", "f1")


def make_data(rows: int, seed: int, shifted: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(model probability of class 1, predicted label, true label) for ``rows`` rows."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 5))
    if shifted:
        X[:, 0] += 0.5
        X[:, 1] *= 1.3
    logit = 1.2 * X[:, 0] - X[:, 1] + 0.5 * X[:, 2] * X[:, 3] + 0.3 * X[:, 4]
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    p = 1 / (1 + np.exp(-(1.6 * logit + 0.3)))
    return p, (p >= 0.5).astype(np.int64), y


def realized(p: np.ndarray, pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from driftline.estimation import realized_metrics

    got = realized_metrics(y, np.column_stack([1 - p, p]), pred)
    return {m: got[m] for m in METRICS}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_driftline(rows: int, repeat: int) -> dict[str, Any]:
    from driftline.estimation import estimate_cbpe, fit_classifier_estimator

    p_ref, pred_ref, y_ref = make_data(REFERENCE_ROWS, 1, False)
    p, pred, y = make_data(rows, 2, True)
    fit_s, est_s = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        est = fit_classifier_estimator(y_ref, np.column_stack([1 - p_ref, p_ref]), pred_ref, [0, 1])
        fit_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        found = estimate_cbpe(np.column_stack([1 - p, p]), pred, est.calibrations, draws=est.calibration_draws)
        est_s.append(time.perf_counter() - t)
    return _scored(fit_s, est_s, found, realized(p, pred, y), METRICS)


def _scored(fit_s: list[float], est_s: list[float], found: Any, truth: Any, metrics: Any) -> dict[str, Any]:
    """The fastest fit and estimate, peak RSS, and per metric the estimate, the realized value, the error
    and whether the realized value lies in the estimate's band."""
    from driftline.estimation import BAND_SIGMAS

    out: dict[str, Any] = {"fit_s": min(fit_s), "estimate_s": min(est_s), "peak_rss_mb": peak_rss_mb()}
    for m in metrics:
        value, sd = found[m]
        out[f"{m}_est"], out[f"{m}_real"], out[f"{m}_err"] = value, truth[m], value - truth[m]
        out[f"{m}_in_band"] = abs(value - truth[m]) <= BAND_SIGMAS * sd
    return out


def run_nannyml(rows: int, repeat: int) -> dict[str, Any]:
    import warnings

    warnings.simplefilter("ignore")
    import nannyml as nml
    import pandas as pd

    p_ref, pred_ref, y_ref = make_data(REFERENCE_ROWS, 1, False)
    p, pred, y = make_data(rows, 2, True)
    ref = pd.DataFrame({"proba": p_ref, "pred": pred_ref, "y": y_ref})
    cur = pd.DataFrame({"proba": p, "pred": pred})
    fit_s, est_s = [], []
    for _ in range(repeat):
        cbpe = nml.CBPE(
            y_pred_proba="proba",
            y_pred="pred",
            y_true="y",
            problem_type="classification_binary",
            metrics=list(METRICS),
            chunk_number=1,
        )
        t = time.perf_counter()
        cbpe.fit(ref)
        fit_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        res = cbpe.estimate(cur).filter(period="analysis").to_df()
        est_s.append(time.perf_counter() - t)
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score  # driftline is not in NannyML's venv

    truth = {"roc_auc": roc_auc_score(y, p), "accuracy": accuracy_score(y, pred), "f1": f1_score(y, pred)}
    out: dict[str, Any] = {
        "fit_s": min(fit_s),
        "estimate_s": min(est_s),
        "peak_rss_mb": peak_rss_mb(),
        "nannyml_version": str(nml.__version__),
    }
    for m in METRICS:
        value = float(res[(m, "value")].iloc[0])
        lo, hi = (
            float(res[(m, "lower_confidence_boundary")].iloc[0]),
            float(res[(m, "upper_confidence_boundary")].iloc[0]),
        )
        out[f"{m}_est"], out[f"{m}_real"], out[f"{m}_err"] = value, truth[m], value - truth[m]
        out[f"{m}_in_band"] = lo <= truth[m] <= hi
    return out


DLE_METRICS = ("mae", "rmse")
FEATURES = [f"x{i}" for i in range(5)]


def make_regression(rows: int, seed: int, shifted: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features [N, 5] float32, the model's prediction, the true value)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 5))
    if shifted:
        X[:, 0] += 1.0
    y = 2 * X[:, 0] + X[:, 1] + 0.5 * X[:, 2] * X[:, 3] + rng.normal(size=rows) * (0.2 + 0.8 * np.abs(X[:, 0]))
    return X.astype(np.float32), 2 * X[:, 0] + X[:, 1], y


def _regression_truth(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    err = y - pred
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2)))}


def run_driftline_dle(rows: int, repeat: int) -> dict[str, Any]:
    from driftline.estimation import LossModels, estimate_dle, fit_regressor_estimator

    X_ref, pred_ref, y_ref = make_regression(REFERENCE_ROWS, 1, False)
    X, pred, y = make_regression(rows, 2, True)
    fit_s, est_s = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        est = fit_regressor_estimator(X_ref, pred_ref, y_ref)
        fit_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        found = estimate_dle(LossModels.load(est.loss_models), X, pred)
        est_s.append(time.perf_counter() - t)
    return _scored(fit_s, est_s, found, _regression_truth(pred, y), DLE_METRICS)


def run_nannyml_dle(rows: int, repeat: int) -> dict[str, Any]:
    import warnings

    warnings.simplefilter("ignore")
    import nannyml as nml
    import pandas as pd

    X_ref, pred_ref, y_ref = make_regression(REFERENCE_ROWS, 1, False)
    X, pred, y = make_regression(rows, 2, True)
    ref = pd.DataFrame(X_ref, columns=FEATURES).assign(pred=pred_ref, y=y_ref)
    cur = pd.DataFrame(X, columns=FEATURES).assign(pred=pred)
    fit_s, est_s = [], []
    for _ in range(repeat):
        dle = nml.DLE(
            feature_column_names=FEATURES, y_pred="pred", y_true="y", metrics=list(DLE_METRICS), chunk_number=1
        )
        t = time.perf_counter()
        dle.fit(ref)
        fit_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        res = dle.estimate(cur).filter(period="analysis").to_df()
        est_s.append(time.perf_counter() - t)
    truth = _regression_truth(pred, y)
    out: dict[str, Any] = {"fit_s": min(fit_s), "estimate_s": min(est_s), "peak_rss_mb": peak_rss_mb()}
    for m in DLE_METRICS:
        value = float(res[(m, "value")].iloc[0])
        lo, hi = (
            float(res[(m, "lower_confidence_boundary")].iloc[0]),
            float(res[(m, "upper_confidence_boundary")].iloc[0]),
        )
        out[f"{m}_est"], out[f"{m}_real"], out[f"{m}_err"] = value, truth[m], value - truth[m]
        out[f"{m}_in_band"] = lo <= truth[m] <= hi
    return out


WORKERS = {
    "driftline": run_driftline,
    "nannyml": run_nannyml,
    "driftline-dle": run_driftline_dle,
    "nannyml-dle": run_nannyml_dle,
}


def worker(method: str, rows: int, repeat: int) -> None:
    print(json.dumps(WORKERS[method](rows, repeat)))


def spawn(method: str, rows: int, repeat: int, python: str) -> dict[str, Any]:
    cmd = [python, __file__, "--worker", method, "--rows", str(rows), "--repeat", str(repeat)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{method} at {rows:,} rows failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="100k window rows only")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", help="write flat results to this file")
    ap.add_argument("--nannyml-python", help="interpreter of a separate venv with nannyml")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, default=100_000, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.rows, args.repeat)
        return
    flat: dict[str, Any] = {}
    for kind, metrics in (("", METRICS), ("-dle", DLE_METRICS)):
        table = []
        for rows in (100_000,) if args.quick else (100_000, 1_000_000):
            runs = {f"driftline{kind}": spawn(f"driftline{kind}", rows, args.repeat, sys.executable)}
            if args.nannyml_python:
                runs[f"nannyml{kind}"] = spawn(f"nannyml{kind}", rows, args.repeat, args.nannyml_python)
            for method, r in runs.items():
                table.append({"method": method, "rows": rows, **{k: v for k, v in r.items() if k != "nannyml_version"}})
                for k, v in r.items():
                    flat[f"{rows // 1000}k_{method}_{k}" if k != "nannyml_version" else k] = v
        cols = ["method", "rows", "fit_s", "estimate_s", "peak_rss_mb"]
        cols += [f"{m}_{s}" for m in metrics for s in ("est", "real", "err", "in_band")]
        what = "DLE" if kind else "CBPE"
        print_table(table, cols, title=f"{what}: fit on 20k labelled reference rows, estimate a shifted window")
    write_json(args.json, flat)


if __name__ == "__main__":
    main()
