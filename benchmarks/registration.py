"""Registration benchmark: registering a notebook pipeline vs ``mlflow.sklearn.log_model``-style saving.

A data scientist has fitted their own scikit-learn pipeline on the training frame (ColumnTransformer
with imputers, StandardScaler and OneHotEncoder on string categoricals, then HistGradientBoosting:
``examples/trainers/credit_pipeline.py``). Both sides start from that fitted pipeline (fitting is
done once and excluded from both timings), against the same moto in-process S3, in the same run:

- Driftline: ``register_imported`` end to end, as ``driftline.register_model`` runs it: content hash
  of the table (lineage), encoding and time split, ONNX conversion (adapter in the graph), parity
  check of the pipeline against the graph on every validation row, metrics, skops copy, drift
  reference profile, hashed upload of every artifact (S3) and the registry write (DynamoDB).
- Baseline (what ``mlflow.sklearn.log_model`` does at its core): cloudpickle the fitted pipeline
  (mlflow's default serialization) and upload the bytes with one ``put_object``.

The breakdown comes from timing the functions ``register_imported`` calls (wrapped for the run); the
rest (champion lookup, version number, registry write, lineage) is reported as "other".

    python benchmarks/registration.py [--quick] [--rows N] [--repeat N] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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

from benchmarks._common import print_table, write_json  # noqa: E402

MODEL = "credit-default"
REGION = "us-east-1"
# The parts of register_imported that are timed separately: (module, attribute, label).
PARTS = [
    ("driftline.training.imported", "table_sha256", "table hash (lineage)"),
    ("driftline.training.imported", "prepare", "encode + time split"),
    ("driftline.training.conversion", "convert_estimator", "ONNX conversion"),
    ("driftline.training.imported", "parity", "parity check"),
    ("driftline.training.imported", "evaluate", "metrics"),
    ("driftline.training.imported", "_skops", "skops copy"),
    ("driftline.training.core", "TrainedModel.profile_json", "drift profile"),
    ("driftline.training.publish", "put_artifact", "artifact upload (S3)"),
]


def load_pipeline_builder() -> Callable[[Any, dict[str, Any]], Any]:
    spec = importlib.util.spec_from_file_location(
        "credit_pipeline", ROOT / "examples" / "trainers" / "credit_pipeline.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    build: Callable[[Any, dict[str, Any]], Any] = module.build
    return build


@contextmanager
def timed_parts() -> Iterator[dict[str, float]]:
    """Wrap each function of PARTS so its time (summed over calls) lands in the yielded dict."""
    import importlib

    spent: dict[str, float] = defaultdict(float)
    saved: list[tuple[Any, str, Any]] = []

    def wrap(fn: Any, label: str) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - t

        return timed

    for module_name, attr, label in PARTS:
        owner: Any = importlib.import_module(module_name)
        *path, name = attr.split(".")
        for p in path:
            owner = getattr(owner, p)
        original = owner.__dict__[name]
        saved.append((owner, name, original))
        setattr(owner, name, wrap(original, label))
    try:
        yield spent
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def bench(rows: int, repeat: int) -> dict[str, Any]:
    import cloudpickle
    from moto import mock_aws

    from driftline import aws, config
    from driftline.datasets.credit_default import generate
    from driftline.features.schema import load_feature_set
    from driftline.local.provision import provision_data
    from driftline.platform import build_platform
    from driftline.registry.store import Registry
    from driftline.training.core import validation_fraction_of
    from driftline.training.frames import training_frame
    from driftline.training.imported import ImportedModel, register_imported

    fs = load_feature_set(ROOT / "examples" / "feature_sets" / "credit_default.yaml")
    assert fs.label is not None
    platform_cfg = config.load(ROOT / "cdk.json")
    cfg = platform_cfg.model(MODEL)
    fraction = validation_fraction_of(cfg)
    table = generate(rows, "2026-01-01", "2026-04-01", seed=7)
    frame = training_frame(table, fs, fraction)
    features = [f.name for f in fs.features]
    train = frame[frame.split == "train"]
    pipe = load_pipeline_builder()(fs, {"max_iter": 100})
    t = time.perf_counter()
    pipe.fit(train[features], train[fs.label.name])
    fit_s = time.perf_counter() - t

    os.environ.pop("AWS_ENDPOINT_URL", None)
    aws.reset_clients()
    platform = build_platform(platform_cfg)
    with mock_aws():
        env = provision_data(platform, aws.client, REGION).env(platform)
        bucket, registry = env["ARTIFACTS_BUCKET"], Registry(env["REGISTRY_TABLE"])
        s3 = aws.client("s3")

        def ours(data: Any) -> Any:
            out = register_imported(
                ImportedModel(estimator=pipe),
                data,
                fs,
                cfg,
                registry=registry,
                artifacts_bucket=bucket,
                created_by="benchmark",
            )
            assert out.status == "candidate", out.reason
            return out

        def baseline(i: int) -> int:
            blob = cloudpickle.dumps(pipe)
            s3.put_object(Bucket=bucket, Key=f"mlflow/{MODEL}/{i}/model.pkl", Body=blob)
            return len(blob)

        ours(table.slice(0, 5000))  # warm-up: imports (skl2onnx, onnxruntime, skops), converter registry
        baseline(-1)
        totals, bases, parts_runs = [], [], []
        outcome: Any = None
        pickle_bytes = 0
        for i in range(repeat):  # interleaved, so a noisy machine slows both alike
            with timed_parts() as spent:
                t = time.perf_counter()
                outcome = ours(table)
                totals.append(time.perf_counter() - t)
            parts_runs.append(dict(spent))
            t = time.perf_counter()
            pickle_bytes = baseline(i)
            bases.append(time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(repeat):
            cloudpickle.dumps(pipe)
        pickle_s = (time.perf_counter() - t) / repeat
        mv = registry.get_version(MODEL, outcome.version)
        sizes = {k: int(v.size or 0) for k, v in mv.artifacts.items()}
        aws.reset_clients()

    total, base = statistics.median(totals), statistics.median(bases)
    results: dict[str, Any] = {
        "rows": rows,
        "validation_rows": int(outcome.lineage["parity"]["rows"]),
        "repeat": repeat,
        "fit_s_excluded": fit_s,
        "register_total_s": total,
        "baseline_pickle_upload_s": base,
        "baseline_pickle_only_s": pickle_s,
        "ratio_register_vs_baseline": total / base,
        "baseline_pickle_kb": pickle_bytes / 1024,
        "parity_max_abs_diff": outcome.lineage["parity"]["max_abs_diff"],
        "roc_auc": outcome.metrics.get("roc_auc"),
    }
    for k, v in sizes.items():
        results[f"artifact_{k}_kb"] = v / 1024
    accounted = 0.0
    for _, _, label in PARTS:
        part_s = statistics.median(p.get(label, 0.0) for p in parts_runs)
        results[f"part_{_key(label)}_s"] = part_s
        accounted += part_s
    results["part_other_s"] = max(0.0, total - accounted)
    return results


def _key(label: str) -> str:
    return label.split(" (", maxsplit=1)[0].replace(" + ", "_").replace(" ", "_").lower()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20k rows, one repetition")
    ap.add_argument("--rows", type=int, default=None, help="table rows (default 100000; 20000 with --quick)")
    ap.add_argument("--repeat", type=int, default=None, help="repetitions (median reported; default 3, 1 quick)")
    ap.add_argument("--threads", type=int, default=None, help="limit OpenMP/BLAS threads (default: all cores)")
    ap.add_argument("--json", default=None, help="write flat JSON results here")
    args = ap.parse_args()
    if args.threads:  # before numpy/sklearn load their OpenMP/BLAS runtimes
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    rows = args.rows or (20_000 if args.quick else 100_000)
    repeat = args.repeat or (1 if args.quick else 3)
    print(
        f"fitting the notebook pipeline on {rows:,} rows (excluded from the timings), then registering ...", flush=True
    )
    r = bench(rows, repeat)
    r["omp_threads"] = args.threads or os.cpu_count() or 1
    total = r["register_total_s"]
    table = [{"what": "Driftline register_imported, end to end", "seconds": total, "share": 1.0}]
    for _, _, label in [*PARTS, ("", "", "other (validation predictions, champion lookup, registry write, lineage)")]:
        v = r[f"part_{_key(label)}_s"]
        table.append({"what": f"  {label}", "seconds": v, "share": v / total})
    table += [
        {
            "what": "baseline: cloudpickle + put_object (mlflow.sklearn.log_model-style)",
            "seconds": r["baseline_pickle_upload_s"],
            "share": r["baseline_pickle_upload_s"] / total,
        },
        {
            "what": "  of which cloudpickle.dumps",
            "seconds": r["baseline_pickle_only_s"],
            "share": r["baseline_pickle_only_s"] / total,
        },
    ]
    print_table(
        table,
        title=f"registering a fitted one-hot pipeline, {rows:,} rows ({r['validation_rows']:,} "
        f"validation rows), moto in-process, {r['omp_threads']} OpenMP thread(s), "
        f"median of {repeat} (share = of Driftline's total)",
    )
    sizes = ", ".join(f"{k[len('artifact_') : -3]} {v:.0f} KB" for k, v in r.items() if k.startswith("artifact_"))
    print(
        f"\nregistration / baseline: {r['ratio_register_vs_baseline']:.1f}x "
        f"({total:.2f} s vs {r['baseline_pickle_upload_s']:.3f} s)"
    )
    print(
        f"what the extra time buys: a pickle-free ONNX graph served by ONNX Runtime, parity checked on "
        f"{r['validation_rows']:,} validation rows (max |diff| {r['parity_max_abs_diff']:.2g}), metrics "
        f"(ROC AUC {r['roc_auc']:.3f}), a drift reference profile, SHA-256-pinned artifacts ({sizes}) "
        f"and a candidate version with lineage in the registry; the pickle is {r['baseline_pickle_kb']:.0f} KB "
        f"that only the same library versions can load, unchecked"
    )
    write_json(args.json, r)


if __name__ == "__main__":
    main()
