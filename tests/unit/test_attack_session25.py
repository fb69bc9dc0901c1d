"""Damaged artifacts the scheduled check loads: each is refused with the check's own format error
(which the check reports and goes on from), never an uncaught exception or a silently wrong verdict.

Found by attacking this session's loaders: an ``estimator.json`` with a list where an object belongs
raised ``AttributeError`` and one with ``rows: 1e400`` raised ``OverflowError`` past
:func:`~driftline.estimation.monitor.load_estimator` (losing the window's drift verdict); a multivariate
model with NaN numbers loaded and made every window's error NaN, which never alarms; a ``cdk.json``
that is a JSON list or null raised ``AttributeError`` from :func:`driftline.config.load`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driftline.config import ConfigError, load
from driftline.drift.errors import ProfileFormatError
from driftline.drift.multivariate import MultivariateModel, fit_multivariate
from driftline.estimation.artifact import ESTIMATOR_FORMAT, EstimatorFormatError, FittedEstimator

ESTIMATOR = {"format": ESTIMATOR_FORMAT, "kind": "unavailable", "task": "classification"}


@pytest.mark.parametrize(
    "over",
    [
        {"reference": [1]},
        {"reference": {"metrics": [1]}},
        {"loss_models": ["AAAA"]},
        {"reference": {"rows": 1e400}},
        {"version": 1e400},
    ],
)
def test_a_damaged_estimator_is_a_format_error(over: dict[str, Any]) -> None:
    with pytest.raises(EstimatorFormatError, match="is malformed"):
        FittedEstimator.from_json(json.dumps({**ESTIMATOR, **over}))


def _model_doc() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    data = {"a": rng.normal(size=400), "b": rng.normal(size=400), "c": rng.normal(size=400)}
    model = fit_multivariate(data, ["a", "b", "c"], [], {}, sample_rows=20)
    assert isinstance(model, MultivariateModel)
    return model.to_dict()


def test_an_intact_multivariate_model_round_trips() -> None:
    doc = _model_doc()
    assert MultivariateModel.from_dict(json.loads(json.dumps(doc))).to_dict() == doc


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("means", [float("nan")] * 3),
        ("components", None),
        ("error_mean", float("inf")),
        ("chunk_std", float("nan")),
        ("chunk_rows", 1e400),
        ("n_reference", float("inf")),
    ],
)
def test_a_multivariate_model_with_nan_or_inf_is_refused(field: str, value: Any) -> None:
    doc = _model_doc()
    if value is None:  # the same shape, one NaN
        value = np.asarray(doc[field], dtype=np.float64)
        value.flat[0] = np.nan
        value = value.tolist()
    doc[field] = value
    with pytest.raises(ProfileFormatError, match="damaged multivariate model"):
        MultivariateModel.from_dict(json.loads(json.dumps(doc)))


@pytest.mark.parametrize("body", ["[]", '"x"', "null", "3"])
def test_a_cdk_json_that_is_not_an_object_is_a_config_error(tmp_path: Path, body: str) -> None:
    """``driftline`` commands load cdk.json first: a JSON list or null raised AttributeError."""
    path = tmp_path / "cdk.json"
    path.write_text(body)
    with pytest.raises(ConfigError, match="'context' must be an object"):
        load(path)
