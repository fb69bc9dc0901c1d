"""The platform definition: one declarative description of every resource, function, trigger,
workflow and API route. The CDK stacks (``stacks/``) and the local runtime (``driftline.local``)
are both built from :func:`build_platform`, so the two cannot drift apart.

Physical names are derived here and nowhere else. Names that must be globally unique (buckets)
include the account and region; in CDK those are tokens, locally they are the emulator's values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from driftline.config import AuthMode, PlatformConfig
from driftline.contracts import (
    APPROVAL_PREFIX,
    ATHENA_RESULTS_PREFIX,
    CAPTURE_ERRORS_PREFIX,
    CAPTURES_PREFIX,
    CURATED_PREFIX,
    DRIFT_DETECTED,
    DRIFT_SCRATCH_PREFIX,
    FEATURE_DATA_ACCEPTED,
    FEEDBACK_PREFIX,
    INCOMING_PREFIX,
    INGEST_SCRATCH_PREFIX,
    METRICS_NAMESPACE,
    PENDING_DIR,
    QUARANTINE_PREFIX,
    RETRAIN_REQUESTED,
    SCRATCH_EXPIRE_DAYS,
    TRAINING_SCRATCH_PREFIX,
    capture_prefix,
)
from driftline.retraining.feedback_trigger import FEEDBACK_CHECK_SCHEDULE, FEEDBACK_TRIGGER
from driftline.retraining.sagemaker import TRAINING_JOBS_PREFIX, job_name_prefix
from driftline.training.sources import TRAINING_SETS_PREFIX

# Chosen once, here: the Lambda runtime and architecture every function and layer is built for.
LAMBDA_RUNTIME = "python3.12"
LAMBDA_PYTHON_VERSION = "3.12"
LAMBDA_ARCHITECTURE = "x86_64"
WHEEL_PLATFORM = "manylinux_2_28_x86_64"

WORKFLOWS_DIR = Path(__file__).parent / "workflows"
API_STAGE = "live"
"""The API Gateway stage (the first path segment of the deployed URL); the local gateway uses it too."""

Package = Literal["base", "data", "serving", "drift", "workflow", "image"]
"""How a function is packaged: a zip with one of the named dependency layers, or the container image."""

StackName = Literal["data", "serving", "monitoring", "pipeline"]


@dataclass(frozen=True)
class Bucket:
    logical: str
    purpose: str
    versioned: bool = True
    noncurrent_expire_days: int = 90
    expire_prefixes: tuple[tuple[str, int], ...] = ()
    """(prefix, days) pairs: objects under the prefix expire after that many days."""
    scratch_prefixes: tuple[tuple[str, int], ...] = ()
    """(prefix, days) pairs of scratch data: objects expire after that many days and their noncurrent
    versions one day later (the bucket-wide noncurrent rule would keep them for ``noncurrent_expire_days``)."""
    write_once_days: int = 0
    """> 0: every object is write-once (S3 Object Lock for this many days, no overwrite, no delete; the
    stack enforces it, see stacks/audit.py)."""


AUDIT_RETENTION_DAYS = 7 * 365
"""How long sealed audit entries are locked (Object Lock, governance mode) in the audit bucket."""


@dataclass(frozen=True)
class Table:
    logical: str
    purpose: str
    partition_key: str = "pk"
    sort_key: str | None = "sk"
    ttl_attribute: str | None = None


@dataclass(frozen=True)
class CaptureStream:
    """A Firehose delivery stream per model, writing JSON lines under captures/model=<name>/."""

    model: str

    @property
    def logical(self) -> str:
        return f"captures-{self.model}"

    @property
    def prefix(self) -> str:
        return capture_prefix(self.model)


AccessLevel = Literal[
    "read", "write", "read_write", "delete", "append", "read_append", "start", "decide", "run_map", "run"
]
"""How a function may use a resource (see :func:`policy_statements` for the exact actions):

- buckets: ``read``, ``write`` (put, never delete), ``read_write``, ``append`` (``s3:PutObject`` only, for
  write-once buckets), ``read_append``, ``delete`` (a delete marker on current objects under ``prefix``);
- tables: ``read``, ``write``, ``read_write``, or exactly ``actions``;
- topics, the event bus, capture streams, metrics: ``write`` (publish, put events, put records, put data);
- workflows: ``start`` (start and list its runs, describe them) or ``decide`` (answer a waiting task token,
  describe the run), or ``run_map`` (a workflow's own role running its Distributed Map's child executions);
- ``athena``: run, read and stop queries in the environment's workgroup; ``catalog``: read the Glue
  database's definitions (tables, partitions)."""

ResourceKind = Literal[
    "bucket",
    "table",
    "topic",
    "bus",
    "streams",
    "workflow",
    "metrics",
    "athena",
    "catalog",
    "training_jobs",
    "training_role",
]
"""``training_jobs``: SageMaker training jobs named ``<prefix>-train-*``: ``start`` (create, describe, tag) or
``run`` (also stop: the workflow's poll loop), both with ``iam:PassRole`` of the jobs' execution role
(:meth:`Platform.training_role_policy`), to SageMaker only."""


@dataclass(frozen=True)
class Grant:
    """One permission of a function, in terms of a platform resource and an access level."""

    kind: ResourceKind
    logical: str = ""
    """The resource's logical name (bucket, table, topic, workflow); empty for the bus, streams, metrics."""
    level: AccessLevel = "read"
    prefix: str = "*"
    """Object key pattern for bucket access: the objects a read, write or delete may touch (listing the
    bucket is allowed whatever the pattern, as S3 scopes it by request parameter, not resource)."""
    actions: tuple[str, ...] = ()
    """Exact actions instead of the level's (narrower table grants, such as the approve function's)."""


TOKEN_HOLDERS = frozenset({"workflow", "approve"})
"""The functions that may touch approval items (a waiting run's task token) in the control table: the
workflow's request_approval step writes them, approve reads and deletes them. Every other function with
access to the control table is denied them explicitly."""
ITEM_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:ConditionCheckItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
)
"""Item-level actions: IAM sees their partition keys as ``dynamodb:LeadingKeys`` (writes too: an update
returning ALL_OLD would read the token)."""
KEYLESS_READS = ("dynamodb:Scan", "dynamodb:PartiQLSelect", "dynamodb:ExportTableToPointInTime")
"""Reads without a leading key, so no key condition can exclude the token items: denied outright."""


