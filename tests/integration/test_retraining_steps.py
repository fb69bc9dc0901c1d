"""Workflow steps called directly (no state machine) against moto: the paths the ASL test cannot reach
quickly (approval timeout), and tolerance of the Catch targets. One moto world per module; each test
gets its own registry and control tables and approvals topic."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from driftline import aws as aws_mod
from driftline.config import PlatformConfig
from driftline.registry.store import Registry
from driftline.retraining import approvals
from driftline.retraining.control import ControlTable
from driftline.retraining.steps import InvalidRequestError, InvalidStepInputError, StepContext, run_step

MODEL = "credit-default"
CFG = PlatformConfig.model_validate(
    {"models": [{"name": MODEL, "feature_set": "credit_default", "approval": "manual", "approvers": ["alice"]}]}
)


@pytest.fixture(scope="module")
def world() -> Iterator[None]:
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        aws_mod.reset_clients()
        with mock_aws():
            yield
        aws_mod.reset_clients()


def fresh_table(kind: str) -> str:
    name = f"{kind}-{uuid.uuid4().hex[:8]}"
    aws_mod.client("dynamodb").create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
    )
    return name


@pytest.fixture
def ctx(world: None) -> StepContext:
    topic = aws_mod.client("sns").create_topic(Name=f"approvals-{uuid.uuid4().hex[:8]}")["TopicArn"]
    return StepContext(
        config=CFG,
        registry=Registry(fresh_table("registry")),
        control=ControlTable(fresh_table("control")),
        feature_sets={"credit_default"},
        captures_bucket="unused-in-these-tests",
        approvals_topic=str(topic),
    )


def state(ctx: StepContext, **extra: Any) -> dict[str, Any]:
    raw = {"model": MODEL, "trigger": "manual", "reason": "r", "requested_by": "bob"}
    req = run_step(
        {"action": "validate", "execution_id": "arn:aws:states:us-east-1:1:execution:sm:run-1", "state": raw}, ctx
    )
    return {"request": {"value": req}, **extra}


def test_validate_expands_the_request(ctx: StepContext) -> None:
    s = state(ctx)["request"]["value"]
    assert s["approval"] == "manual" and s["approvers"] == ["alice"] and s["champion_version"] is None
    assert s["deploy"]["mode"] == "canary" and s["execution_name"] == "run-1"
    auto = StepContext(
        **{
            **ctx.__dict__,
            "config": PlatformConfig.model_validate({"models": [{"name": MODEL, "feature_set": "credit_default"}]}),
        }
    )
    raw = {"model": MODEL, "trigger": "manual"}
    assert run_step({"action": "validate", "state": raw}, auto)["approval"] == "auto"
    strict = run_step({"action": "validate", "state": {**raw, "require_approval": True}}, auto)
    assert strict["approval"] == "manual"  # a request may tighten the approval mode, never loosen it
    assert strict["algorithm"] == "hist_gradient_boosting" and strict["trainer"] is None
    own = StepContext(
        **{
            **ctx.__dict__,
            "config": PlatformConfig.model_validate(
                {"models": [{"name": MODEL, "feature_set": "credit_default", "trainer": "mine:build"}]}
            ),
        }
    )
    mine = run_step({"action": "validate", "state": raw}, own)
    # the train step must not be handed an algorithm: it would override the user's trainer
    assert mine["algorithm"] is None and mine["trainer"] == "mine:build"
    with pytest.raises(InvalidRequestError, match="unknown model 'zzz'"):
        run_step({"action": "validate", "state": {"model": "zzz"}}, ctx)
    with pytest.raises(InvalidStepInputError, match="unknown workflow action 'fly'"):
        run_step({"action": "fly"}, ctx)
    with pytest.raises(InvalidStepInputError, match="no 'candidate' result"):
        run_step({"action": "gate", "state": state(ctx)}, ctx)


def test_approval_timeout_rejects(ctx: StepContext) -> None:
    v = ctx.registry.next_version(MODEL)
    ctx.registry.register(MODEL, version=v, metrics={"roc_auc": 0.9})
    st = state(ctx, candidate={"value": {"version": v, "metrics": {"roc_auc": 0.9}}})
    st["gate"] = {"value": run_step({"action": "gate", "state": st}, ctx)}
    assert st["gate"]["value"]["passed"] and ctx.registry.get_version(MODEL, v).status == "candidate"
    run_step(
        {
            "action": "request_approval",
            "state": st,
            "task_token": "tok",
            "execution_id": "arn:aws:states:us-east-1:123456789012:execution:sm:run-1",
        },
        ctx,
    )
    (p,) = approvals.pending_approvals(ctx.control.table, MODEL)
    assert p.version == v
    out = run_step({"action": "reject_timeout", "state": st}, ctx)
    assert "no approval within 86400 s" in out["reason"]
    assert ctx.registry.get_version(MODEL, v).status == "rejected"
    assert approvals.pending_approvals(ctx.control.table, MODEL) == []


def test_resolving_a_run_that_ended_changes_nothing(ctx: StepContext) -> None:
    v = ctx.registry.next_version(MODEL)
    ctx.registry.register(MODEL, version=v, metrics={"roc_auc": 0.9})
    approvals.store_token(
        ctx.control.table,
        MODEL,
        v,
        task_token="tok",
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:sm:gone",
        requested_at="t",
        timeout_seconds=60,
        summary="s",
    )
    with pytest.raises(approvals.ApprovalNotWaitingError, match="is no longer waiting") as missing:
        approvals.resolve_approval(
            MODEL, v, True, "alice", "ok", config=CFG, registry=ctx.registry, control_table=ctx.control.table
        )
    assert "`driftline local resume gone`" in str(missing.value)  # a missing run: the local restart hint
    assert ctx.registry.get_version(MODEL, v).status == "candidate"
    with pytest.raises(approvals.ApprovalError, match="needs a reason"):
        approvals.resolve_approval(MODEL, v, True, "alice", " ", config=CFG)


def test_record_failure_is_tolerant(ctx: StepContext) -> None:
    cause = json.dumps({"errorMessage": "boom", "errorType": "X"})
    error = {"Error": "InvalidRequestError", "Cause": cause}
    out = run_step({"action": "record_failure", "state": {"model": MODEL, "error": error}}, ctx)
    assert out == {"model": MODEL, "version": None, "error": "InvalidRequestError: boom", "recorded_on_version": False}
    out = run_step({"action": "record_failure", "state": "garbage"}, ctx)
    assert out["recorded_on_version"] is False
    v = ctx.registry.next_version(MODEL)
    ctx.registry.register(MODEL, version=v, metrics={})
    st = state(ctx, candidate={"value": {"version": v}}, error={"Error": "States.Timeout", "Cause": ""})
    out = run_step({"action": "record_failure", "state": st}, ctx)
    assert out["recorded_on_version"] is True
    assert ctx.registry.get_version(MODEL, v).reason == "run run-1: States.Timeout"
    steps = ctx.control.history(MODEL, kind="step")
    assert {s["action"] for s in steps} >= {"validate", "record_failure"}


def test_sns_approval_message_names_the_commands(ctx: StepContext) -> None:
    sqs, sns = aws_mod.client("sqs"), aws_mod.client("sns")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=ctx.approvals_topic, Protocol="sqs", Endpoint=arn)
    v = ctx.registry.next_version(MODEL)
    ctx.registry.register(MODEL, version=v, metrics={"roc_auc": 0.9})
    st = state(
        ctx,
        candidate={"value": {"version": v, "metrics": {"roc_auc": 0.9}}},
        gate={"value": {"summary": "quality gate passed"}},
    )
    run_step({"action": "request_approval", "state": st, "task_token": "t", "execution_id": "e"}, ctx)
    (msg,) = sqs.receive_message(QueueUrl=url)["Messages"]
    body = json.loads(msg["Body"])
    assert body["Subject"] == f"Driftline: approve {MODEL} v{v}?"
    assert f"driftline models approve --model {MODEL} --version {v}" in body["Message"]
    # the task token is not written to the lineage records
    assert all("task_token" not in json.dumps(s["payload"]) for s in ctx.control.history(MODEL, kind="step"))


def test_deploy_refuses_a_version_the_registry_has_not_approved(ctx: StepContext) -> None:
    """The manual gate was advisory: deploy followed the state's path without asking the registry."""
    v = ctx.registry.next_version(MODEL)
    ctx.registry.register(MODEL, version=v, metrics={"roc_auc": 0.9})
    s = state(ctx, candidate={"value": {"model": MODEL, "version": v, "status": "candidate", "metrics": {}}})
    with pytest.raises(InvalidStepInputError, match=f"v{v} is candidate, not approved"):
        run_step({"action": "deploy", "state": s}, ctx)
    ctx.registry.approve(MODEL, v, "alice", "ok")
    assert run_step({"action": "deploy", "state": s}, ctx)["mode"] == "direct"


def test_a_flood_of_feedback_objects_is_read_up_to_a_bound(world: None) -> None:
    """Feedback readers had no size cap: a flood of small objects could time out canary evaluation."""
    from datetime import UTC, datetime, timedelta

    from driftline.retraining.captures import read_feedback

    s3 = aws_mod.client("s3")
    bucket = f"fb-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    now = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
    for i in range(30):
        s3.put_object(
            Bucket=bucket,
            Key=f"feedback/model={MODEL}/2026/11/26/10/f{i:03d}.json",
            Body=json.dumps({"request_id": f"r{i}", "label": 1}).encode(),
        )
    window = (now - timedelta(hours=1), now)
    assert len(read_feedback(bucket, MODEL, *window)) == 30
    assert len(read_feedback(bucket, MODEL, *window, max_objects=10)) == 10
