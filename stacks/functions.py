"""Build a platform function in a stack and grant it exactly what it needs.

Permissions are declared once, in the platform definition (``Function.access``: resources and access
levels); :func:`grant` adds the statements ``Platform.policy`` expands them into, and nothing else, so the
deployed role and the local emulator's role are the same policy (least privilege, no ``*`` actions).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_

from driftline.platform import ITEM_ACTIONS, KEYLESS_READS, TOKEN_HOLDERS, ResourceKind, Statement
from stacks.constructs import PlatformFunction
from stacks.resources import SharedResources

# The declaration lives in the platform definition (``Function.access``); these names stay importable here.
__all__ = [
    "ITEM_ACTIONS",
    "KEYLESS_READS",
    "TOKEN_HOLDERS",
    "grant",
    "make_function",
    "policy_statement",
    "resource_arns",
    "role_statements",
]


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


def resource_arns(stack: Stack, shared: SharedResources) -> Callable[[ResourceKind, str], str]:
    """How a declaration's resources become ARNs in this app: the tokens of buckets, tables, topics and the
    bus, and name-derived ARNs for everything else (capture streams, workflows, job prefixes), so no stack
    depends on the one that owns them. One resolver for functions, workflows and the training-job role."""
    platform = shared.platform

    def arn(kind: ResourceKind, name: str) -> str:
        if kind == "bucket":
            return shared.buckets[name].bucket_arn
        if kind == "table":
            return shared.tables[name].table_arn
        if kind == "topic":
            return shared.topics[name].topic_arn
        if kind == "bus":
            return shared.bus.event_bus_arn
        return platform.arn(kind, name, stack.account, stack.region, stack.partition)

    return arn


def policy_statement(st: Statement) -> iam.PolicyStatement:
    """A declared statement as CDK's, unchanged (no grant helper widens it)."""
    return iam.PolicyStatement(
        effect=iam.Effect.DENY if st.effect == "Deny" else iam.Effect.ALLOW,
        actions=list(st.actions),
        resources=list(st.resources),
        conditions=st.condition_json() or None,
    )


def role_statements(stack: Stack, shared: SharedResources, logical: str) -> list[Statement]:
    """The function's declared permissions (``Function.access``) expanded with this app's resources
    (:func:`resource_arns`)."""
    return shared.platform.policy(
        logical,
        stack.account,
        stack.region,
        stack.partition,
        arn=resource_arns(stack, shared),
        key_arn=shared.key.key_arn,
    )


def grant(shared: SharedResources, fn: lambda_.IFunction, logical: str) -> None:
    """Add exactly the declared statements to the function's role (no CDK grant helper adds more)."""
    for st in role_statements(Stack.of(fn), shared, logical):
        fn.add_to_role_policy(policy_statement(st))
