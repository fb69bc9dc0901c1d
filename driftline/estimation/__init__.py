"""Estimated performance without labels: CBPE for classifiers, DLE for regressors (issue 21 item 1).

Labels arrive late or never, so a model can degrade for weeks before realized metrics show it. The
training run fits an estimator on the holdout (:mod:`~driftline.estimation.artifact`), stored with
the version; the scheduled check estimates each window's performance from its captured outputs
(:mod:`~driftline.estimation.estimate`) and alarms on it like on drift. The window side is numpy and
onnxruntime only (the drift Lambda); fitting imports scikit-learn lazily.
"""

from driftline.estimation.artifact import (
    ESTIMATOR_FORMAT,
    MIN_CALIBRATION_ROWS,
    EstimatorFormatError,
    FittedEstimator,
    fit_classifier_estimator,
    fit_regressor_estimator,
    unavailable,
)
from driftline.estimation.calibration import Calibration, fit_calibration
from driftline.estimation.cbpe import (
    BAND_SIGMAS,
    CBPE_METRICS,
    calibrated,
    estimate_cbpe,
    expected_metrics,
    realized_metrics,
)
from driftline.estimation.dle import DLE_METRICS, LossModels, estimate_dle, fit_loss_models
from driftline.estimation.estimate import ESTIMATED_METRICS, EstimateResult, default_metric, estimate_window

__all__ = [
    "BAND_SIGMAS",
    "CBPE_METRICS",
    "DLE_METRICS",
    "ESTIMATED_METRICS",
    "ESTIMATOR_FORMAT",
    "MIN_CALIBRATION_ROWS",
    "Calibration",
    "EstimateResult",
    "EstimatorFormatError",
    "FittedEstimator",
    "LossModels",
    "calibrated",
    "default_metric",
    "estimate_cbpe",
    "estimate_dle",
    "estimate_window",
    "expected_metrics",
    "fit_calibration",
    "fit_classifier_estimator",
    "fit_loss_models",
    "fit_regressor_estimator",
    "realized_metrics",
    "unavailable",
]
