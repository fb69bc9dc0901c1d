"""Drift check throughput and memory: driftline vs Evidently's DataDriftPreset vs a scipy loop.

    .venv/bin/python benchmarks/drift.py            # 100k x 25 and 1M x 25
    .venv/bin/python benchmarks/drift.py --quick    # 100k x 25 only
    .venv/bin/python benchmarks/drift.py --json out.json
    .venv/bin/python benchmarks/drift.py --multivariate [--nannyml-python /tmp/venv/bin/python]

Data: 20 numeric + 5 categorical columns (some shifted in the current window), as a pandas
DataFrame, the input users hand to Evidently. Every method runs in its own subprocess, which
builds the same data from the same seed and reports its timings and peak RSS (``ru_maxrss``), so
one method's memory never pollutes another's. Timings are the best of ``--repeat`` runs.

- driftline: the reference profile is built once (``build_s``, what training does) and the
  window checked against it (``check_s``, what every scheduled check pays). ``driftline-arrow``
  is the same check on a pyarrow Table (what the drift Lambda reads from captures/Parquet).
- evidently: ``Report([DataDriftPreset()]).run(current, reference)`` with its default tests
  (Wasserstein / Jensen-Shannon at these sizes); it has no stored profile, so every run pays for
  the reference too. Import time is excluded.
- scipy: a per-column loop, ``ks_2samp`` for numeric columns and ``chi2_contingency`` on value
  counts for categorical ones.

``--multivariate`` measures multivariate drift instead, on the same 25 columns except that
``num_1`` follows ``num_0`` (correlation 0.9) in the reference and opposes it (-0.9) in the window,
so no marginal moves and only a multivariate measure can see it:

- mv-driftline: ``build_profile`` and ``check_drift`` as a whole (per-column tests and the
  multivariate measure), the multivariate part alone (``fit_multivariate``; ``reconstruction_sums``
  and ``reconstruction_check``), and the domain classifier (``multivariate="domain_classifier"``,
  1,000 rows a side).
- mv-nannyml: NannyML's ``DataReconstructionDriftCalculator`` (defaults: 65 % variance; 10 reference
  chunks via ``chunk_size = rows / 10``) fit on the reference and calculated on the window. NannyML is
  not a project dependency: pass ``--nannyml-python`` pointing at an interpreter of a separate venv
  where ``pip install nannyml`` ran; without it the comparison is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json

N_NUM, N_CAT = 20, 5
SHIFTED_NUM = (0, 1, 2, 3)
SHIFTED_CAT = (0,)
CATEGORIES = [np.asarray([f"c{j}_{i}" for i in range(3 + j)], dtype=object) for j in range(N_CAT)]


def make_data(rows: int, seed: int, shifted: bool) -> Any:
    """One window: numeric columns of several shapes, some with missing values; categorical strings."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {}
    for j in range(N_NUM):
        shift = 0.3 if shifted and j in SHIFTED_NUM else 0.0
        kind = j % 4
        if kind == 0:
            x = rng.normal(shift, 1.0, rows)
        elif kind == 1:
            x = rng.lognormal(shift, 0.6, rows)
        elif kind == 2:
            x = rng.uniform(shift, 1.0 + shift, rows)
        else:
            x = rng.poisson(20 + 10 * shift, rows).astype(np.float64)
        if j % 5 == 4:
            x[rng.random(rows) < 0.05] = np.nan
        cols[f"num_{j}"] = x
    for j in range(N_CAT):
        k = len(CATEGORIES[j])
        p = np.full(k, 1.0 / k)
        if shifted and j in SHIFTED_CAT:
            p = np.linspace(2.0, 0.5, k)
            p /= p.sum()
        cols[f"cat_{j}"] = CATEGORIES[j][rng.choice(k, rows, p=p)]
    return pd.DataFrame(cols)


NUM = [f"num_{j}" for j in range(N_NUM)]
CAT = [f"cat_{j}" for j in range(N_CAT)]
EXPECTED = sorted([f"num_{j}" for j in SHIFTED_NUM] + [f"cat_{j}" for j in SHIFTED_CAT])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


CPU: dict[str, float] = {}
"""Best CPU seconds per measured step of this worker (wall time suffers on a shared machine)."""


