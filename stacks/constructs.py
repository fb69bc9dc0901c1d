"""Reusable L3 constructs: secure-by-default buckets and platform functions."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from driftline.platform import Bucket, Function, Platform

RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def removal_policy(platform: Platform) -> RemovalPolicy:
    """Data is retained on ``cdk destroy`` in prod-like environments and destroyed in dev."""
    return RemovalPolicy.RETAIN if platform.config.removal == "retain" else RemovalPolicy.DESTROY


class SecureBucket(Construct):
    """KMS-encrypted, versioned, private, SSL-only bucket with access logs and lifecycle rules."""

    def __init__(
        self, scope: Construct, cid: str, *, platform: Platform, spec: Bucket, key: kms.IKey, access_logs: s3.IBucket
    ) -> None:
        super().__init__(scope, cid)
        stack = Stack.of(self)
        rules = [
            s3.LifecycleRule(
                id="expire-noncurrent",
                noncurrent_version_expiration=Duration.days(spec.noncurrent_expire_days),
                abort_incomplete_multipart_upload_after=Duration.days(7),
            )
        ]
        rules += [
            s3.LifecycleRule(id=f"expire-{prefix.strip('/')}", prefix=prefix, expiration=Duration.days(days))
            for prefix, days in spec.expire_prefixes
        ]
        rules += [
            s3.LifecycleRule(
                id=f"expire-scratch-{prefix.strip('/')}",
                prefix=prefix,
                expiration=Duration.days(days),
                noncurrent_version_expiration=Duration.days(1),
            )
            for prefix, days in spec.scratch_prefixes
        ]
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=platform.bucket_name(spec.logical, stack.account, stack.region),
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=spec.versioned,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=f"{spec.logical}/",
            lifecycle_rules=rules,
            removal_policy=removal_policy(platform),
            auto_delete_objects=False,
        )


class PlatformFunction(Construct):
    """A Lambda function built from its platform-definition entry.

    Runtime, architecture, tracing, JSON logs with retention, and an SQS dead-letter queue for
    asynchronous invocations are the same for every function; only the spec varies.
    """

    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        platform: Platform,
        spec: Function,
        code: lambda_.Code | None,
        layers: list[lambda_.ILayerVersion],
        environment: dict[str, str],
        dlq: sqs.IQueue,
        key: kms.IKey,
        image_code: lambda_.DockerImageCode | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(scope, cid)
        self.spec = spec
        name = platform.name(spec.logical)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/lambda/{name}",
            retention=RETENTION[platform.config.log_retention_days],
            removal_policy=removal_policy(platform),
            encryption_key=key,
        )
        # An explicit role instead of the default one with the AWSLambdaBasicExecutionRole managed
        # policy: logs may be written only to this function's own log group.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),  # type: ignore[arg-type]
            description=f"Driftline {spec.logical} function ({platform.config.env_name})",
        )
        self.log_group.grant_write(self.role)
        common: dict[str, Any] = {
            "role": self.role,
            "function_name": name,
            "description": spec.description,
            "memory_size": spec.memory_mb,
            "timeout": Duration.seconds(spec.timeout_s),
            "architecture": lambda_.Architecture.X86_64,
            "environment": environment,
            "environment_encryption": key,
            "tracing": lambda_.Tracing.ACTIVE,
            "log_group": self.log_group,
            "logging_format": lambda_.LoggingFormat.JSON,
            "dead_letter_queue": dlq,
            **extra,
        }
        if image_code is not None:
            self.function: lambda_.Function = lambda_.DockerImageFunction(self, "Function", code=image_code, **common)
        else:
            assert code is not None
            self.function = lambda_.Function(
                self,
                "Function",
                runtime=lambda_.Runtime.PYTHON_3_12,
                handler=spec.handler,
                code=code,
                layers=layers,
                **common,
            )

    def grant_invoke(self, principal: iam.IGrantable) -> iam.Grant:
        return self.function.grant_invoke(principal)
