"""Feature store benchmarks: ingest validation + curated write, and the point-in-time join.

1. Validate and write 1M rows x 25 columns in-process (read Parquet bytes → validate every check
   → accepted rows → day partitions → zstd Parquet), against the naive validator a user would
   write first: pandas, one Python check per row and column (measured on a sample, compared in
   rows/s, and checked to reject exactly the same rows).
2. Point-in-time join of 1M label events against 10M feature rows, against ``pandas.merge_asof``
   (the usual choice; it needs both sides sorted by time), checked to give the same values.

Each measurement runs in its own fresh process, so "peak RSS" is that job's high-water mark
(including its input data), not the whole script's.

    python benchmarks/features.py            # full sizes
    python benchmarks/features.py --quick    # small sizes, a few seconds
    python benchmarks/features.py --json out.json
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import print_table, write_json

ROOT = Path(__file__).resolve().parents[1]
BAD_SHARE = 0.002  # rows broken on purpose (range, category, null) so rejection paths are exercised


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------
def _feature_set() -> Any:
    """credit_default plus one float feature: 25 columns (entity, timestamp, 22 features, label)."""
    from driftline.features.schema import Feature, load_feature_set

    fs = load_feature_set(ROOT / "examples" / "feature_sets" / "credit_default.yaml")
    extra = Feature(name="bureau_score", type="float", nullable=True, min=0, max=1000)
    return fs.model_copy(update={"features": (*fs.features, extra)})


def _upload_bytes(n_rows: int, seed: int = 1, *, time_ordered: bool = False) -> bytes:
    """A Parquet upload of ``n_rows`` over 90 days with ~0.2 % broken rows.

    The generator's order (by customer, then time) is the worst case for the day partitioning;
    ``time_ordered`` sorts by event time first, as exports from a warehouse usually are.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from driftline.datasets.credit_default import generate

    t = generate(n_rows, "2026-01-01", "2026-04-01", seed=seed)
    rng = np.random.default_rng(seed)
    t = t.append_column("bureau_score", pa.array(rng.uniform(300, 850, n_rows)))
    bad = rng.random(n_rows) < BAD_SHARE
    kind = rng.integers(0, 3, n_rows)
    age = np.where(bad & (kind == 0), 150, t.column("age").to_numpy())
    region = np.where(bad & (kind == 1), "atlantis", t.column("region").to_numpy(zero_copy_only=False))
    util = t.column("utilization").to_numpy(zero_copy_only=False).astype(float)
    util_mask = bad & (kind == 2)
    t = t.set_column(t.column_names.index("age"), "age", pa.array(age))
    t = t.set_column(t.column_names.index("region"), "region", pa.array(region, pa.string()))
    t = t.set_column(t.column_names.index("utilization"), "utilization", pa.array(util, mask=util_mask))
    if time_ordered:
        t = t.sort_by("event_timestamp")
    sink = pa.BufferOutputStream()
    pq.write_table(t, sink, compression="zstd")  # as a typical exporter writes it: Arrow's defaults
    return bytes(sink.getvalue().to_pybytes())


# ----------------------------------------------------------------------------------------------
# 1. validate + write
# ----------------------------------------------------------------------------------------------
def _ours_validate_write(data: bytes, fs: Any) -> dict[str, Any]:
    from driftline.features.curated import curated_files
    from driftline.features.readers import read_bytes
    from driftline.features.validation import validate

    read = read_bytes(data, "upload.parquet", fs)
    result = validate(read.table, fs)
    accepted = result.accepted_table(decode=False)  # as ingest does
    out = sum(len(body) for _, body in curated_files(accepted, fs.name, fs.timestamp, "bench"))
    rejected = result.rejected_table()
    return {
        "rows": result.rows_total,
        "rejected": rejected.num_rows,
        "out_bytes": out,
        "rejected_rows": sorted(rejected.column("_row").to_pylist()),
    }