def best(fn: Any, repeat: int, step: str = "check") -> tuple[float, Any]:
    times, cpus, out = [], [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    CPU[f"{step}_cpu_s"] = min(cpus)
    return min(times), out


def make_mv_data(rows: int, seed: int, flipped: bool) -> Any:
    """The unshifted window with ``num_1`` tied to ``num_0`` (correlation +0.9, or -0.9 when flipped)."""
    df = make_data(rows, seed, False)
    rng = np.random.default_rng(seed + 1000)
    rho = -0.9 if flipped else 0.9
    df["num_1"] = rho * df["num_0"].to_numpy() + np.sqrt(1 - rho**2) * rng.normal(0.0, 1.0, rows)
    return df


# ---------------------------------------------------------------- workers (one per subprocess)
def run_mv_driftline(ref: Any, cur: Any, repeat: int) -> dict[str, Any]:
    from driftline.drift import build_profile, check_drift
    from driftline.drift.multivariate import fit_multivariate, reconstruction_check, reconstruction_sums
    from driftline.drift.profile import CategoricalProfile

    base = peak_rss_mb()
    build_s, profile = best(lambda: build_profile(ref, NUM, CAT), repeat, "build")
    cats = [col for col in profile.columns.values() if isinstance(col, CategoricalProfile)]
    counts = {col.name: (col.keys, col.counts.tolist()) for col in cats}
    mv_build_s, model = best(lambda: fit_multivariate(ref, NUM, CAT, counts), repeat, "mv_build")
    check_s, result = best(lambda: check_drift(profile, cur), repeat)
    mv_check_s, verdict = best(lambda: reconstruction_check(model, reconstruction_sums(model, cur)), repeat, "mv_check")
    assert verdict.drifted == bool(result.multivariate and result.multivariate.drifted)
    out: dict[str, Any] = {
        "build_s": build_s,
        "mv_build_s": mv_build_s,
        "check_s": check_s,
        "mv_check_s": mv_check_s,
        "mv_drifted": bool(result.multivariate and result.multivariate.drifted),
        "column_drifted": sorted(result.drifted_columns),
        "data_rss_mb": base,
        "profile_kb": len(profile.to_json()) / 1024,
    }
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return out
    dc_s, dc = best(lambda: check_drift(profile, cur, multivariate="domain_classifier"), 1, "domain_classifier")
    out["domain_classifier_s"] = dc_s
    out["domain_classifier_auc"] = dc.multivariate.statistic if dc.multivariate else None
    out["domain_classifier_drifted"] = bool(dc.multivariate and dc.multivariate.drifted)
    return out


def run_mv_nannyml(ref: Any, cur: Any, repeat: int) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import nannyml as nml
    base = peak_rss_mb()
    cols = NUM + CAT
    calc: Any = None

    def fit() -> Any:
        nonlocal calc
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            calc = nml.DataReconstructionDriftCalculator(column_names=cols, chunk_size=len(ref) // 10)
            return calc.fit(ref)

    def calculate() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return calc.calculate(cur)

    build_s, _ = best(fit, repeat, "build")
    check_s, res = best(calculate, repeat)
    data = res.filter(period="analysis").to_df()
    alerts = [c for c in data.columns if c[-1] == "alert"]
    return {
        "build_s": build_s,
        "check_s": check_s,
        "mv_drifted": bool(data[alerts[0]].any()) if alerts else False,
        "data_rss_mb": base,
        "nannyml_version": str(nml.__version__),
    }


def run_driftline(ref: Any, cur: Any, repeat: int, arrow: bool) -> dict[str, Any]:
    from driftline.drift import build_profile, check_drift

    if arrow:
        import pyarrow as pa

        ref = pa.Table.from_pandas(ref, preserve_index=False)
        cur = pa.Table.from_pandas(cur, preserve_index=False)
    base = peak_rss_mb()
    build_s, profile = best(lambda: build_profile(ref, NUM, CAT), repeat, "build")
    check_s, result = best(lambda: check_drift(profile, cur), repeat)
    return {
        "build_s": build_s,
        "check_s": check_s,
        "drifted": sorted(result.drifted_columns),
        "data_rss_mb": base,
        "profile_kb": len(profile.to_json()) / 1024,
    }


def run_evidently(ref: Any, cur: Any, repeat: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset
    import_s = time.perf_counter() - t0
    base = peak_rss_mb()
    definition = DataDefinition(numerical_columns=NUM, categorical_columns=CAT)

    def run() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return (
                Report([DataDriftPreset()], include_tests=True)
                .run(
                    Dataset.from_pandas(cur, data_definition=definition),
                    Dataset.from_pandas(ref, data_definition=definition),
                )
                .dict()
            )

    check_s, doc = best(run, repeat)
    drifted = sorted(
        t["name"].removeprefix("Value Drift for column ")
        for t in doc["tests"]
        if t["name"].startswith("Value Drift for column ") and t["status"] == "FAIL"
    )
    return {"check_s": check_s, "import_s": import_s, "drifted": drifted, "data_rss_mb": base}


def run_scipy(ref: Any, cur: Any, repeat: int) -> dict[str, Any]:
    from scipy import stats

    base = peak_rss_mb()

    def run() -> list[str]:
        drifted = []
        for c in NUM:
            if stats.ks_2samp(ref[c].dropna().to_numpy(), cur[c].dropna().to_numpy()).pvalue <= 0.05:
                drifted.append(c)
        for c in CAT:
            r, k = ref[c].value_counts(), cur[c].value_counts()
            keys = sorted(set(r.index) | set(k.index))
            table = np.asarray([[r.get(x, 0) for x in keys], [k.get(x, 0) for x in keys]])
            if stats.chi2_contingency(table).pvalue <= 0.05:
                drifted.append(c)
        return sorted(drifted)

    check_s, drifted = best(run, repeat)
    return {"check_s": check_s, "drifted": drifted, "data_rss_mb": base}


def worker(method: str, rows: int, repeat: int) -> None:
    if method.startswith("mv-"):
        ref, cur = make_mv_data(rows, 1, False), make_mv_data(rows, 2, True)
    else:
        ref, cur = make_data(rows, 1, False), make_data(rows, 2, True)
    if method == "mv-driftline":
        out = run_mv_driftline(ref, cur, repeat)
    elif method == "mv-nannyml":
        out = run_mv_nannyml(ref, cur, repeat)
    elif method == "driftline":
        out = run_driftline(ref, cur, repeat, arrow=False)
    elif method == "driftline-arrow":
        out = run_driftline(ref, cur, repeat, arrow=True)
    elif method == "evidently":
        out = run_evidently(ref, cur, repeat)
    elif method == "scipy":
        out = run_scipy(ref, cur, repeat)
    else:
        raise SystemExit(f"unknown method {method}")
    out["peak_rss_mb"] = peak_rss_mb()
    out.update(CPU)
    print("RESULT " + json.dumps(out))


def spawn(method: str, rows: int, repeat: int, python: str = sys.executable) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "NML_DISABLE_USAGE_LOGGING": "1"}
    proc = subprocess.run(
        [python, __file__, "--worker", method, "--rows", str(rows), "--repeat", str(repeat)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    raise SystemExit(f"{method} at {rows} rows failed:\n{proc.stderr[-3000:]}")


# ---------------------------------------------------------------- driver
def label(rows: int) -> str:
    return f"{rows // 1_000_000}m" if rows >= 1_000_000 else f"{rows // 1000}k"


def bench(rows: int, repeat: int, skip_evidently: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    methods = ["driftline", "driftline-arrow", "scipy"] + ([] if skip_evidently else ["evidently"])
    res = {m: spawn(m, rows, repeat if m != "evidently" or rows < 1_000_000 else 1) for m in methods}
    ours = res["driftline"]
    table, flat = [], {}
    for m in methods:
        r = res[m]
        total = r["check_s"] + r.get("build_s", 0.0)
        row = {
            "rows": rows,
            "method": m,
            "build_s": r.get("build_s", ""),
            "check_s": r["check_s"],
            "build+check_s": total,
            "check_cpu_s": r["check_cpu_s"],
            "build_cpu_s": r.get("build_cpu_s", ""),
            "check_rows_per_s": rows / r["check_s"],
            "peak_rss_mb": r["peak_rss_mb"],
            "rss_over_data_mb": r["peak_rss_mb"] - r["data_rss_mb"],
            "drift_found_ok": r["drifted"] == EXPECTED,
        }
        table.append(row)
        prefix = f"{label(rows)}_{m.replace('-', '_')}"
        for key in (
            "build_s",
            "check_s",
            "check_cpu_s",
            "build_cpu_s",
            "peak_rss_mb",
            "rss_over_data_mb",
            "check_rows_per_s",
        ):
            if row[key] != "":
                flat[f"{prefix}_{key}"] = row[key]
        flat[f"{prefix}_drift_found_ok"] = row["drift_found_ok"]
    for base in (["evidently"] if "evidently" in res else []) + ["scipy"]:
        t = res[base]["check_s"]
        flat[f"{label(rows)}_ratio_vs_{base}"] = t / ours["check_s"]
        flat[f"{label(rows)}_ratio_vs_{base}_incl_build"] = t / (ours["check_s"] + ours["build_s"])
        flat[f"{label(rows)}_arrow_ratio_vs_{base}"] = t / res["driftline-arrow"]["check_s"]
        c = res[base]["check_cpu_s"]
        flat[f"{label(rows)}_cpu_ratio_vs_{base}"] = c / ours["check_cpu_s"]
        flat[f"{label(rows)}_cpu_ratio_vs_{base}_incl_build"] = c / (ours["check_cpu_s"] + ours["build_cpu_s"])
    if "evidently" in res:
        flat[f"{label(rows)}_evidently_import_s"] = res["evidently"]["import_s"]
        flat[f"{label(rows)}_memory_ratio_vs_evidently"] = res["evidently"]["peak_rss_mb"] / ours["peak_rss_mb"]
    flat[f"{label(rows)}_profile_kb"] = ours["profile_kb"]
    return table, flat


def bench_multivariate(
    rows: int, repeat: int, nannyml_python: str | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    res = {"mv-driftline": spawn("mv-driftline", rows, repeat)}
    if nannyml_python:
        res["mv-nannyml"] = spawn("mv-nannyml", rows, repeat, nannyml_python)
    table, flat = [], {}
    for m, r in res.items():
        row = {
            "rows": rows,
            "method": m,
            "build_s": r["build_s"],
            "mv_build_s": r.get("mv_build_s", r["build_s"]),
            "check_s": r["check_s"],
            "mv_check_s": r.get("mv_check_s", r["check_s"]),
            "check_cpu_s": r["check_cpu_s"],
            "mv_check_cpu_s": r.get("mv_check_cpu_s", r["check_cpu_s"]),
            "peak_rss_mb": r["peak_rss_mb"],
            "rss_over_data_mb": r["peak_rss_mb"] - r["data_rss_mb"],
            "flip_found": r["mv_drifted"],
            "domain_classifier_s": r.get("domain_classifier_s", ""),
            "domain_classifier_auc": r.get("domain_classifier_auc", ""),
        }
        table.append(row)
        prefix = f"{label(rows)}_{m.replace('-', '_')}"
        flat.update({f"{prefix}_{k}": v for k, v in row.items() if k not in ("rows", "method") and v != ""})
        if m == "mv-driftline":
            flat[f"{prefix}_columns_drifted"] = ",".join(r["column_drifted"]) or "none"
            flat[f"{prefix}_profile_kb"] = r["profile_kb"]
    if "mv-nannyml" in res:
        ours, theirs = res["mv-driftline"], res["mv-nannyml"]
        flat[f"{label(rows)}_mv_ratio_vs_nannyml"] = theirs["check_s"] / ours["check_s"]
        flat[f"{label(rows)}_mv_build_ratio_vs_nannyml"] = theirs["build_s"] / ours["build_s"]
        flat[f"{label(rows)}_mv_memory_ratio_vs_nannyml"] = theirs["peak_rss_mb"] / ours["peak_rss_mb"]
        flat["nannyml_version"] = theirs["nannyml_version"]
    return table, flat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100k rows only")
    ap.add_argument("--json", type=Path, help="write flat JSON results here")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    ap.add_argument("--no-evidently", action="store_true", help="skip Evidently (it takes minutes at 1M)")
    ap.add_argument("--multivariate", action="store_true", help="measure multivariate drift instead")
    ap.add_argument("--nannyml-python", help="interpreter of a separate venv with nannyml, for --multivariate")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.rows, args.repeat)
        return
    sizes = [100_000] if args.quick else [100_000, 1_000_000]
    if args.multivariate:
        mv_flat: dict[str, Any] = {"columns": N_NUM + N_CAT}
        for rows in sizes:
            table, f = bench_multivariate(rows, args.repeat, args.nannyml_python)
            mv_flat.update(f)
            print_table(
                table, title=f"multivariate: {rows:,} reference rows vs {rows:,} current rows (num_0/num_1 flipped)"
            )
        write_json(args.json, mv_flat)
        return
    rows_out, flat = [], {"columns": N_NUM + N_CAT, "numeric_columns": N_NUM, "categorical_columns": N_CAT}
    for rows in sizes:
        table, f = bench(rows, args.repeat, args.no_evidently)
        rows_out += table
        flat.update(f)
        print_table(table, title=f"{rows:,} reference rows vs {rows:,} current rows, 25 columns")
        ratios = {k: round(v, 1) for k, v in f.items() if "ratio" in k}
        print("ratios (higher is better for driftline):", json.dumps(ratios))
    last = label(sizes[-1])
    for key in (
        "ratio_vs_evidently",
        "ratio_vs_scipy",
        "ratio_vs_evidently_incl_build",
        "ratio_vs_scipy_incl_build",
        "cpu_ratio_vs_evidently",
        "cpu_ratio_vs_scipy",
        "memory_ratio_vs_evidently",
    ):
        if f"{last}_{key}" in flat:
            flat[key] = flat[f"{last}_{key}"]
    write_json(args.json, flat)


if __name__ == "__main__":
    main()
