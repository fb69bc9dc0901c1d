"""What segments (``drift.segments``) cost a drift check: time, CPU, memory and profile size.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/segments.py                 # 1M window rows, both modes
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/segments.py --rows 100000 --repeat 2

Data: a 100k-row reference and a window of ``--rows`` rows with 20 normal numeric columns and three
categorical ones; ``region`` has 30 values, of which the ``--max-segments`` most frequent get their own
reference (plus ``__other__``). Each mode (without and with segments) runs in its own subprocess so that
peak RSS (``ru_maxrss``) is its own; the check is ``check_drift(..., distance_above=1000)``, as the
scheduled check calls it. The window is calm: no segment should drift (``drifted_segments`` is printed).
CPU seconds are the steadier figure on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np

NUMERIC = [f"x{i}" for i in range(20)]
CATEGORICAL = ["region", "c1", "c2"]


def _data(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {c: rng.normal(0, 1, n) for c in NUMERIC}
    out["region"] = rng.choice(np.asarray([f"r{i}" for i in range(30)], dtype=object), n)
    out["c1"] = rng.choice(np.asarray(list("abcde"), dtype=object), n)
    out["c2"] = rng.choice(np.asarray(list("xyz"), dtype=object), n)
    return out


def run_one(rows: int, segmented: bool, max_segments: int) -> dict[str, Any]:
    """One mode in this process: build the profile, check one window."""
    from driftline.drift import build_profile, check_drift

    segments = ["region"] if segmented else []
    t = time.perf_counter()
    profile = build_profile(_data(100_000, 1), NUMERIC, CATEGORICAL, segments=segments, max_segments=max_segments)
    build_s = time.perf_counter() - t
    window = _data(rows, 2)
    t, cpu = time.perf_counter(), time.process_time()
    result = check_drift(profile, window, distance_above=1000, segments=segments, min_segment_rows=200)
    return {
        "rows": rows,
        "segments": segmented,
        "build_s": round(build_s, 3),
        "check_s": round(time.perf_counter() - t, 3),
        "check_cpu_s": round(time.process_time() - cpu, 3),
        "profile_bytes": len(profile.to_json()),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "drifted_segments": result.drifted_segments,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--max-segments", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--one", choices=["plain", "segmented"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.rows, args.one == "segmented", args.max_segments)))
        return
    for _ in range(args.repeat):
        for mode in ("plain", "segmented"):
            cmd = [sys.executable, __file__, "--rows", str(args.rows), "--max-segments", str(args.max_segments)]
            out = subprocess.run([*cmd, "--one", mode], check=True, capture_output=True, text=True).stdout
            print(out.strip(), flush=True)


if __name__ == "__main__":
    main()
