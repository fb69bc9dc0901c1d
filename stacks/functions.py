"""Build a platform function in a stack and grant it exactly what it needs.

Permissions follow the resources a function is wired to; the grants table below is the one place
that says who may read or write what (least privilege, no ``*`` actions).
"""

from __future__ import annotations

from typing import Any, Literal

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_

from stacks.constructs import PlatformFunction
from stacks.resources import SharedResources

Access = Literal["read", "write", "read_write", "delete"]

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
    },
    "retrain-trigger": {"table:control": "read_write", "table:registry": "read", "topic:alerts": "write"},
    "workflow": {
        "bucket:artifacts": "read",
        "bucket:captures": "read",
        "table:registry": "read_write",
        "table:control": "read_write",
        "topic:alerts": "write",
        "topic:approvals": "write",
    },
    # Narrower than the table grants above: ServingStack grants the few DynamoDB, KMS and Step Functions
    # actions resolve_approval makes (see ServingStack._grant_approve).
    "approve": {},
}


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
            if access in ("read", "read_write"):
                bucket.grant_read(fn)
            if access in ("write", "read_write"):
                bucket.grant_put(fn)
        elif kind == "delete":  # "delete:<bucket>:<prefix>": a delete marker on current objects under prefix
            bucket_name, _, prefix = name.partition(":")
            fn.add_to_role_policy(iam.PolicyStatement(
                actions=["s3:DeleteObject"], resources=[shared.buckets[bucket_name].arn_for_objects(prefix)]))
        elif kind == "table":
            table = shared.tables[name]
            {"read": table.grant_read_data, "write": table.grant_write_data, "read_write": table.grant_read_write_data}[
                access
            ](fn)
        elif kind == "topic":
            shared.topics[name].grant_publish(fn)
        elif kind == "bus":
            shared.bus.grant_put_events_to(fn)
        elif kind == "metrics":
            fn.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringEquals": {"cloudwatch:namespace": "Driftline"}},
                )
            )
        elif kind == "streams":
            pass  # granted by ServingStack, which owns the capture streams