@dataclass(frozen=True)
class Statement:
    """One IAM policy statement of a function's role."""

    actions: tuple[str, ...]
    resources: tuple[str, ...]
    effect: Literal["Allow", "Deny"] = "Allow"
    condition: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    """(operator, key, values) triples."""

    def condition_json(self) -> dict[str, dict[str, object]]:
        out: dict[str, dict[str, object]] = {}
        for op, key, values in self.condition:
            out.setdefault(op, {})[key] = list(values) if len(values) > 1 or op.startswith("For") else values[0]
        return out

    def document(self) -> dict[str, object]:
        doc: dict[str, object] = {"Effect": self.effect, "Action": list(self.actions), "Resource": list(self.resources)}
        if self.condition:
            doc["Condition"] = self.condition_json()
        return doc


@dataclass(frozen=True)
class Function:
    logical: str
    handler: str
    description: str
    package: Package
    stack: StackName
    memory_mb: int = 512
    timeout_s: int = 30
    env: tuple[str, ...] = ()
    """Names of the environment variables the function receives (values resolved per target)."""
    access: tuple[Grant, ...] = ()
    """Everything the function may do with the platform's resources: the one declaration the CDK role
    policy and the local emulator's role policy are both expanded from (:meth:`Platform.policy`)."""


@dataclass(frozen=True)
class S3Trigger:
    bucket: str
    prefix: str
    function: str


@dataclass(frozen=True)
class ScheduleRule:
    logical: str
    expression: str
    target: str
    target_kind: Literal["function", "workflow"]
    input: dict[str, object] = field(default_factory=dict)
    stack: StackName = "monitoring"


@dataclass(frozen=True)
class EventRule:
    logical: str
    pattern: dict[str, object]
    target: str
    target_kind: Literal["function", "workflow"]
    stack: StackName = "pipeline"


@dataclass(frozen=True)
class Workflow:
    logical: str
    definition_file: str
    """File name under ``driftline/workflows``; ``${Placeholder}`` values come from ``substitutions``."""
    substitutions: dict[str, tuple[str, str]]
    """placeholder -> (kind, logical) where kind is 'function' or 'topic'."""
    functions: tuple[str, ...]
    stack: StackName = "pipeline"
    access: tuple[Grant, ...] = ()
    """What the state machine's own role may do besides invoking ``functions`` and publishing to its topics
    (service integrations such as Athena, and S3 for a Distributed Map's item reader)."""


HEALTH_RESPONSE = '{"status": "ok"}'
"""What ``GET /health`` answers: API Gateway itself (a MOCK integration), and the local gateway alike."""


@dataclass(frozen=True)
class Route:
    method: Literal["GET", "POST"]
    path: str
    function: str | None
    """The function behind the route (Lambda proxy), or None for a ``static_response`` route."""
    authorized: bool = True
    iam_only: bool = False
    """Always IAM (SigV4) authorized, whatever ``serving.auth`` says, and left out of the client invoke
    policy: for operator actions (approvals) whose caller identity is the decision's principal."""
    static_response: str | None = None
    """A fixed JSON body the gateway answers with 200 by itself (API Gateway MOCK integration): no function
    runs, so an unauthenticated flood of it takes none of a function's concurrency."""

    def __post_init__(self) -> None:
        if (self.function is None) == (self.static_response is None):
            raise ValueError(f"route {self.method} {self.path}: exactly one of function or static_response")


INVOKE_ACTION = "execute-api:Invoke"
"""The IAM action a SigV4 caller needs on a route's execute-api ARN (deployed API and local gateway)."""

RouteAuth = Literal["NONE", "IAM", "API_KEY"]


def route_auth(route: Route, auth: AuthMode) -> RouteAuth:
    """How the API authorizes ``route`` under ``serving.auth``: the one decision the deployed API
    (stacks/serving_stack.py) and the local gateway (``local up --require-auth``) both take.

    A static or unauthenticated route is open; an ``iam_only`` route is IAM (SigV4) whatever the mode,
    because its caller identity is the decision's principal; any other route is IAM, or an API key in
    ``api_key`` mode.
    """
    if route.static_response is not None:
        return "NONE"
    if route.iam_only:
        return "IAM"
    if not route.authorized:
        return "NONE"
    return "IAM" if auth == "iam" else "API_KEY"


def route_resource(path: str) -> str:
    """A route path with every ``{param}`` as ``*``: the resource part of its execute-api ARN in a policy."""
    return re.sub(r"\{[^}]+\}", "*", path)


def execute_api_arn(region: str, account: str, api_id: str, method: str, path: str, partition: str = "aws") -> str:
    """The ARN API Gateway authorizes a request against: ``.../<api>/<stage>/<METHOD>/<path>``."""
    return f"arn:{partition}:execute-api:{region}:{account}:{api_id}/{API_STAGE}/{method}{path}"


@dataclass(frozen=True)
class ApiPolicy:
    """A managed policy allowing ``execute-api:Invoke`` on some routes: attach it to the callers' roles."""

    logical: str
    description: str
    routes: tuple[Route, ...]

    def statement(self, arn: Callable[[str, str], str]) -> Statement:
        """The policy's one statement; ``arn(method, resource path)`` builds each route's execute-api ARN
        (CDK: ``RestApi.arn_for_execute_api``; locally: :func:`execute_api_arn`)."""
        return Statement(
            actions=(INVOKE_ACTION,), resources=tuple(arn(r.method, route_resource(r.path)) for r in self.routes)
        )


def api_policies(routes: tuple[Route, ...]) -> tuple[ApiPolicy, ApiPolicy]:
    """The client policy (every authorized route but the operator ones) and the approver policy (the
    ``iam_only`` routes): the deployed managed policies and the local emulator's are built from this."""
    return (
        ApiPolicy(
            "api-invoke",
            "Attach to the roles of clients allowed to call the prediction API (SigV4)",
            tuple(r for r in routes if r.authorized and not r.iam_only),
        ),
        ApiPolicy(
            "api-approve",
            "Attach to the roles of people allowed to approve or reject retrained models over the API (SigV4); "
            "ModelConfig.approvers may restrict them further per model",
            tuple(r for r in routes if r.iam_only),
        ),
    )


