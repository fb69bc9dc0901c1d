"""Where a waiting run's task token lives (issue 16 item 12): only in its ``APPROVAL#`` control-table item,
never in step records, the approvals message or the function's logs. IAM denies every function but the
workflow and approve that key prefix (tests/infrastructure/test_governance.py), so the token must not
leak anywhere else. The real workflow handler runs against moto."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from driftline import aws as aws_mod
from driftline.config import PlatformConfig
from driftline.registry.store import Registry
from driftline.retraining.approvals import APPROVAL_KEY_PREFIX, pending_approvals
from driftline.retraining.control import ControlTable
from driftline.retraining.steps import StepContext, run_step

MODEL = "credit-default"
CFG = PlatformConfig.model_validate(
    {"models": [{"name": MODEL, "feature_set": "credit_default", "approval": "manual", "approvers": ["alice"]}]}
)


@pytest.fixture
def ctx() -> Iterator[StepContext]:
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        aws_mod.reset_clients()
        with mock_aws():
            ddb = aws_mod.client("dynamodb")
            for name in ("registry", "control"):
                ddb.create_table(
                    TableName=name,
                    BillingMode="PAY_PER_REQUEST",
                    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                    AttributeDefinitions=[
                        {"AttributeName": "pk", "AttributeType": "S"},
                        {"AttributeName": "sk", "AttributeType": "S"},
                    ],
                )
            topic = aws_mod.client("sns").create_topic(Name="approvals")["TopicArn"]
            yield StepContext(
                config=CFG,
                registry=Registry("registry"),
                control=ControlTable("control"),
                feature_sets={"credit_default"},
                captures_bucket="unused",
                approvals_topic=topic,
            )
        aws_mod.reset_clients()


class _Context:
    function_name = "test-driftline-workflow"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test-driftline-workflow"
    aws_request_id = "req-1"


def test_the_task_token_is_only_in_its_approval_item(
    ctx: StepContext,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import lambdas.workflow as workflow

    sqs, sns = aws_mod.client("sqs"), aws_mod.client("sns")
    url = sqs.create_queue(QueueName="approvals-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=ctx.approvals_topic, Protocol="sqs", Endpoint=queue_arn)
    monkeypatch.setattr(workflow, "_context", lambda: ctx)
    caplog.set_level(logging.INFO)  # the functions log at INFO (POWERTOOLS_LOG_LEVEL); botocore DEBUG echoes requests

    execution = "arn:aws:states:us-east-1:123456789012:execution:retrain:run-1"
    request = run_step(
        {
            "action": "validate",
            "execution_id": execution,
            "state": {"model": MODEL, "trigger": "manual", "reason": "r", "requested_by": "bob"},
        },
        ctx,
    )
    v = ctx.registry.next_version(MODEL)
    ctx.registry.register(MODEL, version=v, metrics={"roc_auc": 0.9})
    token = f"AQCEAAAAKgAAAA-{uuid.uuid4().hex}-secret-task-token"
    event: dict[str, Any] = {
        "action": "request_approval",
        "execution_id": execution,
        "task_token": token,
        "state": {
            "request": {"value": request},
            "candidate": {"value": {"version": v, "metrics": {"roc_auc": 0.9}}},
            "gate": {"value": {"summary": "quality gate passed"}},
        },
    }
    out = workflow.handler(event, _Context())  # type: ignore[arg-type]

    assert token not in json.dumps(out)
    items = aws_mod.client("dynamodb").scan(TableName="control")["Items"]
    holding = [i for i in items if token in json.dumps(i)]
    assert [i["pk"]["S"] for i in holding] == [f"{APPROVAL_KEY_PREFIX}{MODEL}"], holding
    assert [i for i in items if i["pk"]["S"].startswith(APPROVAL_KEY_PREFIX)] == holding  # one item, nothing else there
    assert len(items) > len(holding)  # the step records exist, without the token
    assert pending_approvals("control", MODEL)[0].version == v
    registry_items = aws_mod.client("dynamodb").scan(TableName="registry")["Items"]
    assert token not in json.dumps(registry_items)
    (msg,) = sqs.receive_message(QueueUrl=url)["Messages"]
    assert token not in msg["Body"]
    logs = capfd.readouterr()
    assert "request_approval" in logs.out  # the handler did log this step
    assert token not in logs.out + logs.err + caplog.text
