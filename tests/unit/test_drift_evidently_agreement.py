"""Per-column drift decisions agree with Evidently's DataDriftPreset on shared fixtures.

Evidently is a test-only dependency (importing it takes seconds), so this module holds the whole
comparison; run it alone with ``pytest -m evidently``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftline.drift import build_profile, check_drift

pytestmark = pytest.mark.evidently

NUM = ["age", "income", "kids", "score"]
CAT = ["region", "autopay"]
EVIDENTLY_METHOD = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
}


def fixture(n_ref: int, n_cur: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def make(n: int, drifted: bool) -> pd.DataFrame:
        income = rng.lognormal(10.4 if drifted else 10.0, 0.5, n)
        income[rng.random(n) < 0.05] = np.nan
        return pd.DataFrame(
            {
                "age": rng.normal(40, 10, n),  # stable
                "income": income,  # shifted
                "kids": rng.integers(0, 3, n),  # stable, few values
                "score": rng.beta(2, 5 if not drifted else 3, n),  # shifted
                "region": rng.choice(
                    ["north", "south", "east"], n, p=[0.2, 0.3, 0.5] if drifted else [0.5, 0.3, 0.2]
                ).astype(object),  # shifted
                "autopay": rng.choice(["yes", "no"], n, p=[0.6, 0.4]).astype(object),  # stable
            }
        )

    return make(n_ref, False), make(n_cur, True)


def evidently_columns(ref: pd.DataFrame, cur: pd.DataFrame) -> dict[str, dict[str, Any]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        definition = DataDefinition(numerical_columns=NUM, categorical_columns=CAT)
        snapshot = Report([DataDriftPreset()], include_tests=True).run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
        )
    out: dict[str, dict[str, Any]] = {}
    doc = snapshot.dict()
    for metric in doc["metrics"]:
        cfg = metric["config"]
        if cfg.get("type") == "evidently:metric_v2:ValueDrift":
            out[cfg["column"]] = {
                "method": EVIDENTLY_METHOD[cfg["method"]],
                "threshold": cfg["threshold"],
                "score": float(metric["value"]),
            }
    for test in doc["tests"]:
        name = test["name"]
        if name.startswith("Value Drift for column "):
            out[name.removeprefix("Value Drift for column ")]["drifted"] = test["status"] == "FAIL"
    return out


@pytest.mark.parametrize(("n_ref", "n_cur", "seed"), [(700, 500, 1), (4000, 1500, 2)])
def test_drift_decisions_agree_with_evidently(n_ref: int, n_cur: int, seed: int) -> None:
    ref, cur = fixture(n_ref, n_cur, seed)
    ours = check_drift(build_profile(ref, NUM, CAT), cur).to_dict()["columns"]
    theirs = evidently_columns(ref, cur)
    assert set(theirs) == set(ours)
    for col, want in theirs.items():
        got = ours[col]
        assert got["method"] == want["method"], col
        assert got["threshold"] == want["threshold"], col
        assert got["drifted"] == want["drifted"], col
        score = got["p_value"] if got["p_value"] is not None else got["statistic"]
        assert score == pytest.approx(want["score"], rel=1e-9, abs=1e-12), col
    # the fixture drifts exactly the columns it shifts
    assert sorted(c for c, r in ours.items() if r["drifted"]) == ["income", "region", "score"]