@dataclass(frozen=True)
class Platform:
    config: PlatformConfig
    buckets: tuple[Bucket, ...]
    tables: tuple[Table, ...]
    topics: tuple[str, ...]
    queues: tuple[str, ...]
    """Dead-letter queues, one per stack: failed async invocations and event deliveries land there."""
    event_bus: str
    streams: tuple[CaptureStream, ...]
    functions: tuple[Function, ...]
    s3_triggers: tuple[S3Trigger, ...]
    schedules: tuple[ScheduleRule, ...]
    event_rules: tuple[EventRule, ...]
    workflows: tuple[Workflow, ...]
    routes: tuple[Route, ...]

    # ---- naming: the single source of physical names ----
    @property
    def prefix(self) -> str:
        return f"{self.config.env_name}-driftline"

    def name(self, logical: str) -> str:
        """Physical name of a table, topic, queue, stream, function, rule, workflow or bus."""
        return f"{self.prefix}-{logical}"

    def bucket_name(self, logical: str, account: str, region: str) -> str:
        return f"{self.prefix}-{logical}-{account}-{region}"

    @property
    def glue_database(self) -> str:
        """The environment's Glue database (Glue names allow no '-'; ``athena_tables.database_name``)."""
        return self.prefix.replace("-", "_")

    def caller_names(self, environ: Mapping[str, str], account: Callable[[], str], region: str) -> dict[str, str]:
        """Registry table and buckets for code running outside the functions (CLI, notebook).

        The functions' own variables (``REGISTRY_TABLE``, ``ARTIFACTS_BUCKET``, ``FEATURES_BUCKET``)
        win when set; otherwise the names are derived as the stacks name them, asking ``account``
        (an STS call) only when a bucket name needs it.
        """
        buckets = {"ARTIFACTS_BUCKET": "artifacts", "FEATURES_BUCKET": "features", "AUDIT_BUCKET": "audit"}
        names = {k: environ.get(k, "") for k in ("REGISTRY_TABLE", *buckets)}
        names["REGISTRY_TABLE"] = names["REGISTRY_TABLE"] or self.name("registry")
        if not all(names[k] for k in buckets):
            acct = account()
            for k, logical in buckets.items():
                names[k] = names[k] or self.bucket_name(logical, acct, region)
        return names

    def function(self, logical: str) -> Function:
        for f in self.functions:
            if f.logical == logical:
                return f
        raise KeyError(logical)

    def env_values(self, account: str, region: str, arns: dict[str, str]) -> dict[str, str]:
        """Values for every environment variable a function may receive.

        ``arns`` maps 'topic:<logical>' and 'workflow:<logical>' to ARNs (tokens in CDK).
        """
        cfg = self.config
        return {
            "DRIFTLINE_ENV": cfg.env_name,
            "FEATURES_BUCKET": self.bucket_name("features", account, region),
            "ARTIFACTS_BUCKET": self.bucket_name("artifacts", account, region),
            "CAPTURES_BUCKET": self.bucket_name("captures", account, region),
            "REPORTS_BUCKET": self.bucket_name("reports", account, region),
            "AUDIT_BUCKET": self.bucket_name("audit", account, region),
            "REGISTRY_TABLE": self.name("registry"),
            "ONLINE_TABLE": self.name("online"),
            "CONTROL_TABLE": self.name("control"),
            "IDEMPOTENCY_TABLE": self.name("idempotency"),
            "EVENT_BUS_NAME": self.event_bus,
            "CAPTURE_STREAM_PREFIX": f"{self.prefix}-captures-",
            "ALERTS_TOPIC_ARN": arns["topic:alerts"],
            "APPROVALS_TOPIC_ARN": arns["topic:approvals"],
            "RETRAIN_STATE_MACHINE_ARN": arns.get("workflow:retrain", ""),
            "DRIFT_SCALE_STATE_MACHINE_ARN": arns.get("workflow:drift-scale", ""),
            "INGEST_PARTS_STATE_MACHINE_ARN": arns.get("workflow:ingest-parts", ""),
            "ATHENA_WORKGROUP": self.name("athena"),
            "GLUE_DATABASE": self.glue_database,
            # the REST API whose approval-route events the approve function accepts (empty: not checked)
            "APPROVAL_API_ID": arns.get("api:approval", ""),
            "FEATURE_SETS_DIR": "feature_sets",
            "TRAINERS_DIR": "trainers",  # the training image's copy of trainers_dir (docker/train.Dockerfile)
            # SageMaker training jobs: CDK passes its role's ARN and the train image's URI
            "SAGEMAKER_ROLE_ARN": arns.get("role:training") or self.arn("training_role", "", account, region),
            "TRAINING_IMAGE_URI": arns.get("image:train", LOCAL_TRAINING_IMAGE),
            "TRAINING_JOB_PREFIX": job_name_prefix(self.prefix),
            "PLATFORM_CONFIG": cfg.model_dump_json(),
            "CHAMPION_TTL_SECONDS": str(cfg.serving.champion_ttl_seconds),
            "CAPTURE_SAMPLING": str(cfg.serving.capture_sampling),
            "MAX_ROWS": str(cfg.serving.max_rows),
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            # The request path skips the in-process X-Ray SDK (its import creates AWS clients and costs
            # 0.15-0.3 s of cold start); Lambda's own active tracing still records every invocation.
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }

    def function_env(self, fn: Function, account: str, region: str, arns: dict[str, str]) -> dict[str, str]:
        values = self.env_values(account, region, arns)
        env = {k: values[k] for k in fn.env}
        env["POWERTOOLS_SERVICE_NAME"] = f"driftline-{fn.logical}"
        env["POWERTOOLS_METRICS_NAMESPACE"] = values["POWERTOOLS_METRICS_NAMESPACE"]
        env["POWERTOOLS_LOG_LEVEL"] = values["POWERTOOLS_LOG_LEVEL"]
        env["DRIFTLINE_ENV"] = values["DRIFTLINE_ENV"]
        return env

    # ---- permissions: the expansion of Function.access into IAM statements ----
    def arn(self, kind: ResourceKind, logical: str, account: str, region: str, partition: str = "aws") -> str:
        """The ARN of a platform resource, from its physical name (CDK may substitute its own tokens)."""
        if kind == "bucket":
            return f"arn:{partition}:s3:::{self.bucket_name(logical, account, region)}"
        if kind == "training_role":  # IAM ARNs carry no region
            return f"arn:{partition}:iam::{account}:role/{self.name(TRAINING_ROLE)}"
        service, resource = {
            "table": ("dynamodb", f"table/{self.name(logical)}"),
            "topic": ("sns", self.name(logical)),
            "bus": ("events", f"event-bus/{self.event_bus}"),
            "streams": ("firehose", f"deliverystream/{self.name(logical)}"),
            "workflow": ("states", f"stateMachine:{self.name(logical)}"),
            "athena": ("athena", f"workgroup/{self.name('athena')}"),
            "catalog": ("glue", "catalog"),
            "training_jobs": ("sagemaker", f"training-job/{job_name_prefix(self.prefix)}-*"),
        }[kind]
        return f"arn:{partition}:{service}:{region}:{account}:{resource}"

    def training_role_policy(
        self,
        account: str,
        region: str,
        partition: str = "aws",
        *,
        arn: Callable[[ResourceKind, str], str] | None = None,
        key_arn: str | None = None,
        image_repository_arn: str | None = None,
    ) -> list[Statement]:
        """The SageMaker training jobs' execution role: read the training sets and the job descriptions,
        write the jobs' output, pull the training image, write the jobs' logs (and nothing else).

        ``image_repository_arn``: the ECR repository of the ``train`` image (CDK's asset repository);
        None leaves the pull statements out (the local platform pulls nothing).
        """
        out = self._expand(TRAINING_ROLE_ACCESS, "training-role", account, region, partition, arn, key_arn)
        logs = f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/TrainingJobs"
        out.append(Statement(("logs:CreateLogGroup",), (logs,)))
        out.append(Statement(("logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"), (f"{logs}:*",)))
        if image_repository_arn is not None:
            out.append(Statement(("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"), (image_repository_arn,)))
            # GetAuthorizationToken has no resource-level permissions: IAM accepts only "*" for it
            out.append(Statement(("ecr:GetAuthorizationToken",), ("*",)))
        return out

    def policy(
        self,
        function: str,
        account: str,
        region: str,
        partition: str = "aws",
        *,
        arn: Callable[[ResourceKind, str], str] | None = None,
        key_arn: str | None = None,
    ) -> list[Statement]:
        """Every statement of ``function``'s role policy, expanded from its ``access`` declaration.

        ``arn`` may replace the name-derived ARNs (CDK passes its resources' tokens); ``key_arn`` is the
        platform key the encrypted resources use (None: no KMS statement, as locally).
        """
        return self._expand(self.function(function).access, function, account, region, partition, arn, key_arn)

    def workflow_policy(
        self,
        workflow: str,
        account: str,
        region: str,
        partition: str = "aws",
        *,
        arn: Callable[[ResourceKind, str], str] | None = None,
        key_arn: str | None = None,
    ) -> list[Statement]:
        """The statements of a workflow role's declared ``access`` (function invokes are added by the stack)."""
        wf = next(w for w in self.workflows if w.logical == workflow)
        return self._expand(wf.access, f"workflow:{workflow}", account, region, partition, arn, key_arn)

    def _expand(
        self,
        access: tuple[Grant, ...],
        function: str,
        account: str,
        region: str,
        partition: str,
        arn: Callable[[ResourceKind, str], str] | None,
        key_arn: str | None,
    ) -> list[Statement]:
        """``access`` as statements; ``arn`` replaces the name-derived ARNs (None: :meth:`arn`'s)."""
        resolve = arn or (lambda kind, logical: self.arn(kind, logical, account, region, partition))
        out: list[Statement] = []
        key: set[str] = set()
        for g in access:
            if g.kind == "bucket":
                out += _bucket_statements(resolve("bucket", g.logical), g, key)
            elif g.kind == "table":
                out += _table_statements(resolve("table", g.logical), g, key, function not in TOKEN_HOLDERS)
            elif g.kind == "topic":
                out.append(Statement(("sns:Publish",), (resolve("topic", g.logical),)))
                key |= {"kms:Decrypt", "kms:GenerateDataKey*"}
            elif g.kind == "bus":
                out.append(Statement(("events:PutEvents",), (resolve("bus", ""),)))
            elif g.kind == "streams":
                arns = tuple(resolve("streams", s.logical) for s in self.streams)
                if arns:
                    out.append(Statement(("firehose:PutRecord", "firehose:PutRecordBatch"), arns))
            elif g.kind == "metrics":
                out.append(
                    Statement(
                        ("cloudwatch:PutMetricData",),
                        ("*",),
                        "Allow",
                        (("StringEquals", "cloudwatch:namespace", (METRICS_NAMESPACE,)),),
                    )
                )
            elif g.kind in ("athena", "training_jobs"):
                out += _service_statements(g, resolve)
            elif g.kind == "catalog":
                glue = f"arn:{partition}:glue:{region}:{account}"
                db = self.glue_database
                out.append(
                    Statement(GLUE_READ_ACTIONS, (f"{glue}:catalog", f"{glue}:database/{db}", f"{glue}:table/{db}/*"))
                )
            elif g.kind == "workflow" and g.level == "run_map":
                sm = resolve("workflow", g.logical)
                children = f"arn:{partition}:states:{region}:{account}:execution:{self.name(g.logical)}/*"
                out.append(Statement(("states:StartExecution",), (sm,)))
                out.append(Statement(("states:DescribeExecution", "states:StopExecution"), (children,)))
            elif g.kind == "workflow":
                sm = resolve("workflow", g.logical)
                executions = (f"arn:{partition}:states:{region}:{account}:execution:{self.name(g.logical)}:*",)
                if g.level == "start":
                    out.append(Statement(("states:StartExecution", "states:ListExecutions"), (sm,)))
                else:
                    out.append(Statement(("states:SendTaskSuccess", "states:SendTaskFailure"), (sm,)))
                out.append(Statement(("states:DescribeExecution",), executions))
        if key and key_arn is not None:
            out.append(Statement(tuple(sorted(key)), (key_arn,)))
        return out

    def workflow_definition(self, wf: Workflow) -> str:
        """The raw ASL text with ``${...}`` placeholders (substituted by CDK or the local runtime)."""
        return (WORKFLOWS_DIR / wf.definition_file).read_text()


