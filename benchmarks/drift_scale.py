"""Scale-out drift check vs the in-process check on the same window, on the local platform's engines.

Generates ``--rows`` captured rows of the example ``credit_default`` model as capture format v2 records
(``--per-request`` rows each) written straight into the emulator's S3 (no HTTP predictions), registers a
champion with its profile, then checks the window twice:

- in-process: the drift function's path (``run_check`` with scale-out off), in its own process;
- workflow: ``run_check`` with scale-out on starts the real ``drift_scale.asl.json`` on moto's Step
  Functions interpreter; the shard query runs on the local Athena (DuckDB) inside the emulator process;
  every ``drift-shard`` / ``drift-reduce`` invocation runs in its own process, as a Lambda sandbox would.

Reported: wall time of each path, peak RSS of the in-process worker, of the largest shard worker and of
the reduce worker, and of the emulator process (moto + DuckDB), and whether both paths agree (drifted
columns, per-column decisions). ``--json PATH`` writes flat keys with units.

    .venv/bin/python benchmarks/drift_scale.py --rows 1000000 --json /tmp/drift_scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import print_table, write_json  # noqa: E402
from driftline import aws as aws_mod  # noqa: E402
from driftline.capture_format import request_record  # noqa: E402
from driftline.config import load  # noqa: E402
from driftline.drift import build_profile_for_feature_set  # noqa: E402
from driftline.features.schema import FeatureSet, load_feature_set  # noqa: E402
from driftline.platform import Platform, build_platform  # noqa: E402

REGION, ACCOUNT = "us-east-1", "123456789012"
MODEL = "credit-default"
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
RECORDS_PER_OBJECT = 2000
_KEEP: list[Any] = []

_PEAK = """
def peak_mb():  # VmHWM: this process image's peak (ru_maxrss keeps the forking parent's peak across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""
_WORKER = (
    _PEAK
    + """
import json, sys, time
payload = json.load(sys.stdin)
if payload.pop("__fn") == "shard":
    from lambdas import drift_shard as m
else:
    from lambdas import drift_reduce as m
t0 = time.perf_counter()
out = m.handler.__wrapped__(payload, None)
print(json.dumps({"out": out, "s": time.perf_counter() - t0, "rss_mb": peak_mb()}, default=str))
"""
)

_IN_PROCESS = (
    _PEAK
    + """
import json, sys, time
from dataclasses import replace
from datetime import datetime
from driftline.config import PlatformConfig
from driftline.monitoring import Context, run_check
args = json.load(sys.stdin)
base = Context.from_env()
data = base.config.model_dump()
data["monitoring"].update(
    scale_out_rows=args["rows_threshold"], scale_out_bytes=None, scale_out_shard_rows=args["shard_rows"]
)
ctx = replace(base, config=PlatformConfig.model_validate(data))
t0 = time.perf_counter()
out = run_check(args["model"], window_start=args["start"], window_end=args["end"], ctx=ctx,
                now=datetime.fromisoformat(args["now"]))
print(json.dumps({"out": out, "s": time.perf_counter() - t0, "rss_mb": peak_mb()}, default=str))
"""
)


