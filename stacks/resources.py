"""Hand-off of shared resources from ``DataStack`` to the other stacks, plus per-stack layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs

from driftline.platform import LAMBDA_ARCHITECTURE, Package, Platform
from stacks import packaging
from stacks.constructs import removal_policy


@dataclass
class SharedResources:
    platform: Platform
    feature_sets_dir: Path
    key: kms.IKey
    buckets: dict[str, s3.IBucket]
    tables: dict[str, dynamodb.ITable]
    topics: dict[str, sns.ITopic]
    bus: events.IEventBus
    _layers: dict[tuple[str, str], lambda_.ILayerVersion] = field(default_factory=dict)
    _code: dict[str, lambda_.Code] = field(default_factory=dict)
    _dlqs: dict[str, sqs.IQueue] = field(default_factory=dict)

    def dlq(self, stack: Stack, kind: str) -> sqs.IQueue:
        """The stack's own dead-letter queue (a shared one would make stacks depend on each other
        through the queue policy that event-rule targets add)."""
        if stack.stack_name not in self._dlqs:
            self._dlqs[stack.stack_name] = sqs.Queue(
                stack,
                "DeadLetterQueue",
                queue_name=self.platform.name(f"dlq-{kind}"),
                encryption=sqs.QueueEncryption.KMS,
                encryption_master_key=self.key,
                enforce_ssl=True,
                retention_period=Duration.days(14),
                removal_policy=removal_policy(self.platform),
            )
        return self._dlqs[stack.stack_name]

    def layer(self, stack: Stack, package: Package) -> lambda_.ILayerVersion:
        """One layer construct per stack and package (same asset, uploaded once): no cross-stack
        exports of layer versions, which would block every dependency update."""
        key = (stack.stack_name, package)
        if key not in self._layers:
            self._layers[key] = lambda_.LayerVersion(
                stack,
                f"{package.title()}Layer",
                layer_version_name=self.platform.name(f"{package}-deps"),
                code=packaging.layer_code(package),
                compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
                compatible_architectures=[lambda_.Architecture.X86_64],
                description=f"Driftline {package} dependencies ({LAMBDA_ARCHITECTURE}, pinned by uv.lock)",
            )
        return self._layers[key]

    def code(self, stack: Stack) -> lambda_.Code:
        if stack.stack_name not in self._code:
            self._code[stack.stack_name] = packaging.function_code(self.feature_sets_dir)
        return self._code[stack.stack_name]

    def arns(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """ARNs ``Platform.env_values`` needs ('topic:<logical>', 'workflow:<logical>'), as tokens."""
        return {**{f"topic:{k}": t.topic_arn for k, t in self.topics.items()}, **(extra or {})}
