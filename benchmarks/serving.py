"""Serving benchmark: Driftline's handler (ONNX Runtime) vs the naive handler (joblib + sklearn + pandas).

Both serve the same fitted scikit-learn pipeline (the platform's own training code, exported to ONNX
for Driftline), read from the same emulator's S3, in the same run:

- cold start: a fresh Python process, from spawn to the first prediction (Driftline also reads the
  registry: champion alias, version item, then the SHA-256-verified artifact);
- warm latency of the whole Lambda handler for 1 row and 100 rows (p50, p99), in a process that
  serves nothing else, plus a breakdown of Driftline's request path;
- the cost of inference capture: background (default) vs synchronous Firehose delivery;
- throughput through the local API gateway (with ``--emulator local``).

Like a Lambda package (which ships precompiled bytecode), children run with a warm bytecode cache
(``PYTHONPYCACHEPREFIX``, one untimed warm-up run each); ``OMP_NUM_THREADS=1`` for both, since
HistGradientBoosting's OpenMP start-up otherwise spikes its single-row latency.

    python benchmarks/serving.py [--quick] [--json out.json] [--emulator local|moto] [--capture-only] [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import print_table, write_json  # noqa: E402

MODEL = "credit-default"
REGION = "us-east-1"
CREDS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_SESSION_TOKEN": "test"}
# Prices (us-east-1, x86, list prices; check the current ones): Lambda GB-second and request,
# API Gateway REST request (first 333 M/month), Firehose ingestion per GB, CloudWatch Logs ingestion.
LAMBDA_GB_S = 0.0000166667
LAMBDA_REQUEST = 0.20 / 1e6
APIGW_REST_REQUEST = 3.50 / 1e6
FIREHOSE_GB = 0.029
LOGS_GB = 0.50

# ----------------------------------------------------------------------------- child programs
# The naive baseline, as users write it: joblib (pickle) from S3. Driftline never loads pickle; the
# benchmark wrote this object itself to the local emulator, so loading it here is safe.
_NAIVE = r"""
import io, json, os
import boto3, joblib, numpy as np, pandas as pd

SPEC = json.loads(os.environ["NAIVE_SPEC"])

def load_model():
    s3 = boto3.client("s3", region_name=os.environ["AWS_REGION"])
    data = s3.get_object(Bucket=SPEC["bucket"], Key=SPEC["key"])["Body"].read()
    return joblib.load(io.BytesIO(data))

def encode(df):
    cols = []
    for f in SPEC["features"]:
        col = df[f["name"]]
        if f["type"] == "categorical":
            cols.append(col.map({c: float(i) for i, c in enumerate(f["categories"])}).astype(float))
        else:
            cols.append(col.astype(float))
    return np.column_stack(cols).astype(np.float32)

def make_handler(model):
    def handler(event, context=None):
        body = json.loads(event["body"])
        df = pd.DataFrame(body["records"])
        proba = model.predict_proba(encode(df))
        preds = [{"label": int(p.argmax()), "probability": float(p[1])} for p in proba]
        return {"statusCode": 200, "body": json.dumps({"predictions": preds})}
    return handler
"""

COLD_OURS = r"""
import time
t0 = time.perf_counter()
import json, sys
from lambdas import serve
from driftline.serving.events import LocalContext, proxy_event
t1 = time.perf_counter()
ev = proxy_event("POST", "/v1/models/credit-default/predict", sys.argv[1], headers={"Content-Type": "application/json"})
r = serve.handler(ev, LocalContext())
t2 = time.perf_counter()
assert r["statusCode"] == 200, r["body"]
print("RESULT " + json.dumps({"import_s": t1 - t0, "first_request_s": t2 - t1}), flush=True)
"""

COLD_NAIVE = (
    r"""
import time
t0 = time.perf_counter()
import json, sys
"""
    + _NAIVE
    + r"""
