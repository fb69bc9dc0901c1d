"""The local platform over real HTTP: provisioning, Lambda invocations, triggers, Step Functions."""

from __future__ import annotations

import base64
import io
import json
import uuid
import zipfile
from typing import Any

import pytest

from tests.e2e.conftest import FIXTURES, LocalPlatformHandle, wait_for

pytestmark = pytest.mark.e2e


def _code_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("README.txt", "runs from the project root")
    return buf.getvalue()


def make_function(lp: LocalPlatformHandle, handler: str, timeout: int = 10) -> str:
    """A throw-away function created through the Lambda API, running a fixture handler."""
    name = f"test-{handler.rsplit('.', 1)[-1]}-{uuid.uuid4().hex[:8]}"
    lp.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Handler=handler,
        Timeout=timeout,
        Role=f"arn:aws:iam::{lp.account}:role/{lp.platform.prefix}-local-role",
        Code={"ZipFile": _code_zip()},
    )
    return str(lp.client("lambda").get_function(FunctionName=name)["Configuration"]["FunctionArn"])


def test_every_resource_of_the_definition_exists(local_platform: LocalPlatformHandle) -> None:
    lp, p = local_platform, local_platform.platform
    buckets = {b["Name"] for b in lp.client("s3").list_buckets()["Buckets"]}
    assert {lp.bucket(b.logical) for b in p.buckets} <= buckets
    assert {lp.name(t.logical) for t in p.tables} <= set(lp.client("dynamodb").list_tables()["TableNames"])
    functions = {f["FunctionName"]: f for f in lp.client("lambda").list_functions()["Functions"]}
    for fn in p.functions:
        cfg = functions[lp.name(fn.logical)]
        assert cfg["Timeout"] == fn.timeout_s and cfg["MemorySize"] == fn.memory_mb
        env = cfg["Environment"]["Variables"]
        assert env["AWS_ENDPOINT_URL"] == lp.endpoint
        assert set(fn.env) <= set(env)
        if "FEATURE_SETS_DIR" in env:
            assert env["FEATURE_SETS_DIR"].endswith("examples/feature_sets") and env["FEATURE_SETS_DIR"].startswith("/")
    machines = {
        m["name"]: m["stateMachineArn"] for m in lp.client("stepfunctions").list_state_machines()["stateMachines"]
    }
    definition = lp.client("stepfunctions").describe_state_machine(stateMachineArn=machines[lp.name("retrain")])[
        "definition"
    ]
    assert "${" not in definition and f"function:{lp.name('workflow')}" in definition
    events = lp.client("events")
    scheduled = {r["Name"]: r for r in events.list_rules()["Rules"]}
    for s in p.schedules:
        assert scheduled[lp.name(s.logical)]["ScheduleExpression"] == s.expression
    patterned = {r["Name"]: r for r in events.list_rules(EventBusName=p.event_bus)["Rules"]}
    for r in p.event_rules:
        assert json.loads(patterned[lp.name(r.logical)]["EventPattern"]) == r.pattern


def test_invoke_runs_the_real_handler_in_a_warm_worker(local_platform: LocalPlatformHandle) -> None:
    lam = local_platform.client("lambda")
    arn = make_function(local_platform, f"{FIXTURES}.echo")
    first = lam.invoke(FunctionName=arn, Payload=b'{"n": 1}', LogType="Tail")
    second = json.loads(lam.invoke(FunctionName=arn, Payload=b'{"n": 2}')["Payload"].read())
    body = json.loads(first["Payload"].read())
    assert body["event"] == {"n": 1} and second["event"] == {"n": 2}
    assert second["calls"] == body["calls"] + 1 and second["pid"] == body["pid"]  # warm: same process, same module
    assert body["function_name"] == arn.rsplit(":", 1)[-1] and body["invoked_function_arn"] == arn
    assert body["env"]["AWS_REGION"] == "us-east-1" and 0 < body["remaining_ms"] <= 10_000
    tail = base64.b64decode(first["LogResult"]).decode()
    assert "START RequestId:" in tail and "echo called" in tail and "REPORT RequestId:" in tail
    lines = wait_for(
        lambda: [x for x in local_platform.log_lines(arn.rsplit(":", 1)[-1]) if "echo called" in x],
        what="CloudWatch log lines",
    )
    assert len(lines) >= 2