_COMMON = ("DRIFTLINE_ENV", "PLATFORM_CONFIG", "FEATURE_SETS_DIR")
_TRAINING_JOB_ENV = ("SAGEMAKER_ROLE_ARN", "TRAINING_IMAGE_URI", "TRAINING_JOB_PREFIX")
LOCAL_TRAINING_IMAGE = "driftline-train:local"
"""The training image a local training job names (the local SageMaker runs the checkout's code instead)."""
_DRIFT_ENV = (
    *_COMMON,
    "REGISTRY_TABLE",
    "ARTIFACTS_BUCKET",
    "CAPTURES_BUCKET",
    "REPORTS_BUCKET",
    "CONTROL_TABLE",
    "ALERTS_TOPIC_ARN",
    "EVENT_BUS_NAME",
)


def _service_statements(g: Grant, resolve: Callable[[ResourceKind, str], str]) -> list[Statement]:
    """Athena queries in the workgroup; training jobs under the prefix, passing only the jobs' role to SageMaker."""
    if g.kind == "athena":
        return [Statement(ATHENA_QUERY_ACTIONS, (resolve("athena", ""),))]
    actions = TRAINING_JOB_ACTIONS + (("sagemaker:StopTrainingJob",) if g.level == "run" else ())
    passed_to = (("StringEquals", "iam:PassedToService", ("sagemaker.amazonaws.com",)),)
    return [
        Statement(actions, (resolve("training_jobs", ""),)),
        Statement(("iam:PassRole",), (resolve("training_role", ""),), "Allow", passed_to),
    ]


