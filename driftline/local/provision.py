"""Create every data resource of the platform definition in an emulator (moto or LocalStack).

Only reads :class:`driftline.platform.Platform`; there is no second list of resources.
Functions, state machines and triggers are added by the local runtime on top of this.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from driftline.platform import Platform

LOCAL_ACCOUNT = "123456789012"


@dataclass
class ProvisionedNames:
    """Physical names and ARNs of what was created, keyed the way ``Platform.env_values`` wants them."""

    account: str
    region: str
    arns: dict[str, str] = field(default_factory=dict)

    def env(self, platform: Platform) -> dict[str, str]:
        return platform.env_values(self.account, self.region, self.arns)


def _topic_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sns:{region}:{account}:{name}"


def provision_data(platform: Platform, clients: Any, region: str, account: str = LOCAL_ACCOUNT) -> ProvisionedNames:
    """Create buckets, tables, topics, queues, the event bus and capture streams. Idempotent.

    ``clients`` is a callable ``clients(service) -> boto3 client``.
    """
    names = ProvisionedNames(account=account, region=region)
    s3 = clients("s3")
    for b in platform.buckets:
        bucket = platform.bucket_name(b.logical, account, region)
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            s3.create_bucket(**kwargs)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        if b.versioned:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    ddb = clients("dynamodb")
    existing = set(ddb.list_tables().get("TableNames", []))
    for t in platform.tables:
        tname = platform.name(t.logical)
        if tname in existing:
            continue
        keys = [{"AttributeName": t.partition_key, "KeyType": "HASH"}]
        attrs = [{"AttributeName": t.partition_key, "AttributeType": "S"}]
        if t.sort_key:
            keys.append({"AttributeName": t.sort_key, "KeyType": "RANGE"})
            attrs.append({"AttributeName": t.sort_key, "AttributeType": "S"})
        ddb.create_table(TableName=tname, KeySchema=keys, AttributeDefinitions=attrs, BillingMode="PAY_PER_REQUEST")
        if t.ttl_attribute:
            ddb.update_time_to_live(TableName=tname, TimeToLiveSpecification={
                "Enabled": True, "AttributeName": t.ttl_attribute})
    sns = clients("sns")
    for topic in platform.topics:
        arn = sns.create_topic(Name=platform.name(topic))["TopicArn"]
        names.arns[f"topic:{topic}"] = arn
    sqs = clients("sqs")
    for q in platform.queues:
        url = sqs.create_queue(QueueName=platform.name(q))["QueueUrl"]
        names.arns[f"queue:{q}"] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
    events = clients("events")
    try:
        events.create_event_bus(Name=platform.event_bus)
    except events.exceptions.ResourceAlreadyExistsException:
        pass
    iam = clients("iam")
    role_name = f"{platform.prefix}-local-role"
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
        "Service": ["lambda.amazonaws.com", "states.amazonaws.com", "firehose.amazonaws.com"]},
        "Action": "sts:AssumeRole"}]})
    try:
        role_arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        role_arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
    names.arns["role:local"] = role_arn
    firehose = clients("firehose")
    captures = platform.bucket_name("captures", account, region)
    existing_streams = set(firehose.list_delivery_streams().get("DeliveryStreamNames", []))
    for stream in platform.streams:
        sname = platform.name(stream.logical)
        if sname not in existing_streams:
            firehose.create_delivery_stream(
                DeliveryStreamName=sname,
                DeliveryStreamType="DirectPut",
                ExtendedS3DestinationConfiguration={
                    "RoleARN": role_arn,
                    "BucketARN": f"arn:aws:s3:::{captures}",
                    "Prefix": stream.prefix,
                    "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60},
                },
            )
        names.arns[f"stream:{stream.model}"] = f"arn:aws:firehose:{region}:{account}:deliverystream/{sname}"
    return names
