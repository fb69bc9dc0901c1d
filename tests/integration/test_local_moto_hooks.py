"""The guarded moto hooks: version pin, and real handlers behind moto's Lambda API (in-process)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftline import aws as aws_mod
from driftline.local.executor import LambdaExecutor
from driftline.local.moto_hooks import MotoBridge, UnsupportedMotoError, check_moto
from driftline.local.provision import placeholder_zip

ROOT = Path(__file__).resolve().parents[2]


def test_only_the_pinned_moto_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    import moto
    from moto.awslambda.models import LambdaFunction

    check_moto()
    monkeypatch.setattr(moto, "__version__", "5.3.0")
    with pytest.raises(UnsupportedMotoError, match=r"supports moto 5\.2\.5 exactly.*installed: moto 5\.3\.0"):
        check_moto()
    monkeypatch.setattr(moto, "__version__", "5.2.5")
    monkeypatch.delattr(LambdaFunction, "_invoke_lambda")
    with pytest.raises(UnsupportedMotoError, match=r"lacks LambdaFunction\._invoke_lambda"):
        check_moto()


@pytest.fixture
def bridge(aws: dict[str, str], tmp_path: Path) -> Iterator[MotoBridge]:
    executor = LambdaExecutor()
    b = MotoBridge(
        executor,
        project_root=ROOT,
        code_cache=tmp_path,
        clients=aws_mod.client,
        retry_delays_s=(0.05, 0.05),
        warn=lambda _: None,
    )
    b.install()
    yield b
    b.shutdown()
    executor.shutdown()


def create(handler: str, name: str, code: bytes | None = None) -> None:
    aws_mod.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Handler=handler,
        Timeout=5,
        Role="arn:aws:iam::123456789012:role/dev-driftline-local-role",
        Code={"ZipFile": code or placeholder_zip()},
    )


def test_invoke_api_runs_the_handler_and_reports_unhandled_errors(bridge: MotoBridge) -> None:
    from moto.awslambda.models import LambdaFunction

    create("tests.fixtures.lambda_handlers.echo", "echo")
    create("tests.fixtures.lambda_handlers.fail", "fail")
    lam = aws_mod.client("lambda")
    out = json.loads(lam.invoke(FunctionName="echo", Payload=b'{"x": [1, 2]}')["Payload"].read())
    assert out["event"] == {"x": [1, 2]} and out["function_name"] == "echo"
    assert json.loads(lam.invoke(FunctionName="echo", Payload=b'"{}"')["Payload"].read())["event"] == "{}"
    assert lam.invoke(FunctionName="fail", InvocationType="DryRun")["StatusCode"] == 204
    failed = lam.invoke(FunctionName="fail", Payload=b"{}")
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "ValidationFailed"
    bridge.uninstall()
    assert LambdaFunction._invoke_lambda.__qualname__ == "LambdaFunction._invoke_lambda"


def test_code_in_the_functions_own_zip_is_imported_first(bridge: MotoBridge) -> None:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("my_handler.py", "def handler(event, context):\n    return {'from': 'zip', 'got': event}\n")
    create("my_handler.handler", "zipped", buf.getvalue())
    out = json.loads(aws_mod.client("lambda").invoke(FunctionName="zipped", Payload=b"{}")["Payload"].read())
    assert out == {"from": "zip", "got": {}}


def test_s3_notification_is_delivered_asynchronously(bridge: MotoBridge) -> None:
    create("tests.fixtures.lambda_handlers.echo", "on-upload")
    s3 = aws_mod.client("s3")
    s3.create_bucket(Bucket="uploads")
    s3.put_bucket_notification_configuration(
        Bucket="uploads",
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {
                    "LambdaFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:on-upload",
                    "Events": ["s3:ObjectCreated:*"],
                }
            ]
        },
    )
    submitted: list[Any] = []
    original = bridge.async_invoker.submit

    def submit(fn: str, ev: str) -> Any:
        submitted.append((fn, original(fn, ev)))
        return submitted[-1][1]

    bridge.async_invoker.submit = submit  # type: ignore[method-assign,assignment]
    t0 = time.monotonic()
    s3.put_object(Bucket="uploads", Key="dir/a b.csv", Body=b"x")
    assert time.monotonic() - t0 < 2.0  # the upload does not wait for the (cold) function
    ((fn, future),) = submitted
    outcome = future.result(timeout=30)
    assert outcome.succeeded and fn.endswith(":function:on-upload")
    record = json.loads(outcome.result.payload)["event"]["Records"][0]
    assert record["s3"]["object"]["key"] == "dir/a+b.csv"


def test_deferred_batch_import_keeps_ec2_out_and_batch_working() -> None:
    import subprocess
    import sys

    code = (
        "from driftline.local.moto_hooks import defer_batch_import\n"
        "defer_batch_import()\n"
        "import sys, moto.stepfunctions.parser.models\n"
        "assert 'moto.ec2.models' not in sys.modules, 'EC2 was imported'\n"
        "from moto import mock_aws\n"
        "import boto3\n"
        "with mock_aws():\n"
        "    c = boto3.client('batch', region_name='us-east-1', aws_access_key_id='a', aws_secret_access_key='b')\n"
        "    assert c.describe_job_queues()['jobQueues'] == []\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_back_to_back_uploads_to_one_key_name_their_own_versions(bridge: MotoBridge) -> None:
    """moto's notification had no versionId: two quick uploads to one key were ingested as 'latest' twice."""
    create("tests.fixtures.lambda_handlers.echo", "on-version")
    s3 = aws_mod.client("s3")
    s3.create_bucket(Bucket="versioned-uploads")
    s3.put_bucket_versioning(Bucket="versioned-uploads", VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(
        Bucket="versioned-uploads",
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {
                    "LambdaFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:on-version",
                    "Events": ["s3:ObjectCreated:*"],
                }
            ]
        },
    )
    submitted: list[Any] = []
    original = bridge.async_invoker.submit

    def submit(fn: str, ev: str) -> Any:
        submitted.append(original(fn, ev))
        return submitted[-1]

    bridge.async_invoker.submit = submit  # type: ignore[method-assign,assignment]
    versions = [
        s3.put_object(Bucket="versioned-uploads", Key="incoming/x.csv", Body=body)["VersionId"]
        for body in (b"first", b"second")
    ]
    seen = [
        json.loads(f.result(timeout=30).result.payload)["event"]["Records"][0]["s3"]["object"]["versionId"]
        for f in submitted
    ]
    assert seen == versions and len(set(seen)) == 2


def test_a_sealed_bridge_runs_only_configurations_it_was_told_to_trust(bridge: MotoBridge) -> None:
    """As on the local platform: functions created or changed behind its back (moto's CloudFormation, a
    request without the token) are not run; a trusted configuration changed afterwards is not either."""
    lam = aws_mod.client("lambda")
    create("tests.fixtures.lambda_handlers.echo", "sealed-echo")
    bridge.seal()
    refused = lam.invoke(FunctionName="sealed-echo", Payload=b"{}")
    assert refused["FunctionError"] == "Unhandled"
    assert json.loads(refused["Payload"].read())["errorType"] == "Runtime.UntrustedFunction"
    bridge.trust("sealed-echo")
    assert json.loads(lam.invoke(FunctionName="sealed-echo", Payload=b"{}")["Payload"].read())["event"] == {}
    lam.update_function_configuration(FunctionName="sealed-echo", Environment={"Variables": {"PYTHONPATH": "/tmp"}})
    again = lam.invoke(FunctionName="sealed-echo", Payload=b"{}")
    assert json.loads(again["Payload"].read())["errorType"] == "Runtime.UntrustedFunction"
