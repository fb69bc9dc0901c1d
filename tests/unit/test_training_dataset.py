"""Training data checks, encoding (must equal the serving mapping) and the time split."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from driftline.features.encoding import encode_columns
from driftline.features.schema import FeatureSet, Label, parse_feature_set
from driftline.training.dataset import encode_table, label_targets, prepare, time_split
from driftline.training.errors import TrainingRejectedError


def small_fs(**label: Any) -> FeatureSet:
    return parse_feature_set(
        {
            "name": "toy",
            "version": 1,
            "entity": ["id"],
            "timestamp": "ts",
            "features": [
                {"name": "x", "type": "float"},
                {"name": "n", "type": "int"},
                {"name": "color", "type": "categorical", "categories": ["red", "green", "blue"]},
                {"name": "flag", "type": "bool"},
                {"name": "note", "type": "string"},
            ],
            "labels": [label or {"name": "y", "task": "binary_classification", "classes": [0, 1]}],
        }
    )


def toy_table(n: int = 200, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    color = rng.choice(np.array(["red", "green", "blue", "purple", None], dtype=object), size=n).tolist()
    flag = [None if r < 0.1 else bool(r > 0.5) for r in rng.random(n)]
    nn = [None if r < 0.1 else int(v) for r, v in zip(rng.random(n), rng.integers(0, 9, n), strict=True)]
    return pa.table(
        {
            "id": [f"e{i}" for i in range(n)],
            "ts": pa.array(
                1_700_000_000_000_000 + np.arange(n, dtype=np.int64) * 60_000_000, pa.timestamp("us", tz="UTC")
            ),
            "x": pa.array(np.where(rng.random(n) < 0.1, np.nan, x)),
            "n": pa.array(nn, pa.int64()),
            "color": pa.array(color, pa.string()),
            "flag": pa.array(flag, pa.bool_()),
            "note": ["hello"] * n,
            "y": (x + rng.normal(size=n) > 0).astype(np.int64),
        }
    )


def test_encode_table_is_exactly_the_serving_mapping() -> None:
    fs = small_fs()
    table = toy_table(500)
    schema = fs.input_schema()
    reference = encode_columns(schema, {c: table.column(c).to_pylist() for c in fs.feature_names})
    fast = encode_table(schema, table)
    assert fast.dtype == np.float32
    assert np.array_equal(fast, reference, equal_nan=True)
    # unknown category 'purple' and null are both NaN; known ones are their index
    colors = table.column("color").to_pylist()
    assert np.isnan(fast[colors.index("purple"), 2])
    assert fast[colors.index("blue"), 2] == 2.0


def test_encode_table_accepts_pandas_and_dictionary_columns() -> None:
    fs = small_fs()
    table = toy_table(100)
    dict_table = table.set_column(
        table.schema.get_field_index("color"), "color", table.column("color").dictionary_encode()
    )
    df = table.to_pandas()
    expected = encode_table(fs.input_schema(), table)
    assert np.array_equal(encode_table(fs.input_schema(), dict_table), expected, equal_nan=True)
    from driftline.training.dataset import to_arrow

    assert np.array_equal(encode_table(fs.input_schema(), to_arrow(df)), expected, equal_nan=True)


def test_encode_table_names_missing_columns() -> None:
    with pytest.raises(TrainingRejectedError, match="lacks model feature column"):
        encode_table(small_fs().input_schema(), toy_table().drop_columns(["flag"]))


def test_labels_map_to_class_indices() -> None:
    label = Label(name="y", task="multiclass_classification", classes=("low", "mid", "high"))
    t = pa.table({"y": ["high", None, "low", "mid"]})
    out = label_targets(t, label)
    assert out[0] == 2 and np.isnan(out[1]) and out[2] == 0 and out[3] == 1
    binary = Label(name="y", task="binary_classification", classes=(0, 1))
    assert label_targets(pa.table({"y": [True, False]}), binary).tolist() == [1.0, 0.0]
    assert label_targets(pa.table({"y": ["1", "0"]}), binary).tolist() == [1.0, 0.0]
    with pytest.raises(TrainingRejectedError, match=r"outside its classes \[0, 1\]: 7 \(2x\)"):
        label_targets(pa.table({"y": [0, 7, 7]}), binary)


def test_time_split_trains_on_older_rows_and_keeps_ties_together() -> None:
    ts = np.array([5, 1, 3, 3, 3, 2, 4, 6, 7, 8], dtype=np.int64)
    split = time_split(ts, 0.3, "ts")
    assert ts[split.train].max() < ts[split.validation].min()
    assert sorted(ts[split.validation].tolist()) == [6, 7, 8]
    tied = np.array([1, 2, 2, 2, 2, 2, 2, 2, 2, 2], dtype=np.int64)
    s2 = time_split(tied, 0.2, "ts")  # the cut lands inside the tie: the whole tie validates
    assert ts.size == s2.train.size + s2.validation.size and s2.train.tolist() == [0]
    with pytest.raises(TrainingRejectedError, match="distinct value"):
        time_split(np.zeros(10, dtype=np.int64), 0.2, "ts")
    with pytest.raises(TrainingRejectedError, match="between 0 and 1"):
        time_split(ts, 1.0, "ts")


def test_prepare_drops_unlabelled_rows_and_splits() -> None:
    table = toy_table(300)
    y = table.column("y").to_pylist()
    y[:30] = [None] * 30
    table = table.set_column(table.schema.get_field_index("y"), "y", pa.array(y, pa.int64()))
    p = prepare(table, small_fs(), min_rows=100, validation_fraction=0.25)
    assert p.rows_total == 300 and p.rows_unlabeled == 30
    assert len(p.y_train) + len(p.y_val) == 270
    assert p.X_train.shape[1] == 4  # x, n, color, flag (the string feature is not a model input)
    assert p.split["train_rows"] == len(p.y_train) and p.validation_table.num_rows == len(p.y_val)
    assert p.split["train_range"][1] < p.split["validation_range"][0]
    assert p.y_train.dtype == np.int64


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.drop_columns(["y"]), "no labels: the label column 'y' is not in the training table"),
        (lambda t: t.set_column(7, "y", pa.nulls(t.num_rows, pa.int64())), "no labels: every value"),
        (lambda t: t.slice(0, 50), r"only 50 labelled row\(s\) \(of 50\); at least 100"),
        (lambda t: t.set_column(7, "y", pa.array(np.ones(t.num_rows, np.int64))), "one class only"),
        (lambda t: t.set_column(2, "x", pa.nulls(t.num_rows, pa.float64())), r"feature\(s\) x are null in all"),
        (lambda t: t.set_column(4, "color", pa.array(["pink"] * t.num_rows)), "color are null in all"),
        (lambda t: t.set_column(1, "ts", pa.nulls(t.num_rows, pa.timestamp("us"))), "null value"),
        (lambda t: t.drop_columns(["ts"]), "lacks the timestamp column 'ts'"),
    ],
)
def test_bad_training_data_is_rejected_with_a_reason(mutate: Any, message: str) -> None:
    with pytest.raises(TrainingRejectedError, match=message):
        prepare(mutate(toy_table(200)), small_fs(), min_rows=100, validation_fraction=0.2)


def test_validation_period_with_one_class_is_rejected() -> None:
    table = toy_table(200)
    y = np.array(table.column("y").to_pylist())
    y[-40:] = 0
    table = table.set_column(7, "y", pa.array(y))
    with pytest.raises(TrainingRejectedError, match=r"validation period .* has only y = 0"):
        prepare(table, small_fs(), min_rows=100, validation_fraction=0.2)


def test_string_timestamps_and_pandas_frames_are_accepted() -> None:
    table = toy_table(200)
    iso = pa.array([v.isoformat() for v in table.column("ts").to_pylist()])
    p = prepare(table.set_column(1, "ts", iso), small_fs(), min_rows=100, validation_fraction=0.2)
    assert len(p.y_val) == 40
    df: pd.DataFrame = table.to_pandas()
    p2 = prepare(df, small_fs(), min_rows=100, validation_fraction=0.2)
    assert np.array_equal(p2.X_val, p.X_val, equal_nan=True)
