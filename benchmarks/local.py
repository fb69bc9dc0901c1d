"""Local platform benchmark: start-up, warm invocation overhead, S3 upload -> handler latency.

Each figure is compared, in the same run, with what a user would otherwise reach for:

- ``up --detach`` to ready vs. a bare ``moto.server`` (the emulator alone, nothing provisioned);
- the executor's warm invocation of an empty handler vs. calling the handler in-process (the floor)
  and vs. a fresh process per invocation (running a handler locally without warm workers);
- S3 upload -> handler start vs. moto's own S3 -> SQS notification (the path moto delivers itself).

Targets (issue 3): ready < 10 s, warm overhead < 5 ms p50, upload -> handler < 1 s.

``--persistence`` measures the kept state instead (issue 18): ``up`` to ready on a state directory
holding 10k objects and 100k items vs. ``up`` on an empty one, and the p50 of S3 PutObject and
DynamoDB PutItem through the recording middleware (journal fsynced before the answer) vs. the same
in-memory emulator without it, interleaved in one process. Target: ready < 10 s on 2 cores.
The machine is shared: the report includes the load average and the platform's CPU seconds at
ready, which do not depend on how busy the other cores are.

    .venv/bin/python benchmarks/local.py [--quick] [--json PATH]
    .venv/bin/python benchmarks/local.py --persistence [--objects 10000] [--items 100000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import print_table, write_json  # noqa: E402

FIXTURES = "tests.fixtures.lambda_handlers"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(round(q * (len(ordered) - 1)), len(ordered) - 1)]


def cli(*args: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftline.cli.main", "local", *args, "--state-dir", str(state_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_queue_wait_s(pid: int) -> float:
    """Seconds the process's live threads spent runnable but waiting for a CPU (/proc schedstat).

    A lower bound of what a busy machine added (threads that already ended are not counted)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def start(state_dir: Path, overrides: dict[str, str]) -> tuple[float, float, float, dict[str, Any]]:
    """(seconds until `up --detach` returned, CPU seconds and run-queue wait of the platform, state)."""
    args = ["up", "--detach", "--port", str(free_port()), "--api-port", str(free_port())]
    for k, v in overrides.items():
        args += ["--handler-override", f"{k}={v}"]
    t0 = time.perf_counter()
    result = cli(*args, state_dir=state_dir)
    took = time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(
            f"driftline local up failed:\n{result.stderr}\n{(state_dir / 'local.log').read_text()[-2000:]}"
        )
    state = json.loads((state_dir / "local.json").read_text())
    return took, cpu_seconds(state["pid"]), run_queue_wait_s(state["pid"]), state


def stop(state_dir: Path) -> float:
    t0 = time.perf_counter()
    cli("down", state_dir=state_dir)
    return time.perf_counter() - t0


def bare_moto_ready() -> float:
    """Seconds until a plain `python -m moto.server` answers HTTP (pycache as for the platform)."""
    import urllib.request

    port = free_port()
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(ROOT / ".driftline" / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1).read()
                return time.perf_counter() - t0
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit("moto.server exited") from None
                time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait()


