"""Build a platform function in a stack and grant it exactly what it needs.

Permissions follow the resources a function is wired to; the grants table below is the one place
that says who may read or write what (least privilege, no ``*`` actions).
"""

from __future__ import annotations

from typing import Any, Literal

from aws_cdk import Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_

from driftline.contracts import APPROVAL_PREFIX, METRICS_NAMESPACE
from stacks.constructs import PlatformFunction
from stacks.resources import SharedResources

Access = Literal["read", "write", "read_write", "delete", "append", "read_append"]
"""``append`` (write-once buckets): ``s3:PutObject`` only, never a grant that could change, lock differently
or delete what is there; ``read_append`` adds reading it back."""

# function -> resource kind:logical -> access
GRANTS: dict[str, dict[str, Access]] = {
    "ingest": {
        "bucket:features": "read_write",
        "delete:features:incoming/*": "delete",  # an accepted upload is removed from incoming/ (versions stay)
        "delete:features:curated/*/_pending/*": "delete",  # an upload's commit ends by removing its marker
        "table:online": "read_write",
        "table:control": "read_write",
        "table:idempotency": "read_write",
        "bus": "write",
        "topic:alerts": "write",
    },
    "serve": {
        "bucket:artifacts": "read",
        "bucket:captures": "write",
        "table:registry": "read",
        "table:online": "read",
        "streams": "write",
    },
    "drift": {
        "bucket:artifacts": "read",
        "bucket:captures": "read",
        "bucket:reports": "read_write",
        "table:registry": "read",
        "table:control": "read_write",
        "topic:alerts": "write",
        "bus": "write",
        "metrics": "write",
    },
    "train": {
        "bucket:features": "read_write",
        "bucket:artifacts": "read_write",
        "table:registry": "read_write",
        "bucket:audit": "append",  # seals the audit entries of its registrations
    },
    "retrain-trigger": {"table:control": "read_write", "table:registry": "read", "topic:alerts": "write"},
    "workflow": {
        "bucket:artifacts": "read",
        "bucket:captures": "read",
        "table:registry": "read_write",
        "bucket:audit": "read_append",  # seals its audit entries; reads the trail back for a rollback
        "table:control": "read_write",
        "topic:alerts": "write",
        "topic:approvals": "write",
    },
    # Narrower than the table grants above: ServingStack grants the few DynamoDB, KMS and Step Functions
    # actions resolve_approval makes (see ServingStack._grant_approve).
    "approve": {"bucket:audit": "append"},  # seals the approval's audit entry
}

TOKEN_HOLDERS = frozenset({"workflow", "approve"})
"""The functions that may touch approval items (a waiting run's task token) in the control table: the
workflow's request_approval step writes them, approve reads and deletes them (ServingStack grants it)."""
ITEM_ACTIONS = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:ConditionCheckItem",
                "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem")
"""Item-level actions: IAM sees their partition keys as ``dynamodb:LeadingKeys`` (writes too: an update
returning ALL_OLD would read the token)."""
KEYLESS_READS = ("dynamodb:Scan", "dynamodb:PartiQLSelect", "dynamodb:ExportTableToPointInTime")
"""Reads without a leading key, so no key condition can exclude the token items: denied outright."""


def make_function(
    stack: Stack,
    shared: SharedResources,
    logical: str,
    *,
    extra_arns: dict[str, str] | None = None,
    image_code: lambda_.DockerImageCode | None = None,
    **extra: Any,
) -> PlatformFunction:
    platform = shared.platform
    spec = platform.function(logical)
    env = platform.function_env(spec, stack.account, stack.region, shared.arns(extra_arns))
    if spec.package == "image":
        fn = PlatformFunction(
            stack,
            _cid(logical),
            platform=platform,
            spec=spec,
            code=None,
            layers=[],
            environment=env,
            dlq=shared.dlq(stack, spec.stack),
            key=shared.key,
            image_code=image_code,
            **extra,
        )
    else:
        fn = PlatformFunction(
            stack,
            _cid(logical),
            platform=platform,
            spec=spec,
            code=shared.code(stack),
            layers=[shared.layer(stack, spec.package)],
            environment=env,
            dlq=shared.dlq(stack, spec.stack),
            key=shared.key,
            **extra,
        )
    grant(shared, fn.function, logical)
    return fn


def _cid(logical: str) -> str:
    return "".join(part.title() for part in logical.split("-")) + "Fn"


def grant(shared: SharedResources, fn: lambda_.IFunction, logical: str) -> None:
    for target, access in GRANTS[logical].items():
        kind, _, name = target.partition(":")
        if kind == "bucket":
            bucket = shared.buckets[name]
            # read_write is read + put, never delete: no function may remove curated data or any object version
            if access in ("read", "read_write", "read_append"):
                bucket.grant_read(fn)
            if access in ("write", "read_write"):
                bucket.grant_put(fn)
            if access in ("append", "read_append"):
                fn.add_to_role_policy(
                    iam.PolicyStatement(actions=["s3:PutObject"], resources=[bucket.arn_for_objects("*")]))
                shared.key.grant(fn, "kms:GenerateDataKey")
        elif kind == "delete":  # "delete:<bucket>:<prefix>": a delete marker on current objects under prefix
            bucket_name, _, prefix = name.partition(":")
            fn.add_to_role_policy(iam.PolicyStatement(
                actions=["s3:DeleteObject"], resources=[shared.buckets[bucket_name].arn_for_objects(prefix)]))
        elif kind == "table":
            table = shared.tables[name]
            {"read": table.grant_read_data, "write": table.grant_write_data, "read_write": table.grant_read_write_data}[
                access
            ](fn)
            if name == "control" and logical not in TOKEN_HOLDERS:
                deny_approval_items(table, fn)
        elif kind == "topic":
            shared.topics[name].grant_publish(fn)
        elif kind == "bus":
            shared.bus.grant_put_events_to(fn)
        elif kind == "metrics":
            fn.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
                )
            )
        elif kind == "streams":
            pass  # granted by ServingStack, which owns the capture streams


def deny_approval_items(control: dynamodb.ITable, fn: lambda_.IFunction) -> None:
    """No access to the control table's approval items (task tokens), whatever else is allowed.

    An explicit Deny wins over the table grants: item actions on ``APPROVAL#`` partition keys, and every
    read that carries no key (Scan, PartiQL SELECT, exports), which these functions never make.
    """
    fn.add_to_role_policy(iam.PolicyStatement(
        effect=iam.Effect.DENY, actions=list(ITEM_ACTIONS), resources=[control.table_arn],
        conditions={"ForAnyValue:StringLike": {"dynamodb:LeadingKeys": [f"{APPROVAL_PREFIX}*"]}}))
    fn.add_to_role_policy(iam.PolicyStatement(
        effect=iam.Effect.DENY, actions=list(KEYLESS_READS), resources=[control.table_arn]))
