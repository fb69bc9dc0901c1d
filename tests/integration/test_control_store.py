"""The control-table and event-bus adapters against moto, each given its client explicitly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from driftline.contracts import FEATURE_DATA_ACCEPTED
from driftline.control_items import (
    ApprovalRequest,
    ContentRecord,
    DriftCheck,
    IngestRecord,
    RetrainDecision,
    RetrainStep,
)
from driftline.control_store import ControlStore
from driftline.event_bus import EventBus, EventRejectedError


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    import botocore.session
    from moto import mock_aws

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        session = botocore.session.get_session()
        ddb = session.create_client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="control",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        )
        events = session.create_client("events", region_name="us-east-1")
        events.create_event_bus(Name="bus")
        yield {"dynamodb": ddb, "events": events}


@pytest.fixture
def store(clients: dict[str, Any]) -> ControlStore:
    return ControlStore("control", clients["dynamodb"])


def test_ingest_records_in_event_time_order(store: ControlStore) -> None:
    for i, when in enumerate(["2024-01-03", "2024-01-01", "2024-01-02"]):
        store.put_ingest(
            IngestRecord("fs", when, f"u{i}", {"status": "accepted", "upload_id": f"u{i}"}, recorded_at="t")
        )
    store.put_ingest(IngestRecord("other", "2024-01-09", "x", {"status": "failed"}))
    assert [r.when for r in store.ingest_records("fs")] == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert [r.upload_id for r in store.ingest_records("fs", newest_first=True, limit=2)] == ["u0", "u2"]
    store.put_ingest(IngestRecord("fs", "2024-01-01", "u1", {"status": "failed", "upload_id": "u1"}))
    assert store.ingest_records("fs")[0].status == "failed"  # the same upload overwrites


def test_content_records(store: ControlStore) -> None:
    assert store.content("fs", "00") is None
    store.put_content(ContentRecord("fs", "00", upload_id="u", source="s3://b/k"))
    got = store.content("fs", "00")
    assert got is not None and (got.upload_id, got.source) == ("u", "s3://b/k")


def test_lock_acquire_cooldown_release(store: ControlStore) -> None:
    assert store.lock("m").holder is None
    before = store.try_acquire_lock("m", "arn-1", "run-1", 1000.0, cooldown_seconds=60)
    assert before is not None and before.holder is None
    assert store.lock("m").holder == "arn-1" and store.lock("m").last_auto_start == 1000.0
    assert store.try_acquire_lock("m", "arn-2", "run-2", 1001.0, cooldown_seconds=None) is None  # held
    assert not store.release_lock("m", "arn-2")
    assert store.release_lock("m", "arn-1")
    assert store.try_acquire_lock("m", "arn-3", "run-3", 1030.0, cooldown_seconds=60) is None  # cooling down
    assert store.try_acquire_lock("m", "arn-3", "run-3", 1030.0, cooldown_seconds=None) is not None  # manual
    assert store.release_lock("m", "arn-3", restore=True, restore_last_auto_start=None)
    assert store.lock("m") == store.lock("m").__class__(None, None, None, None)


def test_decision_log_and_steps_newest_first(store: ControlStore) -> None:
    store.put_decision(RetrainDecision(model="m", decision="skipped", reason="a", trigger="drift", at="2024-01-01"))
    store.put_decision(RetrainDecision(model="m", decision="started", reason="b", trigger="manual", at="2024-01-02"))
    store.put_step(RetrainStep.of("m", "arn:x:run", "train", payload_in={}, payload_out={"v": 1}, duration_ms=1.0))
    assert [r["reason"] for r in store.retrain_history("m", kind="decision")] == ["b", "a"]
    (step,) = store.retrain_history("m", kind="step")
    assert step["payload"] == {"input": {}, "output": {"v": 1}} and step["execution_name"] == "run"
    assert len(store.retrain_history("m", limit=2)) == 2


def test_approvals(store: ControlStore) -> None:
    for v in (3, 2):
        store.put_approval(
            ApprovalRequest(
                "m",
                v,
                task_token=f"t{v}",
                execution_arn="arn",
                requested_at="t",
                timeout_seconds=60,
                summary="s",
                expires_at=10**10,
            )
        )
    assert sorted(a.version for a in store.approvals("m")) == [2, 3]
    got = store.approval("m", 3)
    assert got is not None and got.task_token == "t3"
    store.delete_approval("m", 3)
    assert store.approval("m", 3) is None and [a.version for a in store.approvals("m")] == [2]


def test_drift_checks_before_a_window(store: ControlStore) -> None:
    for end in ("2024-01-01T01", "2024-01-01T02", "2024-01-01T03"):
        store.put_drift_check(DriftCheck(model="m", window_start="", window_end=end, version=1, status="ok"))
    assert [c.window_end for c in store.drift_checks("m", 2)] == ["2024-01-01T03", "2024-01-01T02"]
    assert [c.window_end for c in store.drift_checks("m", 1, before="2024-01-01T03")] == ["2024-01-01T02"]


def test_event_bus_publishes_and_names_a_refusal(clients: dict[str, Any]) -> None:
    event_id = EventBus("bus", clients["events"]).publish(FEATURE_DATA_ACCEPTED, {"feature_set": "fs"})
    assert event_id

    class Refusing:
        def put_events(self, **_: Any) -> dict[str, Any]:
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "AccessDenied", "ErrorMessage": "no"}]}

    with pytest.raises(EventRejectedError, match="AccessDenied"):
        EventBus("bus", Refusing()).publish(FEATURE_DATA_ACCEPTED, {})
