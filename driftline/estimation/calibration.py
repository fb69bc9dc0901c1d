"""Probability calibration as plain arrays: fitted with scikit-learn at training, applied with numpy.

CBPE is only as good as the probabilities it reads: a model that says 0.8 must be right 80 % of the
time. Tree ensembles rarely are, so the training run fits a monotone map from the model's
probability to the observed frequency on the holdout (isotonic regression, or Platt's sigmoid) and
stores it as a piecewise-linear function (knots ``x`` -> ``y``). The drift Lambda has no
scikit-learn; ``np.interp`` over the knots reproduces the fitted map exactly for isotonic
regression (which is piecewise linear itself) and to within the grid spacing for Platt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["PLATT_GRID_POINTS", "Calibration", "CalibrationMethod", "fit_calibration"]

CalibrationMethod = Literal["isotonic", "platt"]
PLATT_GRID_POINTS = 513
"""Knots of the tabulated sigmoid: dense enough that interpolation error is far below sampling error."""
_EPS = 1e-6


@dataclass(frozen=True)
class Calibration:
    """A monotone piecewise-linear map from raw probability to calibrated probability."""

    x: np.ndarray
    y: np.ndarray
    method: str = "isotonic"

    def __post_init__(self) -> None:
        if self.x.ndim != 1 or self.x.shape != self.y.shape or self.x.size < 1:
            shapes = f"{self.x.shape}/{self.y.shape}"
            raise ValueError(f"calibration knots must be two equal-length 1-D arrays, not {shapes}")
        if not (np.all(np.isfinite(self.x)) and np.all(np.isfinite(self.y))):
            raise ValueError("calibration knots must be finite numbers")
        if np.any(np.diff(self.x) < 0):
            raise ValueError("calibration knots x must be sorted ascending")
        if np.any((self.y < 0) | (self.y > 1)):
            raise ValueError("calibrated probabilities must lie in [0, 1]")

    def apply(self, p: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of ``p`` (NaN stays NaN; outside the fitted range: the end values)."""
        p = np.asarray(p, dtype=np.float64)
        out: np.ndarray = np.interp(p, self.x, self.y)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "x": self.x.tolist(), "y": self.y.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        try:
            return cls(
                x=np.asarray(data["x"], dtype=np.float64),
                y=np.asarray(data["y"], dtype=np.float64),
                method=str(data.get("method", "isotonic")),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"a calibration needs numeric lists 'x' and 'y' ({e})") from None


def fit_calibration(y: np.ndarray, p: np.ndarray, method: CalibrationMethod = "isotonic") -> Calibration:
    """Fit the map from ``p`` (probability of the event) to the frequency of ``y`` (bool) on the holdout.

    Rows with a non-finite probability are left out. Both classes must be present, since a map fitted
    on one class only would call every prediction certain.
    """
    y = np.asarray(y, dtype=bool)
    p = np.asarray(p, dtype=np.float64)
    ok = np.isfinite(p)
    y, p = y[ok], p[ok]
    if y.size == 0 or y.all() or not y.any():
        raise ValueError("calibration needs holdout rows of both outcomes")
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
        iso.fit(p, y.astype(np.float64))
        return Calibration(
            np.asarray(iso.X_thresholds_, dtype=np.float64),
            np.clip(np.asarray(iso.y_thresholds_, dtype=np.float64), 0.0, 1.0),
            "isotonic",
        )
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        logit = np.log(np.clip(p, _EPS, 1 - _EPS) / (1 - np.clip(p, _EPS, 1 - _EPS)))
        lr = LogisticRegression(C=1e6).fit(logit.reshape(-1, 1), y)
        grid = np.linspace(0.0, 1.0, PLATT_GRID_POINTS)
        g = np.clip(grid, _EPS, 1 - _EPS)
        cal = lr.predict_proba(np.log(g / (1 - g)).reshape(-1, 1))[:, 1]
        return Calibration(grid, np.clip(cal, 0.0, 1.0), "platt")
    raise ValueError(f"calibration method must be 'isotonic' or 'platt', not {method!r}")