def bench_executor(n: int) -> dict[str, float]:
    from driftline.local.executor import FunctionSpec, LambdaExecutor
    from tests.fixtures import lambda_handlers

    spec = FunctionSpec(
        name="bench-empty",
        arn="arn:aws:lambda:us-east-1:123456789012:function:bench-empty",
        handler=f"{FIXTURES}.empty",
        timeout_s=10,
        memory_mb=128,
        env={},
        code_paths=(str(ROOT),),
    )
    ex = LambdaExecutor()
    try:
        ex.invoke(spec, "{}")  # cold start
        for _ in range(20):
            ex.invoke(spec, "{}")
        warm = []
        for _ in range(n):
            t0 = time.perf_counter()
            ex.invoke(spec, '{"k": 1}')
            warm.append((time.perf_counter() - t0) * 1e6)
    finally:
        ex.shutdown()
    direct = []
    for _ in range(n):
        t0 = time.perf_counter()
        lambda_handlers.empty(json.loads('{"k": 1}'), None)
        direct.append((time.perf_counter() - t0) * 1e6)
    fresh = []
    code = f"import json, {FIXTURES.rsplit('.', 1)[0]}.lambda_handlers as h; print(json.dumps(h.empty({{}}, None)))"
    for _ in range(max(n // 100, 3)):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, check=True)
        fresh.append((time.perf_counter() - t0) * 1e3)
    return {
        "warm_p50_us": pct(warm, 0.5),
        "warm_p99_us": pct(warm, 0.99),
        "direct_p50_us": pct(direct, 0.5),
        "fresh_process_p50_ms": statistics.median(fresh),
    }


def bench_platform(state: dict[str, Any], n_invoke: int, n_upload: int) -> dict[str, float]:
    import boto3

    endpoint = f"http://127.0.0.1:{state['port']}"
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    lam, s3, logs, sqs = (session.client(s, endpoint_url=endpoint) for s in ("lambda", "s3", "logs", "sqs"))
    token = state.get("token") or ""

    def mark(request: Any, **_: Any) -> None:  # creating a function needs the platform's token
        request.headers["x-driftline-internal"] = token

    lam.meta.events.register("before-sign.*.*", mark)
    prefix, acct = state["prefix"], state["account"]

    # Invoke API round trip (boto3 -> HTTP -> moto -> executor -> worker), empty handler.
    fn = f"bench-empty-{uuid.uuid4().hex[:6]}"
    lam.create_function(
        FunctionName=fn,
        Runtime="python3.12",
        Handler=f"{FIXTURES}.empty",
        Timeout=10,
        Role=f"arn:aws:iam::{acct}:role/{prefix}-local-role",
        Code={"ZipFile": _zip()},
    )
    for _ in range(10):
        lam.invoke(FunctionName=fn, Payload=b"{}")
    api = []
    for _ in range(n_invoke):
        t0 = time.perf_counter()
        lam.invoke(FunctionName=fn, Payload=b"{}")
        api.append((time.perf_counter() - t0) * 1e3)

    # S3 upload -> ingest handler (record fixture logs the time it started).
    bucket = f"{prefix}-features-{acct}-us-east-1"
    sent: dict[str, float] = {}
    for i in range(n_upload + 1):
        key = f"incoming/bench/{uuid.uuid4().hex}.csv"
        sent[key] = time.time()
        s3.put_object(Bucket=bucket, Key=key, Body=b"a\n1\n")
        time.sleep(0.2 if i else 1.5)  # let the first (cold) one finish before measuring warm ones
    got: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while len(got) < len(sent) and time.monotonic() < deadline:
        try:
            events = logs.filter_log_events(logGroupName=f"/aws/lambda/{prefix}-ingest")["events"]
        except logs.exceptions.ResourceNotFoundException:
            events = []
        for e in events:
            if e["message"].startswith("RECORD "):
                rec = json.loads(e["message"][7:])
                got[rec["event"]["Records"][0]["s3"]["object"]["key"]] = rec["received_at"]
        time.sleep(0.2)
    lat = [(got[k] - t) * 1e3 for k, t in sent.items() if k in got]
    cold, warm = lat[0], lat[1:]

    # Baseline: moto's own S3 -> SQS notification.
    q = sqs.create_queue(QueueName=f"bench-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    q_arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    b2 = f"bench-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=b2)
    s3.put_bucket_notification_configuration(
        Bucket=b2,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": q_arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    sqs_lat = []
    for _ in range(n_upload):
        t0 = time.time()
        s3.put_object(Bucket=b2, Key=uuid.uuid4().hex, Body=b"x")
        while not sqs.receive_message(QueueUrl=q, WaitTimeSeconds=5).get("Messages"):
            pass
        sqs_lat.append((time.time() - t0) * 1e3)
    return {
        "api_invoke_p50_ms": pct(api, 0.5),
        "api_invoke_p99_ms": pct(api, 0.99),
        "s3_to_handler_cold_ms": cold,
        "s3_to_handler_p50_ms": pct(warm, 0.5),
        "s3_to_handler_max_ms": max(warm),
        "s3_delivered": len(lat),
        "s3_sent": len(sent),
        "moto_s3_to_sqs_p50_ms": pct(sqs_lat, 0.5),
    }


def _zip() -> bytes:
    from driftline.local.provision import placeholder_zip

    return placeholder_zip()


# ---- kept state (issue 18) ----
def _reset_moto() -> None:
    from moto.backends import get_backend

    for service in ("s3", "dynamodb", "sqs"):
        for account in list(get_backend(service).keys()):  # type: ignore[call-overload]
            get_backend(service)[account].reset()  # type: ignore[call-overload]


def _serve(app: Any) -> tuple[Any, str]:
    import threading

    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            pass

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _clients(endpoint: str) -> tuple[Any, Any]:
    import boto3

    kw = {"endpoint_url": endpoint, "region_name": "us-east-1", "aws_access_key_id": "t", "aws_secret_access_key": "t"}
    return boto3.client("s3", **kw), boto3.client("dynamodb", **kw)


def prepare_state(state_dir: Path, n_objects: int, n_items: int) -> None:
    """A state dir holding ``n_objects`` 1 KiB object versions and ``n_items`` items, as a snapshot."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from moto.s3.models import s3_backends

    from driftline.local.persistence import Persistence

    _reset_moto()
    persistence = Persistence(state_dir, warn=lambda _m: None)
    persistence.open(fresh=True)
    app = DomainDispatcherApplication(create_backend_app)
    persistence.restore(app)
    server, endpoint = _serve(persistence.middleware(app))
    s3, ddb = _clients(endpoint)
    s3.create_bucket(Bucket="bench-objects")
    s3.put_bucket_versioning(Bucket="bench-objects", VersioningConfiguration={"Status": "Enabled"})
    ddb.create_table(
        TableName="bench-items",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    backend = s3_backends["123456789012"]["aws"]
    body = os.urandom(1024)
    for i in range(n_objects):
        backend.put_object("bench-objects", f"uploads/{i:06d}.csv", body, disable_notification=True)
    table = dynamodb_backends["123456789012"]["us-east-1"].get_table("bench-items")
    for i in range(n_items):
        table.put_item(
            {
                "pk": {"S": f"model-{i % 100}"},
                "sk": {"S": f"v{i:07d}"},
                "stage": {"S": "candidate"},
                "metrics": {"M": {"auc": {"N": "0.91"}, "rows": {"N": str(i)}}},
            }
        )
    persistence.compact()
    server.shutdown()
    server.server_close()
    persistence.close(compact=False)
    _reset_moto()


def bench_write_overhead(n: int) -> dict[str, float]:
    """p50 of S3 PutObject (1 KiB) and DynamoDB PutItem with and without the recording middleware."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from driftline.local.persistence import Persistence

    _reset_moto()
    with tempfile.TemporaryDirectory(prefix="driftline-bench-") as tmp:
        persistence = Persistence(Path(tmp), warn=lambda _m: None)
        persistence.open()
        app = DomainDispatcherApplication(create_backend_app)
        persistence.restore(app)
        plain_server, plain = _serve(app)
        kept_server, kept = _serve(persistence.middleware(app))
        targets = {"memory": _clients(plain), "kept": _clients(kept)}
        s3, ddb = targets["memory"]
        s3.create_bucket(Bucket="bench")
        s3.put_bucket_versioning(Bucket="bench", VersioningConfiguration={"Status": "Enabled"})
        ddb.create_table(
            TableName="bench",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        times: dict[str, list[float]] = {f"{w}_{op}": [] for w in targets for op in ("s3", "ddb")}
        body = os.urandom(1024)
        for i in range(n + 20):
            for which, (s3c, ddbc) in targets.items():
                t0 = time.perf_counter()
                s3c.put_object(Bucket="bench", Key=f"k/{which}/{i}", Body=body)
                t1 = time.perf_counter()
                ddbc.put_item(TableName="bench", Item={"pk": {"S": f"{which}-{i}"}, "v": {"N": str(i)}})
                t2 = time.perf_counter()
                if i >= 20:  # warm-up: connections, botocore's first-call work
                    times[f"{which}_s3"].append((t1 - t0) * 1e3)
                    times[f"{which}_ddb"].append((t2 - t1) * 1e3)
        for server in (plain_server, kept_server):
            server.shutdown()
            server.server_close()
        persistence.close(compact=False)
    _reset_moto()
    return {f"{k}_p50_ms": statistics.median(v) for k, v in times.items()}


def bench_persistence(n_objects: int, n_items: int, n_writes: int, runs: int) -> dict[str, Any]:
    overhead = bench_write_overhead(n_writes)
    filled, empty, filled_cpu = [], [], []
    with tempfile.TemporaryDirectory(prefix="driftline-bench-") as tmp:
        state_dir = Path(tmp) / "state"
        t0 = time.perf_counter()
        prepare_state(state_dir, n_objects, n_items)
        prepared_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in (state_dir / "data").iterdir())
        for _ in range(runs):
            took, cpu, _wait, _state = start(state_dir, {})
            filled.append(took)
            filled_cpu.append(cpu)
            stop(state_dir)
            with tempfile.TemporaryDirectory(prefix="driftline-bench-") as blank:
                took, _cpu, _wait, _state = start(Path(blank), {})
                empty.append(took)
                stop(Path(blank))
        restored = [line for line in (state_dir / "local.log").read_text().splitlines() if "[local] restored" in line]
    return {
        "objects": n_objects,
        "items": n_items,
        "state_mib": size / 2**20,
        "snapshot_write_s": prepared_s,
        "up_filled_s": statistics.median(filled),
        "up_filled_cpu_s": statistics.median(filled_cpu),
        "up_empty_s": statistics.median(empty),
        "restore_line": restored[-1] if restored else "",
        **overhead,
    }


def main_persistence(args: argparse.Namespace) -> None:
    runs, n_writes = (1, 200) if args.quick else (3, 1000)
    results: dict[str, Any] = {"load_avg_1m": os.getloadavg()[0], "cores": os.cpu_count()}
    results.update(bench_persistence(args.objects, args.items, n_writes, runs))
    r = results
    rows = [
        {
            "measure": f"up to ready, {r['objects']} objects + {r['items']} items ({r['state_mib']:.0f} MiB)",
            "local": f"{r['up_filled_s']:.2f} s",
            "baseline": f"{r['up_empty_s']:.2f} s (empty state)",
            "ratio": f"{r['up_filled_s'] / r['up_empty_s']:.1f}x",
            "target": "< 10 s",
        },
        {
            "measure": "  platform CPU at ready",
            "local": f"{r['up_filled_cpu_s']:.2f} s",
            "baseline": "",
            "ratio": "",
            "target": "",
        },
        {
            "measure": "S3 PutObject 1 KiB p50",
            "local": f"{r['kept_s3_p50_ms']:.2f} ms",
            "baseline": f"{r['memory_s3_p50_ms']:.2f} ms (in memory)",
            "ratio": f"+{r['kept_s3_p50_ms'] - r['memory_s3_p50_ms']:.2f} ms",
            "target": "",
        },
        {
            "measure": "DynamoDB PutItem p50",
            "local": f"{r['kept_ddb_p50_ms']:.2f} ms",
            "baseline": f"{r['memory_ddb_p50_ms']:.2f} ms (in memory)",
            "ratio": f"+{r['kept_ddb_p50_ms'] - r['memory_ddb_p50_ms']:.2f} ms",
            "target": "",
        },
    ]
    print_table(rows, title=f"Kept state ({r['cores']} cores, load average {r['load_avg_1m']:.1f})")
    print(r["restore_line"])
    write_json(args.json, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one start-up, fewer invocations and uploads")
    parser.add_argument("--json", help="write flat JSON results here")
    parser.add_argument("--persistence", action="store_true", help="measure the kept state instead (issue 18)")
    parser.add_argument("--objects", type=int, default=10_000, help="with --persistence: objects in the state")
    parser.add_argument("--items", type=int, default=100_000, help="with --persistence: items in the state")
    args = parser.parse_args()
    if args.persistence:
        main_persistence(args)
        return
    runs, n_exec, n_invoke, n_upload = (1, 500, 100, 5) if args.quick else (3, 3000, 500, 20)
    results: dict[str, Any] = {"load_avg_1m": os.getloadavg()[0], "cores": os.cpu_count()}

    moto_ready = [bare_moto_ready() for _ in range(runs)]
    ups, cpus, waits, downs = [], [], [], []
    overrides = {"ingest": f"{FIXTURES}.record"}
    plat: dict[str, float] = {}
    for i in range(runs):
        with tempfile.TemporaryDirectory(prefix="driftline-bench-") as tmp:
            took, cpu, wait, state = start(Path(tmp), overrides)
            ups.append(took)
            cpus.append(cpu)
            waits.append(wait)
            if i == runs - 1:
                plat = bench_platform(state, n_invoke, n_upload)
            downs.append(stop(Path(tmp)))
    ex = bench_executor(n_exec)
    results.update(
        {
            "up_ready_s": statistics.median(ups),
            "up_cpu_s": statistics.median(cpus),
            "up_run_queue_wait_s": statistics.median(waits),
            "moto_server_ready_s": statistics.median(moto_ready),
            "down_s": statistics.median(downs),
            "ratio_up_vs_moto_server": statistics.median(ups) / statistics.median(moto_ready),
            "invoke_overhead_p50_us": ex["warm_p50_us"] - ex["direct_p50_us"],
            "invoke_warm_p99_us": ex["warm_p99_us"],
            "direct_call_p50_us": ex["direct_p50_us"],
            "fresh_process_p50_ms": ex["fresh_process_p50_ms"],
            "ratio_fresh_process_vs_warm": ex["fresh_process_p50_ms"] * 1e3 / ex["warm_p50_us"],
            **plat,
            "ratio_s3_handler_vs_moto_sqs": plat["s3_to_handler_p50_ms"] / plat["moto_s3_to_sqs_p50_ms"],
        }
    )
    rows = [
        {
            "measure": "up --detach to ready",
            "local": f"{results['up_ready_s']:.2f} s",
            "baseline": f"{results['moto_server_ready_s']:.2f} s (bare moto.server)",
            "ratio": f"{results['ratio_up_vs_moto_server']:.1f}x",
            "target": "< 10 s",
        },
        {
            "measure": "  platform CPU at ready",
            "local": f"{results['up_cpu_s']:.2f} s",
            "baseline": "",
            "ratio": "",
            "target": "",
        },
        {
            "measure": "  waiting for a CPU (at least)",
            "local": f"{results['up_run_queue_wait_s']:.2f} s",
            "baseline": "",
            "ratio": "",
            "target": "",
        },
        {"measure": "down", "local": f"{results['down_s']:.2f} s", "baseline": "", "ratio": "", "target": ""},
        {
            "measure": "warm invoke overhead p50 (empty)",
            "local": f"{results['invoke_overhead_p50_us']:.0f} us",
            "baseline": f"{ex['fresh_process_p50_ms']:.0f} ms (fresh process per call)",
            "ratio": f"{results['ratio_fresh_process_vs_warm']:.0f}x faster",
            "target": "< 5 ms",
        },
        {
            "measure": "  warm invoke p99",
            "local": f"{ex['warm_p99_us']:.0f} us",
            "baseline": f"{ex['direct_p50_us']:.1f} us (direct call)",
            "ratio": "",
            "target": "",
        },
        {
            "measure": "Invoke API round trip p50 (boto3)",
            "local": f"{results['api_invoke_p50_ms']:.2f} ms",
            "baseline": "",
            "ratio": "",
            "target": "",
        },
        {
            "measure": "S3 upload -> handler p50 (warm)",
            "local": f"{results['s3_to_handler_p50_ms']:.0f} ms",
            "baseline": f"{results['moto_s3_to_sqs_p50_ms']:.0f} ms (moto S3 -> SQS)",
            "ratio": f"{results['ratio_s3_handler_vs_moto_sqs']:.1f}x",
            "target": "< 1 s",
        },
        {
            "measure": "  max (warm) / first (cold)",
            "local": f"{results['s3_to_handler_max_ms']:.0f} / {results['s3_to_handler_cold_ms']:.0f} ms",
            "baseline": f"{results['s3_delivered']}/{results['s3_sent']} delivered",
            "ratio": "",
            "target": "",
        },
    ]
    print_table(rows, title=f"Local platform ({results['cores']} cores, load average {results['load_avg_1m']:.1f})")
    write_json(args.json, results)


if __name__ == "__main__":
    main()