def _bucket_statements(b: str, g: Grant, key: set[str]) -> list[Statement]:
    out = []
    if g.level in ("read", "read_write", "read_append"):
        out.append(Statement(_S3_READ, (b, f"{b}/{g.prefix}")))
        key |= {"kms:Decrypt"}
    if g.level in ("write", "read_write"):
        out.append(Statement(_S3_PUT, (f"{b}/{g.prefix}",)))
        key |= {"kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"}
    if g.level in ("append", "read_append"):
        out.append(Statement(("s3:PutObject",), (f"{b}/*",)))
        key |= {"kms:GenerateDataKey"}
    if g.level == "delete":
        out.append(Statement(("s3:DeleteObject",), (f"{b}/{g.prefix}",)))
    return out


def _table_statements(t: str, g: Grant, key: set[str], deny_tokens: bool) -> list[Statement]:
    key |= {"kms:Decrypt", "kms:DescribeKey"}
    if g.actions:
        actions = g.actions
        if set(actions) & set(_DDB_WRITE):
            key |= {"kms:Encrypt", "kms:GenerateDataKey*"}
    else:
        actions = {"read": _DDB_READ, "write": _DDB_WRITE, "read_write": _DDB_READ + _DDB_WRITE}[g.level]
        if g.level != "read":
            key |= {"kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"}
    out = [Statement(tuple(dict.fromkeys(actions)), (t,))]
    if g.logical == "control" and deny_tokens:  # no access to approval items (task tokens): see TOKEN_HOLDERS
        tokens = ("ForAnyValue:StringLike", "dynamodb:LeadingKeys", (f"{APPROVAL_PREFIX}*",))
        out.append(Statement(ITEM_ACTIONS, (t,), "Deny", (tokens,)))
        out.append(Statement(KEYLESS_READS, (t,), "Deny"))
    return out


ATHENA_QUERY_ACTIONS = (
    "athena:StartQueryExecution",
    "athena:GetQueryExecution",
    "athena:GetQueryResults",
    "athena:StopQueryExecution",
)
GLUE_READ_ACTIONS = ("glue:GetDatabase", "glue:GetTable", "glue:GetPartitions")
TRAINING_JOB_ACTIONS = ("sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:AddTags")
"""What starting and polling a training job takes (``run`` adds ``sagemaker:StopTrainingJob``)."""
TRAINING_ROLE = "sagemaker-training"
"""Logical name of the SageMaker training jobs' execution role (physical: ``<prefix>-sagemaker-training``)."""
TRAINING_ROLE_ACCESS = (
    Grant("bucket", "features", "read", f"{TRAINING_SETS_PREFIX}/*"),
    Grant("bucket", "artifacts", "read_write", f"{TRAINING_JOBS_PREFIX}/*"),
)
"""The training jobs' data access: the training-set snapshots in, job descriptions in and model.tar.gz out."""

# The actions CDK's grant helpers use (kept identical, so deployed roles do not change).
_S3_READ = ("s3:GetObject*", "s3:GetBucket*", "s3:List*")
_S3_PUT = (
    "s3:PutObject",
    "s3:PutObjectLegalHold",
    "s3:PutObjectRetention",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:Abort*",
)
_DDB_READ = (
    "dynamodb:BatchGetItem",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:Query",
    "dynamodb:GetItem",
    "dynamodb:Scan",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DescribeTable",
)
_DDB_WRITE = (
    "dynamodb:BatchWriteItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:DescribeTable",
)


