"""Feedback labels as training data: does a retraining on them bring the realized metric back after a
concept shift, and what does the join cost?

Uploads follow the reference relation (credit_default); serving traffic then follows a shifted one
(``DriftSpec(concept=...)``), its predictions are captured and labelled through the feedback route's
records. Two versions are trained with the same core: on the uploads only (what a drift-triggered
retraining did before ``training.feedback``) and on the uploads plus the feedback rows
(:mod:`driftline.training.feedback_rows`). Both are scored on fresh shifted traffic neither saw.
The join is timed on its own (captured rows in memory, as the captures reader yields them).

    python benchmarks/feedback_training.py [--uploads N] [--feedback N] [--concept C] [--weight W] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import print_table, write_json  # noqa: E402


def _captures(table: Any, names: list[str], start: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Capture row views and feedback records (every row labelled by its caller) for ``table``."""
    caller = "arn:aws:iam::123456789012:role/client"
    caps, labels = [], []
    cols = {n: table.column(n).to_pylist() for n in [*names, "defaulted"]}
    for i in range(table.num_rows):
        rid = f"req-{i // 100}:{i % 100}"
        ts = (start + timedelta(seconds=i)).isoformat()
        caps.append({"request_id": rid, "ts": ts, "caller": caller, "features": {n: cols[n][i] for n in names}})
        labels.append({"request_id": rid, "label": cols["defaulted"][i], "ts": ts, "by": caller})
    return caps, labels


def _auc(trained: Any, fs: Any, table: Any) -> float:
    from sklearn.metrics import roc_auc_score

    from driftline.training.dataset import encode_table, label_targets
    from driftline.training.onnx_export import OnnxModel

    pred = OnnxModel(trained.onnx).predict(encode_table(fs.input_schema(), table))
    assert pred.probabilities is not None
    return float(roc_auc_score(label_targets(table, fs.label), pred.probabilities[:, 1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uploads", type=int, default=20_000)
    ap.add_argument("--feedback", type=int, default=5_000)
    ap.add_argument("--concept", type=float, default=1.0)
    ap.add_argument("--weight", type=float, default=1.0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from driftline.config import ModelConfig
    from driftline.datasets.credit_default import DriftSpec, generate
    from driftline.features.schema import load_feature_set
    from driftline.serving.labels import Labels
    from driftline.training.core import train_model
    from driftline.training.feedback_rows import combine, feedback_rows, table_schema

    fs = load_feature_set(ROOT / "examples" / "feature_sets" / "credit_default.yaml")
    cfg = ModelConfig(name="credit-default", feature_set=fs.name)
    uploads_raw = generate(args.uploads, "2026-01-01", "2026-07-01", seed=1)
    shifted = DriftSpec(concept=args.concept)
    served = generate(args.feedback, "2026-08-01", "2026-09-01", seed=2, drift=shifted)
    fresh = generate(20_000, "2026-09-01", "2026-10-01", seed=3, drift=shifted)
    schema = table_schema(fs)
    cols = [f.name for f in schema if f.name in uploads_raw.column_names]
    uploads = uploads_raw.select(cols).append_column("feature_timestamp", uploads_raw.column(fs.timestamp))

    caps, records = _captures(served, fs.feature_names, datetime(2026, 8, 1, tzinfo=UTC))
    t = time.perf_counter()
    labels = Labels()
    for r in records:
        labels.add(r)
    rows, stats = feedback_rows(fs, caps, labels, weight=args.weight)
    both = combine(uploads, rows, fs, stats, min_labels=1)
    join_s = time.perf_counter() - t

    results: list[dict[str, Any]] = []
    for name, table in (("uploads only (before)", uploads), ("uploads + feedback", both)):
        t = time.perf_counter()
        trained = train_model(table, fs, cfg, seed=0)
        results.append(
            {
                "training set": name,
                "rows": table.num_rows,
                "train rows": trained.split["train_rows"],
                "ROC AUC on fresh shifted traffic": round(_auc(trained, fs, fresh), 4),
                "ROC AUC on its own holdout": round(trained.metrics.get("roc_auc", float("nan")), 4),
                "train s": round(time.perf_counter() - t, 2),
            }
        )
    print_table(results, title=f"concept shift {args.concept}, {args.feedback:,} feedback labels, weight {args.weight}")
    print(f"join of {len(caps):,} captured rows to {len(labels):,} labels: {join_s:.2f} s ({stats.used:,} rows used)")
    write_json(args.json, {"args": vars(args), "results": results, "join_s": join_s, "feedback": stats.to_dict()})


if __name__ == "__main__":
    main()
