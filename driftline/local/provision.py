"""Create every data resource of the platform definition in an emulator (moto or LocalStack).

Only reads :class:`driftline.platform.Platform`; there is no second list of resources.
:func:`provision_data` creates the data resources (used by the in-process test fixture);
:func:`provision_platform` adds functions, state machines, rules and S3 triggers for the local
runtime. No moto imports: everything goes through boto3 clients, so it works against any emulator.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from driftline.athena_tables import athena_workgroup, database_name, platform_tables
from driftline.features.schema import FeatureSet
from driftline.platform import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME, Platform, Workflow

LOCAL_ACCOUNT = "123456789012"


@dataclass
class ProvisionedNames:
    """Physical names and ARNs of what was created, keyed the way ``Platform.env_values`` wants them."""

    account: str
    region: str
    arns: dict[str, str] = field(default_factory=dict)

    def env(self, platform: Platform) -> dict[str, str]:
        return platform.env_values(self.account, self.region, self.arns)


def _topic_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sns:{region}:{account}:{name}"


def provision_data(platform: Platform, clients: Any, region: str, account: str = LOCAL_ACCOUNT) -> ProvisionedNames:
    """Create buckets, tables, topics, queues, the event bus and capture streams. Idempotent.

    ``clients`` is a callable ``clients(service) -> boto3 client``.
    """
    names = ProvisionedNames(account=account, region=region)
    s3 = clients("s3")
    for b in platform.buckets:
        bucket = platform.bucket_name(b.logical, account, region)
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(**kwargs)
        if b.versioned:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    ddb = clients("dynamodb")
    existing = set(ddb.list_tables().get("TableNames", []))
    for t in platform.tables:
        tname = platform.name(t.logical)
        if tname in existing:
            continue
        keys = [{"AttributeName": t.partition_key, "KeyType": "HASH"}]
        attrs = [{"AttributeName": t.partition_key, "AttributeType": "S"}]
        if t.sort_key:
            keys.append({"AttributeName": t.sort_key, "KeyType": "RANGE"})
            attrs.append({"AttributeName": t.sort_key, "AttributeType": "S"})
        ddb.create_table(TableName=tname, KeySchema=keys, AttributeDefinitions=attrs, BillingMode="PAY_PER_REQUEST")
        if t.ttl_attribute:
            ddb.update_time_to_live(
                TableName=tname, TimeToLiveSpecification={"Enabled": True, "AttributeName": t.ttl_attribute}
            )
    sns = clients("sns")
    for topic in platform.topics:
        arn = sns.create_topic(Name=platform.name(topic))["TopicArn"]
        names.arns[f"topic:{topic}"] = arn
    sqs = clients("sqs")
    for q in platform.queues:
        url = sqs.create_queue(QueueName=platform.name(q))["QueueUrl"]
        names.arns[f"queue:{q}"] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    events = clients("events")
    with contextlib.suppress(events.exceptions.ResourceAlreadyExistsException):
        events.create_event_bus(Name=platform.event_bus)
    iam = clients("iam")
    role_name = f"{platform.prefix}-local-role"
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {
                        "Service": ["lambda.amazonaws.com", "states.amazonaws.com", "firehose.amazonaws.com"]
                    },
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    try:
        role_arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        role_arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
    names.arns["role:local"] = role_arn
    firehose = clients("firehose")
    captures = platform.bucket_name("captures", account, region)
    existing_streams = set(firehose.list_delivery_streams().get("DeliveryStreamNames", []))
    for stream in platform.streams:
        sname = platform.name(stream.logical)
        if sname not in existing_streams:
            firehose.create_delivery_stream(
                DeliveryStreamName=sname,
                DeliveryStreamType="DirectPut",
                ExtendedS3DestinationConfiguration={
                    "RoleARN": role_arn,
                    "BucketARN": f"arn:aws:s3:::{captures}",
                    "Prefix": stream.prefix,
                    "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60},
                },
            )
        names.arns[f"stream:{stream.model}"] = f"arn:aws:firehose:{region}:{account}:deliverystream/{sname}"
    return names


# ---- functions, workflows, rules and triggers (the local runtime's part of provisioning) ----

PLACEHOLDER_CODE_NOTE = (
    "Driftline local platform: this function runs from the project root (the handler module is "
    "imported from there), so this zip holds no code.\n"
)


def function_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:lambda:{region}:{account}:function:{name}"


def state_machine_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:states:{region}:{account}:stateMachine:{name}"


def placeholder_zip() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("DRIFTLINE_LOCAL.txt", PLACEHOLDER_CODE_NOTE)
    return buf.getvalue()


def substitute_workflow(platform: Platform, workflow: Workflow, arns: dict[str, str]) -> str:
    """The workflow's ASL with every ``${Placeholder}`` replaced by the ARN it names, as CDK does."""
    text = platform.workflow_definition(workflow)
    for placeholder, (kind, logical) in workflow.substitutions.items():
        key = f"{kind}:{logical}"
        if key not in arns:
            raise ValueError(
                f"workflow {workflow.logical}: placeholder ${{{placeholder}}} refers to {key}, "
                "which the platform does not define"
            )
        text = text.replace("${" + placeholder + "}", arns[key])
    leftover = sorted(set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text)))
    if leftover:
        raise ValueError(
            f"workflow {workflow.logical} ({workflow.definition_file}): placeholders without a "
            f"substitution in the platform definition: {', '.join(leftover)}"
        )
    return text