def build_platform(config: PlatformConfig) -> Platform:
    """Derive the whole platform from the config. Pure: no AWS, no CDK."""
    # SageMaker training jobs only for a deployment with a model that may train there (training.compute)
    jobs = any(m.training.compute != "lambda" for m in config.models)
    # Athena training sets only for a deployment with a model that may join there (training.join)
    athena_join = any(m.training.join != "in_process" for m in config.models)
    # captures and labels as training rows only for a deployment with a model that uses them (training.feedback)
    feedback = any(m.training.feedback.enabled for m in config.models)
    # the hourly label count only for a model that retrains on new feedback labels
    label_trigger = any(m.training.feedback.retrain_after_labels for m in config.models)
    functions = (
        Function(
            "ingest",
            "lambdas.ingest.handler",
            "Validates uploads; curates, quarantines, updates the online store",
            package="data",
            stack="data",
            memory_mb=3008,
            timeout_s=900,
            env=(
                *_COMMON,
                "FEATURES_BUCKET",
                "ONLINE_TABLE",
                "CONTROL_TABLE",
                "IDEMPOTENCY_TABLE",
                "EVENT_BUS_NAME",
                "ALERTS_TOPIC_ARN",
                "INGEST_PARTS_STATE_MACHINE_ARN",
            ),
            access=(
                Grant("bucket", "features", "read_write"),
                # an accepted upload is removed from incoming/ (versions stay); a commit removes its marker
                Grant("bucket", "features", "delete", f"{INCOMING_PREFIX}/*"),
                Grant("bucket", "features", "delete", f"{CURATED_PREFIX}/*/{PENDING_DIR}/*"),
                Grant("table", "online", "read_write"),
                Grant("table", "control", "read_write"),
                Grant("table", "idempotency", "read_write"),
                Grant("bus", level="write"),
                Grant("topic", "alerts", "write"),
                Grant("workflow", "ingest-parts", "start"),  # an upload over max_file_mb is validated in parts
            ),
        ),
        Function(
            "ingest-plan",
            "lambdas.ingest_plan.handler",
            "Plans the parts of an upload over max_file_mb (row groups, CSV byte ranges, gzip inflated to parts)",
            package="data",
            stack="data",
            memory_mb=1024,
            timeout_s=900,  # a gzip upload is inflated as a stream here
            env=(*_COMMON, "FEATURES_BUCKET"),
            access=(
                Grant("bucket", "features", "read", f"{INCOMING_PREFIX}/*"),
                Grant("bucket", "features", "write", f"{INGEST_SCRATCH_PREFIX}/*"),
            ),
        ),
        Function(
            "ingest-part",
            "lambdas.ingest_part.handler",
            "Validates one part of an upload over max_file_mb and stages its outputs",
            package="data",
            stack="data",
            memory_mb=3008,
            timeout_s=900,
            env=(*_COMMON, "FEATURES_BUCKET"),
            access=(
                Grant("bucket", "features", "read", f"{INCOMING_PREFIX}/*"),
                Grant("bucket", "features", "read", f"{INGEST_SCRATCH_PREFIX}/*"),
                Grant("bucket", "features", "write", f"{INGEST_SCRATCH_PREFIX}/*"),
            ),
        ),
        Function(
            "ingest-commit",
            "lambdas.ingest_commit.handler",
            "Checks every part of an upload over max_file_mb reported, then commits it like ingest",
            package="data",
            stack="data",
            memory_mb=3008,
            timeout_s=900,
            env=(*_COMMON, "FEATURES_BUCKET", "ONLINE_TABLE", "CONTROL_TABLE", "EVENT_BUS_NAME", "ALERTS_TOPIC_ARN"),
            access=(
                Grant("bucket", "features", "read", f"{INCOMING_PREFIX}/*"),  # the original: quarantine copy
                Grant("bucket", "features", "read", f"{INGEST_SCRATCH_PREFIX}/*"),  # plan, results, staged files
                Grant("bucket", "features", "write", f"{CURATED_PREFIX}/*"),  # curated files, the pending marker
                Grant("bucket", "features", "write", f"{QUARANTINE_PREFIX}/*"),
                Grant("bucket", "features", "delete", f"{INCOMING_PREFIX}/*"),
                Grant("bucket", "features", "delete", f"{CURATED_PREFIX}/*/{PENDING_DIR}/*"),
                Grant("table", "online", "read_write"),
                Grant("table", "control", "read_write"),
                Grant("bus", level="write"),
                Grant("topic", "alerts", "write"),
            ),
        ),
        Function(
            "serve",
            "lambdas.serve.handler",
            "HTTPS prediction endpoint (ONNX Runtime fast path)",
            package="serving",
            stack="serving",
            memory_mb=config.serving.memory_mb,
            timeout_s=10,
            env=(
                "DRIFTLINE_ENV",
                "REGISTRY_TABLE",
                "ARTIFACTS_BUCKET",
                "ONLINE_TABLE",
                "CAPTURES_BUCKET",
                "CAPTURE_STREAM_PREFIX",
                "CHAMPION_TTL_SECONDS",
                "CAPTURE_SAMPLING",
                "MAX_ROWS",
                "POWERTOOLS_TRACE_DISABLED",
            ),
            access=(
                Grant("bucket", "artifacts"),
                Grant("bucket", "captures", "write"),
                Grant("table", "registry"),
                Grant("table", "online"),
                Grant("streams", level="write"),
            ),
        ),
        Function(
            "drift",
            "lambdas.drift.handler",
            "Scheduled drift and performance check per model",
            package="drift",
            stack="monitoring",
            memory_mb=2048,
            timeout_s=300,
            env=(*_DRIFT_ENV, "DRIFT_SCALE_STATE_MACHINE_ARN", "ATHENA_WORKGROUP", "GLUE_DATABASE"),
            access=(
                Grant("bucket", "artifacts"),
                Grant("bucket", "captures"),
                Grant("bucket", "reports", "read_write"),
                Grant("table", "registry"),
                Grant("table", "control", "read_write"),
                Grant("topic", "alerts", "write"),
                Grant("bus", level="write"),
                Grant("metrics", level="write"),
                Grant("workflow", "drift-scale", "start"),
                Grant("catalog"),  # the captures table's row fields, which the shard query names
            ),
        ),
        Function(
            "drift-shard",
            "lambdas.drift_shard.handler",
            "Summarizes one shard file of a scale-out drift check against the champion's profile",
            package="drift",
            stack="monitoring",
            memory_mb=2048,
            timeout_s=300,
            env=_COMMON,
            access=(
                Grant("bucket", "artifacts"),
                Grant("bucket", "captures", "read", f"{DRIFT_SCRATCH_PREFIX}/*"),
                Grant("bucket", "captures", "write", f"{DRIFT_SCRATCH_PREFIX}/*"),
            ),
        ),
        Function(
            "drift-reduce",
            "lambdas.drift_reduce.handler",
            "Merges the shard summaries of a scale-out drift check and publishes the check's outcome",
            package="drift",
            stack="monitoring",
            memory_mb=1024,
            timeout_s=300,
            env=_DRIFT_ENV,
            access=(
                Grant("athena"),  # reads a failed query's reason
                Grant("bucket", "artifacts"),
                Grant("bucket", "captures", "read", f"{DRIFT_SCRATCH_PREFIX}/*"),
                Grant("bucket", "reports", "read_write"),
                Grant("table", "registry"),
                Grant("table", "control", "read_write"),
                Grant("topic", "alerts", "write"),
                Grant("bus", level="write"),
                Grant("metrics", level="write"),
            ),
        ),
        Function(
            "train",
            "lambdas.train.handler",
            "Builds the point-in-time training set, trains, converts, registers",
            package="image",
            stack="pipeline",
            memory_mb=4096,
            timeout_s=900,
            env=(
                *_COMMON,
                "FEATURES_BUCKET",
                "ARTIFACTS_BUCKET",
                "REGISTRY_TABLE",
                "AUDIT_BUCKET",
                "TRAINERS_DIR",
                *(_TRAINING_JOB_ENV if jobs else ()),
                *(("ATHENA_WORKGROUP", "GLUE_DATABASE") if athena_join else ()),
                *(("CAPTURES_BUCKET",) if feedback else ()),
            ),
            access=(
                Grant("bucket", "features", "read_write"),
                *(
                    (
                        Grant("bucket", "captures", "read", f"{CAPTURES_PREFIX}/*"),
                        Grant("bucket", "captures", "read", f"{FEEDBACK_PREFIX}/*"),
                    )
                    if feedback
                    else ()
                ),
                Grant("bucket", "artifacts", "read_write"),
                Grant("table", "registry", "read_write"),
                Grant("bucket", "audit", "append"),  # seals the audit entries of its registrations
                *((Grant("training_jobs", level="start"),) if jobs else ()),  # starts a model's training job
                # the Athena training-set query runs with this function's credentials: it reads the feature
                # set's and the label events' tables (features bucket: read_write above) and writes its results
                *(
                    (
                        Grant("athena"),
                        Grant("catalog"),
                        Grant("bucket", "reports", "read_write", f"{ATHENA_RESULTS_PREFIX}/*"),
                    )
                    if athena_join
                    else ()
                ),
            ),
        ),
        Function(
            "retrain-trigger",
            "lambdas.retrain_trigger.handler",
            "Turns drift, new-label, schedule and manual triggers into at most one workflow run per model",
            package="base",
            stack="pipeline",
            memory_mb=256,
            timeout_s=30,
            env=(
                *_COMMON,
                "CONTROL_TABLE",
                "REGISTRY_TABLE",
                "RETRAIN_STATE_MACHINE_ARN",
                "ALERTS_TOPIC_ARN",
                *(("CAPTURES_BUCKET",) if label_trigger else ()),
            ),
            access=(
                Grant("table", "control", "read_write"),
                Grant("table", "registry"),
                *((Grant("bucket", "captures", "read", f"{FEEDBACK_PREFIX}/*"),) if label_trigger else ()),
                Grant("topic", "alerts", "write"),
                Grant("workflow", "retrain", "start"),
            ),
        ),
        Function(
            "workflow",
            "lambdas.workflow.handler",
            "Retraining workflow steps: gate, approval, deploy, canary evaluation, promote, rollback",
            package="workflow",
            stack="pipeline",
            memory_mb=1024,
            timeout_s=120,
            env=(
                *_COMMON,
                "REGISTRY_TABLE",
                "AUDIT_BUCKET",
                "CONTROL_TABLE",
                "CAPTURES_BUCKET",
                "ARTIFACTS_BUCKET",
                "ALERTS_TOPIC_ARN",
                "APPROVALS_TOPIC_ARN",
            ),
            access=(
                Grant("bucket", "artifacts"),
                Grant("bucket", "captures"),
                Grant("table", "registry", "read_write"),
                # seals its audit entries; reads the trail back for a rollback
                Grant("bucket", "audit", "read_append"),
                Grant("table", "control", "read_write"),
                Grant("topic", "alerts", "write"),
                Grant("topic", "approvals", "write"),
                # polls, restarts (spot) and stops the training jobs the train function started
                *((Grant("training_jobs", level="run"),) if jobs else ()),
            ),
        ),
        Function(
            "approve",
            "lambdas.approve.handler",
            "Approves or rejects a candidate a retraining run waits on, as the SigV4 caller (approval route)",
            package="base",
            stack="serving",
            memory_mb=256,
            timeout_s=20,
            env=(
                "DRIFTLINE_ENV",
                "PLATFORM_CONFIG",
                "REGISTRY_TABLE",
                "AUDIT_BUCKET",
                "CONTROL_TABLE",
                "APPROVAL_API_ID",
            ),
            # exactly the calls of resolve_approval: read the waiting token and delete it, the status change
            # and its audit entry in one transaction, sealing that entry, answering the waiting run
            access=(
                Grant("table", "control", actions=("dynamodb:GetItem", "dynamodb:Query", "dynamodb:DeleteItem")),
                Grant(
                    "table",
                    "registry",
                    actions=(
                        "dynamodb:GetItem",
                        "dynamodb:PutItem",
                        "dynamodb:UpdateItem",
                        "dynamodb:ConditionCheckItem",
                    ),
                ),
                Grant("bucket", "audit", "append"),
                Grant("workflow", "retrain", "decide"),
            ),
        ),
    )
    schedules: list[ScheduleRule] = []
    for m in config.models:
        schedules.append(
            ScheduleRule(
                f"drift-{m.name}", m.drift.schedule, "drift", "function", {"model": m.name}, stack="monitoring"
            )
        )
        if m.retrain.schedule:
            schedules.append(
                ScheduleRule(
                    f"retrain-{m.name}",
                    m.retrain.schedule,
                    "retrain-trigger",
                    "function",
                    {"model": m.name, "trigger": "schedule"},
                    stack="pipeline",
                )
            )
        if m.training.feedback.retrain_after_labels:
            schedules.append(
                ScheduleRule(
                    f"feedback-{m.name}",
                    FEEDBACK_CHECK_SCHEDULE,
                    "retrain-trigger",
                    "function",
                    {"model": m.name, "trigger": FEEDBACK_TRIGGER},
                    stack="pipeline",
                )
            )
    event_rules = (
        EventRule("on-drift", DRIFT_DETECTED.pattern(), "retrain-trigger", "function"),
        EventRule("on-labeled-data", FEATURE_DATA_ACCEPTED.pattern(has_labels=[True]), "retrain-trigger", "function"),
        EventRule("on-retrain-request", RETRAIN_REQUESTED.pattern(), "retrain-trigger", "function"),
    )
    return Platform(
        config=config,
        buckets=(
            Bucket(
                "features",
                "Uploads (incoming/), curated Parquet (curated/), quarantine/ and training sets",
                expire_prefixes=((f"{QUARANTINE_PREFIX}/", 365),),
                scratch_prefixes=(
                    (f"{TRAINING_SCRATCH_PREFIX}/", SCRATCH_EXPIRE_DAYS),
                    (f"{INGEST_SCRATCH_PREFIX}/", SCRATCH_EXPIRE_DAYS),
                ),
            ),
            Bucket("artifacts", "Model artifacts: ONNX, skops, reference profiles"),
            Bucket(
                "captures",
                "Inference captures and feedback labels",
                # labels outlive the captures they label (they arrive late); delivery errors are for triage
                expire_prefixes=(
                    (f"{CAPTURES_PREFIX}/", 90),
                    (f"{FEEDBACK_PREFIX}/", 180),
                    (f"{CAPTURE_ERRORS_PREFIX}/", 30),
                ),
                scratch_prefixes=((f"{DRIFT_SCRATCH_PREFIX}/", SCRATCH_EXPIRE_DAYS),),
            ),
            Bucket(
                "reports",
                "Drift reports (JSON and HTML) and Athena query results",
                scratch_prefixes=((f"{ATHENA_RESULTS_PREFIX}/", SCRATCH_EXPIRE_DAYS),),
            ),
            Bucket(
                "audit",
                "Sealed copies of the registry's audit entries (write-once)",
                write_once_days=AUDIT_RETENTION_DAYS,
            ),
        ),
        tables=(
            Table("registry", "Model versions, aliases (champion/challenger), traffic policy, audit trail"),
            Table("online", "Latest feature values per entity", sort_key=None),
            Table(
                "control", "Ingest results, drift history, retraining decisions and locks", ttl_attribute="expires_at"
            ),
            Table(
                "idempotency",
                "Powertools idempotency records for ingest",
                partition_key="id",
                sort_key=None,
                ttl_attribute="expiration",
            ),
        ),
        topics=("alerts", "approvals"),
        queues=tuple(f"dlq-{stack}" for stack in ("data", "serving", "monitoring", "pipeline")),
        event_bus=f"{config.env_name}-driftline",
        streams=tuple(CaptureStream(m.name) for m in config.models),
        functions=functions,
        s3_triggers=(S3Trigger("features", f"{INCOMING_PREFIX}/", "ingest"),),
        schedules=tuple(schedules),
        event_rules=event_rules,
        workflows=(
            Workflow(
                "retrain",
                "retrain.asl.json",
                {
                    "TrainFunctionArn": ("function", "train"),
                    "WorkflowFunctionArn": ("function", "workflow"),
                    "AlertsTopicArn": ("topic", "alerts"),
                },
                functions=("train", "workflow"),
            ),
            Workflow(
                "drift-scale",
                "drift_scale.asl.json",
                {"ShardFunctionArn": ("function", "drift-shard"), "ReduceFunctionArn": ("function", "drift-reduce")},
                functions=("drift-shard", "drift-reduce"),
                stack="monitoring",
                access=(
                    # Athena runs the shard query with the workflow's credentials: it reads the captures and
                    # feedback tables, writes the UNLOAD under the scratch prefix and its results file
                    Grant("athena"),
                    Grant("catalog"),
                    Grant("bucket", "captures"),
                    Grant("bucket", "captures", "write", f"{DRIFT_SCRATCH_PREFIX}/*"),
                    Grant("bucket", "reports", "read_write", f"{ATHENA_RESULTS_PREFIX}/*"),
                    Grant("workflow", "drift-scale", "run_map"),
                ),
            ),
            Workflow(
                "ingest-parts",
                "ingest_parts.asl.json",
                {
                    "PlanFunctionArn": ("function", "ingest-plan"),
                    "PartFunctionArn": ("function", "ingest-part"),
                    "CommitFunctionArn": ("function", "ingest-commit"),
                },
                functions=("ingest-plan", "ingest-part", "ingest-commit"),
                stack="data",
                access=(
                    # the Distributed Map's item reader lists the part descriptors (listing is bucket-level)
                    Grant("bucket", "features", "read", f"{INGEST_SCRATCH_PREFIX}/*"),
                    Grant("workflow", "ingest-parts", "run_map"),
                ),
            ),
        ),
        routes=(
            # unauthenticated, throttled on their own (serving.public_throttle_*): liveness, answered by the
            # gateway itself, and the generic API document (no model names, features or classes)
            Route("GET", "/health", None, authorized=False, static_response=HEALTH_RESPONSE),
            Route("GET", "/openapi.json", "serve", authorized=False),
            Route("GET", "/v1/models/{model}", "serve"),
            Route("GET", "/v1/models/{model}/openapi.json", "serve"),  # the model's own request schema
            Route("POST", "/v1/models/{model}/predict", "serve"),
            Route("POST", "/v1/models/{model}/feedback", "serve"),
            Route("POST", "/v1/models/{model}/versions/{version}/approval", "approve", iam_only=True),
        ),
    )
