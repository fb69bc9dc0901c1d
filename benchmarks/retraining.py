"""Retraining end to end on the local platform: from the drifted upload to v2 serving, and where the
time goes (per workflow state), against the hand-rolled script a team would write instead.

Driftline's path: drifted labeled upload → ingest → drifted traffic → scheduled drift check →
DriftDetected → retrain-trigger → workflow (validate, train, gate, canary bake with live traffic,
evaluate, promote) → the serving endpoint answers with v2 (no restart).

Baseline (same run, same platform, same data and training code, in a warmed-up process): a script
that trains, registers, approves and promotes directly (no trigger, no quality gate against the
champion, no canary), then waits for the endpoint to answer with the new version. The ratio is what orchestration and
governance cost in wall time; most of it is the configured canary bake.

    python benchmarks/retraining.py [--quick] [--json out.json]
    python benchmarks/retraining.py --sagemaker [--rows N] [--runs N] [--json out.json]

``--sagemaker`` measures only the training round trip (workflow start → registered version) of a model
trained by the ``train`` Lambda and of one trained by a SageMaker training job (the local platform runs
the job's entry point in a worker process: docs/training.md).
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import print_table, write_json  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hand_rolled_retrain(story: Any) -> dict[str, float]:
    """Train + register + approve + promote directly, then wait until the endpoint answers with it."""
    from driftline.demo.story import DRIFTED
    from driftline.demo.traffic import send
    from driftline.features.schema import FeatureSetCatalog
    from driftline.registry.store import Registry
    from driftline.training.sources import from_feature_store
    from driftline.training.task import TrainContext, run_training

    p, local = story.platform, story.local
    registry = Registry(p.name("registry"))
    ctx = TrainContext(
        config=p.config,
        feature_sets=FeatureSetCatalog(ROOT / p.config.feature_sets_dir),
        registry=registry,
        features_bucket=local.bucket("features"),
        artifacts_bucket=local.bucket("artifacts"),
        source=lambda fs, bucket, model, run_id: from_feature_store(fs, bucket, model=model, run_id=run_id),
    )
    model = p.config.models[0].name
    rows = story._records(story._table(20, DRIFTED, 5151, drifted=True))
    # warm-up (untimed): the workflow's train worker is warm by now, so the script gets a warm process too
    run_training(
        {
            "request": {"model": model, "trigger": "manual", "reason": "benchmark warm-up"},
            "execution_id": "benchmark-warmup",
        },
        ctx,
    )
    t0 = time.perf_counter()
    out = run_training(
        {
            "request": {"model": model, "trigger": "manual", "reason": "benchmark baseline"},
            "execution_id": "benchmark-baseline",
        },
        ctx,
    )
    t_train = time.perf_counter()
    if out["status"] != "candidate":
        raise SystemExit(f"baseline training was rejected: {out.get('reason')}")
    version = int(out["version"])
    registry.approve(model, version, "benchmark", "baseline script")
    registry.promote(model, version, "benchmark", "baseline script")
    t_promoted = time.perf_counter()
    while {v for a in send(local.state.api_url, model, rows) for v in a.versions} != {version}:
        time.sleep(0.1)
    t_serving = time.perf_counter()
    return {
        "train_s": t_train - t0,
        "promote_s": t_promoted - t_train,
        "to_serving_s": t_serving - t_promoted,
        "total_s": t_serving - t0,
    }


def _registered_at(sfn: Any, arn: str, state: str, timeout: float = 600.0) -> tuple[float, dict[str, Any]]:
    """Seconds from the execution's start to ``state`` exiting (the version is registered then)."""
    deadline = time.monotonic() + timeout
    while True:
        d = sfn.describe_execution(executionArn=arn)
        if d["status"] != "RUNNING":
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"{arn} still running after {timeout:.0f} s")
        time.sleep(0.2)
    if d["status"] != "SUCCEEDED":
        raise SystemExit(f"{arn} ended {d['status']}: {d.get('error')} {d.get('cause')}")
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    done = [e for e in events if e["type"] == "TaskStateExited" and e["stateExitedEventDetails"]["name"] == state]
    if len(done) != 1:
        exited = [e["stateExitedEventDetails"]["name"] for e in events if "stateExitedEventDetails" in e]
        raise SystemExit(f"{arn}: expected one exit of {state}; states exited: {exited}")
    return (done[0]["timestamp"] - d["startDate"]).total_seconds(), d


