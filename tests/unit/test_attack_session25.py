"""Damaged artifacts the scheduled check loads: each is refused with the check's own format error
(which the check reports and goes on from), never an uncaught exception or a silently wrong verdict.

Found by attacking this session's loaders: an ``estimator.json`` with a list where an object belongs
raised ``AttributeError`` and one with ``rows: 1e400`` raised ``OverflowError`` past
:func:`~driftline.estimation.monitor.load_estimator` (losing the window's drift verdict); a multivariate
model with NaN numbers loaded and made every window's error NaN, which never alarms; a ``cdk.json``
that is a JSON list or null raised ``AttributeError`` from :func:`driftline.config.load`; an
``X-Driftline-Test`` header sent as ``1`` then ``0`` was read as its last value only; a drift profile
or data-quality counts with a list for an object or 1e400 for an int raised past their format errors,
and negative quality counts loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driftline.config import ConfigError, load
from driftline.contracts import TEST_TRAFFIC_HEADER
from driftline.drift.errors import DriftInputError, ProfileFormatError
from driftline.drift.multivariate import MultivariateModel, fit_multivariate
from driftline.drift.profile import FORMAT as PROFILE_FORMAT
from driftline.drift.profile import Profile
from driftline.drift.quality import FORMAT as QUALITY_FORMAT
from driftline.drift.quality import QualityCounts
from driftline.estimation.artifact import ESTIMATOR_FORMAT, EstimatorFormatError, FittedEstimator
from driftline.serving.errors import ServingError
from driftline.serving.proxy import ProxyRequest
from driftline.serving.service import is_test_traffic

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


def _proxy_event(multi: dict[str, Any]) -> dict[str, Any]:
    last = {k: v[-1] for k, v in multi.items() if isinstance(v, list) and v}
    return {"httpMethod": "POST", "path": "/v1/models/m/predict", "headers": last, "multiValueHeaders": multi}


def test_a_test_header_sent_twice_with_different_values_is_a_400() -> None:
    """API Gateway keeps only the last value in ``headers``: ``1`` then ``0`` read as not test traffic."""
    req = ProxyRequest.from_event(_proxy_event({"X-Driftline-Test": ["1", "0"]}))
    assert req is not None
    with pytest.raises(ServingError) as e:
        is_test_traffic(req.headers.get(TEST_TRAFFIC_HEADER.lower()))
    assert e.value.status == 400 and e.value.code == "invalid_test_header"
    assert "'1, 0'" in e.value.message


@pytest.mark.parametrize(
    ("multi", "marked"),
    [
        ({"X-Driftline-Test": ["1", "1"]}, True),
        ({"x-driftline-test": ["TRUE"]}, True),
        ({"X-Driftline-Test": ["0"], "Other": ["a", "b"]}, False),
        ({"X-Driftline-Test": "1"}, True),  # not a list: headers alone decide
        ({"X-Driftline-Test": [1, "1"]}, True),  # non-strings are left out
    ],
)
def test_a_repeated_or_odd_multi_value_test_header_reads_as_documented(multi: dict[str, Any], marked: bool) -> None:
    event = (
        _proxy_event(multi)
        if all(isinstance(v, list) for v in multi.values())
        else {
            "httpMethod": "GET",
            "path": "/",
            "headers": {"X-Driftline-Test": "1"},
            "multiValueHeaders": multi,
        }
    )
    req = ProxyRequest.from_event(event)
    assert req is not None
    assert is_test_traffic(req.headers.get(TEST_TRAFFIC_HEADER.lower())) is marked


PROFILE = {
    "format": PROFILE_FORMAT,
    "columns": {},
    "n_rows": 1,
    "sample_size": 1,
    "n_bins": 1,
    "created_at": "x",
    "id": "i",
}


@pytest.mark.parametrize("over", [{"columns": [1]}, {"n_rows": 1e400}, {"sample_size": 1e400}])
def test_a_damaged_profile_is_a_profile_format_error(over: dict[str, Any]) -> None:
    """A list where the columns object belongs raised AttributeError, an int of 1e400 OverflowError."""
    with pytest.raises(ProfileFormatError, match="damaged drift profile"):
        Profile.from_json(json.dumps({**PROFILE, **over}))


@pytest.mark.parametrize(
    "doc",
    [
        {"n_rows": 1e400, "columns": {}},
        {"n_rows": -5, "columns": {}},
        {"n_rows": 5, "columns": {"a": {"kind": "numerical", "n": -1, "n_missing": 6}}},
        {"n_rows": 5, "columns": {"a": {"kind": "categorical", "n": 5, "n_missing": 0, "n_unseen": -2}}},
    ],
)
def test_damaged_quality_counts_are_a_drift_input_error(doc: dict[str, Any]) -> None:
    with pytest.raises(DriftInputError, match="damaged data-quality counts"):
        QualityCounts.from_dict({"format": QUALITY_FORMAT, "profile_id": "p", **doc})


def test_intact_quality_counts_load() -> None:
    doc = {"n_rows": 5, "columns": {"a": {"kind": "numerical", "n": 4, "n_missing": 1, "n_out_of_range": 0}}}
    counts = QualityCounts.from_dict({"format": QUALITY_FORMAT, "profile_id": "p", **doc})
    assert counts.n_rows == 5 and counts.columns["a"].n_missing == 1


def test_a_test_header_sent_under_two_letter_cases_with_different_values_is_a_400() -> None:
    event = {"httpMethod": "GET", "path": "/", "headers": {"X-Driftline-Test": "1", "x-driftline-test": "0"}}
    req = ProxyRequest.from_event(event)
    assert req is not None
    with pytest.raises(ServingError) as e:
        is_test_traffic(req.headers.get(TEST_TRAFFIC_HEADER.lower()))
    assert e.value.status == 400