def _run_python(code: str, payload: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(payload), capture_output=True, text=True, cwd=ROOT, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed: {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


class Workers:
    """Runs each Lambda invocation moto makes in its own process and keeps its wall time and peak RSS."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []

    def invoke(self, fn: Any, event: Any = None) -> tuple[str, bool, str]:
        payload = json.loads(event) if isinstance(event, str | bytes) else dict(event)
        kind = "shard" if fn.function_name.endswith("-drift-shard") else "reduce"
        try:
            res = _run_python(_WORKER, {**payload, "__fn": kind})
        except Exception as e:
            return json.dumps({"errorType": type(e).__name__, "errorMessage": str(e)}), True, ""
        self.runs.append({"kind": kind, "s": res["s"], "rss_mb": res["rss_mb"]})
        return json.dumps(res["out"], default=str), False, ""


def _feature_set() -> FeatureSet:
    return load_feature_set(ROOT / "examples" / "feature_sets" / "credit_default.yaml")


def _columns(fs: FeatureSet, n: int, seed: int, shift: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for f in fs.features:
        if f.type == "int":
            lo, hi = int(f.min or 0), int(f.max or 100)
            cols[f.name] = np.clip(rng.integers(lo, min(hi, lo + 40), n) + int(10 * shift), lo, hi)
        elif f.type == "float":
            cols[f.name] = rng.gamma(2.0, 1.0, n) * (1 + shift)
        elif f.type == "categorical":
            cats = list(f.categories or ())
            p = np.linspace(1.0, 2.0, len(cats))
            cols[f.name] = np.asarray(cats, dtype=object)[rng.choice(len(cats), n, p=p / p.sum())]
        elif f.type == "bool":
            cols[f.name] = rng.random(n) < 0.5
    return cols


def _score(cols: dict[str, np.ndarray]) -> np.ndarray:
    z = 0.04 * (cols["age"] - 40) + 0.3 * cols["utilization"]
    return np.asarray(1 / (1 + np.exp(-z)))


def _champion(fs: FeatureSet) -> int:
    from driftline.registry.artifacts import put_artifact
    from driftline.registry.store import Registry

    reg = Registry.from_env()
    version = reg.next_version(MODEL)
    ref = _columns(fs, 5000, seed=1, shift=0.0)
    profile = build_profile_for_feature_set(fs, ref, _score(ref), model=MODEL, version=version)
    art = put_artifact(
        aws_mod.env("ARTIFACTS_BUCKET"), f"models/{MODEL}/v{version}/profile.json", profile.to_json().encode()
    )
    reg.register(
        MODEL,
        version=version,
        algorithm="hist_gradient_boosting",
        input_schema=fs.input_schema(),
        feature_set=fs.name,
        feature_set_version=fs.version,
        feature_set_fingerprint=fs.fingerprint,
        artifacts={"profile": art},
        metrics={"roc_auc": 0.8, "accuracy": 0.75, "f1": 0.6, "log_loss": 0.5},
    )
    reg.approve(MODEL, version, "bench", "benchmark champion")
    reg.promote(MODEL, version, "bench", "benchmark champion")
    return version


def _write_captures(fs: FeatureSet, version: int, rows: int, per_request: int) -> int:
    """``rows`` captured rows in one hour as v2 records; returns the bytes written."""
    s3 = aws_mod.client("s3")
    bucket = aws_mod.env("CAPTURES_BUCKET")
    total, written, chunk = 0, 0, RECORDS_PER_OBJECT * per_request
    while written < rows:
        n = min(chunk, rows - written)
        cols = _columns(fs, n, seed=written + 7, shift=0.3)
        probs = _score(cols)
        names = list(cols)
        values = [cols[k].tolist() for k in names]
        lines = []
        for first in range(0, n, per_request):
            idx = range(first, min(n, first + per_request))
            rec_rows = [{k: values[j][i] for j, k in enumerate(names)} for i in idx]
            outputs = [
                {
                    "label": int(probs[i] > 0.5),
                    "probability": float(probs[i]),
                    "probabilities": {"0": 1 - float(probs[i]), "1": float(probs[i])},
                }
                for i in idx
            ]
            ts = (T0 + timedelta(seconds=3000 * (written + first) / rows)).isoformat()
            rec = request_record(
                request_id=uuid.uuid4().hex, model=MODEL, version=version, role="champion", ts=ts,
                latency_ms=0.4, rows=rec_rows, outputs=outputs, caller="bench",
            )  # fmt: skip
            lines.append(json.dumps(rec, separators=(",", ":")))
        body = ("\n".join(lines) + "\n").encode()
        key = f"captures/model={MODEL}/{T0:%Y/%m/%d/%H}/{MODEL}-{uuid.uuid4().hex}"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        total += len(body)
        written += n
    return total


def _emulator(platform: Platform, fs: FeatureSet, workers: Workers) -> tuple[Any, Callable[[str], Any], dict[str, str]]:
    from moto.awslambda.models import LambdaFunction
    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    from driftline.local.athena import AthenaEngine, EngineOptions, GlueCatalog, s3_filesystem
    from driftline.local.athena_hook import install_athena
    from driftline.local.provision import provision_catalog, provision_platform

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)

    def clients(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint)

    def engine_for(account: str, region: str) -> AthenaEngine:
        fsys = s3_filesystem(endpoint, "test", "test", region)
        return AthenaEngine(GlueCatalog(clients("glue")), fsys, EngineOptions(threads=2, max_concurrent=1))

    os.environ.update(
        {
            "MOTO_PORT": str(port),
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": REGION,
        }
    )
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    LambdaFunction._invoke_lambda = lambda fn, event=None: workers.invoke(fn, event)  # type: ignore[method-assign,assignment]
    hook = install_athena(engine_for)
    hook.__enter__()
    _KEEP.append(hook)  # the hook is undone when its context manager is collected
    names = provision_platform(platform, clients, REGION, ACCOUNT)
    provision_catalog(platform, clients, REGION, ACCOUNT, [fs])
    events = clients("events")  # moto cannot deliver to Lambda targets
    for r in platform.event_rules:
        events.remove_targets(Rule=platform.name(r.logical), EventBusName=platform.event_bus, Ids=["target"])
    env = names.env(platform)
    env["FEATURE_SETS_DIR"] = str(ROOT / "examples" / "feature_sets")
    os.environ.update(env)
    aws_mod.reset_clients()
    return server, clients, env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--per-request", type=int, default=100)
    ap.add_argument("--shard-rows", type=int, default=250_000)
    ap.add_argument("--skip-in-process", action="store_true", help="only the workflow (for windows above 1M rows)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--quick", action="store_true", help="50k rows in 20k-row shards (make bench)")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.shard_rows = min(args.rows, 50_000), min(args.shard_rows, 20_000)

    platform = build_platform(load(ROOT / "cdk.json", "dev"))
    fs = _feature_set()
    workers = Workers()
    server, clients, _ = _emulator(platform, fs, workers)
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    try:
        version = _champion(fs)
        t0 = time.perf_counter()
        size = _write_captures(fs, version, args.rows, args.per_request)
        gen_s = time.perf_counter() - t0
        start, end = T0.isoformat(), (T0 + timedelta(hours=1)).isoformat()
        now = (T0 + timedelta(hours=2)).isoformat()
        common = {"model": MODEL, "start": start, "end": end, "now": now, "shard_rows": args.shard_rows}
        results: dict[str, Any] = {"rows": args.rows, "capture_bytes": size, "generate_s": gen_s}
        a: dict[str, Any] | None = None
        if not args.skip_in_process:
            res = _run_python(_IN_PROCESS, {**common, "rows_threshold": None})
            a = res["out"]
            results.update(in_process_s=res["s"], in_process_peak_rss_mb=res["rss_mb"], in_process_status=a["status"])
        t0 = time.perf_counter()
        started = _run_python(_IN_PROCESS, {**common, "rows_threshold": 1})["out"]
        sfn = clients("stepfunctions")
        while (d := sfn.describe_execution(executionArn=started["execution_arn"]))["status"] == "RUNNING":
            time.sleep(0.5)
        wf_s = time.perf_counter() - t0
        b = json.loads(d["output"])["result"]["value"] if d["status"] == "SUCCEEDED" else {"status": d["status"]}
        shards = [r for r in workers.runs if r["kind"] == "shard"]
        reduce_runs = [r for r in workers.runs if r["kind"] == "reduce"]
        results.update(
            workflow_s=wf_s,
            workflow_status=b.get("status"),
            shards=len(shards),
            shard_max_s=max((r["s"] for r in shards), default=0.0),
            shard_peak_rss_mb=max((r["rss_mb"] for r in shards), default=0.0),
            reduce_s=sum(r["s"] for r in reduce_runs),
            reduce_peak_rss_mb=max((r["rss_mb"] for r in reduce_runs), default=0.0),
            emulator_peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            shard_worker_s_total=sum(r["s"] for r in shards),
        )
        if a is not None and b.get("status") == "ok":
            results["same_drifted_columns"] = a["drifted_columns"] == b["drifted_columns"]
            results["same_n_current"] = a["n_current"] == b["n_current"]
        print_table([results], title=f"drift check of {args.rows:,} captured rows: in-process vs workflow")
        write_json(args.json, results)
    finally:
        with urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")):
            pass
        server.stop()


if __name__ == "__main__":
    main()
