"""Persistence against a real moto server in this process: write through the recording middleware,
throw the emulator's memory away, restore from the state directory, read the same things back."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from driftline.local import moto_state
from driftline.local.journal import StateInUseError
from driftline.local.persistence import Persistence


def _reset_moto() -> None:
    from moto.backends import get_backend

    for service in ("s3", "dynamodb", "sqs", "firehose"):
        for account in list(get_backend(service).keys()):  # type: ignore[call-overload]
            get_backend(service)[account].reset()  # type: ignore[call-overload]


class Emulator:
    def __init__(self, state_dir: Path, compact_bytes: int = 64 * 1024 * 1024) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        self.app = DomainDispatcherApplication(create_backend_app)
        self.persistence = Persistence(state_dir, warn=lambda _m: None, compact_bytes=compact_bytes)
        self.persistence.open()
        self.summary = self.persistence.restore(self.app)
        self.server = make_server("127.0.0.1", 0, self.persistence.middleware(self.app), threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}),
        )

    def stop(self, compact: bool = True) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.persistence.close(compact=compact)


@pytest.fixture
def fresh_moto() -> Iterator[None]:
    _reset_moto()
    yield
    moto_state.uninstall_observers()
    _reset_moto()


def _write_everything(em: Emulator) -> dict[str, Any]:
    s3, ddb, sqs, firehose = em.client("s3"), em.client("dynamodb"), em.client("sqs"), em.client("firehose")
    s3.create_bucket(Bucket="models")
    s3.put_bucket_versioning(Bucket="models", VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket="models", Key="m/model.json", Body=b"one", Metadata={"stage": "a"})["VersionId"]
    v2 = s3.put_object(Bucket="models", Key="m/model.json", Body=b"two", ContentType="application/json")["VersionId"]
    s3.put_object_tagging(
        Bucket="models", Key="m/model.json", VersionId=v1, Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}
    )
    s3.copy_object(Bucket="models", Key="m/copy.json", CopySource={"Bucket": "models", "Key": "m/model.json"})
    s3.put_object(Bucket="models", Key="gone.txt", Body=b"x")
    marker = s3.delete_object(Bucket="models", Key="gone.txt")["VersionId"]
    mpu = s3.create_multipart_upload(Bucket="models", Key="big.bin")["UploadId"]
    part = s3.upload_part(Bucket="models", Key="big.bin", UploadId=mpu, PartNumber=1, Body=b"p" * 5_300_000)
    s3.complete_multipart_upload(
        Bucket="models",
        Key="big.bin",
        UploadId=mpu,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    ddb.create_table(
        TableName="registry",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="registry", Item={"pk": {"S": "m"}, "sk": {"S": "v1"}, "n": {"N": "1"}})
    ddb.put_item(TableName="registry", Item={"pk": {"S": "m"}, "sk": {"S": "v2"}, "n": {"N": "2"}})
    ddb.update_item(
        TableName="registry",
        Key={"pk": {"S": "m"}, "sk": {"S": "v1"}},
        UpdateExpression="SET champion = :c",
        ExpressionAttributeValues={":c": {"BOOL": True}},
    )
    ddb.delete_item(TableName="registry", Key={"pk": {"S": "m"}, "sk": {"S": "v2"}})
    ddb.batch_write_item(
        RequestItems={
            "registry": [{"PutRequest": {"Item": {"pk": {"S": "b"}, "sk": {"S": str(i)}}}} for i in range(30)][:25]
        }
    )
    ddb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": "registry", "Item": {"pk": {"S": "t"}, "sk": {"S": "1"}}}},
            {"Delete": {"TableName": "registry", "Key": {"pk": {"S": "b"}, "sk": {"S": "0"}}}},
        ]
    )
    url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="kept")
    sqs.send_message(QueueUrl=url, MessageBody="deleted")
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=next(m for m in got if m["Body"] == "deleted")["ReceiptHandle"])
    s3.create_bucket(Bucket="captures")
    firehose.create_delivery_stream(
        DeliveryStreamName="cap",
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/r",
            "BucketARN": "arn:aws:s3:::captures",
            "Prefix": "c/",
        },
    )
    firehose.put_record(DeliveryStreamName="cap", Record={"Data": b'{"x": 1}\n'})
    return {"v1": v1, "v2": v2, "marker": marker}


def _read_everything(em: Emulator) -> dict[str, Any]:
    s3, ddb, sqs = em.client("s3"), em.client("dynamodb"), em.client("sqs")
    versions = s3.list_object_versions(Bucket="models")
    items = ddb.scan(TableName="registry")["Items"]
    url = sqs.get_queue_url(QueueName="dlq")["QueueUrl"]
    captures = [o["Key"] for o in s3.list_objects_v2(Bucket="captures").get("Contents", [])]
    return {
        "versions": sorted(
            (v["Key"], v["VersionId"], v["ETag"], v["IsLatest"], v["LastModified"]) for v in versions["Versions"]
        ),
        "markers": sorted((m["Key"], m["VersionId"]) for m in versions.get("DeleteMarkers", [])),
        "versioning": s3.get_bucket_versioning(Bucket="models")["Status"],
        "items": sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"])),
        "messages": sorted(
            m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        ),
        "captures": captures,
        "capture_body": s3.get_object(Bucket="captures", Key=captures[0])["Body"].read() if captures else b"",
    }


@pytest.mark.parametrize("compact", [False, True], ids=["journal", "snapshot"])
def test_state_comes_back_after_a_restart(tmp_path: Path, fresh_moto: None, compact: bool) -> None:
    em = Emulator(tmp_path)
    ids = _write_everything(em)
    before = _read_everything(em)
    tags_before = em.client("s3").get_object_tagging(Bucket="models", Key="m/model.json", VersionId=ids["v1"])["TagSet"]
    if compact:
        em.persistence.compact()
    em.stop(compact=False)
    _reset_moto()

    em = Emulator(tmp_path)
    try:
        after = _read_everything(em)
        assert after["messages"] == ["kept"]
        before["messages"] = ["kept"]  # the first read made them in flight; after a restart they are visible
        assert after == before
        s3 = em.client("s3")
        assert s3.get_object(Bucket="models", Key="m/model.json", VersionId=ids["v1"])["Body"].read() == b"one"
        got = s3.get_object(Bucket="models", Key="m/model.json")
        assert got["VersionId"] == ids["v2"] and got["Body"].read() == b"two"
        assert got["ContentType"] == "application/json"
        assert s3.head_object(Bucket="models", Key="m/model.json", VersionId=ids["v1"])["Metadata"] == {"stage": "a"}
        assert s3.get_object_tagging(Bucket="models", Key="m/model.json", VersionId=ids["v1"])["TagSet"] == tags_before
        assert ("gone.txt", ids["marker"]) in after["markers"]
        assert len(s3.get_object(Bucket="models", Key="big.bin")["Body"].read()) == 5_300_000
        # writes keep working, and are kept, after a restore
        s3.put_object(Bucket="models", Key="after.txt", Body=b"later")
    finally:
        em.stop()
    _reset_moto()
    em = Emulator(tmp_path)
    try:
        assert em.client("s3").get_object(Bucket="models", Key="after.txt")["Body"].read() == b"later"
    finally:
        em.stop()


def test_a_second_platform_on_the_same_state_is_refused(tmp_path: Path, fresh_moto: None) -> None:
    em = Emulator(tmp_path)
    try:
        other = Persistence(tmp_path)
        with pytest.raises(StateInUseError, match="in use by another running local platform"):
            other.open()
    finally:
        em.stop()


def test_executions_running_at_shutdown_are_listed_interrupted_until_resolved(tmp_path: Path, fresh_moto: None) -> None:
    em = Emulator(tmp_path)
    sfn = em.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="wf",
        definition='{"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 600, "End": true}}}',
        roleArn="arn:aws:iam::123456789012:role/r",
    )["stateMachineArn"]
    running = sfn.start_execution(stateMachineArn=machine, name="running", input='{"model": "m"}')["executionArn"]
    other = sfn.start_execution(stateMachineArn=machine, name="other")["executionArn"]
    finished = sfn.start_execution(stateMachineArn=machine, name="finished")["executionArn"]
    em.persistence.settle_executions(lambda arn: "SUCCEEDED" if arn == finished else "RUNNING")
    em.stop()
    _reset_moto()
    em = Emulator(tmp_path)
    try:
        assert [e["arn"] for e in em.summary.interrupted] == [running, other]
        assert em.summary.interrupted[0]["machine"] == machine
        listed = em.persistence.interrupted()
        assert [(e["name"], e.get("input")) for e in listed] == [("running", '{"model": "m"}'), ("other", None)]
        assert all(e["interrupted"] >= e["started"] for e in listed)
    finally:
        em.stop(compact=False)
    _reset_moto()
    em = Emulator(tmp_path)
    try:
        assert em.summary.interrupted == []  # warned about once
        assert [e["name"] for e in em.persistence.interrupted()] == ["running", "other"]  # listed until resolved
        with pytest.raises(ValueError, match="resolution must be one of"):
            em.persistence.resolve(other, "forgotten")
        done = em.persistence.resolve(other, "dismissed")
        assert done["resolution"] == "dismissed" and done["ended"] is True
        with pytest.raises(KeyError, match="no interrupted execution"):
            em.persistence.resolve(other, "dismissed")
        em.persistence.compact()  # a snapshot keeps the one still listed
    finally:
        em.stop()
    _reset_moto()
    em = Emulator(tmp_path)
    try:
        assert [e["name"] for e in em.persistence.interrupted()] == ["running"]
        em.persistence.resolve(running, "resumed", "arn:new")
    finally:
        em.stop()
    _reset_moto()
    em = Emulator(tmp_path)
    try:
        assert em.persistence.interrupted() == [] and em.summary.interrupted == []
    finally:
        em.stop()


def test_disk_full_fails_the_write_loudly_and_keeps_what_was_acknowledged(
    tmp_path: Path, fresh_moto: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    em = Emulator(tmp_path)
    s3 = em.client("s3")
    s3.create_bucket(Bucket="disk-full")
    s3.put_object(Bucket="disk-full", Key="kept", Body=b"1")

    def full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", full)
    with pytest.raises(ClientError, match="No space left on device") as failed:
        s3.put_object(Bucket="disk-full", Key="lost", Body=b"2")
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 507
    monkeypatch.undo()
    with pytest.raises(ClientError, match="later writes are refused"):
        s3.put_object(Bucket="disk-full", Key="later", Body=b"3")
    assert s3.get_object(Bucket="disk-full", Key="kept")["Body"].read() == b"1"  # reads keep working
    em.stop()
    _reset_moto()
    em = Emulator(tmp_path)
    try:
        keys = [o["Key"] for o in em.client("s3").list_objects_v2(Bucket="disk-full")["Contents"]]
        assert keys == ["kept"]
    finally:
        em.stop()