def test_handler_errors_come_back_in_lambdas_shape(local_platform: LocalPlatformHandle) -> None:
    lam = local_platform.client("lambda")
    resp = lam.invoke(FunctionName=make_function(local_platform, f"{FIXTURES}.fail"), Payload=b'{"why": "x"}')
    assert resp["FunctionError"] == "Unhandled"
    err = json.loads(resp["Payload"].read())
    assert err["errorType"] == "ValidationFailed" and err["errorMessage"] == "bad input: x"
    assert any("lambda_handlers.py" in frame for frame in err["stackTrace"])
    resp = lam.invoke(
        FunctionName=make_function(local_platform, f"{FIXTURES}.sleep", timeout=1), Payload=b'{"seconds": 5}'
    )
    err = json.loads(resp["Payload"].read())
    assert err["errorType"] == "Sandbox.Timedout" and "Task timed out after 1.00 seconds" in err["errorMessage"]
    resp = lam.invoke(FunctionName=make_function(local_platform, "lambdas.no_such_module.handler"))
    assert json.loads(resp["Payload"].read())["errorType"] == "Runtime.ImportModuleError"


def test_async_invoke_returns_at_once(local_platform: LocalPlatformHandle) -> None:
    arn = make_function(local_platform, f"{FIXTURES}.record")
    resp = local_platform.client("lambda").invoke(FunctionName=arn, InvocationType="Event", Payload=b'{"k": "v"}')
    assert resp["StatusCode"] == 202
    rec = wait_for(lambda: local_platform.records(arn.rsplit(":", 1)[-1]), what="the async invocation")
    assert rec[0]["event"] == {"k": "v"}


def test_s3_upload_reaches_the_ingest_handler(local_platform: LocalPlatformHandle) -> None:
    s3, bucket = local_platform.client("s3"), local_platform.bucket("features")
    key = f"incoming/credit_default/{uuid.uuid4().hex} file.csv"
    s3.put_object(Bucket=bucket, Key=key, Body=b"a,b\n1,2\n")
    s3.put_object(Bucket=bucket, Key=f"elsewhere/{uuid.uuid4().hex}.csv", Body=b"x")

    def arrived() -> list[dict[str, Any]]:
        # S3 URL-encodes keys in notifications: a space becomes '+', '/' stays.
        encoded = key.replace(" ", "+")
        return [
            r for r in local_platform.records("ingest") if r["event"]["Records"][0]["s3"]["object"]["key"] == encoded
        ]

    rec = wait_for(arrived, what="the S3 notification")[0]["event"]["Records"][0]
    assert rec["eventSource"] == "aws:s3" and rec["s3"]["bucket"]["name"] == bucket
    assert all(
        "elsewhere/" not in r["event"]["Records"][0]["s3"]["object"]["key"] for r in local_platform.records("ingest")
    )


