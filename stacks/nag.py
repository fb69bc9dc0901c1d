"""cdk-nag acknowledgments. Each one names the finding, what it applies to, and why it is acceptable.

cdk-nag 2.x (Aspect API + ``NagSuppressions``) is used deliberately: its ``applies_to`` (with
regular expressions) lets an acknowledgment name the exact action or resource pattern, and its
Python bindings work as documented (3.x's Validations API needs one acknowledgment per finding
and its documented Python example raises ``TypeError``).
"""

from __future__ import annotations

from aws_cdk import Stack
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo

# CDK grant helpers emit these action groups; each is scoped to one named bucket, table or key.
GRANT_ACTION_GROUPS = [
    "Action::s3:GetObject*",
    "Action::s3:GetBucket*",
    "Action::s3:List*",
    "Action::s3:DeleteObject*",
    "Action::s3:Abort*",
    "Action::kms:GenerateDataKey*",
    "Action::kms:ReEncrypt*",
]

ACKNOWLEDGMENTS: list[NagPackSuppression] = [
    NagPackSuppression(
        id="AwsSolutions-IAM5",
        reason="CDK grant action groups (s3:GetObject*, s3:List*, kms:GenerateDataKey*, ...) are each scoped "
        "to a single named bucket or KMS key of this platform; no statement has a '*' action.",
        applies_to=GRANT_ACTION_GROUPS,
    ),
    NagPackSuppression(
        id="AwsSolutions-IAM5",
        reason="Object-level permissions must name the objects of one specific bucket as '<bucket-arn>/*'; "
        "the bucket itself is a single named platform bucket.",
        applies_to=[
            RegexAppliesTo(regex="/^Resource::<.*Bucket.*Arn.*>\\/\\*$/"),
            RegexAppliesTo(regex="/^Resource::arn:aws:s3:::.*\\/\\*$/"),
        ],
    ),
    NagPackSuppression(
        id="AwsSolutions-IAM5",
        reason="Ingest removes an accepted upload from the features bucket's incoming/ prefix, and an upload's "
        "pending-commit marker from curated/<feature set>/_pending/ once its commit finished (s3:DeleteObject "
        "only: on the versioned bucket that adds a delete marker, no version is destroyed); the objects of "
        "one prefix of one named bucket can only be named with a wildcard.",
        applies_to=[RegexAppliesTo(regex="/^Resource::<FeaturesBucket.*Arn>\\/incoming\\/\\*$/"),
                    RegexAppliesTo(regex="/^Resource::<FeaturesBucket.*Arn>\\/curated\\/\\*\\/_pending\\/\\*$/")],
    ),
    NagPackSuppression(
        id="AwsSolutions-IAM5",
        reason="Resource '*' is required by these APIs: X-Ray PutTraceSegments/PutTelemetryRecords, CloudWatch "
        "PutMetricData (restricted by a cloudwatch:namespace=Driftline condition) and the CloudWatch Logs "
        "delivery APIs Step Functions logging needs; none supports resource-level permissions.",
        applies_to=["Resource::*"],
    ),
    NagPackSuppression(
        id="AwsSolutions-IAM5",
        reason="Log streams of one named log group and executions of one named state machine can only be "
        "addressed with a trailing wildcard; both parents are single platform resources.",
        applies_to=[
            RegexAppliesTo(regex="/^Resource::.*LogGroup.*:\\*$/"),
            RegexAppliesTo(regex="/^Resource::arn:<AWS::Partition>:states:.*:execution:.*:\\*$/"),
            RegexAppliesTo(regex="/^Resource::<.*Fn.*Arn>:\\*$/"),
            RegexAppliesTo(regex="/^Resource::arn:<AWS::Partition>:logs:.*:\\*$/"),
        ],
    ),
    NagPackSuppression(
        id="AwsSolutions-IAM5",
        reason="The client invoke policy grants execute-api:Invoke on the API's authorized routes for any model "
        "name ('{model}' path parameter as '*'); it is attached only to roles an operator chooses.",
        applies_to=[RegexAppliesTo(regex="/^Resource::arn:<AWS::Partition>:execute-api:.*$/")],
    ),
    NagPackSuppression(
        id="AwsSolutions-L1",
        reason="Functions use python3.12, chosen once in driftline/platform.py: it is a supported Lambda "
        "runtime, every pinned ML wheel (onnxruntime, pyarrow, numpy) is published for it, and layers "
        "are byte-compiled for it. Moving to a newer runtime is a one-line change there.",
    ),
]

SERVING_ACKNOWLEDGMENTS: list[NagPackSuppression] = [
    NagPackSuppression(
        id="AwsSolutions-COG4",
        reason="The API is authorized with IAM (SigV4) by default, or API keys with a usage plan when "
        "configured; Cognito user pools are for end-user sign-in, which this service API does not have.",
    ),
    NagPackSuppression(
        id="AwsSolutions-APIG4",
        reason="GET /health and GET /openapi.json are deliberately public: they return no data, only liveness "
        "and the request schema clients need before they can sign requests. Every model route is authorized.",
    ),
    NagPackSuppression(
        id="AwsSolutions-APIG3",
        reason="No WAF web ACL by default: it costs money while idle (Driftline costs nothing when idle) and the "
        "API already requires SigV4 or API keys and is throttled per stage. Attach a web ACL to the stage "
        "for internet-facing production use.",
    ),
    NagPackSuppression(
        id="AwsSolutions-IAM4",
        reason="API Gateway's account-level CloudWatch role must use the AWS managed policy "
        "AmazonAPIGatewayPushToCloudWatchLogs (the service requires exactly that role for execution logs).",
        applies_to=["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"],
    ),
]

DATA_ACKNOWLEDGMENTS: list[NagPackSuppression] = [
    NagPackSuppression(
        id="AwsSolutions-IAM4",
        reason="CDK's own singleton handler that configures S3 bucket notifications uses "
        "AWSLambdaBasicExecutionRole; it runs only during deployment.",
        applies_to=["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
    ),
]


def acknowledge(stack: Stack) -> None:
    """Attach the reasoned acknowledgments for one stack."""
    packs = list(ACKNOWLEDGMENTS)
    if "Serving" in stack.stack_name:
        packs += SERVING_ACKNOWLEDGMENTS
    if stack.stack_name.endswith("Data"):
        packs += DATA_ACKNOWLEDGMENTS
    NagSuppressions.add_stack_suppressions(stack, packs, apply_to_nested_stacks=True)
