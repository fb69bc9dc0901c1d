from typing import Any

from driftline import aws


def test_every_data_resource_of_the_definition_exists(aws: dict[str, str], platform_def: Any) -> None:
    buckets = {b["Name"] for b in aws_client("s3").list_buckets()["Buckets"]}
    for b in platform_def.buckets:
        assert platform_def.bucket_name(b.logical, "123456789012", "us-east-1") in buckets
    tables = set(aws_client("dynamodb").list_tables()["TableNames"])
    assert {platform_def.name(t.logical) for t in platform_def.tables} <= tables
    streams = set(aws_client("firehose").list_delivery_streams()["DeliveryStreamNames"])
    assert {platform_def.name(s.logical) for s in platform_def.streams} <= streams
    assert aws["REGISTRY_TABLE"] == platform_def.name("registry")


def aws_client(service: str) -> Any:
    return aws.client(service)