def naive_validate_write(data: bytes, fs: Any, n_rows: int) -> dict[str, Any]:
    """What a first version usually looks like: pandas, one Python check per row and column."""
    import io
    import math

    import pandas as pd

    df = pd.read_parquet(io.BytesIO(data)).head(n_rows)
    errors: list[int] = []
    feats = {f.name: f for f in fs.features}
    for i, row in enumerate(df.to_dict("records")):
        ok = all(row.get(e) not in (None, "") for e in fs.entity) and row.get(fs.timestamp) is not None
        for name, f in feats.items():
            v = row.get(name)
            missing = v is None or (isinstance(v, float) and math.isnan(v))
            if missing:
                ok &= f.nullable
                continue
            if f.type in ("int", "float"):
                try:
                    x = float(v)
                except (TypeError, ValueError):
                    ok = False
                    continue
                if f.type == "int" and not float(x).is_integer():
                    ok = False
                if (f.min is not None and x < f.min) or (f.max is not None and x > f.max):
                    ok = False
            elif f.type == "categorical":
                ok &= v in (f.categories or ())
            elif f.type == "bool":
                ok &= isinstance(v, bool)
        if not ok:
            errors.append(i)
    keys = df[[*fs.entity, fs.timestamp]]
    dup = keys.duplicated(keep=False).to_numpy().nonzero()[0].tolist()
    bad = sorted(set(errors) | set(dup))
    accepted = df.drop(index=df.index[bad])
    day = accepted[fs.timestamp].dt.strftime("%Y-%m-%d")
    out = 0
    for _, part in accepted.groupby(day):
        buf = io.BytesIO()
        part.to_parquet(buf, compression="zstd", index=False)
        out += len(buf.getvalue())
    return {"rows": len(df), "rejected": len(bad), "out_bytes": out, "rejected_rows": bad}


# ----------------------------------------------------------------------------------------------
# 2. point-in-time join
# ----------------------------------------------------------------------------------------------
def _pit_data(n_labels: int, n_features: int, n_entities: int, seed: int = 2) -> tuple[Any, Any]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    year_us = 365 * 86400 * 1_000_000
    t0 = 1_767_225_600_000_000  # 2026-01-01

    def ids(n: int) -> pa.Array:
        codes = pa.array(rng.integers(0, n_entities, n))
        return pc.binary_join_element_wise("E", pc.utf8_lpad(pc.cast(codes, pa.string()), 8, "0"), "")

    ts_type = pa.timestamp("us", tz="UTC")
    feats = pa.table(
        {
            "entity": ids(n_features),
            "ts": pa.array(t0 + rng.integers(0, year_us, n_features), pa.int64()).cast(ts_type),
            **{f"f{i}": pa.array(rng.random(n_features)) for i in range(5)},
        }
    )
    labels = pa.table(
        {
            "entity": ids(n_labels),
            "ts": pa.array(t0 + rng.integers(0, year_us, n_labels), pa.int64()).cast(ts_type),
            "label": pa.array(rng.integers(0, 2, n_labels)),
        }
    )
    return labels, feats


def _ours_pit(labels: Any, feats: Any, max_age: Any) -> Any:
    from driftline.features.training_set import point_in_time_join

    return point_in_time_join(labels, feats, "entity", "ts", max_age)


def _merge_asof(labels: Any, feats: Any, max_age: Any) -> Any:
    import pandas as pd

    left = labels.to_pandas()
    left["row"] = range(len(left))
    right = feats.to_pandas()
    out = pd.merge_asof(
        left.sort_values("ts"),
        right.sort_values("ts"),
        on="ts",
        by="entity",
        tolerance=pd.Timedelta(max_age) if max_age is not None else None,
    )
    return out.sort_values("row")


