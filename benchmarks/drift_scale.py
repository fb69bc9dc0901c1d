"""Scale-out drift check vs the in-process check and Evidently on the same data, on the local platform.

Generates ``--rows`` captured rows of the example ``credit_default`` model as capture format v2 records
(``--per-request`` rows each) written straight into the emulator's S3 (no HTTP predictions) as Firehose
would deliver them: many records per object, objects up to 128 MB (Firehose's largest buffer). Rows are
filed ``--rows-per-hour`` to an hour, one hour in two (hours T0, T0+2h, …), so the first hour is a
deterministic sample that a one-hour window reads alone (the hour after it, which a window's read also
lists for late deliveries, is empty). Then it registers a champion with its profile and checks:

- in-process: the drift function's path (``run_check`` with scale-out off), in its own process, on the
  sample hour and (when the window holds more) on the whole window, where it stops at its 1M-row cap;
- workflow: ``run_check`` with scale-out on starts the real ``drift_scale.asl.json`` on moto's Step
  Functions interpreter; the shard query runs on the local Athena (DuckDB) inside the emulator process;
  every ``drift-shard`` / ``drift-reduce`` invocation runs in its own process, as a Lambda sandbox would.
  On the whole window, and on the sample hour when the window holds more;
- Evidently's ``DataDriftPreset`` on the sample hour's rows (the same values, regenerated from the same
  seeds) against the same reference rows, in its own process.

Peak memory is measured for every process (VmHWM): each in-process check, the process that starts the
workflow, every shard and reduce worker, Evidently's, and the emulator (moto's S3, Step Functions and
the local Athena with DuckDB) whose peak is reset after the data is generated, so it covers the check
only. Compared: the in-process and workflow results on the sample (row counts, drifted columns, each
column's statistic, p-value and decision) and the whole window's decisions against the sample's.
``--json PATH`` writes flat keys with units.

    .venv/bin/python benchmarks/drift_scale.py --rows 10000000 --json /tmp/drift_scale.json
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import fmt, write_json  # noqa: E402
from driftline import aws as aws_mod  # noqa: E402
from driftline.capture_format import request_record  # noqa: E402
from driftline.config import load  # noqa: E402
from driftline.drift import build_profile_for_feature_set  # noqa: E402
from driftline.features.schema import FeatureSet, load_feature_set  # noqa: E402
from driftline.local.athena import EngineOptions  # noqa: E402
from driftline.platform import Platform, build_platform  # noqa: E402

REGION, ACCOUNT = "us-east-1", "123456789012"
MODEL = "credit-default"
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
MAX_OBJECT_BYTES = 128 * 1024 * 1024
"""Firehose's largest S3 buffer: one delivered object holds at most this much."""
CHUNK_ROWS = 20_000
"""Rows generated at once (each chunk from its own seed, so a sample can be regenerated alone)."""
IN_PROCESS_CAP = 1_000_000
"""The in-process reader's row cap (``driftline.monitoring.captures.DEFAULT_MAX_RECORDS``)."""
WORKER_LIMIT_MB = 1024.0
"""The issue's bound on any one worker's peak memory."""
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

_EVIDENTLY = (
    _PEAK
    + """
import json, sys, time, warnings
import pandas as pd
from benchmarks.drift_scale import reference_columns, sample_columns, split_columns
args = json.load(sys.stdin)
ref, cur = pd.DataFrame(reference_columns()), pd.DataFrame(sample_columns(args["rows"]))
numerical, categorical = split_columns()
data_mb = peak_mb()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    t0 = time.perf_counter()
    doc = Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(cur, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition)
    ).dict()
    s = time.perf_counter() - t0
prefix = "Value Drift for column "
drifted = sorted(
    t["name"].removeprefix(prefix) for t in doc["tests"] if t["name"].startswith(prefix) and t["status"] == "FAIL"
)
print(json.dumps({"s": s, "rss_mb": peak_mb(), "data_rss_mb": data_mb, "drifted": drifted, "rows": len(cur)}))
"""
)

_GENERATE = (
    _PEAK
    + """
import json, sys, time
from benchmarks.drift_scale import _feature_set, _write_captures
args = json.load(sys.stdin)
t0 = time.perf_counter()
size, objects = _write_captures(_feature_set(), args["version"], args["rows"], args["per_request"], args["hour_rows"])
print(json.dumps({"s": time.perf_counter() - t0, "rss_mb": peak_mb(), "bytes": size, "objects": objects}))
"""
)


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM) in MB."""
    return _status_mb("VmHWM")


def _trim() -> None:
    """Hand the heap moto's uploads freed back to the system (glibc keeps it), so the check's peak starts
    from what the emulator holds, not from the generation's high-water mark."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def reset_peak() -> None:
    """Start this process's VmHWM again from its current RSS (Linux ``clear_refs`` 5), so the emulator's
    peak covers the check and not the data generation that ran in the same process."""
    Path("/proc/self/clear_refs").write_text("5")