def compute_round_trips(rows: int, runs: int) -> dict[str, Any]:
    """Workflow start → registered version on the local platform, for one model trained by the ``train``
    Lambda and one trained by a (local) SageMaker training job, on the same curated data."""
    import io

    import pyarrow.parquet as pq

    from driftline.config import PlatformConfig
    from driftline.contracts import PENDING_DIR, curated_root
    from driftline.datasets.credit_default import generate
    from driftline.local.runtime import LocalOptions, LocalPlatform
    from driftline.platform import build_platform

    def model(name: str, compute: str) -> dict[str, Any]:
        m: dict[str, Any] = {
            "name": name,
            "feature_set": "credit_default",
            "gate": {"min_metrics": {"roc_auc": 0.6}},
            "deploy": {"mode": "direct"},
            "retrain": {"on_new_labels": False, "on_drift": False, "cooldown_minutes": 0},
        }
        if compute != "lambda":
            m["training"] = {"compute": compute}
        return m

    cfg = PlatformConfig.model_validate(
        {"env_name": "bench", "models": [model("bench-lambda", "lambda"), model("bench-sagemaker", "sagemaker")]}
    )
    tmp = Path(tempfile.mkdtemp(prefix="driftline-bench-sagemaker-"))
    options = LocalOptions(
        config_path=ROOT / "cdk.json",
        state_dir=tmp,
        port=free_port(),
        api_port=free_port(),
        persist=False,
        echo_function_logs=False,
    )
    platform = build_platform(cfg)
    local = LocalPlatform(platform, options, out=lambda _: None)
    local.start()
    results: dict[str, Any] = {"rows": rows, "runs": runs}
    try:
        s3, sfn = local.client("s3"), local.client("stepfunctions")
        features = platform.bucket_name("features", local.account, local.region)
        buf = io.BytesIO()
        pq.write_table(generate(rows, "2026-01-01", "2026-04-01", seed=7), buf)
        s3.put_object(Bucket=features, Key="incoming/credit_default/bench.parquet", Body=buf.getvalue())
        deadline = time.monotonic() + 300
        while True:  # committed: curated files written and no pending-commit marker left
            listed = s3.list_objects_v2(Bucket=features, Prefix=curated_root("credit_default"))
            keys = [o["Key"] for o in listed.get("Contents", [])]
            if keys and not any(f"/{PENDING_DIR}/" in k for k in keys):
                break
            if time.monotonic() > deadline:
                raise SystemExit("the upload was not curated within 300 s")
            time.sleep(0.2)
        machine = f"arn:aws:states:{local.region}:{local.account}:stateMachine:{platform.name('retrain')}"
        for name, state in (("bench-lambda", "Train"), ("bench-sagemaker", "RegisterTrainingJob")):
            times = []
            for i in range(runs + 1):  # the first run warms the workers up: not counted
                body = {"model": name, "trigger": "manual", "reason": "benchmark", "requested_by": "benchmark"}
                arn = sfn.start_execution(stateMachineArn=machine, name=f"{name}-{i}", input=json.dumps(body))
                seconds, _ = _registered_at(sfn, arn["executionArn"], state)
                if i:
                    times.append(seconds)
            key = name.removeprefix("bench-")
            results[f"{key}_start_to_registered_s"] = statistics.median(times)
            results[f"{key}_start_to_registered_max_s"] = max(times)
    finally:
        local.stop()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller data (faster, noisier)")
    ap.add_argument("--json", type=Path, default=None, help="write flat JSON results here")
    ap.add_argument(
        "--sagemaker",
        action="store_true",
        help="only the training round trip (workflow start → registered version): Lambda vs local SageMaker job",
    )
    ap.add_argument("--rows", type=int, default=20_000, help="rows of the uploaded data (--sagemaker)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per path (--sagemaker)")
    args = ap.parse_args()
    if args.sagemaker:
        trips = compute_round_trips(args.rows, args.runs)
        print_table(
            [
                {"path": "train Lambda", "median_s": trips["lambda_start_to_registered_s"]},
                {"path": "SageMaker training job (local)", "median_s": trips["sagemaker_start_to_registered_s"]},
            ],
            title=f"Workflow start → registered version on the local platform ({args.rows} rows, {args.runs} runs)",
        )
        write_json(args.json, trips)
        return

    from driftline import config
    from driftline.demo.story import DemoSettings, Story
    from driftline.platform import build_platform

    tmp = Path(tempfile.mkdtemp(prefix="driftline-bench-retrain-"))
    platform = build_platform(config.load(ROOT / "cdk.json", env="demo"))
    settings = DemoSettings(
        config=ROOT / "cdk.json",
        env="demo",
        state_dir=tmp / "state",
        out_dir=tmp / "out",
        port=free_port(),
        api_port=free_port(),
        keep=True,
    )
    if args.quick:
        settings.reference_rows, settings.drifted_rows = 3000, 1500
        settings.clean_traffic_rows, settings.drifted_traffic_rows = 250, 400
    story = Story(settings, platform)
    t0 = time.perf_counter()
    ok = story.run()
    total = time.perf_counter() - t0
    try:
        for r in story.results:
            print(f"{'ok  ' if r.status == 'ok' else r.status:<7} {r.seconds:6.1f} s  {r.title}")
        if not ok:
            raise SystemExit("the demo story failed; no retraining numbers to report")
        story.local.activate()  # type: ignore[union-attr]
        base = hand_rolled_retrain(story)
    finally:
        if story.local is not None:
            story.local.deactivate()
            story.local.stop()

    f = story.facts
    v2 = f.step_durations.get("v2", {})
    driftline_retrain = f.v2_serving_at - f.v2_started_at
    results: dict[str, Any] = {
        "demo_total_s": total,
        "drifted_upload_to_v2_serving_s": f.v2_serving_at - f.drifted_upload_at,
        "drift_check_to_run_start_s": f.v2_started_at - f.drift_fired_at,
        "run_start_to_v2_serving_s": driftline_retrain,
        "promotion_to_serving_s": f.v2_serving_at - f.v2_promoted_at,
        "baseline_total_s": base["total_s"],
        "baseline_train_s": base["train_s"],
        "baseline_promotion_to_serving_s": base["to_serving_s"],
        "ratio_vs_script": driftline_retrain / base["total_s"] if base["total_s"] else None,
        "bake_configured_s": float(platform.config.models[0].deploy.bake_seconds),
        "quick": args.quick,
    }
    for state, secs in v2.items():
        results[f"state_{re.sub(r'[^A-Za-z0-9]', '', state)}_s"] = secs
    print_table(
        [
            {
                "path": "retrain → new version serving",
                "driftline_s": driftline_retrain,
                "hand_rolled_script_s": base["total_s"],
                "ratio": results["ratio_vs_script"],
            },
            {
                "path": "training step alone",
                "driftline_s": v2.get("Train", 0.0),
                "hand_rolled_script_s": base["train_s"],
                "ratio": v2.get("Train", 0.0) / base["train_s"],
            },
            {
                "path": "promotion → endpoint answers",
                "driftline_s": results["promotion_to_serving_s"],
                "hand_rolled_script_s": base["to_serving_s"],
                "ratio": "",
            },
        ],
        title="Retraining on the local platform (seconds; driftline includes the quality gate and the "
        f"{results['bake_configured_s']:.0f} s canary bake)",
    )
    print_table([{"state": k, "seconds": v} for k, v in v2.items()], title="v2 workflow run, per state")
    print_table(
        [
            {"measure": "drifted upload → v2 serving", "seconds": results["drifted_upload_to_v2_serving_s"]},
            {"measure": "drift check fired → retraining run started", "seconds": results["drift_check_to_run_start_s"]},
            {"measure": "whole demo (platform start to report)", "seconds": total},
        ],
        title="End to end",
    )
    write_json(args.json, results)


if __name__ == "__main__":
    main()