def dead_letter_queue(names: ProvisionedNames, stack: str) -> str | None:
    """The dead-letter queue of a stack's functions and rule targets (one per stack, as in the CDK app)."""
    return names.arns.get(f"queue:dlq-{stack}") or names.arns.get("queue:dlq")


def _check_overrides(platform: Platform, handler_overrides: Mapping[str, str]) -> None:
    known = {f.logical for f in platform.functions}
    unknown = sorted(set(handler_overrides) - known)
    if unknown:
        raise ValueError(
            f"handler override for unknown function(s) {', '.join(unknown)}; "
            f"the platform's functions are {', '.join(sorted(known))}"
        )
    for logical, handler in handler_overrides.items():
        if "." not in handler:
            raise ValueError(f"handler override {logical}={handler!r} must be module.function")


def _allow_invoke(lam: Any, function_name: str, statement: str, principal: str, source_arn: str) -> None:
    with contextlib.suppress(lam.exceptions.ResourceConflictException):
        lam.add_permission(
            FunctionName=function_name,
            StatementId=statement,
            Action="lambda:InvokeFunction",
            Principal=principal,
            SourceArn=source_arn,
        )


def provision_platform(
    platform: Platform,
    clients: Any,
    region: str,
    account: str = LOCAL_ACCOUNT,
    *,
    local_env: Mapping[str, str] | None = None,
    feature_sets_dir: str | None = None,
    handler_overrides: Mapping[str, str] | None = None,
    trainers_dir: str | None = None,
) -> ProvisionedNames:
    """Everything of the definition: data resources, functions, state machines, rules, S3 triggers.

    ``local_env`` is added to every function's environment (emulator endpoint and the like);
    ``feature_sets_dir`` (``trainers_dir``) replaces FEATURE_SETS_DIR (TRAINERS_DIR) where a function
    has it; ``handler_overrides`` maps logical function names to another ``module.function`` (tests
    use tiny fixture handlers).
    Idempotent: existing resources are updated.
    """
    overrides = dict(handler_overrides or {})
    _check_overrides(platform, overrides)
    names = provision_data(platform, clients, region, account)
    for fn in platform.functions:
        names.arns[f"function:{fn.logical}"] = function_arn(region, account, platform.name(fn.logical))
    for wf in platform.workflows:
        names.arns[f"workflow:{wf.logical}"] = state_machine_arn(region, account, platform.name(wf.logical))

    _provision_functions(
        platform,
        clients,
        region,
        account,
        names,
        overrides=overrides,
        local_env=local_env,
        feature_sets_dir=feature_sets_dir,
        trainers_dir=trainers_dir,
    )
    _provision_workflows(platform, clients, names)
    _provision_rules(platform, clients, names)
    _provision_s3_triggers(platform, clients, region, account, names)
    return names


