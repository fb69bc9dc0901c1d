"""Direct loss estimation (DLE) for regressors: MAE and RMSE without labels.

A regressor's errors are not random everywhere: some regions of the input space (and some
predicted values) are harder than others. DLE learns that map at training time on the holdout,
where the errors are known: one model from (features, prediction) to the absolute error and one
to the squared error. A window's estimated MAE is the mean predicted absolute error of its rows,
its estimated RMSE the square root of the mean predicted squared error. When traffic moves into
harder regions (covariate shift) the estimate rises before any label arrives.

The loss models are gradient-boosted trees exported to ONNX (the format the serving side already
runs), so the drift Lambda needs onnxruntime and numpy only, never pickle or scikit-learn.

Band: the window's realized MAE varies around the estimate because each row's error is random
given its inputs. With ``m1`` the predicted absolute and ``m2`` the predicted squared error of a
row, the row's absolute error has variance ``m2 - m1²``, so the MAE's standard deviation is
``sqrt(mean(m2 - m1²) / n)``. For the MSE, assuming roughly normal errors (variance of a squared
error ``2 m2²``), ``sqrt(mean(2 m2²) / n)``, mapped to RMSE by the delta method (divide by
``2 RMSE``). The band is ``estimate ± BAND_SIGMAS * std`` (:mod:`driftline.estimation.cbpe`); the
loss models' own error is not in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DLE_METRICS",
    "LOSS_TARGETS",
    "LossModels",
    "dle_from_losses",
    "estimate_dle",
    "expected_losses",
    "fit_loss_models",
    "loss_features",
]

DLE_METRICS = ("mae", "rmse")
LOSS_TARGETS = ("abs_error", "sq_error")
LOSS_MODEL_PARAMS: dict[str, Any] = {"max_iter": 100, "learning_rate": 0.1, "min_samples_leaf": 20}
"""The loss models' HistGradientBoosting settings: scikit-learn's defaults (NannyML uses LightGBM's).
Large leaves (a 50th of the holdout) looked safer for small holdouts but flattened the loss surface's
tails, so a shift into the harder region was underestimated beyond the band (docs/performance.md)."""


def loss_features(X: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """The loss models' input: the model's encoded features plus its prediction as the last column."""
    X = np.asarray(X, dtype=np.float32)
    return np.column_stack([X, np.asarray(prediction, dtype=np.float32).reshape(-1)]).astype(np.float32)


def fit_loss_models(
    X: np.ndarray, prediction: np.ndarray, y: np.ndarray, *, seed: int = 0, threads: int | None = 1
) -> dict[str, bytes]:
    """ONNX bytes of the absolute- and squared-error models, fitted on the holdout (training side)."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from threadpoolctl import threadpool_limits

    from driftline.training.onnx_export import to_onnx

    Z = loss_features(X, prediction)
    err = np.asarray(y, dtype=np.float64) - np.asarray(prediction, dtype=np.float64)
    targets = {"abs_error": np.abs(err), "sq_error": err**2}
    out: dict[str, bytes] = {}
    for name, target in targets.items():
        reg = HistGradientBoostingRegressor(**LOSS_MODEL_PARAMS, early_stopping=False, random_state=seed)
        pipe = Pipeline([("loss", reg)])
        with threadpool_limits(limits=threads):
            pipe.fit(Z, target)
        out[name] = to_onnx(pipe, Z.shape[1], classifier=False, name=f"driftline_dle_{name}")
    return out


@dataclass
class LossModels:
    """The two loss models as ONNX Runtime sessions (one thread: the drift Lambda has little CPU)."""

    sessions: dict[str, Any]

    @classmethod
    def load(cls, models: dict[str, bytes]) -> LossModels:
        import onnxruntime as ort

        missing = [t for t in LOSS_TARGETS if t not in models]
        if missing:
            raise ValueError(f"the estimator lacks loss model(s) {missing}")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        sessions = {}
        for name in LOSS_TARGETS:
            try:
                sessions[name] = ort.InferenceSession(
                    models[name], sess_options=opts, providers=["CPUExecutionProvider"]
                )
            except Exception as e:  # onnxruntime's own InvalidGraph/Fail types
                raise ValueError(f"loss model {name!r} cannot be loaded by onnxruntime ({type(e).__name__})") from None
        return cls(sessions)

    def predict(self, name: str, Z: np.ndarray) -> np.ndarray:
        sess = self.sessions[name]
        width = sess.get_inputs()[0].shape[1]
        if isinstance(width, int) and Z.shape[1] != width:
            raise ValueError(f"loss model {name!r} expects {width} inputs, the window gives {Z.shape[1]}")
        res = sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(Z, dtype=np.float32)})
        return np.clip(np.asarray(res[0], dtype=np.float64).reshape(-1), 0.0, None)


def expected_losses(models: LossModels, X: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's predicted absolute and squared error (``m1``, ``m2``). A row's values depend on that row
    only, so shards of a window can compute them apart and the reduce step gets the window's values."""
    Z = loss_features(X, prediction)
    m1 = models.predict("abs_error", Z)
    m2 = np.maximum(models.predict("sq_error", Z), m1**2)  # E[e²] >= E[|e|]² for any distribution
    return m1, m2


def dle_from_losses(m1: np.ndarray, m2: np.ndarray) -> dict[str, tuple[float, float]]:
    """``metric -> (estimate, standard deviation)`` of MAE and RMSE from the rows' expected losses."""
    n = m1.shape[0]
    mae = float(m1.mean())
    mse = float(m2.mean())
    rmse = float(np.sqrt(mse))
    sd_mae = float(np.sqrt(np.mean(m2 - m1**2) / n))
    sd_mse = float(np.sqrt(np.mean(2.0 * m2**2) / n))
    sd_rmse = sd_mse / (2.0 * rmse) if rmse > 0 else 0.0
    return {"mae": (mae, sd_mae), "rmse": (rmse, sd_rmse)}


def estimate_dle(models: LossModels, X: np.ndarray, prediction: np.ndarray) -> dict[str, tuple[float, float]]:
    """``metric -> (estimate, standard deviation)`` of MAE and RMSE for one window's rows."""
    return dle_from_losses(*expected_losses(models, X, prediction))
