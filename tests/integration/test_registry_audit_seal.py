"""The registry's audit trail is sealed in a write-once bucket (issue 16 item 14).

Each audit entry committed with its change is copied to ``audit/model=<m>/…`` of the audit bucket with
``If-None-Match: *``; :meth:`Registry.audit` shows the sealed entries and flags where the registry table
(which the train and workflow roles may still update) differs. On AWS the bucket refuses overwrites and
deletes by policy and Object Lock (tests/infrastructure/test_governance.py); here moto runs the code path.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from driftline import aws as aws_mod
from driftline.registry.store import CHANGED, REMOVED, SEALED, UNSEALED, Registry, audit_object_key


def _registered(reg: Registry) -> tuple[str, int]:
    model = f"m-{uuid.uuid4().hex[:8]}"
    v = reg.register(model, algorithm="hist_gradient_boosting", metrics={"roc_auc": 0.8}).version
    return model, v


def _table_items(reg: Registry, model: str) -> list[dict[str, Any]]:
    return list(reg._query(model, "AUDIT#"))


def test_every_audit_entry_is_sealed_as_committed(aws: dict[str, str]) -> None:
    reg = Registry.from_env()
    assert reg.audit_bucket == aws["AUDIT_BUCKET"]
    model, v = _registered(reg)
    reg.approve(model, v, "arn:aws:iam::123456789012:role/ml-lead", "reviewed")
    reg.promote(model, v, "arn:aws:iam::123456789012:role/ml-lead", "ship it")
    s3 = aws_mod.client("s3")
    items = _table_items(reg, model)
    assert [i["action"]["S"] for i in items] == ["register", "approve", "promote"]
    for item in items:
        body = s3.get_object(Bucket=reg.audit_bucket, Key=audit_object_key(model, item["sk"]["S"]))["Body"].read()
        assert json.loads(body) == item
    trail = reg.audit(model)
    assert [(e.action, e.integrity) for e in trail] == [("register", SEALED), ("approve", SEALED), ("promote", SEALED)]
    assert reg.champion_history(model) == [v]


def test_a_changed_or_deleted_table_entry_cannot_rewrite_the_trail(aws: dict[str, str]) -> None:
    reg = Registry.from_env()
    model, v = _registered(reg)
    reg.approve(model, v, "arn:aws:iam::123456789012:role/ml-lead", "reviewed")
    register_item, approve_item = _table_items(reg, model)
    ddb = aws_mod.client("dynamodb")
    # what the workflow or train role may still do to the table: rewrite who approved, drop the register entry
    ddb.update_item(
        TableName=reg.table,
        Key={"pk": approve_item["pk"], "sk": approve_item["sk"]},
        UpdateExpression="SET who = :w",
        ExpressionAttributeValues={":w": {"S": "mallory"}},
    )
    ddb.delete_item(TableName=reg.table, Key={"pk": register_item["pk"], "sk": register_item["sk"]})
    trail = reg.audit(model)
    assert [(e.action, e.who, e.integrity) for e in trail] == [
        ("register", "driftline", REMOVED),
        ("approve", "arn:aws:iam::123456789012:role/ml-lead", CHANGED),
    ]
    # and the sealed object itself cannot be replaced through the conditional write the bucket requires
    with pytest.raises(ClientError, match="PreconditionFailed"):
        aws_mod.client("s3").put_object(
            Bucket=reg.audit_bucket, Key=audit_object_key(model, approve_item["sk"]["S"]), Body=b"{}", IfNoneMatch="*"
        )


def test_a_failed_seal_keeps_the_change_and_is_reported(
    aws: dict[str, str], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = Registry.from_env()
    s3 = aws_mod.client("s3")

    def unavailable(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "try later"}}, "PutObject")

    with monkeypatch.context() as m:
        m.setattr(s3, "put_object", unavailable)
        model, v = _registered(reg)
    assert "not sealed" in caplog.text
    assert reg.get_version(model, v).status == "candidate"
    assert [(e.action, e.integrity) for e in reg.audit(model)] == [("register", UNSEALED)]
    legacy = Registry(aws["REGISTRY_TABLE"])  # no audit bucket: the table copy, nothing flagged
    assert [(e.action, e.integrity) for e in legacy.audit(model)] == [("register", "")]
