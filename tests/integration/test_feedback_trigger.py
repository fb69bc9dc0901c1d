"""The new-feedback-labels trigger against moto: below the threshold a recorded skip, at it one run, the
hourly checks after it collapse into that run, the next run after another threshold's worth of labels;
labels are counted from the champion's registration; hostile and unconfigured inputs get precise decisions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from driftline import aws
from driftline.captures_store import CapturesStore
from driftline.config import PlatformConfig
from driftline.retraining.control import ControlTable
from driftline.retraining.feedback_trigger import LabelCount, LabelCounter
from driftline.retraining.triggers import RetrainTrigger

T0 = 1_800_000_000.0
MODEL = "credit-default"


@pytest.fixture(scope="module")
def world() -> Iterator[None]:
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        aws.reset_clients()
        with mock_aws():
            yield
        aws.reset_clients()


def _cfg(**feedback: Any) -> PlatformConfig:
    return PlatformConfig.model_validate(
        {
            "models": [
                {"name": MODEL, "feature_set": "credit_default", "training": {"feedback": feedback}},
                {"name": "other", "feature_set": "credit_default"},
            ]
        }
    )


def _trigger(cfg: PlatformConfig, counter: Any) -> tuple[RetrainTrigger, str]:
    name = f"control-{uuid.uuid4().hex[:8]}"
    aws.client("dynamodb").create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
    )
    definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    sm = aws.client("stepfunctions").create_state_machine(
        name=f"retrain-{uuid.uuid4().hex[:8]}", definition=definition, roleArn="arn:aws:iam::123456789012:role/r"
    )["stateMachineArn"]
    return RetrainTrigger(cfg, ControlTable(name), sm, {"credit_default"}, clock=lambda: T0, label_counter=counter), sm


class Counts:
    def __init__(self) -> None:
        self.n, self.champion = 0, 3

    def __call__(self, model: str, now: datetime, max_age_days: int) -> LabelCount:
        return LabelCount(self.n, self.champion, now - timedelta(hours=5), False)


def test_threshold_one_run_per_crossing(world: None) -> None:
    counts = Counts()
    t, sm = _trigger(_cfg(enabled=True, retrain_after_labels=100), counts)
    event = {"model": MODEL, "trigger": "feedback"}
    counts.n = 99
    d = t.handle(event).decisions[0]
    assert d.decision == "skipped" and "99 feedback label(s)" in d.reason and "retrain_after_labels=100" in d.reason
    counts.n = 120
    first = t.handle(event).decisions[0]
    assert first.decision == "started" and first.trigger == "feedback" and first.trigger_id == "v3-x1"
    assert first.details["new_labels"] == 120
    aws.client("stepfunctions").stop_execution(executionArn=first.execution_arn)  # the run ended (rejected, say)
    counts.n = 150
    again = t.handle(event).decisions[0]  # an hour later, the same crossing: not another run
    assert again.decision == "skipped" and "already exists" in again.reason
    counts.n = 200
    assert t.handle(event).decisions[0].decision == "started"  # another 100 labels
    counts.n, counts.champion = 120, 4  # a new champion: counted afresh
    assert t.handle(event).decisions[0].trigger_id == "v4-x1"
    runs = aws.client("stepfunctions").list_executions(stateMachineArn=sm)["executions"]
    body = json.loads(aws.client("stepfunctions").describe_execution(executionArn=runs[0]["executionArn"])["input"])
    assert body["trigger"] == "feedback"


def test_unconfigured_and_hostile_inputs(world: None) -> None:
    t, _ = _trigger(_cfg(enabled=True, retrain_after_labels=10), Counts())
    d = t.handle({"model": "other", "trigger": "feedback"}).decisions[0]
    assert d.decision == "skipped" and "retrain_after_labels is not set" in d.reason
    out = t.handle({"model": "nope", "trigger": "feedback"})
    assert out.decisions[0].decision == "rejected" and "nope" in (out.error or "")
    out = t.handle({"model": 5, "trigger": "feedback"})
    assert out.decisions[0].decision == "rejected" and "field 'model' must be str" in (out.error or "")
    no_counter, _ = _trigger(_cfg(enabled=True, retrain_after_labels=10), None)
    out = no_counter.handle({"model": MODEL, "trigger": "feedback"})
    assert out.error and "CAPTURES_BUCKET" in out.error


@dataclass
class _Version:
    created_at: str


class _Registry:
    def __init__(self, champion: int | None, created: datetime) -> None:
        self.champion, self.created = champion, created

    def aliases(self, model: str) -> Any:
        return type("A", (), {"champion": self.champion})()

    def get_version(self, model: str, version: int) -> _Version:
        return _Version(self.created.isoformat())


def test_labels_are_counted_from_the_champions_registration(world: None) -> None:
    bucket = f"captures-{uuid.uuid4().hex[:8]}"
    aws.client("s3").create_bucket(Bucket=bucket)
    store = CapturesStore(bucket, aws.client("s3"))
    now = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
    store.put_feedback(MODEL, [{"request_id": f"old:{i}", "label": 1} for i in range(5)], now=now - timedelta(hours=6))
    store.put_feedback(MODEL, [{"request_id": f"new:{i}", "label": 0} for i in range(7)], now=now - timedelta(hours=1))
    champion_at = now - timedelta(hours=3)
    c = LabelCounter(_Registry(2, champion_at), store)(MODEL, now, 30)
    assert (c.labels, c.champion, c.since) == (7, 2, champion_at)
    assert LabelCounter(_Registry(None, champion_at), store)(MODEL, now, 1).labels == 12
