"""The example data generator: schema agreement with the YAML, determinism and each kind of drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from driftline.datasets import credit_default as cd

START, END = "2026-01-01", "2026-04-01"


@pytest.fixture(scope="module")
def ref() -> pa.Table:
    return cd.generate(6000, START, END, seed=1)


def test_columns_match_the_feature_set_definition(credit_fs: Any, ref: pa.Table) -> None:
    assert ref.column_names == [*credit_fs.entity, credit_fs.timestamp, *credit_fs.feature_names, credit_fs.label.name]
    for f in credit_fs.features:
        if f.type == "categorical":
            assert cd.CATEGORIES[f.name] == f.categories
        if f.is_numeric:
            kind, lo, hi = next((k, lo, hi) for n, k, lo, hi in cd.NUMERIC if n == f.name)
            assert kind == f.type
            assert lo == (f.min if f.min is not None else -np.inf)
            assert hi == (f.max if f.max is not None else np.inf)


def test_reference_data_is_valid_for_the_definition(credit_fs: Any, ref: pa.Table) -> None:
    for f in credit_fs.features:
        col = ref.column(f.name)
        if not f.nullable:
            assert col.null_count == 0, f.name
        if f.min is not None:
            assert pc.min(col).as_py() >= f.min, f.name
        if f.max is not None:
            assert pc.max(col).as_py() <= f.max, f.name
        if f.categories:
            assert set(pc.unique(col.drop_null()).to_pylist()) <= set(f.categories), f.name
    assert ref.schema.field(cd.TIMESTAMP).type == pa.timestamp("us", tz="UTC")
    assert set(pc.unique(ref.column(cd.LABEL)).to_pylist()) == {0, 1}
    rate = pc.mean(ref.column(cd.LABEL)).as_py()
    assert 0.08 < rate < 0.3


def test_same_seed_same_table_other_seed_other_table(ref: pa.Table) -> None:
    assert cd.generate(6000, START, END, seed=1).equals(ref)
    assert not cd.generate(6000, START, END, seed=2).equals(ref)


def test_customers_have_several_snapshots_with_unique_times(ref: pa.Table) -> None:
    keys = ref.select([cd.ENTITY, cd.TIMESTAMP]).group_by([cd.ENTITY]).aggregate([(cd.TIMESTAMP, "count")])
    counts = keys.column(f"{cd.TIMESTAMP}_count").to_numpy()
    assert (counts > 1).mean() > 0.5
    assert ref.group_by([cd.ENTITY, cd.TIMESTAMP]).aggregate([]).num_rows == ref.num_rows
    ts = ref.column(cd.TIMESTAMP)
    assert pc.min(ts).as_py().isoformat() >= "2026-01-01T00:00:00+00:00"
    assert pc.max(ts).as_py().isoformat() < "2026-04-01T00:00:00+00:00"
    # static attributes stay with the customer across snapshots
    per_cust = ref.group_by([cd.ENTITY]).aggregate([("region", "count_distinct")])
    assert pc.max(per_cust.column("region_count_distinct")).as_py() == 1


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    order = np.argsort(score)
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    pos = y == 1
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


def _numeric_matrix(t: pa.Table) -> np.ndarray:
    cols = [np.nan_to_num(t.column(n).to_numpy(zero_copy_only=False).astype(float)) for n, *_ in cd.NUMERIC]
    cols.append(t.column("autopay_enabled").to_numpy(zero_copy_only=False).astype(float))
    return np.column_stack(cols)


def _fit_linear(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares linear probability model (numpy only; ranks like a logistic regression here)."""
    x1 = np.column_stack([np.ones(len(x)), x])
    coef, *_ = np.linalg.lstsq(x1, y.astype(float), rcond=None)
    return np.asarray(coef)


