"""Training benchmark: Driftline's training run vs the bare scikit-learn fit a user would write.

Same machine, same run, same data (N rows x 25 features: 20 numeric with nulls, 5 categorical):

1. Training wall time (HistGradientBoosting, default parameters): Driftline's ``train_model`` (encode
   through the serving mapping, time split, fit, ONNX export, parity check, evaluation, skops) vs
   ``HistGradientBoostingClassifier().fit`` on the already-encoded matrix (the floor), and vs the
   naive pandas route (``pd.get_dummies`` + fit).
2. ONNX conversion + parity check time, and ONNX Runtime vs scikit-learn inference on the holdout.
3. Registry operation latency against moto, in-process and as a server (the local platform's
   emulator): ``aliases`` (what serving polls), ``get_version``, ``register``, ``approve``,
   ``promote`` and ``audit``, each compared with a raw boto3 ``GetItem`` of the same item (the floor).

    python benchmarks/training.py [--quick] [--rows N] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for _k, _v in {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_SESSION_TOKEN": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}.items():
    os.environ.setdefault(_k, _v)

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from benchmarks._common import print_table, write_json  # noqa: E402

N_NUMERIC, N_CATEGORICAL, N_CATEGORIES = 20, 5, 6


def feature_set() -> Any:
    from driftline.features.schema import parse_feature_set

    feats: list[dict[str, Any]] = [{"name": f"x{i:02d}", "type": "float"} for i in range(N_NUMERIC)]
    feats += [
        {"name": f"c{i}", "type": "categorical", "categories": [f"v{k}" for k in range(N_CATEGORIES)]}
        for i in range(N_CATEGORICAL)
    ]
    return parse_feature_set(
        {
            "name": "bench",
            "version": 1,
            "entity": ["id"],
            "timestamp": "ts",
            "features": feats,
            "labels": [{"name": "y", "task": "binary_classification", "classes": [0, 1]}],
        }
    )


def make_table(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    num = rng.normal(size=(n, N_NUMERIC))
    num[rng.random((n, N_NUMERIC)) < 0.05] = np.nan
    cats = rng.integers(0, N_CATEGORIES, size=(n, N_CATEGORICAL))
    logit = np.nan_to_num(num[:, :5]) @ np.array([0.8, -0.6, 0.5, 0.3, -0.4]) + (cats[:, 0] == 2) * 0.7 - 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    cols: dict[str, Any] = {
        "id": pa.array(np.arange(n).astype(str)),
        "ts": pa.array(np.sort(rng.integers(0, 90 * 86400, n)) * 1_000_000, pa.timestamp("us", tz="UTC")),
    }
    for i in range(N_NUMERIC):
        cols[f"x{i:02d}"] = pa.array(num[:, i])
    values = np.array([f"v{k}" for k in range(N_CATEGORIES)], dtype=object)
    for i in range(N_CATEGORICAL):
        cols[f"c{i}"] = pa.array(values[cats[:, i]].tolist(), pa.string())
    cols["y"] = pa.array(y)
    return pa.table(cols)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def bench_training(n: int, repeat: int) -> dict[str, Any]:
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_info

    from driftline.config import ModelConfig
    from driftline.features.encoding import encode_columns
    from driftline.training.core import train_model
    from driftline.training.dataset import encode_table
    from driftline.training.onnx_export import OnnxModel

    fs = feature_set()
    table = make_table(n)
    cfg = ModelConfig(
        name="bench", feature_set="bench", algorithm="hist_gradient_boosting", retrain={"min_training_rows": 100}
    )  # type: ignore[arg-type]
    schema = fs.input_schema()
    train_model(make_table(5000, 1), fs, cfg)  # warm-up: imports, OpenMP pool
    tm = train_model(table, fs, cfg)
    X = encode_table(schema, table)
    y = np.asarray(table.column("y"))
    n_train = tm.split["train_rows"]
    order = np.argsort(np.asarray(table.column("ts").cast(pa.int64())), kind="stable")
    Xtr, ytr = X[order[:n_train]], y[order[:n_train]]
    df = table.to_pandas()
    feats = [f.name for f in fs.features]

    def naive() -> Any:
        d = pd.get_dummies(df[feats], columns=[f"c{i}" for i in range(N_CATEGORICAL)])
        return HistGradientBoostingClassifier(random_state=0).fit(d.iloc[order[:n_train]], ytr)

    # interleaved, so a noisy machine slows all three alike
    runs, fits, naives = [], [], []
    for _ in range(repeat):
        wall, tm = timed(lambda: train_model(table, fs, cfg))
        runs.append((wall, tm.timings_s))
        fits.append(timed(lambda: HistGradientBoostingClassifier(random_state=0).fit(Xtr, ytr))[0])
        naives.append(timed(naive)[0])
    fit_s, naive_s = statistics.median(fits), statistics.median(naives)
    cols = {c: table.column(c).to_pylist() for c in fs.feature_names}
    enc_list_s, _ = timed(lambda: encode_columns(schema, cols))
    enc_fast_s, _ = timed(lambda: encode_table(schema, table))
    from driftline.training.skops_io import load_pipeline

    runtime = OnnxModel(tm.onnx)
    pipeline = load_pipeline(tm.skops)
    Xv = tm.data.X_val
    ort_s = statistics.median(timed(lambda: runtime.predict(Xv))[0] for _ in range(5))
    skl_s = statistics.median(timed(lambda: pipeline.predict_proba(Xv))[0] for _ in range(5))
    total = statistics.median(w for w, _ in runs)

    def part(name: str) -> float:
        return float(statistics.median(t[name] for _, t in runs))

    threads = sum(i.get("num_threads", 0) for i in threadpool_info() if i.get("user_api") == "openmp") or 1
    return {
        "rows": n,
        "features": N_NUMERIC + N_CATEGORICAL,
        "openmp_threads": threads,
        "driftline_total_s": total,
        "driftline_fit_s": part("fit"),
        "driftline_prepare_s": part("prepare"),
        "onnx_convert_and_parity_s": part("onnx_and_parity"),
        "driftline_evaluate_s": part("evaluate"),
        "driftline_skops_s": part("skops"),
        "sklearn_fit_only_s": fit_s,
        "naive_pandas_dummies_fit_s": naive_s,
        "ratio_total_vs_sklearn_fit": total / fit_s,
        "ratio_total_vs_naive": total / naive_s,
        "encode_table_s": enc_fast_s,
        "encode_columns_from_lists_s": enc_list_s,
        "ratio_encode_fast_vs_lists": enc_fast_s / enc_list_s,
        "holdout_rows": len(Xv),
        "onnx_predict_holdout_s": ort_s,
        "sklearn_predict_holdout_s": skl_s,
        "ratio_onnx_vs_sklearn_predict": ort_s / skl_s,
        "parity_max_abs_diff": tm.parity["max_abs_diff"],
        "roc_auc": tm.metrics["roc_auc"],
    }


# ----------------------------------------------------------------------------- registry
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def emulator(kind: str) -> Iterator[None]:
    from driftline import aws

    if kind == "in-process":
        from moto import mock_aws

        os.environ.pop("AWS_ENDPOINT_URL", None)
        aws.reset_clients()
        with mock_aws():
            yield
        return
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    aws.reset_clients()
    try:
        yield
    finally:
        server.stop()
        os.environ.pop("AWS_ENDPOINT_URL", None)
        aws.reset_clients()


def _pcts(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return s[len(s) // 2] * 1e3, s[min(len(s) - 1, int(len(s) * 0.99))] * 1e3


def bench_registry(kind: str, iterations: int) -> list[dict[str, Any]]:
    from driftline import aws
    from driftline.registry.store import Registry

    with emulator(kind):
        ddb = aws.client("dynamodb")
        table = "bench-registry"
        ddb.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
        )
        reg = Registry(table)
        model = "bench-model"
        samples: dict[str, list[float]] = {
            k: [] for k in ("raw GetItem (floor)", "aliases", "get_version", "register", "approve", "promote", "audit")
        }
        versions: list[int] = []
        for _ in range(iterations):
            dt, mv = timed(
                lambda: reg.register(
                    model, metrics={"roc_auc": 0.8}, params={"max_iter": 100}, lineage={"trigger": "bench"}
                )
            )
            samples["register"].append(dt)
            versions.append(mv.version)
        for v in versions:
            samples["approve"].append(timed(lambda v=v: reg.approve(model, v, "bench", "ok"))[0])
        for v in versions:
            samples["promote"].append(timed(lambda v=v: reg.promote(model, v, "bench", "ok"))[0])
        key = {"pk": {"S": f"MODEL#{model}"}, "sk": {"S": "ALIASES"}}
        for _ in range(iterations * 5):
            samples["raw GetItem (floor)"].append(timed(lambda: ddb.get_item(TableName=table, Key=key))[0])
            samples["aliases"].append(timed(lambda: reg.aliases(model))[0])
            samples["get_version"].append(timed(lambda: reg.get_version(model, versions[-1]))[0])
        for _ in range(max(3, iterations // 5)):
            samples["audit"].append(timed(lambda: reg.audit(model))[0])
        floor = _pcts(samples["raw GetItem (floor)"])[0]
        rows = []
        for op, s in samples.items():
            p50, p99 = _pcts(s)
            rows.append(
                {
                    "emulator": kind,
                    "operation": op,
                    "calls": len(s),
                    "p50_ms": p50,
                    "p99_ms": p99,
                    "ratio_p50_vs_getitem": p50 / floor,
                }
            )
        return rows


def main() -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20k rows, fewer registry calls")
    ap.add_argument("--rows", type=int, default=None, help="training rows (default 100000; 20000 with --quick)")
    ap.add_argument("--repeat", type=int, default=None, help="training repetitions (median reported)")
    ap.add_argument("--threads", type=int, default=None, help="limit OpenMP/BLAS threads (default: all cores)")
    ap.add_argument("--json", default=None, help="write flat JSON results here")
    args = ap.parse_args()
    if args.threads:  # before numpy/sklearn load their OpenMP/BLAS runtimes, and for train_model's own policy
        os.environ["OMP_NUM_THREADS"] = os.environ["DRIFTLINE_TRAIN_THREADS"] = str(args.threads)
    rows = args.rows or (20_000 if args.quick else 100_000)
    repeat = args.repeat or (1 if args.quick else 3)
    iterations = 20 if args.quick else 60

    tr = bench_training(rows, repeat)
    print_table(
        [
            {
                "what": "Driftline train_model (encode, split, fit, ONNX, parity, eval, skops)",
                "seconds": tr["driftline_total_s"],
                "ratio": 1.0,
            },
            {
                "what": "  of which fit",
                "seconds": tr["driftline_fit_s"],
                "ratio": tr["driftline_fit_s"] / tr["driftline_total_s"],
            },
            {
                "what": "  of which ONNX conversion + parity check",
                "seconds": tr["onnx_convert_and_parity_s"],
                "ratio": tr["onnx_convert_and_parity_s"] / tr["driftline_total_s"],
            },
            {
                "what": "  of which skops serialization",
                "seconds": tr["driftline_skops_s"],
                "ratio": tr["driftline_skops_s"] / tr["driftline_total_s"],
            },
            {
                "what": "sklearn HGB fit only (pre-encoded matrix; floor)",
                "seconds": tr["sklearn_fit_only_s"],
                "ratio": tr["sklearn_fit_only_s"] / tr["driftline_total_s"],
            },
            {
                "what": "naive: pandas get_dummies + HGB fit",
                "seconds": tr["naive_pandas_dummies_fit_s"],
                "ratio": tr["naive_pandas_dummies_fit_s"] / tr["driftline_total_s"],
            },
        ],
        title=f"training, HistGradientBoosting, {tr['rows']:,} rows x {tr['features']} features, "
        f"{tr['openmp_threads']} OpenMP thread(s), median of {repeat} (ratio = vs Driftline total)",
    )
    print_table(
        [
            {
                "what": "encode_table (Arrow, distinct values)",
                "seconds": tr["encode_table_s"],
                "ratio": tr["ratio_encode_fast_vs_lists"],
            },
            {"what": "encode_columns on Python lists", "seconds": tr["encode_columns_from_lists_s"], "ratio": 1.0},
            {
                "what": f"ONNX Runtime predict, {tr['holdout_rows']:,} holdout rows",
                "seconds": tr["onnx_predict_holdout_s"],
                "ratio": tr["ratio_onnx_vs_sklearn_predict"],
            },
            {"what": "sklearn predict_proba, same rows", "seconds": tr["sklearn_predict_holdout_s"], "ratio": 1.0},
        ],
        title=f"encoding and inference (parity max |diff| {tr['parity_max_abs_diff']:.2g}, "
        f"ROC AUC {tr['roc_auc']:.3f})",
    )
    results: dict[str, Any] = dict(tr)
    reg_rows: list[dict[str, Any]] = []
    for kind in ("in-process", "server"):
        reg_rows += bench_registry(kind, iterations)
    print_table(
        reg_rows,
        ["emulator", "operation", "calls", "p50_ms", "p99_ms", "ratio_p50_vs_getitem"],
        title="registry operations against moto (ratio = p50 vs a raw boto3 GetItem)",
    )
    for r in reg_rows:
        key = f"registry_{r['emulator'].replace('-', '_')}_{r['operation'].split(' ')[0].lower()}"
        results[f"{key}_p50_ms"] = r["p50_ms"]
        results[f"{key}_p99_ms"] = r["p99_ms"]
        results[f"{key}_ratio_vs_getitem"] = r["ratio_p50_vs_getitem"]
    write_json(args.json, results)


if __name__ == "__main__":
    main()
