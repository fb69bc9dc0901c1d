"""Point-in-time join of N label events x M feature rows: the Athena query on DuckDB vs the in-process join.

Generates ``--rows`` feature rows (``--entities`` entities, 5 float features, timestamps over ``--days``
UTC days) as Hive-partitioned zstd Parquet (``date=YYYY-MM-DD/``, as the curated dataset) and ``--events``
label events (random entities, some without features, random times) in a temporary folder, then runs in
two fresh worker processes:

- duckdb: the exact SELECT :mod:`driftline.features.athena_training_set` sends
  (``athena_queries.point_in_time_training_set``, label events as the spine table), transpiled Trino ->
  DuckDB by sqlglot and written with ``COPY ... TO`` Parquet (what the local Athena's UNLOAD does),
  on DuckDB directly over the local files (not through the emulator's S3 and moto);
- in-process: the files read into Arrow and :func:`driftline.features.training_set.point_in_time_join`
  (the core of ``build_training_set``, without S3).

Reported per worker: wall time of the join (reading included) and peak RSS (VmHWM), matched rows (both
must agree), and the ratios. ``--json PATH`` writes flat keys with units.

    .venv/bin/python benchmarks/training_set.py --events 1000000 --rows 10000000 --json /tmp/pit.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

START = datetime(2026, 1, 1, tzinfo=UTC)
FEATURES = [f"f{i}" for i in range(5)]
DAY_US = 86_400_000_000


def peak_mb() -> float:
    """VmHWM of this process (ru_maxrss would keep the forking parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def generate(folder: Path, events: int, rows: int, entities: int, days: int, seed: int) -> None:
    """Feature rows day by day (bounded memory), unique per (entity, time); label events in one file."""
    rng = np.random.default_rng(seed)
    start_us = int(START.timestamp() * 1_000_000)
    per_day = np.full(days, rows // days)
    per_day[: rows % days] += 1
    for d, n in enumerate(per_day):
        day = (START + timedelta(days=d)).strftime("%Y-%m-%d")
        ent = rng.integers(0, entities, n)
        # microsecond times unique per row: a random permutation slot of the day
        ts = start_us + d * DAY_US + np.sort(rng.choice(DAY_US // 1000, n, replace=False)) * 1000 + 7
        cols: dict[str, Any] = {
            "entity": pa.array(np.char.add("e", ent.astype(str)), pa.string()),
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        }
        for f in FEATURES:
            cols[f] = rng.normal(size=n)
        out = folder / "features" / f"date={day}"
        out.mkdir(parents=True)
        pq.write_table(pa.table(cols), out / "part-0.parquet", compression="zstd")
    ent = rng.integers(0, int(entities * 1.05), events)  # ~5 % of the events have no feature rows
    ts = start_us + rng.integers(0, days * DAY_US, events)
    pq.write_table(
        pa.table(
            {
                "entity": pa.array(np.char.add("e", ent.astype(str)), pa.string()),
                "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
                "label": rng.integers(0, 2, events),
            }
        ),
        folder / "events.parquet",
        compression="zstd",
    )


def run_duckdb(folder: Path, threads: int, memory_limit: str) -> dict[str, Any]:
    import duckdb
    import sqlglot

    from driftline.athena_queries import point_in_time_training_set

    sql = point_in_time_training_set(
        table="features",
        keys=["entity"],
        time="ts",
        labels=["label"],
        columns=FEATURES,
        feature_time_as="feature_timestamp",
        spine=("events", "build", "b", "driftline_event"),
    )
    duck = sqlglot.transpile(sql, read="trino", write="duckdb")[0]
    t0 = time.perf_counter()
    # spill inside the run's temporary folder (removed with it), not ./.tmp of the working directory
    config = {"threads": threads, "memory_limit": memory_limit, "temp_directory": str(folder / "spill")}
    con = duckdb.connect(config=config)
    glob = str(folder / "features" / "*" / "*.parquet")
    con.execute(f"CREATE VIEW features AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true)")
    con.execute(
        "CREATE VIEW events AS SELECT *, 'b' AS build, row_number() OVER () AS driftline_event "
        f"FROM read_parquet('{folder / 'events.parquet'}')"
    )
    out = folder / "duckdb-out.parquet"
    con.execute(f"COPY ({duck}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
    seconds = time.perf_counter() - t0
    meta = pq.read_metadata(out)
    matched = con.execute(f"SELECT count(*) FROM read_parquet('{out}') WHERE feature_timestamp IS NOT NULL").fetchone()
    return {"seconds": seconds, "rows": meta.num_rows, "matched": int(matched[0]) if matched else 0}


def run_in_process(folder: Path) -> dict[str, Any]:
    import pyarrow.compute as pc

    from driftline.features.training_set import FEATURE_TIMESTAMP, point_in_time_join

    t0 = time.perf_counter()
    feats = pq.read_table(folder / "features", partitioning="hive").drop_columns(["date"])
    events = pq.read_table(folder / "events.parquet")
    joined = point_in_time_join(events, feats, "entity", "ts", feature_columns=FEATURES)
    seconds = time.perf_counter() - t0
    matched = int(pc.sum(pc.is_valid(joined.column(FEATURE_TIMESTAMP))).as_py() or 0)
    return {"seconds": seconds, "rows": joined.num_rows, "matched": matched}


def worker(args: argparse.Namespace) -> None:
    folder = Path(args.dir)
    res = run_duckdb(folder, args.threads, args.memory_limit) if args.worker == "duckdb" else run_in_process(folder)
    res["peak_rss_mb"] = peak_mb()
    print(json.dumps(res))


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _spawn(kind: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run one side in a fresh process; one that grows past ``--max-rss-gb`` is stopped and reported as out
    of memory (the in-process join holds the whole feature set: on a shared machine it must not take the
    memory of everything else)."""
    cmd = [sys.executable, __file__, "--worker", kind, "--dir", str(folder)]
    cmd += ["--threads", str(args.threads), "--memory-limit", args.memory_limit]
    limit_mb, peak = args.max_rss_gb * 1024, 0.0
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)  # nosec B603 - this script
        while proc.poll() is None:
            peak = max(peak, _rss_mb(proc.pid))
            if peak > limit_mb:
                proc.kill()
                proc.wait()
                return {
                    "error": f"{kind}: out of memory (RSS above {args.max_rss_gb} GB, stopped)",
                    "peak_rss_mb": peak,
                }
            time.sleep(0.2)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        tail = (stderr or "").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        return {"error": f"{kind} worker failed (exit {proc.returncode}): {tail[0]}"}
    return dict(json.loads(stdout.strip().splitlines()[-1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--entities", type=int, default=None, help="default: rows / 100")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    p.add_argument("--memory-limit", default="4GB", help="DuckDB memory limit (it spills beyond)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--skip-in-process", action="store_true")
    p.add_argument("--max-rss-gb", type=float, default=12.0, help="a worker above this RSS is stopped: out of memory")
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true", help="10k events x 100k feature rows (make bench)")
    p.add_argument("--worker", choices=["duckdb", "in-process"], help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    if args.quick:
        args.events, args.rows = min(args.events, 10_000), min(args.rows, 100_000)
    for name in ("events", "rows", "days", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    entities = args.entities or max(1, args.rows // 100)
    with tempfile.TemporaryDirectory(prefix="pit-bench-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        generate(folder, args.events, args.rows, entities, args.days, args.seed)
        gen_s = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in (folder / "features").rglob("*.parquet"))
        duck = _spawn("duckdb", folder, args)
        inproc = {"skipped": True} if args.skip_in_process else _spawn("in-process", folder, args)
    out: dict[str, Any] = {
        "events": args.events,
        "feature_rows": args.rows,
        "entities": entities,
        "days": args.days,
        "duckdb_threads": args.threads,
        "duckdb_memory_limit": args.memory_limit,
        "generate_s": round(gen_s, 2),
        "feature_parquet_mb": round(size / 2**20, 1),
    }
    for prefix, res in (("duckdb", duck), ("in_process", inproc)):
        for k, v in res.items():
            key = {"seconds": "s", "peak_rss_mb": "peak_rss_mb"}.get(k, k)
            out[f"{prefix}_{key}"] = round(v, 2) if isinstance(v, float) else v
    if "seconds" in duck and "seconds" in inproc:
        out["duckdb_over_in_process_time_ratio"] = round(duck["seconds"] / inproc["seconds"], 2)
        out["duckdb_over_in_process_peak_rss_ratio"] = round(duck["peak_rss_mb"] / inproc["peak_rss_mb"], 2)
        out["results_agree"] = duck["rows"] == inproc["rows"] and duck["matched"] == inproc["matched"]
    for k, v in out.items():
        print(f"{k:40s} {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
