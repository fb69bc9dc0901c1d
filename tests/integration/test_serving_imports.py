"""Import discipline: the serving handler, in a fresh process, answers requests without ever loading
pandas, scikit-learn, pyarrow or pydantic (they would add ~1 s of cold start and ~150 MB of package).

The child process talks to a moto server over HTTP (``AWS_ENDPOINT_URL``), exactly as the Lambda
talks to AWS, so the whole request path (registry, S3 artifact, Firehose capture) is imported for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftline import aws
from driftline.local.provision import provision_data
from driftline.registry.artifacts import put_artifact
from driftline.registry.store import Registry
from driftline.serving import reference_model

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = (
    "pandas",
    "sklearn",
    "pyarrow",
    "pydantic",
    "scipy",
    # ~0.25 s and ~0.2 s of cold start: routing is driftline.serving.proxy, clients are botocore's
    "aws_lambda_powertools.event_handler",
    "boto3",
    "s3transfer",
)

CHILD = r"""
import json, sys
from lambdas import serve
from driftline.serving.events import LocalContext, proxy_event
from driftline.serving.reference_model import example_rows  # numpy only; building models needs onnx

schema_rows = json.loads(sys.argv[1])
out = []
for method, path, body in [
    ("POST", "/v1/models/credit-default/predict", {"records": schema_rows}),
    ("GET", "/v1/models/credit-default", None),
    ("POST", "/v1/models/credit-default/feedback", {"labels": [{"request_id": "x:0", "label": 1}]}),
    ("POST", "/v1/models/credit-default/predict", {"records": [{"age": "old"}]}),
    ("GET", "/openapi.json", None),
    ("GET", "/v1/models/credit-default/openapi.json", None),
]:
    ev = proxy_event(method, path, json.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json"})
    out.append(serve.handler(ev, LocalContext())["statusCode"])
serve._State.service.capture.flush()
bad = sorted(m for m in sys.argv[2].split(",") if m in sys.modules)
print("RESULT " + json.dumps({"statuses": out, "forbidden": bad, "sent": serve._State.service.capture.sent}))
"""


@pytest.fixture
def moto_server(platform_def: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    aws.reset_clients()
    try:
        names = provision_data(platform_def, aws.client, "us-east-1")
        env = platform_def.function_env(platform_def.function("serve"), names.account, names.region, names.arns)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        yield {**env, "AWS_ENDPOINT_URL": endpoint}
    finally:
        aws.reset_clients()
        server.stop()


def test_serving_process_never_imports_heavy_libraries(moto_server: dict[str, str], credit_fs: Any) -> None:
    schema = credit_fs.input_schema()
    reg = Registry(moto_server["REGISTRY_TABLE"])
    v = reg.next_version("credit-default")
    ref = put_artifact(
        moto_server["ARTIFACTS_BUCKET"], f"models/credit-default/v{v}/model.onnx", reference_model.build(schema)
    )
    reg.register("credit-default", version=v, input_schema=schema, artifacts={"onnx": ref})
    reg.approve("credit-default", v, "t", "ok")
    reg.promote("credit-default", v, "t", "ok")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}
    env.update(moto_server)
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "POWERTOOLS_TRACE_DISABLED": "1",
            "PYTHONPATH": str(ROOT),
        }
    )
    rows = json.dumps(reference_model.example_rows(schema, 3))
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, rows, ",".join(FORBIDDEN)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["statuses"] == [200, 200, 202, 422, 200, 200]
    assert result["sent"] == 1  # the 3-row request's one capture record went through Firehose
    assert result["forbidden"] == [], f"the serving process imported {result['forbidden']}"