def provision_catalog(
    platform: Platform, clients: Any, region: str, account: str, feature_sets: Iterable[FeatureSet]
) -> list[str]:
    """The Glue database and tables of :func:`driftline.athena_tables.platform_tables` and the Athena
    workgroup, as the CDK app declares them (the local Athena resolves tables through this catalog).

    Idempotent: tables are created or updated, tables of the database no spec names any more are deleted.
    Returns the qualified names of the tables.
    """
    specs = platform_tables(platform, feature_sets)
    glue = clients("glue")
    database = database_name(platform)
    with contextlib.suppress(glue.exceptions.AlreadyExistsException):
        glue.create_database(DatabaseInput={"Name": database, "Description": "Driftline data (Athena tables)"})
    existing = {
        t["Name"]
        for page in glue.get_paginator("get_tables").paginate(DatabaseName=database)
        for t in page["TableList"]
    }
    for spec in specs:
        table_input = spec.table_input(platform.bucket_name(spec.bucket, account, region))
        if spec.name in existing:
            glue.update_table(DatabaseName=spec.database, TableInput=table_input)
        else:
            glue.create_table(DatabaseName=spec.database, TableInput=table_input)
    for stale in sorted(existing - {s.name for s in specs}):
        glue.delete_table(DatabaseName=database, Name=stale)
    wg = athena_workgroup(platform)
    athena = clients("athena")
    configuration = wg.configuration(platform.bucket_name(wg.bucket, account, region))
    if any(w["Name"] == wg.name for w in athena.list_work_groups().get("WorkGroups", [])):
        # moto has no UpdateWorkGroup: the emulator's workgroup is replaced (it holds no history worth keeping)
        athena.delete_work_group(WorkGroup=wg.name, RecursiveDeleteOption=True)
    athena.create_work_group(Name=wg.name, Configuration=configuration, Description="Driftline queries")
    return [s.qualified_name for s in specs]


def _provision_functions(
    platform: Platform,
    clients: Any,
    region: str,
    account: str,
    names: ProvisionedNames,
    *,
    overrides: Mapping[str, str],
    local_env: Mapping[str, str] | None,
    feature_sets_dir: str | None,
    trainers_dir: str | None,
) -> None:
    lam = clients("lambda")
    role = names.arns["role:local"]
    code = placeholder_zip()
    for fn in platform.functions:
        env = platform.function_env(fn, account, region, names.arns)
        if feature_sets_dir is not None and "FEATURE_SETS_DIR" in env:
            env["FEATURE_SETS_DIR"] = feature_sets_dir
        if trainers_dir is not None and "TRAINERS_DIR" in env:
            env["TRAINERS_DIR"] = trainers_dir
        env.update(local_env or {})
        config: dict[str, Any] = {
            "FunctionName": platform.name(fn.logical),
            "Role": role,
            "Handler": overrides.get(fn.logical, fn.handler),
            "Description": fn.description,
            "Timeout": fn.timeout_s,
            "MemorySize": fn.memory_mb,
            "Environment": {"Variables": env},
            "Runtime": LAMBDA_RUNTIME,
        }
        dlq = dead_letter_queue(names, fn.stack)
        if dlq:
            config["DeadLetterConfig"] = {"TargetArn": dlq}
        try:
            lam.create_function(
                Code={"ZipFile": code},
                Architectures=[LAMBDA_ARCHITECTURE],
                Tags={
                    "driftline:logical": fn.logical,
                    "driftline:stack": fn.stack,
                    "driftline:package": fn.package,
                },
                **config,
            )
        except lam.exceptions.ResourceConflictException:
            lam.update_function_configuration(**config)


