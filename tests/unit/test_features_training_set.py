"""Point-in-time join: property test against a brute-force reference, plus the edge cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.features.training_set import FEATURE_TIMESTAMP, TrainingSetError, point_in_time_join

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")


def _ts(seconds: int | None) -> datetime | None:
    return None if seconds is None else T0 + timedelta(seconds=seconds)


def brute_force(
    labels: list[dict[str, Any]], features: list[dict[str, Any]], max_age: timedelta | None
) -> list[tuple[Any, Any]]:
    """For each label: (v, feature ts) of the latest feature row at or before it (last row wins ties)."""
    out = []
    for lab in labels:
        best = None
        for f in features:
            if f["e"] is None or f["ts"] is None or lab["e"] is None or lab["ts"] is None:
                continue
            if f["e"] != lab["e"] or f["ts"] > lab["ts"]:
                continue
            if max_age is not None and lab["ts"] - f["ts"] > max_age:
                continue
            if best is None or f["ts"] >= best["ts"]:
                best = f
        out.append((best["v"], best["ts"]) if best else (None, None))
    return out


entity = st.sampled_from(["a", "b", "c", "d", None])
seconds = st.one_of(st.integers(0, 40), st.none())
row = st.fixed_dictionaries({"e": entity, "ts": seconds})


@settings(max_examples=300, deadline=None)
@given(
    labels=st.lists(row, max_size=25),
    features=st.lists(row, max_size=40),
    max_age=st.one_of(st.none(), st.integers(0, 20)),
)
def test_matches_brute_force(labels: list[dict[str, Any]], features: list[dict[str, Any]], max_age: int | None) -> None:
    labs = [{"e": r["e"], "ts": _ts(r["ts"]), "y": i} for i, r in enumerate(labels)]
    feats = [{"e": r["e"], "ts": _ts(r["ts"]), "v": float(i)} for i, r in enumerate(features)]
    age = None if max_age is None else timedelta(seconds=max_age)
    lt = pa.table(
        {
            "e": pa.array([r["e"] for r in labs], pa.string()),
            "ts": pa.array([r["ts"] for r in labs], TS),
            "y": pa.array([r["y"] for r in labs], pa.int64()),
        }
    )
    ft = pa.table(
        {
            "e": pa.array([r["e"] for r in feats], pa.string()),
            "ts": pa.array([r["ts"] for r in feats], TS),
            "v": pa.array([r["v"] for r in feats], pa.float64()),
        }
    )
    out = point_in_time_join(lt, ft, "e", "ts", age)
    assert out.column("y").to_pylist() == [r["y"] for r in labs]  # every label kept, in order
    got = list(zip(out.column("v").to_pylist(), out.column(FEATURE_TIMESTAMP).to_pylist(), strict=True))
    assert got == brute_force(labs, feats, age)
    for lab, (_, fts) in zip(labs, got, strict=True):  # no leakage, ever
        assert fts is None or fts <= lab["ts"]


def test_composite_entity_and_pandas_round_trip() -> None:
    labels = pd.DataFrame(
        {
            "shop": ["s1", "s1", "s2"],
            "item": [1, 2, 1],
            "ts": pd.to_datetime(["2026-01-05", "2026-01-05", "2026-01-05"], utc=True),
            "y": [1, 0, 1],
        }
    )
    feats = pd.DataFrame(
        {
            "shop": ["s1", "s1", "s2", "s1"],
            "item": [1, 1, 1, 2],
            "ts": pd.to_datetime(["2026-01-01", "2026-01-04", "2026-01-06", "2026-01-05"], utc=True),
            "v": [1.0, 2.0, 3.0, 4.0],
        }
    )
    out = point_in_time_join(labels, feats, ["shop", "item"], "ts")
    assert isinstance(out, pd.DataFrame)
    assert out["v"].tolist()[:2] == [2.0, 4.0] and pd.isna(out["v"].iloc[2])


def test_max_age_and_naive_timestamps_as_utc() -> None:
    labels = pa.table(
        {"e": ["a", "a"], "ts": pa.array([datetime(2026, 1, 10), datetime(2026, 1, 3)], pa.timestamp("s"))}
    )
    feats = pa.table({"e": ["a"], "ts": pa.array([datetime(2026, 1, 1)], pa.timestamp("ms")), "v": [1]})
    out = point_in_time_join(labels, feats, "e", "ts", max_age=timedelta(days=5))
    assert out.column("v").to_pylist() == [None, 1]
    out = point_in_time_join(labels, feats, "e", "ts", max_age=timedelta(days=9))
    assert out.column("v").to_pylist() == [1, 1]


def test_large_random_case_against_merge_asof() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    n_f, n_l = 20000, 5000
    f = pd.DataFrame(
        {
            "e": rng.integers(0, 300, n_f).astype(str),
            "ts": pd.to_datetime(rng.integers(0, 10**6, n_f), unit="s", utc=True),
            "v": rng.random(n_f),
        }
    ).drop_duplicates(["e", "ts"])
    lab = pd.DataFrame(
        {
            "e": rng.integers(0, 300, n_l).astype(str),
            "ts": pd.to_datetime(rng.integers(0, 10**6, n_l), unit="s", utc=True),
        }
    )
    lab["row"] = range(n_l)
    ours = point_in_time_join(lab, f, "e", "ts", max_age=timedelta(hours=30))
    ref = pd.merge_asof(
        lab.sort_values("ts"), f.sort_values("ts"), on="ts", by="e", tolerance=pd.Timedelta(hours=30)
    ).sort_values("row")
    assert np.allclose(ours["v"].to_numpy(), ref["v"].to_numpy(), equal_nan=True)


def test_bad_inputs_are_explained() -> None:
    lt = pa.table({"e": ["a"], "ts": pa.array([T0], TS), "v": [1]})
    ft = pa.table({"e": ["a"], "ts": pa.array([T0], TS), "v": [2]})
    with pytest.raises(TrainingSetError, match="exist in both"):
        point_in_time_join(lt, ft, "e", "ts")
    with pytest.raises(TrainingSetError, match="lack the column"):
        point_in_time_join(lt.drop_columns(["e"]), ft, "e", "ts")
    with pytest.raises(TrainingSetError, match="must be a timestamp"):
        point_in_time_join(pa.table({"e": ["a"], "ts": [1]}), ft, "e", "ts")
    with pytest.raises(TrainingSetError, match="negative"):
        point_in_time_join(lt.drop_columns(["v"]), ft, "e", "ts", max_age=timedelta(seconds=-1))
    with pytest.raises(TypeError, match="pyarrow Table or a pandas DataFrame"):
        point_in_time_join([1], ft, "e", "ts")
    empty = point_in_time_join(lt.drop_columns(["v"]).slice(0, 0), ft, "e", "ts")
    assert empty.num_rows == 0 and empty.column_names == ["e", "ts", "v", FEATURE_TIMESTAMP]