def _score(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.asarray(np.column_stack([np.ones(len(x)), x]) @ coef)


def test_label_is_learnable_and_concept_drift_breaks_the_relation(ref: pa.Table) -> None:
    train, test = ref.slice(0, 4000), ref.slice(4000)
    coef = _fit_linear(_numeric_matrix(train), train.column(cd.LABEL).to_numpy())
    auc_ref = _auc(test.column(cd.LABEL).to_numpy(), _score(coef, _numeric_matrix(test)))
    assert 0.72 < auc_ref < 0.9
    drifted = cd.generate(3000, "2026-04-01", "2026-05-01", seed=3, drift=cd.PRESETS["concept"])
    auc_drift = _auc(drifted.column(cd.LABEL).to_numpy(), _score(coef, _numeric_matrix(drifted)))
    assert auc_drift < auc_ref - 0.15


def test_covariate_shift_moves_the_chosen_columns_only() -> None:
    base = cd.generate(5000, START, END, seed=4)
    spec = cd.DriftSpec(shift={"utilization": 1.0, "age": -1.0})
    shifted = cd.generate(5000, START, END, seed=4, drift=spec)
    assert pc.mean(shifted.column("utilization")).as_py() > pc.mean(base.column("utilization")).as_py() + 0.1
    assert pc.mean(shifted.column("age")).as_py() < pc.mean(base.column("age")).as_py() - 5
    assert shifted.column("region").equals(base.column("region"))
    assert pc.min(shifted.column("age")).as_py() >= 18


def test_vanished_and_new_categories_and_missing_spikes() -> None:
    spec = cd.DriftSpec(
        category_weights={"card_tier": {"platinum": 0.0}},
        new_categories={"region": {"offshore": 0.1}},
        missing={"income": 0.5, "age": 0.2},
    )
    t = cd.generate(4000, START, END, seed=5, drift=spec)
    assert "platinum" not in pc.unique(t.column("card_tier")).to_pylist()
    share_new = pc.mean(pc.cast(pc.equal(t.column("region"), "offshore"), pa.float64())).as_py()
    assert 0.07 < share_new < 0.13
    assert 0.45 < t.column("income").null_count / t.num_rows < 0.6
    assert 0.15 < t.column("age").null_count / t.num_rows < 0.25


@pytest.mark.parametrize(
    "spec, message",
    [
        (dict(shift={"region": 1.0}), "not a numeric feature"),
        (dict(category_weights={"region": {"mars": 2.0}}), "not a category of 'region'"),
        (dict(new_categories={"region": {"north": 0.1}}), "already a category"),
        (dict(concept=1.5), "concept must be between 0 and 1"),
        (dict(missing={"nope": 0.1}), "'nope' is not a feature"),
        (dict(category_weights={"housing": {"own": 0, "rent": 0, "mortgage": 0, "other": 0}}), "every category"),
    ],
)
def test_bad_drift_spec_is_rejected_with_the_reason(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cd.DriftSpec(**spec)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="must be after start"):
        cd.generate(10, END, START)
    with pytest.raises(ValueError, match="at least 1"):
        cd.generate(0, START, END)
    with pytest.raises(ValueError, match="unknown drift preset"):
        cd.default_periods(drifts=("tornado",))


@pytest.mark.parametrize("fmt", ["parquet", "csv", "csv.gz"])
def test_write_periods(tmp_path: Path, fmt: cd.FileFormat) -> None:
    paths = cd.write_periods(tmp_path, rows_per_period=300, fmt=fmt)
    assert [p.name for p in paths] == [f"00_reference.{fmt}", f"01_covariate.{fmt}", f"02_concept.{fmt}"]
    for p in paths:
        t = pq.read_table(p) if fmt == "parquet" else pacsv.read_csv(p)
        assert t.num_rows == 300
        assert t.column_names == list(cd.COLUMNS)
    starts = [cd.describe(pq.read_table(p) if fmt == "parquet" else pacsv.read_csv(p))["start"] for p in paths]
    assert starts == sorted(starts)