def _provision_workflows(platform: Platform, clients: Any, names: ProvisionedNames) -> None:
    role = names.arns["role:local"]
    sfn = clients("stepfunctions")
    existing = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines().get("stateMachines", [])}
    for wf in platform.workflows:
        name = platform.name(wf.logical)
        definition = substitute_workflow(platform, wf, names.arns)
        if name in existing:
            sfn.update_state_machine(stateMachineArn=existing[name], definition=definition, roleArn=role)
            names.arns[f"workflow:{wf.logical}"] = existing[name]
        else:
            names.arns[f"workflow:{wf.logical}"] = sfn.create_state_machine(
                name=name, definition=definition, roleArn=role, type="STANDARD"
            )["stateMachineArn"]


def _provision_rules(platform: Platform, clients: Any, names: ProvisionedNames) -> None:
    """Schedules and event-bus rules, each with its target and the target's invoke permission."""
    role = names.arns["role:local"]
    lam = clients("lambda")
    events = clients("events")

    def target_arn(kind: str, logical: str) -> str:
        return names.arns[f"{'function' if kind == 'function' else 'workflow'}:{logical}"]

    for s in platform.schedules:
        rule = platform.name(s.logical)
        rule_arn = events.put_rule(
            Name=rule,
            ScheduleExpression=s.expression,
            State="ENABLED",
            Description=f"Driftline schedule {s.logical}",
        )["RuleArn"]
        target: dict[str, Any] = {
            "Id": "target",
            "Arn": target_arn(s.target_kind, s.target),
            "Input": json.dumps(s.input),
        }
        if s.target_kind == "workflow":
            target["RoleArn"] = role
        if dead_letter_queue(names, s.stack):
            target["DeadLetterConfig"] = {"Arn": dead_letter_queue(names, s.stack)}
        events.put_targets(Rule=rule, Targets=[target])
        if s.target_kind == "function":
            _allow_invoke(lam, platform.name(s.target), f"{rule}-invoke", "events.amazonaws.com", rule_arn)
    for r in platform.event_rules:
        rule = platform.name(r.logical)
        rule_arn = events.put_rule(
            Name=rule,
            EventPattern=json.dumps(r.pattern),
            State="ENABLED",
            EventBusName=platform.event_bus,
            Description=f"Driftline event rule {r.logical}",
        )["RuleArn"]
        target = {"Id": "target", "Arn": target_arn(r.target_kind, r.target)}
        if r.target_kind == "workflow":
            target["RoleArn"] = role
        if dead_letter_queue(names, r.stack):
            target["DeadLetterConfig"] = {"Arn": dead_letter_queue(names, r.stack)}
        events.put_targets(Rule=rule, EventBusName=platform.event_bus, Targets=[target])
        if r.target_kind == "function":
            _allow_invoke(lam, platform.name(r.target), f"{rule}-invoke", "events.amazonaws.com", rule_arn)


def _provision_s3_triggers(
    platform: Platform, clients: Any, region: str, account: str, names: ProvisionedNames
) -> None:
    lam = clients("lambda")
    s3 = clients("s3")
    by_bucket: dict[str, list[dict[str, Any]]] = {}
    for t in platform.s3_triggers:
        bucket = platform.bucket_name(t.bucket, account, region)
        by_bucket.setdefault(bucket, []).append(
            {
                "Id": f"{t.function}-{t.prefix.strip('/').replace('/', '-') or 'all'}",
                "LambdaFunctionArn": names.arns[f"function:{t.function}"],
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": t.prefix}]}},
            }
        )
        _allow_invoke(
            lam,
            platform.name(t.function),
            f"s3-{t.bucket}-invoke",
            "s3.amazonaws.com",
            f"arn:aws:s3:::{bucket}",
        )
    for bucket, configs in by_bucket.items():
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"LambdaFunctionConfigurations": configs}
        )
