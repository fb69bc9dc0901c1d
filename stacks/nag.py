"""cdk-nag acknowledgments. Each one names the finding, the resources it is attached to, what it
applies to (``applies_to``: the exact action or resource pattern, for IAM findings) and why it is
acceptable. None is attached to a whole stack: :func:`acknowledge` finds the constructs each group
belongs to (platform functions, the workflow's state machine, capture streams, API methods, the
stage, the invoke policies, CDK's own notification handler) and attaches the group there, so a new
resource with the same finding is reported instead of silently covered.

cdk-nag 2.x (Aspect API + ``NagSuppressions``) is used deliberately: its ``applies_to`` (with
regular expressions) lets an acknowledgment name the exact action or resource pattern, and its
Python bindings work as documented (3.x's Validations API needs one acknowledgment per finding
and its documented Python example raises ``TypeError``).
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_stepfunctions as sfn
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import IConstruct

from stacks.constructs import PlatformFunction

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

NOTIFICATIONS_HANDLER_ID = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"
"""CDK's fixed construct id of its singleton S3-notification handler (aws-s3)."""

GRANT_GROUPS = NagPackSuppression(
    id="AwsSolutions-IAM5",
    reason="CDK grant action groups (s3:GetObject*, s3:List*, kms:GenerateDataKey*, ...) are each scoped "
    "to a single named bucket or KMS key of this platform; no statement has a '*' action.",
    applies_to=GRANT_ACTION_GROUPS,
)
BUCKET_OBJECTS = NagPackSuppression(
    id="AwsSolutions-IAM5",
    reason="Object-level permissions must name the objects of one specific bucket as '<bucket-arn>/*'; "
    "the bucket itself is a single named platform bucket.",
    applies_to=[
        RegexAppliesTo(regex="/^Resource::<.*Bucket.*Arn.*>\\/\\*$/"),
        RegexAppliesTo(regex="/^Resource::arn:aws:s3:::.*\\/\\*$/"),
    ],
)
NO_RESOURCE_LEVEL = NagPackSuppression(
    id="AwsSolutions-IAM5",
    reason="Resource '*' is required by these APIs: X-Ray PutTraceSegments/PutTelemetryRecords, CloudWatch "
    "PutMetricData (restricted by a cloudwatch:namespace=Driftline condition) and the CloudWatch Logs "
    "delivery APIs Step Functions logging needs; none supports resource-level permissions.",
    applies_to=["Resource::*"],
)
CHILD_WILDCARDS = NagPackSuppression(
    id="AwsSolutions-IAM5",
    reason="Log streams of one named log group, executions of one named state machine and versions of one "
    "named function can only be addressed with a trailing wildcard; each parent is a single platform "
    "resource.",
    applies_to=[
        RegexAppliesTo(regex="/^Resource::.*LogGroup.*:\\*$/"),
        RegexAppliesTo(regex="/^Resource::arn:<AWS::Partition>:states:.*:execution:.*:\\*$/"),
        RegexAppliesTo(regex="/^Resource::<.*Fn.*Arn>:\\*$/"),
        RegexAppliesTo(regex="/^Resource::arn:<AWS::Partition>:logs:.*:\\*$/"),
    ],
)
RUNTIME = NagPackSuppression(
    id="AwsSolutions-L1",
    reason="Functions use python3.12, chosen once in driftline/platform.py: it is a supported Lambda "
    "runtime, every pinned ML wheel (onnxruntime, pyarrow, numpy) is published for it, and layers "
    "are byte-compiled for it. Moving to a newer runtime is a one-line change there.",
)
INGEST_PREFIX_DELETES = NagPackSuppression(
    id="AwsSolutions-IAM5",
    reason="Ingest removes an accepted upload from the features bucket's incoming/ prefix, and an upload's "
    "pending-commit marker from curated/<feature set>/_pending/ once its commit finished (s3:DeleteObject "
    "only: on the versioned bucket that adds a delete marker, no version is destroyed); the objects of "
    "one prefix of one named bucket can only be named with a wildcard.",
    applies_to=[
        RegexAppliesTo(regex="/^Resource::<FeaturesBucket.*Arn>\\/incoming\\/\\*$/"),
        RegexAppliesTo(regex="/^Resource::<FeaturesBucket.*Arn>\\/curated\\/\\*\\/_pending\\/\\*$/"),
    ],
)
INVOKE_POLICY_ROUTES = NagPackSuppression(
    id="AwsSolutions-IAM5",
    reason="The client invoke policy grants execute-api:Invoke on the API's authorized routes for any model "
    "name ('{model}' path parameter as '*'); it is attached only to roles an operator chooses.",
    applies_to=[RegexAppliesTo(regex="/^Resource::arn:<AWS::Partition>:execute-api:.*$/")],
)
NO_COGNITO = NagPackSuppression(
    id="AwsSolutions-COG4",
    reason="The API is authorized with IAM (SigV4) by default, or API keys with a usage plan when "
    "configured; Cognito user pools are for end-user sign-in, which this service API does not have.",
)
PUBLIC_ROUTE = NagPackSuppression(
    id="AwsSolutions-APIG4",
    reason="GET /health and GET /openapi.json are deliberately public: liveness and the generic request "
    "shape clients need before they can sign requests, with no model names, features or classes, "
    "throttled on their own. Every model route is authorized.",
)
API_KEY_ROUTE = NagPackSuppression(
    id="AwsSolutions-APIG4",
    reason="With serving.auth 'api_key' this model route requires an API key of the usage plan (which "
    "throttles per key) instead of an authorizer; the approval route stays IAM-authorized.",
)
NO_WAF = NagPackSuppression(
    id="AwsSolutions-APIG3",
    reason="No WAF web ACL by default: it costs money while idle (Driftline costs nothing when idle) and the "
    "API already requires SigV4 or API keys and is throttled per stage. Attach a web ACL to the stage "
    "for internet-facing production use.",
)
API_LOGS_ROLE = NagPackSuppression(
    id="AwsSolutions-IAM4",
    reason="API Gateway's account-level CloudWatch role must use the AWS managed policy "
    "AmazonAPIGatewayPushToCloudWatchLogs (the service requires exactly that role for execution logs).",
    applies_to=["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"],
)
NOTIFICATIONS_HANDLER_ROLE = NagPackSuppression(
    id="AwsSolutions-IAM4",
    reason="CDK's own singleton handler that configures S3 bucket notifications uses "
    "AWSLambdaBasicExecutionRole; it runs only during deployment.",
    applies_to=["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
)

SCALE_OUT_DRIFT = NagPackSuppression(
    id="AwsSolutions-IAM5",
    reason="The scale-out drift check (its workflow, shard and reduce functions) reads and writes only the "
    "scratch prefix drift-scratch/ of the captures bucket and the Athena results prefix athena-results/ of "
    "the reports bucket; Athena reads the tables of the environment's one Glue database; the Distributed "
    "Map starts and stops child executions of its own state machine. Objects of one prefix, tables of one "
    "database and children of one execution can only be named with a trailing wildcard.",
    applies_to=[
        RegexAppliesTo(regex="/^Resource::<CapturesBucket.*Arn>\\/drift-scratch\\/\\*$/"),
        RegexAppliesTo(regex="/^Resource::<ReportsBucket.*Arn>\\/athena-results\\/\\*$/"),
        RegexAppliesTo(
            regex="/^Resource::arn:<AWS::Partition>:glue:<AWS::Region>:<AWS::AccountId>:table\\/[a-z0-9_]+\\/\\*$/"
        ),
        RegexAppliesTo(regex="/^Resource::arn:<AWS::Partition>:states:.*:execution:[A-Za-z0-9-]+-drift-scale\\/\\*$/"),
    ],
)
INGEST_PARTS = NagPackSuppression(
    id="AwsSolutions-IAM5",
    reason="An upload over max_file_mb is validated in parts: the ingest-parts functions read the upload from "
    "incoming/ and read and write only the scratch prefix ingest-scratch/ of the features bucket; the commit "
    "writes curated/ and quarantine/ (and deletes as ingest does); the Distributed Map lists the scratch "
    "prefix and starts child executions of its own state machine. Objects of one prefix of one named bucket "
    "and children of one state machine can only be named with a trailing wildcard.",
    applies_to=[
        RegexAppliesTo(
            regex="/^Resource::<FeaturesBucket.*Arn>\\/(incoming|ingest-scratch|curated|quarantine)\\/\\*$/"
        ),
        RegexAppliesTo(regex="/^Resource::<FeaturesBucket.*Arn>\\/curated\\/\\*\\/_pending\\/\\*$/"),
        RegexAppliesTo(regex="/^Resource::arn:<AWS::Partition>:states:.*:execution:[A-Za-z0-9-]+-ingest-parts\\/\\*$/"),
    ],
)
INGEST_PARTS_FUNCTIONS = ("ingest", "ingest-plan", "ingest-part", "ingest-commit")
TRAINING_JOBS = NagPackSuppression(
    id="AwsSolutions-IAM5",
    reason="SageMaker training jobs (models with training.compute sagemaker or auto): the train and workflow "
    "functions start, describe, tag and stop only jobs named <prefix>-train-*, one name per run and attempt "
    "that can only be matched with a trailing wildcard (iam:PassRole is scoped to the one training role, "
    "passed to sagemaker.amazonaws.com only); the jobs' role reads the training-sets/ prefix of the features "
    "bucket and reads and writes the training-jobs/ prefix of the artifacts bucket (objects of one prefix "
    "of one named bucket), and writes only the /aws/sagemaker/TrainingJobs log group's streams.",
    applies_to=[
        RegexAppliesTo(regex="/^Resource::arn:<AWS::Partition>:sagemaker:.*:training-job\\/[a-z0-9-]+-train-\\*$/"),
        RegexAppliesTo(regex="/^Resource::<FeaturesBucket.*Arn>\\/training-sets\\/\\*$/"),
        RegexAppliesTo(regex="/^Resource::<ArtifactsBucket.*Arn>\\/training-jobs\\/\\*$/"),
    ],
)
ECR_TOKEN = NagPackSuppression(
    id="AwsSolutions-IAM5",
    reason="ecr:GetAuthorizationToken (SageMaker pulling the training image) supports no resource-level "
    "permissions, so IAM accepts only '*'; the image pull itself (BatchGetImage, GetDownloadUrlForLayer) is "
    "scoped to the training image's one repository.",
    applies_to=["Resource::*"],
)
TRAINING_JOB_FUNCTIONS = ("train", "workflow")
TRAINING_ROLE_ID = "TrainingJobRole"
"""The construct id of the training jobs' role (stacks/pipeline_stack.py)."""

SCALE_OUT_FUNCTIONS = ("drift", "drift-shard", "drift-reduce")
"""The drift function reads the captures table's definition (Glue) before it starts the workflow."""

FUNCTION_ACKNOWLEDGMENTS = [GRANT_GROUPS, BUCKET_OBJECTS, NO_RESOURCE_LEVEL, CHILD_WILDCARDS, RUNTIME]
"""On every platform function: the function resource and its role's policy."""
INGEST_ACKNOWLEDGMENTS = [INGEST_PREFIX_DELETES]
WORKFLOW_ACKNOWLEDGMENTS = [GRANT_GROUPS, NO_RESOURCE_LEVEL, CHILD_WILDCARDS]
"""On each state machine and its role (KMS for its encrypted logs, log delivery, its functions' versions)."""
CAPTURE_STREAM_ACKNOWLEDGMENTS = [GRANT_GROUPS, BUCKET_OBJECTS]
"""On each Firehose capture stream and its roles (writes to the captures bucket with the platform key)."""


def _attach(constructs: Iterable[IConstruct], packs: list[NagPackSuppression]) -> int:
    n = 0
    for c in constructs:
        NagSuppressions.add_resource_suppressions(c, packs, apply_to_children=True)
        n += 1
    return n


def _api_methods(stack: Stack) -> tuple[list[apigw.Method], list[apigw.Method], list[apigw.Method]]:
    """(all methods, public ones, API-key ones) of the stack's REST APIs, by the platform's routes."""
    platform = getattr(stack, "platform", None)
    public = {(r.method, r.path) for r in platform.routes if not r.authorized} if platform else set()
    keyed = {(r.method, r.path) for r in platform.routes if r.authorized and not r.iam_only} if platform else set()
    api_key_mode = platform is not None and platform.config.serving.auth == "api_key"
    methods = [c for c in stack.node.find_all() if isinstance(c, apigw.Method)]
    return (
        methods,
        [m for m in methods if (m.http_method, m.resource.path) in public],
        [m for m in methods if api_key_mode and (m.http_method, m.resource.path) in keyed],
    )


def acknowledge(stack: Stack) -> None:
    """Attach each group of acknowledgments to the resources it is about (never to the whole stack)."""
    everything = stack.node.find_all()
    functions = [c for c in everything if isinstance(c, PlatformFunction)]
    _attach(functions, FUNCTION_ACKNOWLEDGMENTS)
    _attach([f for f in functions if f.spec.logical == "ingest"], INGEST_ACKNOWLEDGMENTS)
    _attach([c for c in everything if isinstance(c, sfn.StateMachine)], WORKFLOW_ACKNOWLEDGMENTS)
    _attach([f for f in functions if f.spec.logical in SCALE_OUT_FUNCTIONS], [SCALE_OUT_DRIFT])
    _attach([f for f in functions if f.spec.logical in TRAINING_JOB_FUNCTIONS], [TRAINING_JOBS])
    _attach([f for f in functions if f.spec.logical in INGEST_PARTS_FUNCTIONS], [INGEST_PARTS])
    _attach(
        [c for c in everything if isinstance(c, sfn.StateMachine) and c.node.id == "IngestPartsWorkflow"],
        [INGEST_PARTS],
    )
    _attach(  # the SageMaker training jobs' execution role (only when a model may train there)
        [c for c in everything if isinstance(c, iam.Role) and c.node.id == TRAINING_ROLE_ID],
        [TRAINING_JOBS, ECR_TOKEN, GRANT_GROUPS, CHILD_WILDCARDS],
    )
    _attach(  # Athena reads the captures and feedback through the workflow's role
        [c for c in everything if isinstance(c, sfn.StateMachine) and c.node.id == "DriftScaleWorkflow"],
        [SCALE_OUT_DRIFT, BUCKET_OBJECTS],
    )
    _attach([c for c in everything if isinstance(c, firehose.DeliveryStream)], CAPTURE_STREAM_ACKNOWLEDGMENTS)
    _attach([c for c in everything if isinstance(c, iam.ManagedPolicy)], [INVOKE_POLICY_ROUTES])
    methods, public, keyed = _api_methods(stack)
    for m in methods:
        NagSuppressions.add_resource_suppressions(m, [NO_COGNITO])
    for m in public:
        NagSuppressions.add_resource_suppressions(m, [PUBLIC_ROUTE])
    for m in keyed:
        NagSuppressions.add_resource_suppressions(m, [API_KEY_ROUTE])
    for api in (c for c in everything if isinstance(c, apigw.RestApi)):
        NagSuppressions.add_resource_suppressions(api.deployment_stage, [NO_WAF])
        role = api.node.try_find_child("CloudWatchRole")
        if role is not None:
            NagSuppressions.add_resource_suppressions(role, [API_LOGS_ROLE], apply_to_children=True)
    handler = stack.node.try_find_child(NOTIFICATIONS_HANDLER_ID)
    if handler is not None:
        NagSuppressions.add_resource_suppressions(handler, [NOTIFICATIONS_HANDLER_ROLE], apply_to_children=True)
