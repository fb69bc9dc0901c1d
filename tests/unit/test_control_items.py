"""The control table's item kinds encode and decode themselves: a round trip loses nothing (no AWS)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from driftline import contracts
from driftline.control_items import (
    STEP_RECORD_MAX_BYTES,
    ApprovalRequest,
    ContentRecord,
    DriftCheck,
    IngestRecord,
    RetrainDecision,
    RetrainLock,
    RetrainStep,
    approval_key,
    decode_retrain_item,
)
from driftline.control_store import ControlStore
from driftline.dynamo_attrs import get_bool, get_float, get_int, get_json, get_str, num, plain, text


def test_attribute_helpers_read_missing_or_mistyped_values_as_absent() -> None:
    item = {"s": {"S": "x"}, "n": {"N": "2.5"}, "b": {"BOOL": False}, "j": {"S": '{"a": 1}'}, "e": {"S": ""}}
    assert (get_str(item, "s"), get_str(item, "n"), get_str(item, "zz", "d")) == ("x", "", "d")
    assert (get_float(item, "n"), get_int(item, "n"), get_float(item, "s")) == (2.5, 2, None)
    assert (get_bool(item, "b"), get_bool(item, "s")) == (False, None)
    assert (get_json(item, "j"), get_json(item, "e", []), get_json(item, "zz")) == ({"a": 1}, [], None)
    assert text(3) == {"S": "3"} and num(3) == {"N": "3"} and float(num(0.1)["N"]) == 0.1
    assert (plain({"S": "a"}), plain({"N": "1"}), plain({"BOOL": True})) == ("a", "1", True)


def test_ingest_record_round_trip_and_flat_attributes() -> None:
    result = {
        "status": "partial",
        "source": "s3://b/incoming/fs/x.csv",
        "upload_id": "u1",
        "rows_total": 10,
        "rows_accepted": 7,
        "has_labels": True,
        "reason": "",
        "curated_days": ["2024-01-01"] * 3,
        "feature_set_version": None,
    }
    rec = IngestRecord("fs", "2024-01-02T00:00:00+00:00", "u1", result, recorded_at="t", curated_files=3)
    item = rec.to_item()
    assert item["pk"] == {"S": contracts.ingest_pk("fs")} and item["sk"] == {"S": "2024-01-02T00:00:00+00:00#u1"}
    assert item["status"] == {"S": "partial"} and item["rows_accepted"] == {"N": "7"}
    assert "reason" not in item and "feature_set_version" not in item  # empty and None are left out
    assert item["has_labels"] == {"BOOL": True} and item["original_deleted"] == {"BOOL": False}
    assert IngestRecord.from_item(item) == rec
    assert rec.status == "partial" and rec.sk == item["sk"]["S"]


def test_ingest_record_without_result_document_takes_the_status_attribute() -> None:
    got = IngestRecord.from_item(
        {"pk": {"S": contracts.ingest_pk("fs")}, "sk": {"S": "t#u"}, "status": {"S": "failed"}}
    )
    assert (got.feature_set, got.upload_id, got.status, got.recorded_at) == ("fs", "u", "failed", None)


def test_content_lock_approval_round_trips() -> None:
    c = ContentRecord("fs", "ab" * 32, upload_id="u", source="s3://b/k", recorded_at="t")
    assert c.to_item()["pk"] == contracts.content_key("fs", "ab" * 32)["pk"]
    assert ContentRecord.from_item(c.to_item()) == c
    assert RetrainLock.from_item({}) == RetrainLock(None, None, None, None)
    assert RetrainLock.from_item({"holder": {"S": "arn"}, "acquired_at": {"N": "1.5"}}).acquired_at == 1.5
    a = ApprovalRequest(
        "m", 3, task_token="tok", execution_arn="arn", requested_at="t", timeout_seconds=60, summary="s", expires_at=99
    )
    assert a.to_item()["pk"] == {"S": contracts.approval_pk("m")} and approval_key("m", 3)["sk"] == {"S": "3"}
    assert ApprovalRequest.from_item(a.to_item()) == a


def test_retrain_items() -> None:
    d = RetrainDecision(model="m", decision="started", reason="r", trigger="manual", details={"k": [1]}, at="t0")
    item = d.to_item(nonce="n1")
    assert item["pk"] == {"S": contracts.retrain_pk("m")} and item["sk"] == {"S": "t0#n1"}
    decoded = decode_retrain_item(item)
    assert decoded["details"] == {"k": [1]} and decoded["decision"] == "started"
    step = RetrainStep.of(
        "m",
        "arn:aws:states:x:1:execution:sm:run-1",
        "train",
        payload_in={"a": 1},
        payload_out="x" * (STEP_RECORD_MAX_BYTES + 1),
        duration_ms=2.0,
    )
    sitem = step.to_item()
    assert sitem["execution_name"] == {"S": "run-1"} and sitem["duration_ms"] == {"N": "2.000"}
    assert json.loads(sitem["payload"]["S"])["truncated"] is True and "error" not in sitem


def test_drift_check_round_trip() -> None:
    e = DriftCheck(
        model="m",
        window_start="a",
        window_end="b",
        version=2,
        status="ok",
        share_drifted=0.25,
        prediction_drifted=False,
        drifted=True,
        streak=2,
        alarm=True,
        drifted_columns=["x"],
        reasons=["why"],
    )
    item = e.to_item()
    assert item["pk"] == {"S": contracts.drift_history_pk("m")} and item["sk"] == {"S": "b"}
    assert DriftCheck.from_item(item) == e
    bare = DriftCheck(model="m", window_start="a", window_end="b", version=None, status="no_data")
    assert DriftCheck.from_item(bare.to_item()) == bare


class _PagedClient:
    """A DynamoDB stand-in answering queries from a list, two items a page."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.calls: list[dict[str, Any]] = []

    def query(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(kw)
        start = int(kw.get("ExclusiveStartKey", {}).get("i", 0))
        page = self.items[start : start + 2]
        out: dict[str, Any] = {"Items": page}
        if start + 2 < len(self.items):
            out["LastEvaluatedKey"] = {"i": start + 2}
        return out


def test_store_pages_through_a_partition_up_to_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from driftline import aws

    monkeypatch.setattr(aws, "client", lambda name: pytest.fail(f"built a {name} client although one was given"))
    checks = [
        DriftCheck(model="m", window_start="", window_end=f"w{i}", version=None, status="ok").to_item()
        for i in range(5)
    ]
    client = _PagedClient(checks)
    store = ControlStore("control", client)
    assert [c.window_end for c in store.drift_checks("m", 3)] == ["w0", "w1", "w2"]
    assert len(client.calls) == 2 and client.calls[0]["ScanIndexForward"] is False
    assert len(store.drift_checks("m", 100)) == 5


def test_store_builds_its_default_client_on_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    from driftline import aws

    built: list[str] = []

    def client(name: str) -> _PagedClient:
        built.append(name)
        return _PagedClient([])

    monkeypatch.setattr(aws, "client", client)
    store = ControlStore("control")
    assert built == []
    assert store.approvals("m") == [] and store.approvals("m") == []
    assert built == ["dynamodb"]
