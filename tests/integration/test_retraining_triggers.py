"""Trigger → decision, against moto: lock, cooldown, names, and the decision log.

One moto world per module; each test gets its own control table and state machine.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from driftline import aws
from driftline.config import PlatformConfig
from driftline.retraining.control import ControlTable
from driftline.retraining.triggers import RetrainTrigger

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.t = T0 + 60

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def cfg() -> PlatformConfig:
    return PlatformConfig.model_validate(
        {
            "models": [
                {"name": "credit-default", "feature_set": "credit_default", "retrain": {"cooldown_minutes": 30}},
                {"name": "other", "feature_set": "credit_default", "retrain": {"cooldown_minutes": 0}},
            ]
        }
    )


@pytest.fixture(scope="module")
def world() -> Iterator[None]:
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        aws.reset_clients()
        with mock_aws():
            yield
        aws.reset_clients()


def fresh_table() -> str:
    """A control table like the platform's (pk/sk strings), new for each test."""
    name = f"control-{uuid.uuid4().hex[:8]}"
    aws_client("dynamodb").create_table(
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
def sm_arn(world: None) -> str:
    role = "arn:aws:iam::123456789012:role/dev-driftline-local-role"
    sfn = aws_client("stepfunctions")
    definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    return str(
        sfn.create_state_machine(name=f"retrain-{uuid.uuid4().hex[:8]}", definition=definition, roleArn=role)[
            "stateMachineArn"
        ]
    )


def aws_client(service: str) -> Any:
    return aws.client(service)


@pytest.fixture
def trig(cfg: PlatformConfig, sm_arn: str) -> tuple[RetrainTrigger, Clock]:
    clock = Clock()
    control = ControlTable(fresh_table())
    return RetrainTrigger(cfg, control, sm_arn, {"credit_default"}, clock=clock), clock


def drift(id_: str, model: str = "credit-default") -> dict[str, Any]:
    return {
        "id": id_,
        "source": "driftline.monitoring",
        "detail-type": "DriftDetected",
        "detail": {"model": model, "version": 1, "share_drifted": 0.7, "drifted_columns": ["income"]},
    }


def manual(id_: str, model: str = "credit-default") -> dict[str, Any]:
    return {
        "id": id_,
        "source": "driftline.cli",
        "detail-type": "RetrainRequested",
        "detail": {"model": model, "requested_by": "alice", "reason": "test"},
    }


def executions(sm_arn: str) -> list[dict[str, Any]]:
    return list(aws_client("stepfunctions").list_executions(stateMachineArn=sm_arn)["executions"])


def test_burst_of_identical_triggers_starts_one_run(trig: tuple[RetrainTrigger, Clock], sm_arn: str) -> None:
    t, _ = trig
    outcomes = [t.handle(drift(f"evt-{i}")) for i in range(10)]
    kinds = [o.decisions[0].decision for o in outcomes]
    assert kinds.count("started") == 1 and kinds.count("skipped") == 9
    assert len(executions(sm_arn)) == 1
    assert all("in progress" in o.decisions[0].reason for o in outcomes[1:])
    log = t.control.history("credit-default", kind="decision")
    assert len(log) == 10 and sorted(r["decision"] for r in log).count("started") == 1
    started = next(r for r in log if r["decision"] == "started")
    assert started["execution_name"] == "credit-default-auto-20270115T0800Z"
    body = json.loads(aws_client("stepfunctions").describe_execution(executionArn=started["execution_arn"])["input"])
    assert body["model"] == "credit-default" and body["trigger"] == "drift"


def test_ended_run_frees_the_lock_but_cooldown_collapses(trig: tuple[RetrainTrigger, Clock], sm_arn: str) -> None:
    t, clock = trig
    first = t.handle(drift("a")).decisions[0]
    aws_client("stepfunctions").stop_execution(executionArn=first.execution_arn)
    clock.t += 600  # 10 minutes later, same cooldown
    d = t.handle(drift("b")).decisions[0]
    assert d.decision == "skipped" and d.reason.startswith("cooldown")
    # a manual request is explicit intent: no cooldown, but still one run at a time
    m = t.handle(manual("m1")).decisions[0]
    assert m.decision == "started"
    assert t.handle(manual("m2")).decisions[0].decision == "skipped"
    aws_client("stepfunctions").stop_execution(executionArn=m.execution_arn)
    clock.t += 1800  # cooldown over (and in the next window)
    d = t.handle(drift("c")).decisions[0]
    assert d.decision == "started" and d.execution_name != first.execution_name
    assert len(executions(sm_arn)) == 3


def test_duplicate_name_is_skipped_and_lock_restored(trig: tuple[RetrainTrigger, Clock], sm_arn: str) -> None:
    t, _ = trig
    d = t.handle(manual("same")).decisions[0]
    aws_client("stepfunctions").stop_execution(executionArn=d.execution_arn)
    again = t.handle(manual("same")).decisions[0]  # EventBridge redelivers the same event
    assert again.decision == "skipped" and "already exists" in again.reason
    assert t.control.lock("credit-default").holder is None
    assert len(executions(sm_arn)) == 1


def test_no_cooldown_model_runs_again_after_the_run_ends(trig: tuple[RetrainTrigger, Clock]) -> None:
    t, _ = trig
    a = t.handle(drift("a", "other")).decisions[0]
    assert t.handle(drift("b", "other")).decisions[0].decision == "skipped"
    aws_client("stepfunctions").stop_execution(executionArn=a.execution_arn)
    assert t.handle(drift("c", "other")).decisions[0].decision == "started"


def test_bad_event_recorded_nothing_started(trig: tuple[RetrainTrigger, Clock], sm_arn: str) -> None:
    t, _ = trig
    out = t.handle(drift("x", "unknown-model"))
    assert out.error and "unknown model 'unknown-model'" in out.error
    assert executions(sm_arn) == []
    (rec,) = t.control.history("unknown-model")
    assert rec["decision"] == "rejected" and "unknown model" in rec["reason"]
    out = t.handle(
        {
            "source": "driftline.ingest",
            "detail-type": "FeatureDataAccepted",
            "id": "z",
            "detail": {"feature_set": "nope", "has_labels": True, "rows_accepted": 5},
        }
    )
    assert out.error and "unknown feature set 'nope'" in out.error
    assert t.control.history("_invalid")[0]["decision"] == "rejected"
    assert executions(sm_arn) == []


def test_lock_of_a_vanished_execution_is_taken_over_after_grace(trig: tuple[RetrainTrigger, Clock]) -> None:
    t, clock = trig
    arn = t.state_machine_arn.replace(":stateMachine:", ":execution:") + ":ghost"
    assert t.control.try_acquire("credit-default", arn, "ghost", clock.t, None) is not None
    assert t.handle(manual("m")).decisions[0].decision == "skipped"  # might still be starting
    clock.t += 120
    assert t.handle(manual("m2")).decisions[0].decision == "started"


def test_lock_of_a_started_execution_the_service_forgot_is_taken_over_at_once(
    trig: tuple[RetrainTrigger, Clock],
) -> None:
    # the local platform after a restart: the run that holds the lock was started (the decision log says
    # so) and has ended, but the emulator no longer knows it; it is not "still starting"
    t, clock = trig
    first = t.handle(manual("m")).decisions[0]
    assert first.decision == "started"
    sfn = aws.client("stepfunctions")
    sfn.stop_execution(executionArn=first.execution_arn)
    real = t._status
    t._status = lambda arn: None if arn == first.execution_arn else real(arn)  # type: ignore[method-assign]
    clock.t += 5
    assert t.handle(manual("m2")).decisions[0].decision == "started"
