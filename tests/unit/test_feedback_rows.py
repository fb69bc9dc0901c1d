"""The feedback join: which captured rows become training rows, and what is counted instead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from driftline.config import ModelConfig
from driftline.features.schema import FeatureSet, parse_feature_set
from driftline.serving.labels import Labels
from driftline.training.dataset import WEIGHT_COLUMN, prepare
from driftline.training.feedback_rows import combine, feedback_rows, label_problem, table_schema
from driftline.training.weights import fit_weight_kwargs

T0 = datetime(2026, 11, 1, tzinfo=UTC)
ROLE = "arn:aws:iam::123456789012:role/client"
LABELER = "arn:aws:iam::123456789012:role/labeling"


def _fs(task: str = "binary_classification") -> FeatureSet:
    label: dict[str, Any] = {"name": "y", "task": task}
    if task != "regression":
        label["classes"] = [0, 1]
    return parse_feature_set(
        {
            "name": "fb",
            "version": 1,
            "entity": ["id"],
            "timestamp": "ts",
            "features": [
                {"name": "x", "type": "float"},
                {"name": "c", "type": "categorical", "categories": ["a", "b"]},
            ],
            "labels": [label],
        }
    )


def _cap(rid: str, i: int, *, caller: str | None = ROLE, test: bool = False, **feats: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "request_id": rid,
        "ts": (T0 + timedelta(minutes=i)).isoformat(),
        "version": 1,
        "features": {"x": float(i), "c": "a" if i % 2 else "b", **feats},
    }
    if caller:
        rec["caller"] = caller
    if test:
        rec["test"] = True
    return rec


def _labels(*items: tuple[str, Any, str | None, int], labelers: tuple[str, ...] = ()) -> Labels:
    labels = Labels(labelers)
    for rid, value, by, minute in items:
        rec: dict[str, Any] = {
            "request_id": rid,
            "label": value,
            "ts": (T0 + timedelta(hours=1, minutes=minute)).isoformat(),
        }
        if by:
            rec["by"] = by
        labels.add(rec)
    return labels


def test_join_binds_labels_first_wins_and_counts_the_rest() -> None:
    caps = [
        _cap("r1:0", 1),
        _cap("r2:0", 2),
        _cap("r3:0", 3),  # labelled by someone else only: not counted
        _cap("r4:0", 4, test=True),  # test traffic
        _cap("r5:0", 5),  # wrong type
        _cap("r6:0", 6),  # no label at all
        _cap("r1:0", 1),  # a shadow's answer to the same row: one row
    ]
    labels = _labels(
        ("r1:0", 1, ROLE, 2),
        ("r1:0", 0, ROLE, 1),  # stored first: wins
        ("r2:0", 0, LABELER, 0),  # a labeler counts for any caller
        ("r3:0", 1, "arn:aws:iam::123456789012:role/other", 0),
        ("r4:0", 1, ROLE, 0),
        ("r5:0", "yes", ROLE, 0),
        ("ghost:0", 1, ROLE, 0),
        labelers=(LABELER,),
    )
    table, stats = feedback_rows(_fs(), caps, labels, weight=2.5)
    assert table.column("y").to_pylist() == [0, 0]
    assert table.column("x").to_pylist() == [1.0, 2.0]
    assert table.column(WEIGHT_COLUMN).to_pylist() == [2.5, 2.5]
    assert table.column("id").null_count == 2  # the request carried no entity
    assert table.schema == table_schema(_fs())
    got = stats.to_dict()
    assert {k: got[k] for k in ("labels_read", "used", "not_counted", "test_traffic_skipped", "wrong_type")} == {
        "labels_read": 6,
        "used": 2,
        "not_counted": 1,
        "test_traffic_skipped": 1,
        "wrong_type": 1,
    }
    assert (stats.unknown_request_ids, stats.captures_read) == (1, 6)


def test_unauthenticated_labels_count_only_for_unauthenticated_captures() -> None:
    caps = [_cap("a:0", 1, caller=None), _cap("b:0", 2)]
    table, stats = feedback_rows(_fs(), caps, _labels(("a:0", 1, None, 0), ("b:0", 1, None, 0)), weight=1.0)
    assert table.num_rows == 1 and stats.not_counted == 1


@pytest.mark.parametrize(
    ("task", "value", "ok"),
    [
        ("binary_classification", 1, True),
        ("binary_classification", 1.0, False),
        ("binary_classification", "1", False),
        ("binary_classification", 2, False),
        ("binary_classification", True, False),
        ("binary_classification", None, False),
        ("regression", 3.5, True),
        ("regression", 3, True),
        ("regression", "3.5", False),
        ("regression", float("nan"), False),
        ("regression", False, False),
        ("regression", [1], False),
    ],
)
def test_label_types(task: str, value: Any, ok: bool) -> None:
    fs = _fs(task)
    assert fs.label is not None
    assert (label_problem(value, fs.label) is None) is ok


def test_regression_rows_and_bad_feature_values() -> None:
    caps = [_cap("a:0", 1), _cap("b:0", 2, x="not a number"), _cap("c:0", 3)]
    caps[2]["features"] = "no object"
    labels = _labels(("a:0", 2.5, ROLE, 0), ("b:0", 1, ROLE, 0), ("c:0", 1, ROLE, 0))
    table, stats = feedback_rows(_fs("regression"), caps, labels, weight=1.0)
    assert table.column("y").to_pylist() == [2.5]
    assert stats.malformed_features == 2 and stats.used == 1


def _uploads(fs: FeatureSet, n: int) -> pa.Table:
    schema = table_schema(fs)
    return pa.table(
        {
            "id": [f"e{i}" for i in range(n)],
            "ts": pa.array([T0 - timedelta(days=n - i) for i in range(n)], type=schema.field("ts").type),
            "y": [i % 2 for i in range(n)],
            "x": [float(i) for i in range(n)],
            "c": ["a"] * n,
            "feature_timestamp": pa.array([T0 - timedelta(days=n - i) for i in range(n)], type=schema.field("ts").type),
        }
    )


def test_combine_min_labels_dedup_and_feedback_alone() -> None:
    fs = _fs()
    uploads = _uploads(fs, 4)
    caps = [_cap(f"r{i}:0", i, id=f"e{i}") for i in range(3)]
    caps[0]["ts"] = uploads.column("ts")[0].as_py().isoformat()  # the same event as uploaded row e0
    fb, stats = feedback_rows(fs, caps, _labels(*((f"r{i}:0", 1, ROLE, i) for i in range(3))), weight=3.0)
    assert fb.column("id").to_pylist()[0] == "e0"

    few = combine(uploads, fb, fs, stats, min_labels=4)
    assert few is uploads and stats.used == 0 and stats.skipped and "min_labels (4)" in stats.skipped

    both = combine(uploads, fb, fs, stats, min_labels=3)
    assert both.num_rows == 4 + 2 and stats.duplicates_of_uploads == 1 and stats.used == 2
    assert both.column(WEIGHT_COLUMN).to_pylist() == [1.0] * 4 + [3.0] * 2

    alone = combine(None, fb, fs, stats, min_labels=1)
    assert alone.num_rows == 3


def test_weights_reach_the_fit_and_the_split_record() -> None:
    fs = _fs()
    n = 40
    table = _uploads(fs, n).append_column(WEIGHT_COLUMN, pa.array([1.0] * 30 + [4.0] * 10))
    prepared = prepare(table, fs, min_rows=10, validation_fraction=0.2)
    assert prepared.w_train is not None and prepared.w_train.tolist() == [1.0] * 30 + [4.0] * 2
    assert prepared.split["weighted_rows"] == {"train": 2, "validation": 8}
    from sklearn.neighbors import KNeighborsClassifier

    from driftline.training.estimators import build_pipeline

    pipeline = build_pipeline("logistic_regression", "binary_classification", fs.input_schema(), {})
    kwargs, note = fit_weight_kwargs(pipeline, prepared.w_train)
    assert note == "applied" and list(kwargs) == ["model__sample_weight"]
    assert fit_weight_kwargs(pipeline, np.ones(3)) == ({}, "none")
    assert fit_weight_kwargs(KNeighborsClassifier(), prepared.w_train)[1].startswith("ignored: KNeighborsClassifier")


def test_bad_weight_column_is_refused() -> None:
    from driftline.training.errors import TrainingRejectedError

    fs = _fs()
    table = _uploads(fs, 20).append_column(WEIGHT_COLUMN, pa.array([1.0] * 19 + [-1.0]))
    with pytest.raises(TrainingRejectedError, match="1 null, non-finite or non-positive"):
        prepare(table, fs, min_rows=10, validation_fraction=0.2)


def test_weighted_training_changes_the_model() -> None:
    """Weights reach the estimator: the same rows with feedback rows weighted 50 fit another model."""
    from driftline.training.core import train_model

    fs = _fs()
    rng = np.random.default_rng(0)
    n = 200
    x = rng.normal(size=n)
    y = (x + rng.normal(scale=1.0, size=n) > 0).astype(int)
    base = _uploads(fs, n).set_column(3, "x", pa.array(x)).set_column(2, "y", pa.array(y))
    cfg = ModelConfig(name="m", feature_set="fb", algorithm="logistic_regression")
    flip = np.where(np.arange(n) < 40, 1 - y, y)  # the first rows' labels disagree; weighted, they dominate
    weights = pa.array(np.where(np.arange(n) < 40, 50.0, 1.0))
    plain = train_model(base.set_column(2, "y", pa.array(flip)), fs, cfg, min_rows=10)
    weighted = train_model(
        base.set_column(2, "y", pa.array(flip)).append_column(WEIGHT_COLUMN, weights), fs, cfg, min_rows=10
    )
    assert weighted.split["sample_weight"] == "applied" and "sample_weight" not in plain.split
    assert weighted.metrics != plain.metrics


def test_the_time_split_runs_within_each_source() -> None:
    """Feedback rows are the newest: one split over all rows would hold every one of them out of the fit."""
    from driftline.training.dataset import FEEDBACK_COLUMN, timestamps_us, training_split

    fs = _fs()
    uploads = _uploads(fs, 40)
    caps = [_cap(f"r{i}:0", i) for i in range(10)]
    fb, stats = feedback_rows(fs, caps, _labels(*((f"r{i}:0", i % 2, ROLE, i) for i in range(10))), weight=1.0)
    table = combine(uploads, fb, fs, stats, min_labels=1)
    ts = timestamps_us(table, "ts")
    split = training_split(table, ts, 0.2, "ts")
    is_fb = np.asarray(table.column(FEEDBACK_COLUMN).to_pylist())
    assert (int(is_fb[split.train].sum()), int(is_fb[split.validation].sum())) == (8, 2)
    assert (int((~is_fb)[split.train].sum()), int((~is_fb)[split.validation].sum())) == (32, 8)
    assert split.describe(ts)["strategy"] == "time_per_source"
    from driftline.training.dataset import time_split

    one = time_split(ts, 0.2, "ts")  # the old single split: every feedback row held out
    assert int(is_fb[one.train].sum()) == 0


def test_the_cli_shows_where_the_rows_came_from() -> None:
    from driftline.cli.models import _feedback_rows

    assert _feedback_rows({"uri": "s3://b/k", "rows": 10}) == []
    stats = {"labels_read": 9, "used": 0, "wrong_type": 2, "weight": 2.0, "skipped": "3 usable label(s), fewer"}
    rows = dict(_feedback_rows({"rows_from_uploads": 10, "rows_from_feedback": 0, "feedback": stats}))
    assert rows["training rows"] == "10 from uploads, 0 from feedback"
    assert "labels_read 9, used 0" in rows["feedback labels"] and "wrong_type 2" in rows["feedback labels"]
    assert rows["feedback labels"].endswith("; not used: 3 usable label(s), fewer")


@pytest.mark.parametrize(
    ("feedback", "message"),
    [
        ({"enabled": True, "weight": 0}, "greater than 0"),
        ({"enabled": True, "weight": "2"}, "valid number"),
        ({"enabled": True, "max_age_days": 366}, "less than or equal to 365"),
        ({"enabled": True, "min_labels": 0}, "greater than or equal to 1"),
        ({"weight": 2.0}, "weight: only used with enabled: true"),
        ({"enabled": "yes"}, "valid boolean"),
        ({"enabled": True, "window": 3}, "window"),
    ],
)
def test_bad_feedback_settings_are_refused_at_load(feedback: dict[str, Any], message: str) -> None:
    from driftline.config import ConfigError, from_context

    raw = {"models": [{"name": "m", "feature_set": "f", "training": {"feedback": feedback}}]}
    with pytest.raises(ConfigError, match=message):
        from_context({"driftline:environments": {"dev": raw}})