def test_failing_async_event_is_retried_then_dead_lettered(local_platform: LocalPlatformHandle) -> None:
    s3, bucket = local_platform.client("s3"), local_platform.bucket("features")
    marker = uuid.uuid4().hex
    s3.put_object(Bucket=bucket, Key=f"incoming/credit_default/fail-{marker}.csv", Body=b"x")
    sqs = local_platform.client("sqs")
    url = sqs.get_queue_url(QueueName=local_platform.name("dlq-data"))["QueueUrl"]

    def dead_lettered() -> list[dict[str, Any]]:
        msgs = sqs.receive_message(
            QueueUrl=url, MessageAttributeNames=["All"], MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        return [m for m in msgs if marker in m["Body"]]

    msg = wait_for(dead_lettered, timeout=30, what="the dead-letter message")[0]
    assert msg["MessageAttributes"]["ErrorMessage"]["StringValue"] == "asked to fail"
    attempts = [r for r in local_platform.records("ingest") if marker in json.dumps(r["event"])]
    assert len(attempts) == 3  # the first attempt and AWS's two async retries


def test_fire_delivers_the_schedule_input(local_platform: LocalPlatformHandle) -> None:
    result = local_platform.cli("fire", "drift-credit-default", "--wait", "60")
    assert result.returncode == 0, result.stderr
    assert "succeeded after 1 attempt" in result.stdout
    assert {"model": "credit-default"} in [r["event"] for r in local_platform.records("drift")]
    missing = local_platform.cli("fire", "no-such-rule")
    assert missing.returncode == 1 and "schedule rules:" in missing.stderr
    pattern_rule = local_platform.cli("fire", "on-drift")
    assert pattern_rule.returncode == 1 and "has no schedule" in pattern_rule.stderr


def test_put_events_reach_lambda_targets_by_pattern(local_platform: LocalPlatformHandle) -> None:
    events, bus = local_platform.client("events"), local_platform.platform.event_bus
    marker = uuid.uuid4().hex
    entries = [
        {
            "Source": "driftline.ingest",
            "DetailType": "FeatureDataAccepted",
            "EventBusName": bus,
            "Detail": json.dumps({"feature_set": "credit_default", "has_labels": True, "m": marker + "-yes"}),
        },
        {
            "Source": "driftline.ingest",
            "DetailType": "FeatureDataAccepted",
            "EventBusName": bus,
            "Detail": json.dumps({"feature_set": "credit_default", "has_labels": False, "m": marker + "-no"}),
        },
        {
            "Source": "driftline.ingest",
            "DetailType": "FeatureDataAccepted",
            "EventBusName": bus,
            "Detail": json.dumps({"feature_set": "credit_default", "has_labels": 1, "m": marker + "-one"}),
        },
    ]
    assert events.put_events(Entries=entries)["FailedEntryCount"] == 0
    got = wait_for(
        lambda: [r for r in local_platform.records("retrain-trigger") if marker in json.dumps(r)],
        what="the matching event",
    )
    import time

    time.sleep(1.0)  # give a wrongly matched event the time to arrive too
    got = [r for r in local_platform.records("retrain-trigger") if marker in json.dumps(r)]
    assert [r["event"]["detail"]["m"] for r in got] == [marker + "-yes"]
    event = got[0]["event"]
    assert event["source"] == "driftline.ingest" and event["detail-type"] == "FeatureDataAccepted"
    assert event["time"].endswith("Z") and event["account"] == local_platform.account


ASL_RETRY_CATCH = {
    "StartAt": "Flaky",
    "States": {
        "Flaky": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${Flaky}", "Payload": {"fail_times": 2, "input.$": "$"}},
            "ResultSelector": {"value.$": "$.Payload"},
            "ResultPath": "$.flaky",
            "Retry": [
                {"ErrorEquals": ["ValidationFailed"], "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 1.0}
            ],
            "Next": "Failing",
        },
        "Failing": {
            "Type": "Task",
            "Resource": "${Failing}",
            "ResultPath": "$.never",
            "Catch": [{"ErrorEquals": ["ValidationFailed"], "ResultPath": "$.error", "Next": "Caught"}],
            "Next": "NotReached",
        },
        "NotReached": {"Type": "Fail", "Error": "NotReached"},
        "Caught": {"Type": "Pass", "End": True},
    },
}


def _run_execution(lp: LocalPlatformHandle, arn: str, payload: dict[str, Any]) -> dict[str, Any]:
    sfn = lp.client("stepfunctions")
    ex = sfn.start_execution(stateMachineArn=arn, name=uuid.uuid4().hex, input=json.dumps(payload))["executionArn"]
    return dict(
        wait_for(
            lambda: (d := sfn.describe_execution(executionArn=ex))["status"] != "RUNNING" and d,
            timeout=90,
            interval=0.2,
            what="the execution to finish",
        )
    )


def test_step_functions_retry_and_catch_over_real_workers(local_platform: LocalPlatformHandle) -> None:
    flaky, failing = (
        make_function(local_platform, f"{FIXTURES}.flaky"),
        make_function(local_platform, f"{FIXTURES}.fail"),
    )
    definition = json.dumps(ASL_RETRY_CATCH).replace("${Flaky}", flaky).replace("${Failing}", failing)
    arn = local_platform.client("stepfunctions").create_state_machine(
        name=f"test-{uuid.uuid4().hex[:8]}",
        definition=definition,
        roleArn=f"arn:aws:iam::{local_platform.account}:role/{local_platform.platform.prefix}-local-role",
    )["stateMachineArn"]
    done = _run_execution(local_platform, arn, {"why": "catch me"})
    assert done["status"] == "SUCCEEDED", done
    out = json.loads(done["output"])
    assert out["flaky"]["value"]["attempts"] == 3  # two failures retried in the same warm worker
    assert out["error"]["Error"] == "ValidationFailed"
    assert json.loads(out["error"]["Cause"])["errorMessage"] == "bad input: catch me"


def test_put_events_start_a_state_machine_target(local_platform: LocalPlatformHandle) -> None:
    lp = local_platform
    machines = {
        m["name"]: m["stateMachineArn"] for m in lp.client("stepfunctions").list_state_machines()["stateMachines"]
    }
    events, bus, rule = lp.client("events"), lp.platform.event_bus, f"test-sfn-{uuid.uuid4().hex[:8]}"
    events.put_rule(
        Name=rule,
        EventBusName=bus,
        EventPattern=json.dumps({"source": ["tests.e2e"], "detail": {"model": [{"prefix": "credit"}]}}),
    )
    events.put_targets(
        Rule=rule,
        EventBusName=bus,
        Targets=[
            {
                "Id": "sm",
                "Arn": machines[lp.name("retrain")],
                "InputPath": "$.detail",
                "RoleArn": f"arn:aws:iam::{lp.account}:role/{lp.platform.prefix}-local-role",
            }
        ],
    )
    marker = uuid.uuid4().hex
    events.put_events(
        Entries=[
            {
                "Source": "tests.e2e",
                "DetailType": "Go",
                "EventBusName": bus,
                "Detail": json.dumps({"model": "credit-default", "marker": marker}),
            }
        ]
    )
    sfn = lp.client("stepfunctions")

    def started() -> list[dict[str, Any]]:
        runs = sfn.list_executions(stateMachineArn=machines[lp.name("retrain")])["executions"]
        return [r for r in runs if marker in sfn.describe_execution(executionArn=r["executionArn"])["input"]]

    run = wait_for(started, what="the execution started by the rule")[0]
    done = wait_for(
        lambda: (d := sfn.describe_execution(executionArn=run["executionArn"]))["status"] != "RUNNING" and d,
        timeout=90,
        interval=0.2,
        what="the retrain execution",
    )
    assert json.loads(done["input"]) == {"model": "credit-default", "marker": marker}
    assert done["status"] == "SUCCEEDED", done


def test_outsiders_cannot_create_or_change_functions(local_platform: LocalPlatformHandle) -> None:
    """The emulator's API has no authentication and the executor runs Lambda code on this machine: only
    the platform (and clients holding its token) may create or change functions."""
    import botocore.exceptions

    outsider = local_platform.client("lambda", trusted=False)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        outsider.create_function(
            FunctionName=f"evil-{uuid.uuid4().hex[:8]}",
            Runtime="python3.12",
            Handler="evil.handler",
            Timeout=3,
            Role=f"arn:aws:iam::{local_platform.account}:role/{local_platform.platform.prefix}-local-role",
            Code={"ZipFile": _code_zip()},
        )
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"
    serve = local_platform.name("serve")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        outsider.update_function_configuration(FunctionName=serve, Handler="os.system")
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"
    assert outsider.get_function(FunctionName=serve)["Configuration"]["Handler"] != "os.system"
    assert (
        outsider.invoke(FunctionName=make_function(local_platform, f"{FIXTURES}.echo"), Payload=b"{}")["StatusCode"]
        == 200
    )  # invoking (and reading) stays open


def test_web_pages_cannot_drive_the_emulator(local_platform: LocalPlatformHandle) -> None:
    import requests

    url = f"{local_platform.endpoint}/2015-03-31/functions/{local_platform.name('serve')}/invocations"
    r = requests.post(
        url, data="{}", headers={"Origin": "https://evil.example", "Content-Type": "text/plain"}, timeout=30
    )
    assert r.status_code == 403 and r.json()["__type"] == "AccessDeniedException"
    preflight = requests.options(
        url, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, timeout=30
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers  # moto's global CORS is off
