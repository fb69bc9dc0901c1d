"""DataStack: encryption key, buckets, tables, topics, dead-letter queue, event bus and ingest."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct

from driftline.platform import Platform
from stacks.audit import make_write_once
from stacks.constructs import SecureBucket, removal_policy
from stacks.functions import make_function
from stacks.glue import AthenaWorkgroup, FeatureCatalog
from stacks.resources import SharedResources
from stacks.workflows import state_machine


class DataStack(Stack):
    def __init__(
        self, scope: Construct, cid: str, *, platform: Platform, feature_sets_dir: Path, **kwargs: object
    ) -> None:
        super().__init__(scope, cid, **kwargs)  # type: ignore[arg-type]
        removal = removal_policy(platform)
        self.key = kms.Key(
            self,
            "Key",
            alias=f"alias/{platform.prefix}",
            enable_key_rotation=True,
            description="Driftline data at rest: buckets, tables, topics, queues, logs",
            removal_policy=removal,
        )
        # Services that write encrypted data on Driftline's behalf, each only for this account's resources
        # (without a condition any account's resource could make the service use this key: confused deputy).
        own_account = {"StringEquals": {"aws:SourceAccount": self.account}}
        for service in (
            "events.amazonaws.com",
            "sns.amazonaws.com",
            "firehose.amazonaws.com",
            "cloudwatch.amazonaws.com",
        ):
            self.key.grant_encrypt_decrypt(iam.ServicePrincipal(service).with_conditions(own_account))
        log_groups = f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:*"
        self.key.grant_encrypt_decrypt(  # CloudWatch Logs names the log group in the encryption context
            iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com").with_conditions(
                {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}}
            )
        )

        # S3 server access logs can only be delivered to an SSE-S3 bucket.
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            bucket_name=platform.bucket_name("access-logs", self.account, self.region),
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=removal,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-logs", expiration=Duration.days(365), noncurrent_version_expiration=Duration.days(30)
                )
            ],
        )
        buckets: dict[str, s3.IBucket] = {
            b.logical: SecureBucket(
                self,
                f"{b.logical.title()}Bucket",
                platform=platform,
                spec=b,
                key=self.key,
                access_logs=self.access_logs,
            ).bucket
            for b in platform.buckets
        }
        for b in platform.buckets:
            if b.write_once_days:
                make_write_once(buckets[b.logical], b.write_once_days)  # type: ignore[arg-type]

        tables: dict[str, dynamodb.ITable] = {}
        for t in platform.tables:
            tables[t.logical] = dynamodb.Table(
                self,
                f"{t.logical.title()}Table",
                table_name=platform.name(t.logical),
                partition_key=dynamodb.Attribute(name=t.partition_key, type=dynamodb.AttributeType.STRING),
                sort_key=(
                    dynamodb.Attribute(name=t.sort_key, type=dynamodb.AttributeType.STRING) if t.sort_key else None
                ),
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
                encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
                encryption_key=self.key,
                time_to_live_attribute=t.ttl_attribute,
                deletion_protection=platform.config.removal == "retain",
                removal_policy=removal,
            )

        topics: dict[str, sns.ITopic] = {}
        for name in platform.topics:
            topic = sns.Topic(
                self,
                f"{name.title()}Topic",
                topic_name=platform.name(name),
                master_key=self.key,
                enforce_ssl=True,
                display_name=f"Driftline {name} ({platform.config.env_name})",
            )
            if platform.config.alert_email:
                topic.add_subscription(subs.EmailSubscription(platform.config.alert_email))
            topics[name] = topic

        self.bus = events.EventBus(self, "Bus", event_bus_name=platform.event_bus, kms_key=self.key)
        self.bus.archive(
            "Archive",
            event_pattern=events.EventPattern(account=[self.account]),
            retention=Duration.days(30),
            description="Replayable history of Driftline events",
        )

        self.shared = SharedResources(
            platform=platform,
            feature_sets_dir=feature_sets_dir,
            key=self.key,
            buckets=buckets,
            tables=tables,
            topics=topics,
            bus=self.bus,
        )
        self.catalog = FeatureCatalog(
            self, "Catalog", platform=platform, buckets=buckets, feature_sets_dir=feature_sets_dir
        )
        self.athena = AthenaWorkgroup(self, "Athena", platform=platform, buckets=buckets)

        # the ingest-parts workflow first: the ingest function starts it (its ARN is in the function's env)
        parts = {n: make_function(self, self.shared, n) for n in ("ingest-plan", "ingest-part", "ingest-commit")}
        self.state_machines = {
            wf.logical: state_machine(self, self.shared, wf, parts) for wf in platform.workflows if wf.stack == "data"
        }
        self.ingest = make_function(
            self,
            self.shared,
            "ingest",
            extra_arns={f"workflow:{k}": sm.state_machine_arn for k, sm in self.state_machines.items()},
        )
        for trig in platform.s3_triggers:
            fn = self.ingest if trig.function == "ingest" else None
            assert fn is not None, f"S3 trigger target {trig.function} is not in DataStack"
            buckets[trig.bucket].add_event_notification(
                s3.EventType.OBJECT_CREATED,
                s3n.LambdaDestination(fn.function),
                s3.NotificationKeyFilter(prefix=trig.prefix),
            )
