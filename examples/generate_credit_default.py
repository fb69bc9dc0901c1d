"""Write example credit-default data: a reference period and later drifted periods.

    python examples/generate_credit_default.py --out data/credit_default --rows 20000 \
        --drift covariate --drift concept --format csv

Files are named ``<nn>_<period>.<format>``; upload them with ``driftline features upload``.
The generator itself lives in :mod:`driftline.datasets.credit_default`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from driftline.datasets.credit_default import PRESETS, default_periods, describe, write_periods


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/credit_default"), help="output directory")
    parser.add_argument("--rows", type=int, default=20_000, help="rows per period (default 20000)")
    parser.add_argument("--start", default="2026-01-01", help="start of the reference period (ISO date)")
    parser.add_argument("--months", type=int, default=3, help="reference period length in 30-day months")
    parser.add_argument(
        "--drift",
        action="append",
        choices=sorted(PRESETS),
        default=None,
        help="a drifted 30-day period after the reference (repeatable; default: covariate then concept)",
    )
    parser.add_argument("--format", choices=["parquet", "csv", "csv.gz"], default="parquet")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.rows < 1 or args.months < 1:
        parser.error("--rows and --months must be at least 1")
    try:
        periods = default_periods(args.start, args.months, args.drift or ("covariate", "concept"))
    except ValueError as e:
        parser.error(str(e))
    paths = write_periods(args.out, rows_per_period=args.rows, periods=periods, fmt=args.format, seed=args.seed)
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    for path in paths:
        table = pq.read_table(path) if args.format == "parquet" else pacsv.read_csv(path)
        print(json.dumps({"file": str(path), **describe(table)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