def _run_python(code: str, payload: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(payload), capture_output=True, text=True, cwd=ROOT, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed: {proc.stderr[-2000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "stderr": proc.stderr[-2000:]}


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


def _chunk(fs: FeatureSet, offset: int, n: int) -> dict[str, np.ndarray]:
    """The captured rows ``offset … offset + n`` of the whole data set (one generation chunk)."""
    return _columns(fs, n, seed=offset + 7, shift=0.3)


def reference_columns() -> dict[str, np.ndarray]:
    """The champion profile's reference rows."""
    return _columns(_feature_set(), 5000, seed=1, shift=0.0)


def sample_columns(rows: int) -> dict[str, np.ndarray]:
    """The first ``rows`` captured rows (the sample hour's), exactly as :func:`_write_captures` wrote them."""
    fs = _feature_set()
    parts = [_chunk(fs, off, min(CHUNK_ROWS, rows - off)) for off in range(0, rows, CHUNK_ROWS)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def split_columns() -> tuple[list[str], list[str]]:
    """(numerical, categorical) feature names, as the drift check types them."""
    fs = _feature_set()
    numerical = [f.name for f in fs.features if f.type in ("int", "float")]
    return numerical, [f.name for f in fs.features if f.name not in numerical]


def _score(cols: dict[str, np.ndarray]) -> np.ndarray:
    z = 0.04 * (cols["age"] - 40) + 0.3 * cols["utilization"]
    return np.asarray(1 / (1 + np.exp(-z)))


def _records(
    fs: FeatureSet, version: int, offset: int, n: int, hour: datetime, hour_rows: int, per_request: int
) -> Iterator[bytes]:
    """The v2 records (one JSON line each) of rows ``offset … offset + n``, stamped inside ``hour``."""
    cols = _chunk(fs, offset, n)
    probs = _score(cols)
    names = list(cols)
    values = [cols[k].tolist() for k in names]
    base = offset % hour_rows
    for first in range(0, n, per_request):
        idx = range(first, min(n, first + per_request))
        outputs = [
            {
                "label": int(probs[i] > 0.5),
                "probability": float(probs[i]),
                "probabilities": {"0": 1 - float(probs[i]), "1": float(probs[i])},
            }
            for i in idx
        ]
        rec = request_record(
            request_id=uuid.uuid4().hex, model=MODEL, version=version, role="champion",
            ts=(hour + timedelta(seconds=3000 * (base + first) / hour_rows)).isoformat(),
            latency_ms=0.4, rows=[{k: values[j][i] for j, k in enumerate(names)} for i in idx],
            outputs=outputs, caller="bench",
        )  # fmt: skip
        yield orjson.dumps(rec) + b"\n"


def _write_captures(fs: FeatureSet, version: int, rows: int, per_request: int, hour_rows: int) -> tuple[int, int]:
    """``rows`` captured rows as v2 records, ``hour_rows`` in each of the hours T0, T0+2h, …, in objects of
    at most :data:`MAX_OBJECT_BYTES`; returns (bytes, objects) written."""
    s3 = aws_mod.client("s3")
    bucket = aws_mod.env("CAPTURES_BUCKET")
    total, objects = 0, 0
    for h, hour_start in enumerate(range(0, rows, hour_rows)):
        hour = T0 + timedelta(hours=2 * h)
        prefix = f"captures/model={MODEL}/{hour:%Y/%m/%d/%H}/{MODEL}-"
        body: list[bytes] = []
        size, end = 0, min(rows, hour_start + hour_rows)
        for offset in range(hour_start, end, CHUNK_ROWS):
            for line in _records(fs, version, offset, min(CHUNK_ROWS, end - offset), hour, hour_rows, per_request):
                if body and size + len(line) > MAX_OBJECT_BYTES:
                    total, objects, size = total + _put(s3, bucket, prefix, body), objects + 1, 0
                body.append(line)
                size += len(line)
        total, objects = total + _put(s3, bucket, prefix, body), objects + 1
    return total, objects


def _put(s3: Any, bucket: str, prefix: str, lines: list[bytes]) -> int:
    """One delivered object of ``lines`` (emptied); returns its size."""
    body = b"".join(lines)
    lines.clear()
    s3.put_object(Bucket=bucket, Key=f"{prefix}{uuid.uuid4().hex}", Body=body)
    return len(body)


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


def _emulator(
    platform: Platform, fs: FeatureSet, workers: Workers, options: Any
) -> tuple[Any, Callable[[str], Any], dict[str, str]]:
    from moto.awslambda.models import LambdaFunction
    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    from driftline.local.athena import AthenaEngine, GlueCatalog, s3_filesystem
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
        return AthenaEngine(GlueCatalog(clients("glue")), fsys, options)

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


def _result_doc(s3: Any, uri: str) -> dict[str, Any]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return dict(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))


def _columns_of(doc: dict[str, Any]) -> dict[str, tuple[Any, Any, Any]]:
    return {k: (c.get("statistic"), c.get("p_value"), c.get("drifted")) for k, c in doc.get("columns", {}).items()}


def _same(a: dict[str, tuple[Any, Any, Any]], b: dict[str, tuple[Any, Any, Any]], tol: float = 1e-9) -> bool:
    """Same columns, decisions, and statistics / p-values within ``tol`` (summing in another order)."""

    def close(x: Any, y: Any) -> bool:
        return x == y if x is None or y is None else abs(float(x) - float(y)) <= tol * max(1.0, abs(float(x)))

    return a.keys() == b.keys() and all(
        a[k][2] == b[k][2] and close(a[k][0], b[k][0]) and close(a[k][1], b[k][1]) for k in a
    )


class Bench:
    """The emulator, its workers and the window arguments shared by every check of one benchmark run."""

    def __init__(self, clients: Callable[[str], Any], workers: Workers, shard_rows: int) -> None:
        self.clients, self.workers, self.shard_rows = clients, workers, shard_rows

    def args(self, start: datetime, end: datetime) -> dict[str, Any]:
        now = end + timedelta(hours=2)
        return {"model": MODEL, "start": start.isoformat(), "end": end.isoformat(), "now": now.isoformat(),
                "shard_rows": self.shard_rows}  # fmt: skip

    def in_process(self, prefix: str, start: datetime, end: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
        res = _run_python(_IN_PROCESS, {**self.args(start, end), "rows_threshold": None})
        out = res["out"]
        return out, {
            f"{prefix}_s": res["s"],
            f"{prefix}_peak_rss_mb": res["rss_mb"],
            f"{prefix}_status": out["status"],
            f"{prefix}_rows": out.get("n_current"),
            f"{prefix}_drifted_columns": len(out.get("drifted_columns") or []),
        }

    def workflow(self, prefix: str, start: datetime, end: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
        self.workers.runs.clear()
        reset_peak()
        at_start = _status_mb("VmRSS")
        t0 = time.perf_counter()
        started = _run_python(_IN_PROCESS, {**self.args(start, end), "rows_threshold": 1})
        if "execution_arn" not in started["out"]:
            raise RuntimeError(f"the workflow did not start: {started['out']}\n{started['stderr']}")
        sfn = self.clients("stepfunctions")
        while (d := sfn.describe_execution(executionArn=started["out"]["execution_arn"]))["status"] == "RUNNING":
            time.sleep(1.0)
        wf_s = time.perf_counter() - t0
        out = json.loads(d["output"])["result"]["value"] if d["status"] == "SUCCEEDED" else {"status": d["status"]}
        shards = [r for r in self.workers.runs if r["kind"] == "shard"]
        reduce_runs = [r for r in self.workers.runs if r["kind"] == "reduce"]
        peaks = {
            "starter": started["rss_mb"],
            "shard": max((r["rss_mb"] for r in shards), default=0.0),
            "reduce": max((r["rss_mb"] for r in reduce_runs), default=0.0),
            "emulator": peak_mb(),
        }
        return out, {
            f"{prefix}_s": wf_s,
            f"{prefix}_emulator_rss_at_start_mb": at_start,
            f"{prefix}_status": out.get("status"),
            f"{prefix}_message": str(out.get("message") or "")[:400],
            f"{prefix}_rows": out.get("n_current"),
            f"{prefix}_drifted_columns": len(out.get("drifted_columns") or []),
            f"{prefix}_shards": len(shards),
            f"{prefix}_shard_max_s": max((r["s"] for r in shards), default=0.0),
            f"{prefix}_shard_worker_s_total": sum(r["s"] for r in shards),
            f"{prefix}_reduce_s": sum(r["s"] for r in reduce_runs),
            **{f"{prefix}_{k}_peak_rss_mb": v for k, v in peaks.items()},
            f"{prefix}_max_process_peak_rss_mb": max(peaks.values()),
            f"{prefix}_every_process_under_1gb": max(peaks.values()) <= WORKER_LIMIT_MB,
        }


def _compare(
    results: dict[str, Any], s3: Any, ip: dict[str, Any] | None, wf: dict[str, Any], whole: dict[str, Any]
) -> None:
    """In-process vs workflow on the sample (exact), and the whole window's decisions vs the sample's."""
    if ip is None or ip.get("status") != "ok" or wf.get("status") != "ok":
        return
    a, b = _columns_of(_result_doc(s3, ip["result_uri"])), _columns_of(_result_doc(s3, wf["result_uri"]))
    results["sample_same_rows"] = ip["n_current"] == wf["n_current"]
    results["sample_same_drifted_columns"] = ip["drifted_columns"] == wf["drifted_columns"]
    results["sample_same_column_statistics"] = _same(a, b)
    if whole is not wf and whole.get("status") == "ok":
        c = _columns_of(_result_doc(s3, whole["result_uri"]))
        results["whole_vs_sample_same_drifted_columns"] = whole["drifted_columns"] == ip["drifted_columns"]
        results["whole_vs_sample_same_decisions"] = {k: v[2] for k, v in c.items()} == {k: v[2] for k, v in a.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rows-per-hour", type=int, default=1_000_000, help="the sample hour's rows (both paths hold it)")
    ap.add_argument("--per-request", type=int, default=100)
    ap.add_argument("--shard-rows", type=int, default=250_000)
    ap.add_argument("--skip-in-process", action="store_true", help="only the workflow")
    ap.add_argument("--skip-evidently", action="store_true")
    ap.add_argument("--athena-memory", default="512MB", help="DuckDB's memory limit in the local Athena")
    ap.add_argument("--athena-threads", type=int, default=2, help="DuckDB's threads in the local Athena")
    ap.add_argument("--json", default=None)
    ap.add_argument("--quick", action="store_true", help="50k rows in 20k-row shards (make bench)")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.shard_rows = min(args.rows, 50_000), min(args.shard_rows, 20_000)
        args.rows_per_hour = min(args.rows_per_hour, 20_000)
    if min(args.rows, args.rows_per_hour, args.per_request, args.shard_rows) < 1 or CHUNK_ROWS % args.per_request:
        ap.error(f"sizes must be >= 1 and --per-request must divide {CHUNK_ROWS}")

    platform = build_platform(load(ROOT / "cdk.json", "dev"))
    fs = _feature_set()
    workers = Workers()
    options = EngineOptions(threads=args.athena_threads, max_concurrent=1, memory_limit=args.athena_memory)
    server, clients, _ = _emulator(platform, fs, workers, options)
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    try:
        version = _champion(fs)
        gen = _run_python(  # its own process: the emulator's peak holds only what moto keeps of the data
            _GENERATE,
            {"version": version, "rows": args.rows, "per_request": args.per_request, "hour_rows": args.rows_per_hour},
        )
        hours = -(-args.rows // args.rows_per_hour)
        results: dict[str, Any] = {
            "rows": args.rows,
            "sample_rows": min(args.rows, args.rows_per_hour),
            "capture_bytes": gen["bytes"],
            "capture_objects": gen["objects"],
            "generate_s": gen["s"],
            "generate_peak_rss_mb": gen["rss_mb"],
            "emulator_peak_rss_during_generation_mb": peak_mb(),
        }
        _trim()
        bench = Bench(clients, workers, args.shard_rows)
        sample_end, whole_end = T0 + timedelta(hours=1), T0 + timedelta(hours=2 * hours - 1)
        ip = None
        if not args.skip_in_process:
            ip, r = bench.in_process("in_process_sample", T0, sample_end)
            results.update(r)
            if hours > 1:  # the whole window: the in-process reader stops at its row cap
                capped, r = bench.in_process("in_process_whole", T0, whole_end)
                results.update(r, in_process_whole_capped=capped.get("n_current") == IN_PROCESS_CAP)
        whole, r = bench.workflow("workflow", T0, whole_end)
        results.update(r)
        wf = whole
        if hours > 1 and not args.skip_in_process:
            wf, r = bench.workflow("workflow_sample", T0, sample_end)
            results.update(r)
        _compare(results, clients("s3"), ip, wf, whole)
        if not args.skip_evidently:
            ev = _run_python(_EVIDENTLY, {"rows": results["sample_rows"]})
            results.update(evidently_sample_s=ev["s"], evidently_peak_rss_mb=ev["rss_mb"],
                           evidently_drifted_columns=len(ev["drifted"]))  # fmt: skip
            if ip is not None:
                results["ratio_evidently_vs_in_process_sample_time"] = ev["s"] / results["in_process_sample_s"]
                results["ratio_evidently_vs_in_process_sample_memory"] = (
                    ev["rss_mb"] / results["in_process_sample_peak_rss_mb"]
                )
                results["evidently_same_drifted_columns"] = sorted(ev["drifted"]) == sorted(
                    ip.get("drifted_columns") or []
                )
            results["ratio_workflow_whole_vs_evidently_sample_time"] = results["workflow_s"] / ev["s"]
        for k, v in results.items():
            print(f"{k:55s} {fmt(v)}")
        write_json(args.json, results)
    finally:
        with urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")):
            pass
        server.stop()


if __name__ == "__main__":
    main()
