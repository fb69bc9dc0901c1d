"""Local IAM enforcement: a function's session may do what its declared access expands to and is denied
the rest with AccessDenied, as the deployed role would be; the platform's own (root) calls stay unchecked."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from driftline.config import PlatformConfig
from driftline.local.iam_enforcement import LocalIam, enforced, local_policy
from driftline.platform import Platform, build_platform

ACCOUNT, REGION = "123456789012", "us-east-1"


def _platform() -> Platform:
    model = {"name": "credit", "feature_set": "credit_default"}
    return build_platform(PlatformConfig.model_validate({"models": [model]}))


def _without(platform: Platform, function: str, kind: str, logical: str) -> Platform:
    fn = platform.function(function)
    narrowed = dataclasses.replace(
        fn, access=tuple(g for g in fn.access if not (g.kind == kind and g.logical == logical))
    )
    return dataclasses.replace(
        platform, functions=tuple(narrowed if f.logical == function else f for f in platform.functions)
    )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(k, "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


def _provision(platform: Platform) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    for b in platform.buckets:
        s3.create_bucket(Bucket=platform.bucket_name(b.logical, ACCOUNT, REGION))
    ddb = boto3.client("dynamodb", region_name=REGION)
    for t in platform.tables:
        ddb.create_table(
            TableName=platform.name(t.logical),
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": t.partition_key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": t.partition_key, "AttributeType": "S"}],
        )
    boto3.client("events", region_name=REGION).create_event_bus(Name=platform.event_bus)
    sns = boto3.client("sns", region_name=REGION)
    for topic in platform.topics:
        sns.create_topic(Name=platform.name(topic))


def _session(iam: LocalIam, logical: str) -> boto3.Session:
    creds = iam.credentials(logical)
    return boto3.Session(
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=creds["AWS_SESSION_TOKEN"],
        region_name=REGION,
    )


def _denied(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as e:
        call(*args, **kwargs)
    code = str(e.value.response["Error"]["Code"])
    assert "AccessDenied" in code, e.value.response
    return code


def test_each_function_may_do_what_it_declares_and_nothing_else(aws: None) -> None:
    platform = _platform()
    _provision(platform)
    iam = LocalIam(platform, ACCOUNT, REGION)
    with enforced(iam):
        serve = _session(iam, "serve")
        s3 = serve.client("s3")
        artifacts = platform.bucket_name("artifacts", ACCOUNT, REGION)
        features = platform.bucket_name("features", ACCOUNT, REGION)
        captures = platform.bucket_name("captures", ACCOUNT, REGION)
        s3.list_objects_v2(Bucket=artifacts)  # read
        s3.put_object(Bucket=captures, Key="captures/x.json", Body=b"{}")  # write
        _denied(s3.put_object, Bucket=artifacts, Key="x", Body=b"")  # read only
        _denied(s3.get_object, Bucket=features, Key="incoming/x.csv")  # not declared at all
        _denied(s3.delete_object, Bucket=captures, Key="captures/x.json")  # write is never delete

        ddb = serve.client("dynamodb")
        ddb.get_item(TableName=platform.name("registry"), Key={"pk": {"S": "a"}})
        _denied(ddb.put_item, TableName=platform.name("registry"), Item={"pk": {"S": "a"}})  # read only
        _denied(ddb.get_item, TableName=platform.name("control"), Key={"pk": {"S": "a"}})  # other table

        # a transaction is checked item by item (PutItem, ConditionCheckItem, ... on each item's table), as on AWS
        put = {"Put": {"TableName": platform.name("registry"), "Item": {"pk": {"S": "t"}}}}
        _session(iam, "train").client("dynamodb").transact_write_items(TransactItems=[put])
        _denied(ddb.transact_write_items, TransactItems=[put])

        ingest = _session(iam, "ingest")
        ingest.client("s3").delete_object(Bucket=features, Key="incoming/up.csv")  # delete under incoming/
        _denied(ingest.client("s3").delete_object, Bucket=features, Key="curated/x.parquet")
        alerts = f"arn:aws:sns:{REGION}:{ACCOUNT}:{platform.name('alerts')}"
        approvals = f"arn:aws:sns:{REGION}:{ACCOUNT}:{platform.name('approvals')}"
        ingest.client("sns").publish(TopicArn=alerts, Message="m")
        _denied(ingest.client("sns").publish, TopicArn=approvals, Message="m")

        drift = _session(iam, "drift")  # CloudWatch signs as "monitoring"; IAM names it cloudwatch:
        drift.client("cloudwatch").put_metric_data(Namespace="Driftline", MetricData=[{"MetricName": "m", "Value": 1}])
        _denied(
            serve.client("cloudwatch").put_metric_data,
            Namespace="Driftline",
            MetricData=[{"MetricName": "m", "Value": 1}],
        )

        bus = {"Source": "driftline", "DetailType": "t", "Detail": "{}"}
        ingest.client("events").put_events(Entries=[{**bus, "EventBusName": platform.event_bus}])
        _denied(ingest.client("events").put_events, Entries=[bus])  # the default bus is not declared

        trigger = _session(iam, "retrain-trigger").client("stepfunctions")
        retrain = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{platform.name('retrain')}"
        with pytest.raises(ClientError) as e:  # allowed: fails only because the machine does not exist here
            trigger.start_execution(stateMachineArn=retrain, name="n")
        assert "AccessDenied" not in str(e.value.response["Error"]["Code"])
        _denied(trigger.start_execution, stateMachineArn=retrain + "-other", name="n")

        # the platform's own calls (root credentials) are not checked
        boto3.client("s3", region_name=REGION).put_object(Bucket=artifacts, Key="x", Body=b"")
        boto3.client("dynamodb", region_name=REGION).put_item(
            TableName=platform.name("control"), Item={"pk": {"S": "a"}}
        )


def test_removing_a_declared_permission_denies_the_call_locally(aws: None) -> None:
    """The done-when check: drop the serve function's registry read from its declaration, and its
    GetItem on the registry fails with AccessDenied, as the deployed role (same expansion) would."""
    platform = _platform()
    _provision(platform)
    allowed = LocalIam(platform, ACCOUNT, REGION)
    narrowed = LocalIam(_without(platform, "serve", "table", "registry"), ACCOUNT, REGION)
    narrowed.enforced_keys = allowed.enforced_keys  # both sessions checked by one hook
    with enforced(allowed):
        key = {"pk": {"S": "model#credit"}}
        _session(allowed, "serve").client("dynamodb").get_item(TableName=platform.name("registry"), Key=key)
        narrowed.role_name = lambda logical: f"{platform.name(logical)}-narrowed"  # type: ignore[method-assign]
        _denied(_session(narrowed, "serve").client("dynamodb").get_item, TableName=platform.name("registry"), Key=key)


def test_local_policy_keeps_resource_scope_only_where_moto_checks_it() -> None:
    platform = _platform()
    doc = local_policy(platform.policy("retrain-trigger", ACCOUNT, REGION))
    statements = doc["Statement"]
    assert all(not st.get("Condition") for st in statements)
    assert not any(st["Effect"] == "Deny" and "Condition" in st for st in statements)
    states = [st for st in statements if st["Action"][0].startswith("states:")]
    assert states and all(r.startswith("arn:aws:states:") for st in states for r in st["Resource"])
    answers = [
        st
        for st in local_policy(platform.policy("approve", ACCOUNT, REGION))["Statement"]
        if "states:SendTaskSuccess" in st["Action"]
    ]
    assert answers and all(st["Resource"] == ["*"] for st in answers)  # a task token names no state machine
    tables = [st for st in statements if st["Action"][0].startswith("dynamodb:") and st["Effect"] == "Allow"]
    assert tables and all(r.startswith("arn:aws:dynamodb:") for st in tables for r in st["Resource"])


def test_approval_items_are_denied_to_all_but_the_workflow_and_approve(aws: None) -> None:
    """The control table's LeadingKeys deny (task tokens), which moto cannot evaluate, is checked from the
    partition keys the request names: direct keys, batches, transactions and a Query's key condition."""
    platform = _platform()
    _provision(platform)
    control = platform.name("control")
    token = {"pk": {"S": "APPROVAL#credit"}}
    other = {"pk": {"S": "LOCK#credit"}}
    iam = LocalIam(platform, ACCOUNT, REGION)
    with enforced(iam):
        ingest = _session(iam, "ingest").client("dynamodb")
        ingest.get_item(TableName=control, Key=other)
        ingest.put_item(TableName=control, Item=other)
        _denied(ingest.get_item, TableName=control, Key=token)
        _denied(ingest.put_item, TableName=control, Item=token)
        _denied(
            ingest.query,
            TableName=control,
            KeyConditionExpression="#k = :v",
            ExpressionAttributeNames={"#k": "pk"},
            ExpressionAttributeValues={":v": token["pk"]},
        )
        ingest.query(TableName=control, KeyConditionExpression="pk = :v", ExpressionAttributeValues={":v": other["pk"]})
        _denied(ingest.batch_write_item, RequestItems={control: [{"PutRequest": {"Item": token}}]})
        _denied(ingest.transact_write_items, TransactItems=[{"Put": {"TableName": control, "Item": token}}])
        _denied(ingest.scan, TableName=control)  # keyless reads: denied outright
        workflow = _session(iam, "workflow").client("dynamodb")
        workflow.put_item(TableName=control, Item=token)
        _session(iam, "approve").client("dynamodb").get_item(TableName=control, Key=token)


def test_a_changed_declaration_applies_to_running_sessions(aws: None) -> None:
    """After a reload the bridge hands LocalIam the new platform and re-puts every role's policy: the same
    session (warm workers keep their credentials) is denied what the new declaration no longer allows."""
    platform = _platform()
    _provision(platform)
    iam = LocalIam(platform, ACCOUNT, REGION)
    key = {"pk": {"S": "model#credit"}}
    with enforced(iam):
        ddb = _session(iam, "serve").client("dynamodb")
        ddb.get_item(TableName=platform.name("registry"), Key=key)
        iam.platform = _without(platform, "serve", "table", "registry")
        iam.refresh_policies()
        _denied(ddb.get_item, TableName=platform.name("registry"), Key=key)
