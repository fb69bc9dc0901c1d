"""Synthetic data for the ``credit_default`` example feature set, with controllable drift.

The demo, the tests, the drift monitor and the training pipeline all need data whose behaviour is
known in advance: a label that a model can learn (ROC AUC around 0.8 on the reference period),
customers with several snapshots over time (so point-in-time joins matter), and later periods
whose drift is exactly what :class:`DriftSpec` says. Everything is vectorized NumPy and a fixed
seed gives the same table on every machine.

Public API (kept small and stable; other packages import it):

- :func:`generate` -> ``pyarrow.Table`` with the columns of ``examples/feature_sets/credit_default.yaml``
  (entity, timestamp, 21 features, label) in definition order.
- :class:`DriftSpec` and the ready-made :data:`PRESETS`.
- :class:`Period`, :func:`default_periods` and :func:`write_periods` to write a reference period and
  drifted later periods as Parquet / CSV / CSV.gz files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

FEATURE_SET = "credit_default"
ENTITY = "customer_id"
TIMESTAMP = "event_timestamp"
LABEL = "defaulted"

CATEGORIES: dict[str, tuple[str, ...]] = {
    "employment_type": ("salaried", "self_employed", "unemployed", "retired", "student"),
    "housing": ("own", "rent", "mortgage", "other"),
    "region": ("north", "south", "east", "west", "central"),
    "card_tier": ("basic", "silver", "gold", "platinum"),
    "channel": ("branch", "online", "partner"),
}

# (name, kind, min, max): the numeric features in definition order, with the ranges of the YAML.
NUMERIC: tuple[tuple[str, Literal["int", "float"], float, float], ...] = (
    ("age", "int", 18, 100),
    ("income", "float", 0, math.inf),
    ("credit_limit", "float", 0, math.inf),
    ("balance", "float", 0, math.inf),
    ("utilization", "float", 0, 5),
    ("num_accounts", "int", 0, 50),
    ("num_late_payments_12m", "int", 0, 12),
    ("months_since_last_delinquency", "float", 0, 600),
    ("tenure_months", "int", 0, 600),
    ("avg_monthly_spend", "float", 0, math.inf),
    ("payment_ratio", "float", 0, 10),
    ("cash_advance_ratio", "float", 0, 1),
    ("num_inquiries_6m", "int", 0, 30),
    ("debt_to_income", "float", 0, 20),
    ("online_sessions_30d", "int", 0, 1000),
)
_NUMERIC_BY_NAME = {n: (k, lo, hi) for n, k, lo, hi in NUMERIC}
_LOG_SCALE = frozenset({"income", "credit_limit", "balance", "avg_monthly_spend"})

COLUMNS: tuple[str, ...] = (
    ENTITY,
    TIMESTAMP,
    *(n for n, *_ in NUMERIC),
    "employment_type",
    "housing",
    "region",
    "card_tier",
    "channel",
    "autopay_enabled",
    LABEL,
)
FEATURES: tuple[str, ...] = COLUMNS[2:-1]

_TS_TYPE = pa.timestamp("us", tz="UTC")
_SNAPSHOTS_PER_CUSTOMER = 3.0


@dataclass(frozen=True)
class DriftSpec:
    """What changes in a generated period compared with the reference behaviour.

    All fields default to "no change", so ``DriftSpec()`` reproduces the reference distribution.
    """

    shift: Mapping[str, float] = field(default_factory=dict)
    """Covariate shift of numeric features: column -> shift in units of the column's standard
    deviation (of its logarithm for the money columns income, credit_limit, balance and
    avg_monthly_spend, which are log-normal), clipped to the feature's range. Applied where the
    column is generated, so dependent columns follow (shifting
    ``income`` changes ``card_tier``, ``credit_limit`` and ``debt_to_income``) and the label keeps
    its reference relation to the features."""
    category_weights: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """Categorical features: column -> {category: factor on its probability}; 0 makes it vanish."""
    new_categories: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """Categorical features: column -> {value outside the defined categories: share of rows}.
    Ingest validation rejects such rows; use it to exercise quarantine and unknown-category paths."""
    concept: float = 0.0
    """0..1: how far the label relation moves from the reference one to a different one
    (1 = entirely the new relation). Feature distributions do not change."""
    missing: Mapping[str, float] = field(default_factory=dict)
    """Feature -> share of rows set to null, on top of the natural missingness. Non-nullable
    columns then fail validation, which is a realistic broken-pipeline scenario."""

    def __post_init__(self) -> None:
        problems = [
            *self._shift_problems(),
            *self._weight_problems(),
            *self._new_category_problems(),
            *self._missing_problems(),
        ]
        if not 0.0 <= self.concept <= 1.0:
            problems.append(f"concept must be between 0 and 1, got {self.concept}")
        if problems:
            raise ValueError("invalid DriftSpec: " + "; ".join(problems))

    def _shift_problems(self) -> list[str]:
        problems = []
        for col, v in self.shift.items():
            if col not in _NUMERIC_BY_NAME:
                problems.append(f"shift: {col!r} is not a numeric feature ({', '.join(_NUMERIC_BY_NAME)})")
            elif not math.isfinite(v):
                problems.append(f"shift: {col!r} must be a finite number of standard deviations, got {v}")
        return problems

    def _weight_problems(self) -> list[str]:
        problems = []
        for col, weights in self.category_weights.items():
            if col not in CATEGORIES:
                problems.append(f"category_weights: {col!r} is not a categorical feature ({', '.join(CATEGORIES)})")
                continue
            for value, w in weights.items():
                if value not in CATEGORIES[col]:
                    problems.append(
                        f"category_weights: {value!r} is not a category of {col!r} "
                        f"({', '.join(CATEGORIES[col])}); use new_categories for new values"
                    )
                if not (w >= 0 and math.isfinite(w)):
                    problems.append(f"category_weights: {col}.{value} must be a finite number >= 0, got {w}")
            if all(weights.get(c, 1.0) == 0 for c in CATEGORIES[col]):
                problems.append(f"category_weights: every category of {col!r} has weight 0")
        return problems

    def _new_category_problems(self) -> list[str]:
        problems = []
        for col, shares in self.new_categories.items():
            if col not in CATEGORIES:
                problems.append(f"new_categories: {col!r} is not a categorical feature ({', '.join(CATEGORIES)})")
                continue
            for value, share in shares.items():
                if value in CATEGORIES[col]:
                    problems.append(f"new_categories: {value!r} is already a category of {col!r}")
                if not 0.0 <= share <= 1.0:
                    problems.append(f"new_categories: share of {col}.{value} must be between 0 and 1, got {share}")
            if sum(shares.values()) > 1:
                problems.append(f"new_categories: shares of {col!r} add up to more than 1")
        return problems

    def _missing_problems(self) -> list[str]:
        problems = []
        for col, share in self.missing.items():
            if col not in FEATURES:
                problems.append(f"missing: {col!r} is not a feature of {FEATURE_SET}")
            elif not 0.0 <= share <= 1.0:
                problems.append(f"missing: share for {col!r} must be between 0 and 1, got {share}")
        return problems


PRESETS: dict[str, DriftSpec] = {
    "none": DriftSpec(),
    "covariate": DriftSpec(
        shift={"income": -0.8, "utilization": 0.9, "age": -0.6, "num_inquiries_6m": 1.0},
        category_weights={"employment_type": {"student": 3.0, "retired": 0.3}, "channel": {"online": 2.5}},
    ),
    "concept": DriftSpec(concept=1.0),
    "categories": DriftSpec(
        category_weights={"card_tier": {"platinum": 0.0}},
        new_categories={"card_tier": {"titanium": 0.05}, "region": {"offshore": 0.02}},
    ),
    "missing": DriftSpec(missing={"income": 0.4, "payment_ratio": 0.5, "online_sessions_30d": 0.6}),
    "severe": DriftSpec(
        shift={"income": -1.0, "utilization": 1.2, "debt_to_income": 1.0},
        category_weights={"employment_type": {"unemployed": 4.0}},
        concept=0.7,
        missing={"payment_ratio": 0.3},
    ),
}
"""Named drift scenarios, from none to severe (the CLI's ``--drift`` choices)."""


def _as_datetime(value: datetime | str) -> datetime:
    dt = datetime.fromisoformat(value) if isinstance(value, str) else value
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


class _Gen:
    """One generation run: the RNG, the drift spec and the helpers that apply it."""

    def __init__(self, rng: np.random.Generator, drift: DriftSpec) -> None:
        self.rng = rng
        self.drift = drift

    def shifted(self, name: str, values: np.ndarray) -> np.ndarray:
        """Apply the covariate shift of ``name`` (in standard deviations) and keep it in range."""
        kind, lo, hi = _NUMERIC_BY_NAME[name]
        delta = self.drift.shift.get(name, 0.0)
        if delta and name in _LOG_SCALE:  # money is log-normal: shift it multiplicatively
            logs = np.log(np.maximum(values, 1e-9))
            finite = logs[np.isfinite(logs)]
            std = float(finite.std()) if finite.size > 1 else 1.0
            values = np.round(np.exp(logs + delta * (std or 1.0)), 2)
        elif delta:
            finite = values[np.isfinite(values)]
            std = float(finite.std()) if finite.size > 1 else 1.0
            values = values + delta * (std or 1.0)
        values = np.clip(values, lo, hi)
        return np.rint(values) if kind == "int" else values

    def choose(self, column: str, probs: np.ndarray) -> np.ndarray:
        """Category index per row from row-wise probabilities ``[n, k]``, after drift re-weighting."""
        cats = CATEGORIES[column]
        p = np.array(probs, dtype=np.float64)
        weights = self.drift.category_weights.get(column, {})
        if weights:
            w = np.array([weights.get(c, 1.0) for c in cats])
            p *= w
            p[p.sum(axis=1) == 0] = w  # a row whose only categories were removed: fall back to the weights
        cum = np.cumsum(p, axis=1)
        cum /= cum[:, -1:]
        u = self.rng.random(len(p))
        return np.asarray(np.minimum((u[:, None] > cum).sum(axis=1), len(cats) - 1))


def _reference_logit(f: dict[str, np.ndarray], emp: np.ndarray, tier: np.ndarray) -> np.ndarray:
    income = np.where(np.isnan(f["income"]), 30000.0, f["income"])
    pay = np.where(np.isnan(f["payment_ratio"]), 1.0, f["payment_ratio"])
    dti = np.where(np.isnan(f["debt_to_income"]), 1.0, f["debt_to_income"])
    cash = np.where(np.isnan(f["cash_advance_ratio"]), 0.1, f["cash_advance_ratio"])
    emp_effect = np.array([0.0, 0.35, 1.1, -0.2, 0.5])[emp]
    tier_effect = np.array([0.35, 0.1, -0.15, -0.4])[tier]
    return np.asarray(
        -2.3
        + 2.4 * (f["utilization"] - 0.45)
        + 0.45 * np.sqrt(f["num_late_payments_12m"])
        + 0.12 * f["num_inquiries_6m"]
        - 0.45 * np.log(income / 40000.0 + 0.05)
        + 0.15 * dti
        - 0.55 * np.minimum(pay, 3.0)
        + 1.2 * cash
        - 0.5 * f["autopay"]
        - 0.012 * (f["age"] - 40)
        - 0.002 * f["tenure_months"]
        + emp_effect
        + tier_effect
    )


def _concept_logit(f: dict[str, np.ndarray], emp: np.ndarray, housing: np.ndarray) -> np.ndarray:
    """A different, equally learnable relation: what drives default after the concept change."""
    sessions = np.where(np.isnan(f["online_sessions_30d"]), 20.0, f["online_sessions_30d"])
    spend = np.where(np.isnan(f["avg_monthly_spend"]), 800.0, f["avg_monthly_spend"])
    cash = np.where(np.isnan(f["cash_advance_ratio"]), 0.1, f["cash_advance_ratio"])
    emp_effect = np.array([0.9, -0.6, -0.3, 0.6, -0.4])[emp]
    housing_effect = np.array([-0.3, 0.8, 0.2, 0.0])[housing]
    return np.asarray(
        -4.8
        - 1.5 * (f["utilization"] - 0.45)
        + 3.5 * cash
        - 0.02 * (sessions - 20)
        + 0.0009 * (spend - 800)
        + 0.03 * (f["age"] - 40)
        + 0.2 * f["num_accounts"]
        - 0.8
        + emp_effect
        + housing_effect
    )


def generate(
    n_rows: int,
    start: datetime | str,
    end: datetime | str,
    *,
    seed: int = 42,
    drift: DriftSpec | None = None,
) -> pa.Table:
    """``n_rows`` monthly-style account snapshots with event timestamps in ``[start, end)``.

    About three snapshots per customer (ids ``C0000000``…, stable across periods so later periods
    update the same customers), sorted by customer and time; the label is drawn from a logistic
    relation on the features (see :func:`_reference_logit`), so ROC AUC of a good model is ~0.8.
    Timestamps are UTC, whole seconds, unique per customer. Same arguments, same table.
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    t0, t1 = _as_datetime(start), _as_datetime(end)
    span_s = int((t1 - t0).total_seconds())
    if span_s < 1:
        raise ValueError(f"end ({t1.isoformat()}) must be after start ({t0.isoformat()})")
    drift = drift or DriftSpec()
    rng = np.random.default_rng(seed)
    g = _Gen(rng, drift)

    # --- customers (static attributes) and their snapshots ---
    n_cust = max(1, round(n_rows / _SNAPSHOTS_PER_CUSTOMER))
    cust = np.sort(rng.integers(0, n_cust, n_rows))
    secs = rng.integers(0, span_s, n_rows)
    order = np.lexsort((secs, cust))
    cust, secs = cust[order], secs[order]
    for _ in range(100):  # same customer, same second: move the later one on (rare, converges fast)
        dup = np.flatnonzero((cust[1:] == cust[:-1]) & (secs[1:] <= secs[:-1])) + 1
        if dup.size == 0:
            break
        secs[dup] = secs[dup - 1] + 1
    years = secs / (365.25 * 86400)

    # Static per customer: latent risk, age at start, employment, housing, region, income level.
    risk_c = rng.normal(0.0, 1.0, n_cust)
    age0_c = np.clip(rng.normal(42, 13, n_cust), 18, 85)
    young_c, old_c = age0_c < 25, age0_c >= 62
    emp_c = g.choose(
        "employment_type",
        np.where(
            young_c[:, None],
            [0.45, 0.05, 0.10, 0.0, 0.40],
            np.where(old_c[:, None], [0.20, 0.10, 0.05, 0.65, 0.0], [0.72, 0.17, 0.07, 0.03, 0.01]),
        ),
    )
    housing_c = g.choose("housing", np.where(young_c[:, None], [0.05, 0.80, 0.05, 0.10], [0.35, 0.25, 0.35, 0.05]))
    region_c = g.choose("region", np.tile([0.2, 0.18, 0.22, 0.2, 0.2], (n_cust, 1)))
    median_income = np.array([45000.0, 52000.0, 12000.0, 28000.0, 9000.0])
    income_c = median_income[emp_c] * np.exp(rng.normal(0, 0.5, n_cust))
    tier_score_c = np.log(income_c) + rng.normal(0, 0.5, n_cust)
    if "income" in drift.shift:  # shifted incomes move customers between card tiers too
        tier_score_c = tier_score_c + drift.shift["income"] * 0.5
    tier_p = np.zeros((n_cust, 4))
    tier_p[np.arange(n_cust), np.searchsorted([10.4, 10.9, 11.4], tier_score_c)] = 1.0
    tier_c = g.choose("card_tier", 0.9 * tier_p + 0.025)  # every tier appears in every income band

    risk, age0, emp, housing, region, tier = (a[cust] for a in (risk_c, age0_c, emp_c, housing_c, region_c, tier_c))
    age = g.shifted("age", np.floor(age0 + years))
    young, old = age < 25, age >= 62

    income_full = g.shifted("income", income_c[cust] * np.exp(rng.normal(0, 0.05, n_rows)))
    income_full = np.round(np.maximum(income_full, 1000.0), 2)

    limit = income_full * np.array([0.1, 0.2, 0.3, 0.5])[tier] * np.exp(rng.normal(0, 0.2, n_rows))
    credit_limit = g.shifted("credit_limit", np.maximum(np.round(limit, -2), 500.0))
    util_raw = _sigmoid(-0.7 + 0.9 * risk + rng.normal(0, 0.7, n_rows)) * 1.1
    utilization = g.shifted("utilization", np.round(util_raw, 4))
    balance = g.shifted("balance", np.round(utilization * credit_limit, 2))
    num_accounts = g.shifted("num_accounts", rng.poisson(2.5 + age / 20).astype(np.float64))
    late = g.shifted("num_late_payments_12m", rng.poisson(np.exp(-1.4 + 0.9 * risk)).astype(np.float64))
    hist_delinquent = rng.random(n_rows) < 0.3
    msld = np.where(
        late > 0, rng.uniform(0, 12, n_rows), np.where(hist_delinquent, rng.uniform(13, 120, n_rows), np.nan)
    )
    msld = g.shifted("months_since_last_delinquency", np.round(msld, 1))
    tenure0 = np.minimum(rng.exponential(60, n_cust)[cust], (age0 - 18) * 12)
    tenure = g.shifted("tenure_months", np.floor(tenure0 + years * 12))
    spend = g.shifted(
        "avg_monthly_spend", np.round(credit_limit * rng.uniform(0.05, 0.3, n_rows) * np.exp(0.1 * risk), 2)
    )
    pay = g.shifted("payment_ratio", np.round(np.exp(rng.normal(0.1 - 0.45 * risk, 0.6, n_rows)), 4))
    cash = g.shifted("cash_advance_ratio", np.round(rng.beta(1.0, 12.0, n_rows) + np.maximum(0, 0.06 * risk), 4))
    inquiries = g.shifted("num_inquiries_6m", rng.poisson(np.exp(0.1 + 0.5 * risk)).astype(np.float64))
    other_debt = income_full * np.exp(rng.normal(-1.2, 0.8, n_rows))
    dti = g.shifted("debt_to_income", np.round((balance + other_debt) / income_full, 3))
    sessions = g.shifted(
        "online_sessions_30d", rng.poisson(np.where(young, 35.0, np.where(old, 6.0, 18.0))).astype(np.float64)
    )
    channel_p = np.where(old[:, None], [0.6, 0.3, 0.1], [0.2, 0.65, 0.15])
    channel = g.choose("channel", channel_p)
    autopay = (rng.random(n_rows) < _sigmoid(0.4 - 0.6 * risk)).astype(np.float64)

    num = {
        "age": age,
        "income": income_full,
        "credit_limit": credit_limit,
        "balance": balance,
        "utilization": utilization,
        "num_accounts": num_accounts,
        "num_late_payments_12m": late,
        "months_since_last_delinquency": msld,
        "tenure_months": tenure,
        "avg_monthly_spend": spend,
        "payment_ratio": pay,
        "cash_advance_ratio": cash,
        "num_inquiries_6m": inquiries,
        "debt_to_income": dti,
        "online_sessions_30d": sessions,
        "autopay": autopay,
    }
    # Natural missingness, decided before the label so the label relation uses true values.
    natural_missing = {
        "income": 0.04,
        "avg_monthly_spend": 0.03,
        "payment_ratio": 0.05,
        "cash_advance_ratio": 0.08,
        "online_sessions_30d": 0.10,
    }
    null_mask: dict[str, np.ndarray] = {c: rng.random(n_rows) < p for c, p in natural_missing.items()}
    null_mask["months_since_last_delinquency"] = np.isnan(msld)

    logit = _reference_logit(num, emp, tier)
    if drift.concept:
        logit = (1 - drift.concept) * logit + drift.concept * _concept_logit(num, emp, housing)
    # Part of the risk is never observed (customer-level and per snapshot): keeps ROC AUC realistic.
    logit = logit + 0.6 * risk + rng.normal(0.0, 1.3, n_rows)
    label = (rng.random(n_rows) < _sigmoid(logit)).astype(np.int64)

    null_mask["debt_to_income"] = null_mask["income"].copy()
    null_mask["channel"] = rng.random(n_rows) < 0.02
    for col, share in drift.missing.items():
        extra = rng.random(n_rows) < share
        null_mask[col] = null_mask.get(col, np.zeros(n_rows, dtype=bool)) | extra

    def column(name: str) -> pa.Array:
        mask = null_mask.get(name)
        if name in _NUMERIC_BY_NAME:
            kind = _NUMERIC_BY_NAME[name][0]
            values = np.nan_to_num(num[name], nan=0.0)
            if kind == "int":
                return pa.array(values.astype(np.int64), type=pa.int64(), mask=mask)
            return pa.array(values, type=pa.float64(), mask=mask)
        if name == "autopay_enabled":
            return pa.array(autopay.astype(bool), type=pa.bool_(), mask=mask)
        codes = {"employment_type": emp, "housing": housing, "region": region, "card_tier": tier, "channel": channel}[
            name
        ]
        values = pa.array(CATEGORIES[name], type=pa.string()).take(pa.array(codes))
        for new_value, share in drift.new_categories.get(name, {}).items():
            values = pc.if_else(pa.array(rng.random(n_rows) < share), new_value, values)
        if mask is not None:
            values = pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), values)
        return values

    ids = pc.binary_join_element_wise("C", pc.utf8_lpad(pc.cast(pa.array(np.arange(n_cust)), pa.string()), 7, "0"), "")
    start_us = int(t0.timestamp()) * 1_000_000
    ts = pa.array(start_us + secs.astype(np.int64) * 1_000_000, type=pa.int64()).cast(_TS_TYPE)
    arrays = [ids.take(pa.array(cust)), ts, *(column(n) for n in FEATURES), pa.array(label, type=pa.int64())]
    return pa.Table.from_arrays(arrays, names=list(COLUMNS))


@dataclass(frozen=True)
class Period:
    """One file to write: a name, a time range and the drift it carries."""

    name: str
    start: datetime
    end: datetime
    drift: DriftSpec = field(default_factory=DriftSpec)


def default_periods(
    start: datetime | str = "2026-01-01",
    months: int = 3,
    drifts: Sequence[str] = ("covariate", "concept"),
) -> list[Period]:
    """A reference period (``months`` x 30 days, no drift), then 30 days per named preset in ``drifts``."""
    unknown = [d for d in drifts if d not in PRESETS]
    if unknown:
        raise ValueError(f"unknown drift preset(s) {', '.join(unknown)}; choose from {', '.join(PRESETS)}")
    t0 = _as_datetime(start)
    month = timedelta(days=30)
    periods = [Period("reference", t0, t0 + months * month, PRESETS["none"])]
    for d in drifts:
        begin = periods[-1].end
        periods.append(Period(d, begin, begin + month, PRESETS[d]))
    return periods


FileFormat = Literal["parquet", "csv", "csv.gz"]


def write_table(table: pa.Table, path: str | Path, fmt: FileFormat | None = None) -> Path:
    """Write ``table`` as Parquet (zstd), CSV or gzip CSV; the format defaults to the suffix."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = Path(path)
    if fmt is None:
        fmt = "csv.gz" if path.name.endswith(".csv.gz") else "csv" if path.suffix == ".csv" else "parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(table, path, compression="zstd")
    elif fmt == "csv":
        pacsv.write_csv(table, path)
    elif fmt == "csv.gz":
        with pa.CompressedOutputStream(str(path), "gzip") as out:
            pacsv.write_csv(table, out)
    else:
        raise ValueError(f"unknown format {fmt!r}; use parquet, csv or csv.gz")
    return path


def write_periods(
    out_dir: str | Path,
    *,
    rows_per_period: int = 20_000,
    periods: Sequence[Period] | None = None,
    fmt: FileFormat = "parquet",
    seed: int = 7,
) -> list[Path]:
    """Write one file per period (``<nn>_<name>.<fmt>``); period ``i`` uses seed ``seed + i``."""
    paths = []
    for i, p in enumerate(periods if periods is not None else default_periods()):
        table = generate(rows_per_period, p.start, p.end, seed=seed + i, drift=p.drift)
        paths.append(write_table(table, Path(out_dir) / f"{i:02d}_{p.name}.{fmt}", fmt))
    return paths


def describe(table: pa.Table) -> dict[str, Any]:
    """Small summary used by the CLI script (rows, customers, time range, positive rate)."""
    ts = table.column(TIMESTAMP)
    return {
        "rows": table.num_rows,
        "customers": pc.count_distinct(table.column(ENTITY)).as_py(),
        "start": pc.min(ts).as_py().isoformat() if table.num_rows else None,
        "end": pc.max(ts).as_py().isoformat() if table.num_rows else None,
        "positive_rate": round(float(pc.mean(table.column(LABEL)).as_py() or 0.0), 4),
    }