t1 = time.perf_counter()
handler = make_handler(load_model())
r = handler({"body": sys.argv[1]})
t2 = time.perf_counter()
assert r["statusCode"] == 200
print("RESULT " + json.dumps({"import_s": t1 - t0, "first_request_s": t2 - t1}), flush=True)
"""
)

_STATS = r'''
import time, json, sys, os, contextlib
def stats(fn, n):
    """Wall-clock p50/p99 and CPU-time p50 (this thread's CPU: less sensitive to a busy host)."""
    for _ in range(min(50, n)):
        fn()
    ts, cpu = [], []
    for _ in range(n):
        t, c = time.perf_counter(), time.thread_time()
        fn()
        cpu.append(time.thread_time() - c)
        ts.append(time.perf_counter() - t)
    ts.sort()
    cpu.sort()
    return {"p50_us": ts[n // 2] * 1e6, "p99_us": ts[min(n - 1, int(n * 0.99))] * 1e6,
            "cpu_p50_us": cpu[n // 2] * 1e6, "n": n}
one, hundred = sys.argv[1], sys.argv[2]
n1, n100 = int(sys.argv[3]), int(sys.argv[4])
'''

WARM_OURS = (
    _STATS
    + r'''
from lambdas import serve
from driftline.serving.events import LocalContext, proxy_event
from driftline.serving.service import HttpRequest, Outcome
ctx = LocalContext()
hdr = {"Content-Type": "application/json"}
e1 = proxy_event("POST", "/v1/models/credit-default/predict", one, headers=hdr)
e100 = proxy_event("POST", "/v1/models/credit-default/predict", hundred, headers=hdr)
out = {}
import io as _io
sink = open(os.devnull, "w")
buf = _io.StringIO()
with contextlib.redirect_stdout(buf):
    assert serve.handler(e1, ctx)["statusCode"] == 200
emf = [ln for ln in buf.getvalue().splitlines() if ln.startswith('{"_aws"')]
out["emf_bytes"] = len(emf[-1]) + 1 if emf else 0
with contextlib.redirect_stdout(sink):
    out["handler_1"] = stats(lambda: serve.handler(e1, ctx), n1)
    out["handler_100"] = stats(lambda: serve.handler(e100, ctx), n100)
svc = serve._State.service
if svc.capture.mode == "background":
    r1 = HttpRequest(one, "application/json", False, "bench")
    out["core_1"] = stats(lambda: svc.predict("credit-default", r1, Outcome()), n1)
    champ = svc.deployments.deployment("credit-default").champion
    rows = json.loads(one)["records"]
    X = champ.validator.validate(rows).X
    out["validate_1"] = stats(lambda: champ.validator.validate(rows), n1)
    assert champ.typed is not None and champ.typed.decode(one, 1000) is not None
    out["typed_1"] = stats(lambda: champ.typed.decode(one, 1000), n1)
    out["onnx_run_1"] = stats(lambda: champ.run(X), n1)
    from driftline.serving.body import parse_json_body
    rows100 = json.loads(hundred)["records"]
    X100 = champ.validator.validate(rows100).X
    out["parse_100"] = stats(lambda: parse_json_body(hundred, content_type="application/json"), n100)
    out["validate_100"] = stats(lambda: champ.validator.validate(rows100), n100)
    out["onnx_run_100"] = stats(lambda: champ.run(X100), n100)
    out["typed_100"] = stats(lambda: champ.typed.decode(hundred, 1000), n100)
    from driftline.capture_format import request_record
    from driftline.serving.capture import capture_entry, encode_record
    def capture_record(rows):
        pred = {"label": 0, "probability": 0.1, "probabilities": {"0": 0.9, "1": 0.1}}
        return request_record(request_id="x", model="credit-default", version=1, role="champion",
                              ts="2026-01-01T00:00:00.000000+00:00", latency_ms=0.1, rows=rows,
                              outputs=[pred] * len(rows))
    # the line as the capture writer writes it (the rows by column when they allow), from the typed rows
    # a request decodes to, and the same record in the row layout (format v2) for comparison
    typed100 = champ.typed.decode(hundred, 1000).rows
    out["capture_line_bytes"] = len(capture_entry(capture_record(rows)).line)
    out["capture_line_100_bytes"] = len(capture_entry(capture_record(typed100)).line)
    out["capture_line_100_rows_layout_bytes"] = len(encode_record(capture_record(rows100)))
svc.capture.flush()
out["capture_sent"] = svc.capture.sent
out["capture_failed"] = sum(svc.capture.drain_failures().values())
if svc.capture.mode == "background" and int(sys.argv[5]):
    import dataclasses, statistics
    import driftline.serving.capture as capture_module
    by_column = capture_module.row_columns
    def sustained(n, sampling, layout="columns"):
        """Back-to-back 100-row requests (a saturated sandbox): latency, rows/s, capture kept up?
        ``layout="rows"`` makes the writer keep every record in the row layout (format v2), to compare."""
        capture_module.row_columns = by_column if layout == "columns" else (lambda rows: None)
        svc.settings = dataclasses.replace(svc.settings, capture_sampling=sampling)
        cap = svc.capture
        cap.flush()
        cap.drain_failures()
        sent0, most, lat = cap.sent, 0, []
        cpu0 = time.process_time()  # every thread of this process: the requests and the capture thread
        t = time.perf_counter()
        for _ in range(n):
            a = time.perf_counter()
            serve.handler(e100, ctx)
            lat.append(time.perf_counter() - a)
            most = max(most, cap.pending())
        wall = time.perf_counter() - t
        cap.flush()
        cpu = time.process_time() - cpu0
        records = n if sampling else 0  # one record per request (the champion's)
        return {"lat": lat, "wall": wall, "cpu": cpu, "max_pending": most, "records_expected": records,
                "records_sent": cap.sent - sent0, "failed": sum(cap.drain_failures().values())}
    def summary(runs):
        lat = sorted(x for r in runs for x in r["lat"])
        n, expected, sent = len(lat), sum(r["records_expected"] for r in runs), sum(r["records_sent"] for r in runs)
        return {"mean_us": sum(lat) / n * 1e6, "p50_us": lat[n // 2] * 1e6, "p99_us": lat[int(n * 0.99)] * 1e6,
                "rows_per_s": n * 100 / sum(r["wall"] for r in runs),
                "max_pending": max(r["max_pending"] for r in runs), "records_expected": expected,
                "cpu_us_per_request": sum(r["cpu"] for r in runs) / n * 1e6,
                "records_sent": sent, "lost": expected - sent, "failed": sum(r["failed"] for r in runs)}
    n_sus, n_rounds = int(sys.argv[5]), int(sys.argv[6])
    on_sampling = svc.settings.capture_sampling
    per = max(20, n_sus // n_rounds)
    runs = {"on": [], "off": [], "on_rows": []}
    sides = ["on", "off", "on_rows"]
    with contextlib.redirect_stdout(sink):
        for _ in range(min(200, per)):  # warm both paths before timing
            serve.handler(e100, ctx)
        for k in range(n_rounds):  # interleaved, the order rotating: a load change hits every side
            order = sides[k % 3:] + sides[:k % 3]
            for side in (order if k % 2 == 0 else order[::-1]):
                runs[side].append(sustained(per, 0.0 if side == "off" else on_sampling,
                                            "rows" if side == "on_rows" else "columns"))
        capture_module.row_columns = by_column
    for side in sides:
        out[f"sustained_{side}"] = summary(runs[side])
    out["sustained_rounds"] = [
        {"mean_ratio": statistics.fmean(on["lat"]) / statistics.fmean(off["lat"]), "cpu_ratio": on["cpu"] / off["cpu"],
         "rows_mean_ratio": statistics.fmean(rows["lat"]) / statistics.fmean(off["lat"]),
         "rows_cpu_ratio": rows["cpu"] / off["cpu"]}
        for on, off, rows in zip(runs["on"], runs["off"], runs["on_rows"])
    ]
print("RESULT " + json.dumps(out), flush=True)
'''
)

WARM_NAIVE = (
    _STATS
    + _NAIVE
    + r"""
handler = make_handler(load_model())
e1, e100 = {"body": one}, {"body": hundred}
print("RESULT " + json.dumps({"handler_1": stats(lambda: handler(e1), n1),
                              "handler_100": stats(lambda: handler(e100), n100)}), flush=True)
"""
)

# The same handler and champion, just the latencies: run alternately with the built-in and the
# imported model as champion, so both are measured by one program in the same run.
WARM_CHAMPION = (
    _STATS
    + r"""
from lambdas import serve
from driftline.serving.events import LocalContext, proxy_event
ctx = LocalContext()
hdr = {"Content-Type": "application/json"}
e1 = proxy_event("POST", "/v1/models/credit-default/predict", one, headers=hdr)
e100 = proxy_event("POST", "/v1/models/credit-default/predict", hundred, headers=hdr)
sink = open(os.devnull, "w")
with contextlib.redirect_stdout(sink):
    assert serve.handler(e1, ctx)["statusCode"] == 200
    out = {"handler_1": stats(lambda: serve.handler(e1, ctx), n1),
           "handler_100": stats(lambda: serve.handler(e100, ctx), n100)}
champ = serve._State.service.deployments.deployment("credit-default").champion
X1 = champ.validator.validate(json.loads(one)["records"]).X
X100 = champ.validator.validate(json.loads(hundred)["records"]).X
out["onnx_run_1"] = stats(lambda: champ.run(X1), n1)
out["onnx_run_100"] = stats(lambda: champ.run(X100), n100)
out["version"] = champ.version
serve._State.service.capture.flush()
print("RESULT " + json.dumps(out), flush=True)
"""
)


# A Firehose endpoint that accepts every record at once and stores nothing: the saturated run against it
# measures what capture costs the serving process itself (encoding, base64, signing, HTTP), without the
# emulator's ingest, which runs on the same few cores here and on AWS's servers in production.
NULL_FIREHOSE = r"""
import http.server, json, sys
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else the body waits for the ACK of the headers: a 40 ms stall per call
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        n = body.count(b'"Data"')  # base64 holds no quotes: one per record
        out = json.dumps({"FailedPutCount": 0, "RequestResponses": [{"RecordId": "r"}] * n}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


@contextlib.contextmanager
def null_firehose() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", NULL_FIREHOSE, str(port)])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


# ----------------------------------------------------------------------------- emulator
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def emulator(kind: str, work: Path, base_env: dict[str, str]) -> Iterator[dict[str, str | None]]:
    """The local platform (moto + executor + API gateway) or a bare moto server; yields endpoints."""
    if kind == "local":
        state_dir = work / "local"
        args = [
            sys.executable,
            "-m",
            "driftline.cli.main",
            "local",
            "up",
            "--detach",
            "--port",
            str(free_port()),
            "--api-port",
            str(free_port()),
            "--config",
            str(ROOT / "cdk.json"),
            "--state-dir",
            str(state_dir),
        ]
        proc = subprocess.run(args, cwd=ROOT, env=base_env, capture_output=True, text=True, timeout=300, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"driftline local up failed:\n{proc.stdout}\n{proc.stderr}")
        from driftline.local.state import read_state

        st = read_state(state_dir)
        assert st is not None
        try:
            yield {"endpoint": st.endpoint, "api_url": st.api_url}
        finally:
            subprocess.run(
                [sys.executable, "-m", "driftline.cli.main", "local", "down", "--state-dir", str(state_dir)],
                cwd=ROOT,
                env=base_env,
                capture_output=True,
                timeout=120,
                check=False,
            )
        return
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=base_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if time.monotonic() > deadline:
                raise SystemExit("moto server did not start")
            time.sleep(0.1)
        yield {"endpoint": f"http://127.0.0.1:{port}", "api_url": None}
    finally:
        server.terminate()
        server.wait(10)


# ----------------------------------------------------------------------------- model
def train_and_register(env: dict[str, str], n_rows: int, algorithm: str) -> dict[str, Any]:
    """Fit the platform's pipeline on synthetic credit data, register it (ONNX) and store the joblib."""
    import joblib

    from driftline.datasets.credit_default import generate
    from driftline.features.encoding import model_features
    from driftline.features.schema import load_feature_set
    from driftline.registry.artifacts import put_artifact
    from driftline.registry.store import Registry
    from driftline.training.dataset import encode_table, label_targets
    from driftline.training.estimators import build_pipeline
    from driftline.training.onnx_export import to_onnx

    fs = load_feature_set(ROOT / "examples" / "feature_sets" / "credit_default.yaml")
    assert fs.label is not None
    schema = fs.input_schema()
    table = generate(n_rows, "2026-01-01", "2026-04-01", seed=7)
    X, y = encode_table(schema, table), label_targets(table, fs.label)
    params = {"max_iter": 100} if algorithm == "hist_gradient_boosting" else {"n_estimators": 100, "max_depth": 10}
    t = time.perf_counter()
    pipe = build_pipeline(algorithm, fs.label.task, schema, params, seed=0)
    pipe.fit(X, y)
    fit_s = time.perf_counter() - t
    onnx_bytes = to_onnx(pipe, X.shape[1], classifier=True)
    buf = io.BytesIO()
    joblib.dump(pipe, buf)

    reg = Registry(env["REGISTRY_TABLE"])
    v = reg.next_version(MODEL)
    ref = put_artifact(env["ARTIFACTS_BUCKET"], f"models/{MODEL}/v{v}/model.onnx", onnx_bytes)
    naive_key = f"models/{MODEL}/v{v}/model.joblib"
    put_artifact(env["ARTIFACTS_BUCKET"], naive_key, buf.getvalue())
    reg.register(
        MODEL,
        version=v,
        algorithm=algorithm,
        input_schema=schema,
        artifacts={"onnx": ref},
        feature_set=fs.name,
        feature_set_version=fs.version,
        params=params,
    )
    reg.approve(MODEL, v, "benchmark", "benchmark model")
    reg.promote(MODEL, v, "benchmark", "benchmark model")
    names = [f["name"] for f in schema["features"]]
    records = table.select(names).slice(0, 200).to_pylist()
    return {
        "version": v,
        "fit_s": fit_s,
        "onnx_bytes": len(onnx_bytes),
        "joblib_bytes": buf.getbuffer().nbytes,
        "records": records,
        "naive_spec": {
            "bucket": env["ARTIFACTS_BUCKET"],
            "key": naive_key,
            "features": [dict(f) for f in model_features(schema)],
        },
    }


def register_imported_pipeline(env: dict[str, str], n_rows: int) -> dict[str, Any]:
    """A notebook's one-hot pipeline (examples/trainers/credit_pipeline.py) fitted on the training frame
    of the same data, registered through ``register_imported`` (the path of ``driftline.register_model``)
    and approved; the built-in model stays champion until the comparison promotes this one."""
    import importlib.util

    from driftline import config
    from driftline.datasets.credit_default import generate
    from driftline.features.schema import load_feature_set
    from driftline.registry.store import Registry
    from driftline.training.frames import training_frame
    from driftline.training.imported import ImportedModel, register_imported

    fs = load_feature_set(ROOT / "examples" / "feature_sets" / "credit_default.yaml")
    assert fs.label is not None
    cfg = config.load(ROOT / "cdk.json").model(MODEL)
    spec = importlib.util.spec_from_file_location(
        "credit_pipeline", ROOT / "examples" / "trainers" / "credit_pipeline.py"
    )
    assert spec is not None and spec.loader is not None
    trainer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trainer)
    table = generate(n_rows, "2026-01-01", "2026-04-01", seed=7)
    frame = training_frame(table, fs, 0.2)
    train = frame[frame.split == "train"]
    pipe = trainer.build(fs, {"max_iter": 100})  # the same number of trees as the built-in model
    t = time.perf_counter()
    pipe.fit(train[[f.name for f in fs.features]], train[fs.label.name])
    fit_s = time.perf_counter() - t
    reg = Registry(env["REGISTRY_TABLE"])
    t = time.perf_counter()
    out = register_imported(
        ImportedModel(estimator=pipe),
        table,
        fs,
        cfg,
        registry=reg,
        artifacts_bucket=env["ARTIFACTS_BUCKET"],
        created_by="benchmark",
        validation_fraction=0.2,
    )
    register_s = time.perf_counter() - t
    if out.status != "candidate":
        raise SystemExit(f"the imported pipeline was rejected: {out.reason}")
    reg.approve(MODEL, out.version, "benchmark", "benchmark model")
    return {
        "version": out.version,
        "fit_s": fit_s,
        "register_s": register_s,
        "onnx_bytes": int(out.artifacts["onnx"]["size"]),
    }


def compare_imported(
    env: dict[str, str], child_env: dict[str, str], builtin: int, imported: int, counts: list[str], rounds: int
) -> dict[str, Any]:
    """Built-in vs imported champion, alternately (fresh child each), median over ``rounds``."""
    from driftline.registry.store import Registry

    reg = Registry(env["REGISTRY_TABLE"])
    runs: dict[str, list[dict[str, Any]]] = {"builtin": [], "imported": []}
    for i in range(rounds):
        for who, version in (("builtin", builtin), ("imported", imported)):
            if reg.aliases(MODEL, consistent=True).champion != version:
                if i == 0 and who == "imported":
                    reg.promote(MODEL, version, "benchmark", "benchmark: imported pipeline vs built-in")
                else:
                    reg.rollback(MODEL, "benchmark", "benchmark: imported pipeline vs built-in", to_version=version)
            _, r = run_child(WARM_CHAMPION, counts, child_env)
            assert r["version"] == version, (r["version"], version)
            runs[who].append(r)
    if reg.aliases(MODEL, consistent=True).champion != builtin:
        reg.rollback(MODEL, "benchmark", "benchmark done", to_version=builtin)
    out: dict[str, Any] = {}
    for part in ("handler_1", "handler_100", "onnx_run_1", "onnx_run_100"):
        for who, results in runs.items():
            for q in ("p50_us", "cpu_p50_us"):
                out[f"{who}_{part}_{q}"] = statistics.median(r[part][q] for r in results)
        out[f"ratio_imported_vs_builtin_{part}_p50"] = out[f"imported_{part}_p50_us"] / out[f"builtin_{part}_p50_us"]
    return out


# ----------------------------------------------------------------------------- measurement
def run_child(code: str, args: list[str], env: dict[str, str], timeout: float = 600) -> tuple[float, dict[str, Any]]:
    """Spawn a fresh interpreter; return (seconds from spawn to its RESULT line, the RESULT payload)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    result: dict[str, Any] | None = None
    elapsed = math.nan
    for line in proc.stdout:
        if line.startswith("RESULT "):
            elapsed = time.perf_counter() - t0
            result = json.loads(line[len("RESULT ") :])
            break
    _, err = proc.communicate(timeout=timeout)
    if result is None:
        raise SystemExit(f"child failed (exit {proc.returncode}):\n{err[-4000:]}")
    return elapsed, result


def throughput(api_url: str, body: str, seconds: float, concurrency: int) -> dict[str, float]:
    import requests

    lat: list[float] = []
    errors = 0
    lock = threading.Lock()

    def worker() -> None:
        nonlocal errors
        s = requests.Session()
        mine: list[float] = []
        bad = 0
        while time.monotonic() < stop:
            t = time.perf_counter()
            r = s.post(
                f"{api_url}/v1/models/{MODEL}/predict",
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=60,
            )
            mine.append(time.perf_counter() - t)
            bad += r.status_code != 200
        with lock:
            lat.extend(mine)
            errors += bad

    def warm_up() -> None:  # start the gateway's workers (each a cold start) before timing
        with requests.Session() as s:
            s.post(
                f"{api_url}/v1/models/{MODEL}/predict",
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=300,
            )

    for _ in range(2):
        starters = [threading.Thread(target=warm_up) for _ in range(concurrency)]
        for th in starters:
            th.start()
        for th in starters:
            th.join()
    stop = time.monotonic() + seconds
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    lat.sort()
    return {
        "rps": len(lat) / wall,
        "p50_ms": lat[len(lat) // 2] * 1e3,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3,
        "errors": float(errors),
    }


def count_objects(bucket: str, prefix: str) -> int:
    from driftline import aws

    pages = aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sum(len(p.get("Contents", [])) for p in pages)


def saturated_results(ours: dict[str, Any], nullsink: dict[str, Any]) -> dict[str, float]:
    """Flat keys of the saturated runs (against the emulator, and against a sink that stores nothing):
    means in us, process CPU per request in us, rows/s, records sent/lost/failed, on/off ratios of the
    pooled runs, and the median (min, max) of the per-round ratios of the interleaved rounds."""
    results: dict[str, float] = {}
    for name, child in (("capture", ours), ("nullsink_capture", nullsink)):
        for cap in ("on", "off", "on_rows"):
            for k, v in child[f"sustained_{cap}"].items():
                results[f"sustained_100_{name}_{cap}_{k}"] = v
        for on, prefix in (("on", ""), ("on_rows", "rows_")):
            for measure, key in (("mean", "mean_us"), ("cpu", "cpu_us_per_request")):
                results[f"sustained_100_{name}_{on}_over_off_{measure}_ratio"] = (
                    results[f"sustained_100_{name}_{on}_{key}"] / results[f"sustained_100_{name}_off_{key}"]
                )
            rounds = child["sustained_rounds"]
            results[f"sustained_100_{name}_rounds"] = len(rounds)
            for measure in ("mean", "cpu"):
                ratios = [r[f"{prefix}{measure}_ratio"] for r in rounds]
                results[f"sustained_100_{name}_{on}_over_off_{measure}_ratio_median"] = statistics.median(ratios)
                results[f"sustained_100_{name}_{on}_over_off_{measure}_ratio_min"] = min(ratios)
                results[f"sustained_100_{name}_{on}_over_off_{measure}_ratio_max"] = max(ratios)
    results["sustained_capture_cost_us_per_row"] = (
        results["sustained_100_capture_on_mean_us"] - results["sustained_100_capture_off_mean_us"]
    ) / 100
    return results


def saturated_children(
    one: str, hundred: str, child_env: dict[str, str], counts: list[str], n_sustained: int, rounds: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The warm child against the emulator (with ``counts`` iterations of the per-part loops) and against
    a Firehose that stores nothing, each running ``rounds`` interleaved capture on/off rounds."""
    _, ours = run_child(WARM_OURS, [one, hundred, *counts, str(n_sustained), str(rounds)], child_env)
    with null_firehose() as null_url:
        _, nullsink = run_child(
            WARM_OURS,
            [one, hundred, "100", "20", str(n_sustained), str(rounds)],
            {**child_env, "AWS_ENDPOINT_URL_FIREHOSE": null_url},
        )
    return ours, nullsink


def print_saturated(r: dict[str, Any], n_sustained: int) -> None:
    def row(name: str, label: str, cap: str) -> dict[str, Any]:
        k = f"sustained_100_{name}_{cap}"
        return {
            "capture": label,
            "mean": f"{r[f'{k}_mean_us']:.0f} us",
            "CPU/request": f"{r[f'{k}_cpu_us_per_request']:.0f} us",
            "p50": f"{r[f'{k}_p50_us']:.0f} us",
            "p99": f"{r[f'{k}_p99_us']:.0f} us",
            "rows/s": f"{r[f'{k}_rows_per_s']:,.0f}",
            "most buffered (rows)": r[f"{k}_max_pending"],
            "records sent": r[f"{k}_records_sent"],
            "lost": r[f"{k}_lost"],
            "failed": r[f"{k}_failed"],
        }

    def ratios(name: str, on: str = "on") -> str:
        k = f"sustained_100_{name}_{on}_over_off"
        return (
            f"mean {r[f'{k}_mean_ratio_median']:.2f}x ({r[f'{k}_mean_ratio_min']:.2f}-{r[f'{k}_mean_ratio_max']:.2f}), "
            f"CPU {r[f'{k}_cpu_ratio_median']:.2f}x ({r[f'{k}_cpu_ratio_min']:.2f}-{r[f'{k}_cpu_ratio_max']:.2f})"
        )

    labels = {"on": "on", "off": "off", "on_rows": "on, v2 rows"}
    print_table(
        [row("capture", labels[cap], cap) for cap in ("on", "off", "on_rows")]
        + [row("nullsink_capture", f"{labels[cap]}, null sink", cap) for cap in ("on", "off", "on_rows")],
        title=f"Saturated sandbox: {n_sustained:,} back-to-back 100-row requests per side, one capture record each, "
        f"in {r['sustained_100_capture_rounds']} interleaved on/off rounds. On/off, median (min-max) of the "
        f"rounds' ratios: against the emulator {ratios('capture')}; against a sink that stores nothing "
        f"{ratios('nullsink_capture')} (target: mean <= 1.25x, 0 lost); a 100-row capture line is "
        f"{r.get('capture_line_100_bytes', 0):,} bytes as written. The same rounds with the record in the "
        f"row layout (format v2) over off: emulator {ratios('capture', 'on_rows')}; null sink "
        f"{ratios('nullsink_capture', 'on_rows')}",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small model and few iterations (CI smoke run)")
    ap.add_argument("--json", help="write flat JSON results to this path")
    ap.add_argument(
        "--emulator",
        choices=["local", "moto"],
        default="local",
        help="local platform (default; includes the API gateway) or a bare moto server",
    )
    ap.add_argument(
        "--algorithm", choices=["hist_gradient_boosting", "random_forest"], default="hist_gradient_boosting"
    )
    ap.add_argument(
        "--capture-only",
        action="store_true",
        help="only the saturated capture on/off comparison (emulator and null sink), not the rest",
    )
    ap.add_argument("--rounds", type=int, default=6, help="interleaved on/off rounds of the saturated comparison")
    args = ap.parse_args()
    quick = args.quick
    cold_runs, n1, n100, n_sustained = (3, 300, 30, 200) if quick else (7, 3000, 300, 2000)
    n_rows = 5_000 if quick else 50_000

    work = Path(tempfile.mkdtemp(prefix="driftline-bench-serving-"))
    base_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "AWS_ENDPOINT_URL")}
    base_env.update(CREDS)
    base_env.update(
        {
            "PYTHONPYCACHEPREFIX": str(work / "pycache"),
            "OMP_NUM_THREADS": "1",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "PYTHONPATH": str(ROOT),
            "POWERTOOLS_TRACE_DISABLED": "1",
        }
    )
    os.environ.update(CREDS)
    os.environ.update({"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "OMP_NUM_THREADS": "1"})

    from driftline import aws, config
    from driftline.local.provision import provision_data
    from driftline.platform import build_platform

    platform = build_platform(config.load(ROOT / "cdk.json"))
    results: dict[str, Any] = {"quick": quick, "emulator": args.emulator, "algorithm": args.algorithm}
    print(f"starting the {args.emulator} emulator ...", flush=True)
    with emulator(args.emulator, work, base_env) as emu:
        os.environ["AWS_ENDPOINT_URL"] = str(emu["endpoint"])
        aws.reset_clients()
        names = provision_data(platform, aws.client, REGION)
        fn_env = platform.function_env(platform.function("serve"), names.account, names.region, names.arns)
        print(f"training {args.algorithm} on {n_rows:,} rows and registering it ...", flush=True)
        model = train_and_register(fn_env, n_rows, args.algorithm)
        results.update(
            {"fit_s": model["fit_s"], "onnx_kb": model["onnx_bytes"] / 1024, "joblib_kb": model["joblib_bytes"] / 1024}
        )
        child_env = {
            **base_env,
            **fn_env,
            "AWS_ENDPOINT_URL": str(emu["endpoint"]),
            "NAIVE_SPEC": json.dumps(model["naive_spec"]),
        }
        one = json.dumps({"records": model["records"][:1]})
        hundred = json.dumps({"records": model["records"][:100]})

        if args.capture_only:
            ours, nullsink = saturated_children(one, hundred, child_env, ["50", "20"], n_sustained, args.rounds)
            results.update(saturated_results(ours, nullsink))
            results["capture_line_100_bytes"] = ours["capture_line_100_bytes"]
            results["capture_line_100_rows_layout_bytes"] = ours["capture_line_100_rows_layout_bytes"]
            print_saturated(results, n_sustained)
            write_json(args.json, results)
            return

        print("cold starts (one untimed warm-up each, for the bytecode cache) ...", flush=True)
        run_child(COLD_OURS, [one], child_env)
        run_child(COLD_NAIVE, [one], child_env)
        cold: dict[str, list[float]] = {"ours": [], "naive": [], "ours_import": [], "naive_import": []}
        for _ in range(cold_runs):
            for name, code in (("ours", COLD_OURS), ("naive", COLD_NAIVE)):
                wall, r = run_child(code, [one], child_env)
                cold[name].append(wall)
                cold[f"{name}_import"].append(r["import_s"])
        for k, v in cold.items():
            results[f"cold_{k}_s"] = statistics.median(v)
        results["cold_ratio_naive_over_ours"] = results["cold_naive_s"] / results["cold_ours_s"]

        print("warm handlers ...", flush=True)
        counts = [one, hundred, str(n1), str(n100)]
        ours, nullsink = saturated_children(one, hundred, child_env, counts[2:], n_sustained, args.rounds)
        _, naive = run_child(WARM_NAIVE, counts, child_env)
        _, sync = run_child(
            WARM_OURS,
            [one, hundred, str(max(50, n1 // 10)), str(max(10, n100 // 10)), "0", "0"],
            {**child_env, "CAPTURE_MODE": "sync"},
        )
        for rows in ("1", "100"):
            for q in ("p50_us", "p99_us", "cpu_p50_us"):
                results[f"warm_ours_{rows}_{q}"] = ours[f"handler_{rows}"][q]
                results[f"warm_naive_{rows}_{q}"] = naive[f"handler_{rows}"][q]
            results[f"warm_ratio_{rows}_p50"] = naive[f"handler_{rows}"]["p50_us"] / ours[f"handler_{rows}"]["p50_us"]
        for part in (
            "core_1",
            "validate_1",
            "typed_1",
            "onnx_run_1",
            "parse_100",
            "validate_100",
            "typed_100",
            "onnx_run_100",
        ):
            results[f"ours_{part}_p50_us"] = ours[part]["p50_us"]
        results["capture_background_1_p50_us"] = ours["handler_1"]["p50_us"]
        results["capture_sync_1_p50_us"] = sync["handler_1"]["p50_us"]
        results["capture_sync_cost_us"] = sync["handler_1"]["p50_us"] - ours["handler_1"]["p50_us"]
        results["capture_records_sent"] = ours["capture_sent"] + sync["capture_sent"]
        results["capture_records_failed"] = ours["capture_failed"] + sync["capture_failed"]
        results["capture_line_bytes"] = ours["capture_line_bytes"]
        results["capture_line_100_bytes"] = ours["capture_line_100_bytes"]
        results.update(saturated_results(ours, nullsink))
        results["emf_bytes_per_request"] = ours["emf_bytes"]

        if emu["api_url"]:
            print("throughput through the local API gateway ...", flush=True)
            tp = throughput(str(emu["api_url"]), one, 3.0 if quick else 10.0, 4)
            results.update({f"gateway_{k}": v for k, v in tp.items()})
        time.sleep(0.5)
        results["capture_objects"] = count_objects(fn_env["CAPTURES_BUCKET"], f"captures/model={MODEL}/")

        print("imported one-hot pipeline (register_imported) vs the built-in model, same handler ...", flush=True)
        imp = register_imported_pipeline(fn_env, n_rows)
        results.update(
            {
                "imported_fit_s": imp["fit_s"],
                "imported_register_s": imp["register_s"],
                "imported_onnx_kb": imp["onnx_bytes"] / 1024,
            }
        )
        cmp = compare_imported(fn_env, child_env, model["version"], imp["version"], counts, 2 if quick else 3)
        results.update({f"imported_cmp_{k}" if not k.startswith("ratio") else k: v for k, v in cmp.items()})

    # ---- paper cost per million single-row predictions (1,024 MB, billed per started ms)
    mem_gb = platform.function("serve").memory_mb / 1024
    for who in ("ours", "naive"):
        billed_ms = max(1.0, math.ceil(results[f"warm_{who}_1_p50_us"] / 1000))
        lam = 1e6 * billed_ms / 1000 * mem_gb * LAMBDA_GB_S + 1e6 * LAMBDA_REQUEST
        results[f"cost_lambda_{who}_usd_per_m"] = lam
        results[f"cost_total_{who}_usd_per_m"] = lam + 1e6 * APIGW_REST_REQUEST
    results["cost_apigw_usd_per_m"] = 1e6 * APIGW_REST_REQUEST
    results["cost_capture_usd_per_m"] = 1e6 * results["capture_line_bytes"] / 1e9 * FIREHOSE_GB
    results["cost_emf_logs_usd_per_m"] = 1e6 * results["emf_bytes_per_request"] / 1e9 * LOGS_GB

    r = results
    print_table(
        [
            {
                "measure": "cold start (spawn -> first prediction)",
                "driftline": f"{r['cold_ours_s']:.3f} s",
                "naive": f"{r['cold_naive_s']:.3f} s",
                "naive/driftline": f"{r['cold_ratio_naive_over_ours']:.1f}x",
            },
            {
                "measure": "  of which imports",
                "driftline": f"{r['cold_ours_import_s']:.3f} s",
                "naive": f"{r['cold_naive_import_s']:.3f} s",
                "naive/driftline": "",
            },
            {
                "measure": "warm handler, 1 row, p50",
                "driftline": f"{r['warm_ours_1_p50_us']:.0f} us",
                "naive": f"{r['warm_naive_1_p50_us']:.0f} us",
                "naive/driftline": f"{r['warm_ratio_1_p50']:.1f}x",
            },
            {
                "measure": "warm handler, 1 row, p99",
                "driftline": f"{r['warm_ours_1_p99_us']:.0f} us",
                "naive": f"{r['warm_naive_1_p99_us']:.0f} us",
                "naive/driftline": f"{r['warm_naive_1_p99_us'] / r['warm_ours_1_p99_us']:.1f}x",
            },
            {
                "measure": "warm handler, 1 row, CPU p50",
                "driftline": f"{r['warm_ours_1_cpu_p50_us']:.0f} us",
                "naive": f"{r['warm_naive_1_cpu_p50_us']:.0f} us",
                "naive/driftline": f"{r['warm_naive_1_cpu_p50_us'] / r['warm_ours_1_cpu_p50_us']:.1f}x",
            },
            {
                "measure": "warm handler, 100 rows, p50",
                "driftline": f"{r['warm_ours_100_p50_us']:.0f} us",
                "naive": f"{r['warm_naive_100_p50_us']:.0f} us",
                "naive/driftline": f"{r['warm_ratio_100_p50']:.1f}x",
            },
            {
                "measure": "warm handler, 100 rows, p99",
                "driftline": f"{r['warm_ours_100_p99_us']:.0f} us",
                "naive": f"{r['warm_naive_100_p99_us']:.0f} us",
                "naive/driftline": f"{r['warm_naive_100_p99_us'] / r['warm_ours_100_p99_us']:.1f}x",
            },
            {
                "measure": "warm handler, 100 rows, CPU p50",
                "driftline": f"{r['warm_ours_100_cpu_p50_us']:.0f} us",
                "naive": f"{r['warm_naive_100_cpu_p50_us']:.0f} us",
                "naive/driftline": f"{r['warm_naive_100_cpu_p50_us'] / r['warm_ours_100_cpu_p50_us']:.1f}x",
            },
        ],
        title=f"Serving: Driftline (ONNX Runtime) vs naive (joblib + sklearn + pandas), {args.algorithm}",
    )
    print_table(
        [
            {"part (p50)": "whole handler (routing, logging context, EMF, capture)", "us": r["warm_ours_1_p50_us"]},
            {"part (p50)": "service.predict (parse, validate, infer, capture enqueue)", "us": r["ours_core_1_p50_us"]},
            {
                "part (p50)": "typed decode: parse + validate + encode (the request path)",
                "us": r["ours_typed_1_p50_us"],
            },
            {"part (p50)": "general path's validation + encoding alone (dict rows)", "us": r["ours_validate_1_p50_us"]},
            {"part (p50)": "ONNX Runtime run", "us": r["ours_onnx_run_1_p50_us"]},
            {"part (p50)": "handler with synchronous capture (CAPTURE_MODE=sync)", "us": r["capture_sync_1_p50_us"]},
            {"part (p50)": "100 rows, alone: typed decode (the request path)", "us": r["ours_typed_100_p50_us"]},
            {"part (p50)": "100 rows, alone: general path, parse (orjson)", "us": r["ours_parse_100_p50_us"]},
            {
                "part (p50)": "100 rows, alone: general path, validation + encoding (columns)",
                "us": r["ours_validate_100_p50_us"],
            },
            {"part (p50)": "100 rows, alone: ONNX Runtime run", "us": r["ours_onnx_run_100_p50_us"]},
        ],
        title="Driftline request path (parts measured alone, in loops: warmer caches than inside a request)",
    )
    print_saturated(r, n_sustained)
    rows_cmp = []
    for part, label in (
        ("handler_1", "warm handler, 1 row, p50"),
        ("handler_100", "warm handler, 100 rows, p50"),
        ("onnx_run_1", "  ONNX Runtime run alone, 1 row"),
        ("onnx_run_100", "  ONNX Runtime run alone, 100 rows"),
    ):
        rows_cmp.append(
            {
                "measure": label,
                "built-in": f"{r[f'imported_cmp_builtin_{part}_p50_us']:.0f} us",
                "imported": f"{r[f'imported_cmp_imported_{part}_p50_us']:.0f} us",
                "imported/built-in": f"{r[f'ratio_imported_vs_builtin_{part}_p50']:.2f}x",
            }
        )
    print_table(
        rows_cmp,
        title=f"Imported one-hot pipeline (ColumnTransformer + HGB, {r['imported_onnx_kb']:.0f} KB "
        f"ONNX) vs built-in {args.algorithm} ({r['onnx_kb']:.0f} KB) as champion, same "
        f"handler, alternating fresh processes, median of the runs' p50 (target: within 1.5x)",
    )
    if "gateway_rps" in r:
        print(
            f"\nlocal API gateway, 4 clients, 1 row: {r['gateway_rps']:.0f} req/s, p50 {r['gateway_p50_ms']:.1f} ms, "
            f"p99 {r['gateway_p99_ms']:.1f} ms, errors {r['gateway_errors']:.0f}"
        )
    print(
        f"captures: {r['capture_records_sent']} records sent ({r['capture_records_failed']} failed), "
        f"{r['capture_objects']} S3 objects under captures/model={MODEL}/"
    )
    print_table(
        [
            {
                "per 1M single-row predictions": "Lambda (requests + GB-s)",
                "driftline": r["cost_lambda_ours_usd_per_m"],
                "naive": r["cost_lambda_naive_usd_per_m"],
            },
            {
                "per 1M single-row predictions": "API Gateway REST",
                "driftline": r["cost_apigw_usd_per_m"],
                "naive": r["cost_apigw_usd_per_m"],
            },
            {
                "per 1M single-row predictions": "total (USD)",
                "driftline": r["cost_total_ours_usd_per_m"],
                "naive": r["cost_total_naive_usd_per_m"],
            },
            {
                "per 1M single-row predictions": "+ capture via Firehose",
                "driftline": r["cost_capture_usd_per_m"],
                "naive": "",
            },
            {
                "per 1M single-row predictions": "+ EMF metrics in CloudWatch Logs",
                "driftline": r["cost_emf_logs_usd_per_m"],
                "naive": "",
            },
        ],
        title=f"Paper cost estimate (us-east-1 list prices, {mem_gb * 1024:.0f} MB, billed per started ms)",
    )
    write_json(args.json, results)


if __name__ == "__main__":
    main()