# ----------------------------------------------------------------------------------------------
# jobs (each in a fresh process)
# ----------------------------------------------------------------------------------------------
def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def job_validate(kind: str, n_rows: int, sample: int, repeats: int, time_ordered: bool) -> dict[str, Any]:
    fs = _feature_set()
    data = _upload_bytes(n_rows, time_ordered=time_ordered)
    times = []
    result: dict[str, Any] = {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = _ours_validate_write(data, fs) if kind == "ours" else naive_validate_write(data, fs, sample)
        times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    return {
        "seconds": seconds,
        "rows": result["rows"],
        "rows_per_s": result["rows"] / seconds,
        "rejected": result["rejected"],
        "rejected_rows": result["rejected_rows"][:100_000],
        "input_mb": len(data) / 1e6,
        "output_mb": result["out_bytes"] / 1e6,
        "peak_rss_mb": _peak_rss_mb(),
    }


def job_pit(kind: str, n_labels: int, n_features: int, n_entities: int) -> dict[str, Any]:
    import datetime as dt

    import numpy as np

    labels, feats = _pit_data(n_labels, n_features, n_entities)
    max_age = dt.timedelta(days=90)
    t0 = time.perf_counter()
    out = _ours_pit(labels, feats, max_age) if kind == "ours" else _merge_asof(labels, feats, max_age)
    seconds = time.perf_counter() - t0
    col = out.column("f0").to_numpy(zero_copy_only=False) if kind == "ours" else out["f0"].to_numpy()
    f0 = col.astype(float)
    return {
        "seconds": seconds,
        "matched": int(np.isfinite(f0).sum()),
        "checksum": float(np.nansum(f0)),
        "peak_rss_mb": _peak_rss_mb(),
    }


def _run(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return dict(pool.apply(fn, args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Feature store benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds, for CI and development)")
    parser.add_argument("--json", type=Path, default=None, help="write flat JSON results here")
    args = parser.parse_args(argv)
    if args.quick:
        n_rows, sample, repeats = 100_000, 5_000, 1
        n_labels, n_features, n_entities = 100_000, 1_000_000, 100_000
    else:
        n_rows, sample, repeats = 1_000_000, 50_000, 3
        n_labels, n_features, n_entities = 1_000_000, 10_000_000, 1_000_000

    ordered = _run(job_validate, "ours", n_rows, sample, repeats, True)
    ours = _run(job_validate, "ours", n_rows, sample, repeats, False)
    naive = _run(job_validate, "naive", n_rows, sample, 1, False)
    # same decisions on the sample the naive validator saw
    ours_sample = [r for r in ours["rejected_rows"] if r < sample]
    agree = ours_sample == naive["rejected_rows"]
    ratio = ours["rows_per_s"] / naive["rows_per_s"]
    ratio_ordered = ordered["rows_per_s"] / naive["rows_per_s"]

    def row(job: str, r: dict[str, Any]) -> dict[str, Any]:
        return {
            "job": job,
            "rows": r["rows"],
            "seconds": r["seconds"],
            "rows/s": r["rows_per_s"],
            "rejected": r["rejected"],
            "output MB": r["output_mb"],
            "peak RSS MB": r["peak_rss_mb"],
        }

    print_table(
        [
            row("driftline, time-ordered upload", ordered),
            row("driftline, unordered upload", ours),
            row("naive pandas row-wise (unordered)", naive),
        ],
        title=f"Validate + write, {n_rows:,} rows x 25 columns over 90 days (naive on the first "
        f"{sample:,} rows); ratio {ratio_ordered:.0f}x (time-ordered) / {ratio:.0f}x "
        f"(unordered); same rejected rows on the sample: {agree}",
    )

    pit_ours = _run(job_pit, "ours", n_labels, n_features, n_entities)
    pit_pd = _run(job_pit, "pandas", n_labels, n_features, n_entities)
    tolerance = 1e-6 * max(1.0, abs(pit_pd["checksum"]))
    same = pit_ours["matched"] == pit_pd["matched"] and abs(pit_ours["checksum"] - pit_pd["checksum"]) < tolerance
    print_table(
        [
            {
                "job": "point-in-time join (driftline)",
                "labels": n_labels,
                "features": n_features,
                "seconds": pit_ours["seconds"],
                "matched": pit_ours["matched"],
                "peak RSS MB": pit_ours["peak_rss_mb"],
            },
            {
                "job": "pandas.merge_asof (sort + join)",
                "labels": n_labels,
                "features": n_features,
                "seconds": pit_pd["seconds"],
                "matched": pit_pd["matched"],
                "peak RSS MB": pit_pd["peak_rss_mb"],
            },
        ],
        title=f"Point-in-time join, max age 90 days; ratio {pit_pd['seconds'] / pit_ours['seconds']:.2f}x; "
        f"same result: {same}",
    )

    write_json(
        args.json,
        {
            "quick": args.quick,
            "validate_rows": ours["rows"],
            "validate_columns": 25,
            "validate_seconds_s": ours["seconds"],
            "validate_rows_per_s": ours["rows_per_s"],
            "validate_time_ordered_seconds_s": ordered["seconds"],
            "validate_time_ordered_rows_per_s": ordered["rows_per_s"],
            "ratio_vs_naive_pandas_time_ordered": ratio_ordered,
            "validate_peak_rss_mb": ours["peak_rss_mb"],
            "validate_input_mb": ours["input_mb"],
            "validate_output_mb": ours["output_mb"],
            "validate_time_ordered_output_mb": ordered["output_mb"],
            "validate_time_ordered_peak_rss_mb": ordered["peak_rss_mb"],
            "naive_sample_rows": naive["rows"],
            "naive_rows_per_s": naive["rows_per_s"],
            "naive_peak_rss_mb": naive["peak_rss_mb"],
            "ratio_vs_naive_pandas": ratio,
            "validators_agree": agree,
            "pit_label_rows": n_labels,
            "pit_feature_rows": n_features,
            "pit_seconds_s": pit_ours["seconds"],
            "pit_peak_rss_mb": pit_ours["peak_rss_mb"],
            "merge_asof_seconds_s": pit_pd["seconds"],
            "merge_asof_peak_rss_mb": pit_pd["peak_rss_mb"],
            "ratio_vs_merge_asof": pit_pd["seconds"] / pit_ours["seconds"],
            "pit_results_agree": same,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
