"""Write-once buckets (the registry's sealed audit trail): what AWS enforces, not the caller.

- S3 Object Lock in governance mode with a default retention: no object version can be deleted or
  have its retention shortened before it expires, except by a principal allowed
  ``s3:BypassGovernanceRetention`` (no platform role; the bucket policy denies it to everyone).
- The bucket policy denies every ``s3:PutObject`` without ``If-None-Match`` (``s3:if-none-match``):
  an existing key can never be overwritten, not even with a new version; and denies deleting objects
  or versions (a delete marker would hide an entry).
- The bucket is retained when its stack is deleted (locked objects could not be removed anyway).
Writer roles get ``s3:PutObject`` on its objects and nothing else (stacks/functions.py, access ``append``).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

LOCK_MODE = "GOVERNANCE"
"""Governance, not compliance: an account administrator can still clean up a dev environment
(``s3:BypassGovernanceRetention`` after lifting the bucket policy's deny); docs/registry.md says how to
switch to COMPLIANCE, which nobody, not even the root user, can bypass."""
DENIED_TO_EVERYONE = (
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:BypassGovernanceRetention",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
)


def make_write_once(bucket: s3.Bucket, days: int) -> None:
    """Object Lock with a default retention of ``days``, no overwrites, no deletes (see the module doc)."""
    cfn = bucket.node.default_child
    assert isinstance(cfn, s3.CfnBucket)
    cfn.object_lock_enabled = True
    cfn.object_lock_configuration = s3.CfnBucket.ObjectLockConfigurationProperty(
        object_lock_enabled="Enabled",
        rule=s3.CfnBucket.ObjectLockRuleProperty(
            default_retention=s3.CfnBucket.DefaultRetentionProperty(mode=LOCK_MODE, days=days)
        ),
    )
    bucket.apply_removal_policy(RemovalPolicy.RETAIN)
    objects = bucket.arn_for_objects("*")
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid="WriteOnceNoOverwrite",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["s3:PutObject"],
            resources=[objects],
            conditions={"Null": {"s3:if-none-match": "true"}},
        )
    )
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid="WriteOnceNoDelete",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=list(DENIED_TO_EVERYONE),
            resources=[objects],
        )
    )
