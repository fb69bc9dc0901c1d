"""Encryption, public access, TLS, recovery and least privilege, asserted on the synthesized templates."""

from __future__ import annotations

import json
from typing import Any

from tests.infrastructure.conftest import Synth


def _statements(synth: Synth) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for rtype in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for lid, res in synth.resources(rtype).items():
            for st in res["Properties"]["PolicyDocument"]["Statement"]:
                out.append((lid, st))
    for lid, res in synth.resources("AWS::IAM::Role").items():
        for pol in res["Properties"].get("Policies", []):
            for st in pol["PolicyDocument"]["Statement"]:
                out.append((lid, st))
    return out


def test_no_iam_statement_grants_a_wildcard_action(synth: Synth) -> None:
    statements = _statements(synth)
    assert statements, "expected IAM policies in the app"
    for lid, st in statements:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        for action in actions:
            assert action != "*" and not action.endswith(":*"), f"{lid} grants {action}"


def test_data_actions_are_never_on_resource_star(synth: Synth) -> None:
    data_prefixes = ("s3:", "dynamodb:", "kms:", "sns:", "sqs:", "states:", "firehose:", "lambda:", "events:")
    for lid, st in _statements(synth):
        if st["Resource"] != "*":
            continue
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        assert not [a for a in actions if a.startswith(data_prefixes)], f"{lid}: {actions} on '*'"


def test_every_bucket_is_private_encrypted_versioned_and_logged(synth: Synth) -> None:
    buckets = synth.resources("AWS::S3::Bucket")
    assert len(buckets) == len(synth.platform.buckets) + 1  # + the access-log bucket
    for lid, b in buckets.items():
        p = b["Properties"]
        assert p["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, lid
        assert p["BucketEncryption"]["ServerSideEncryptionConfiguration"], lid
        assert p["VersioningConfiguration"]["Status"] == "Enabled", lid
        assert p["LifecycleConfiguration"]["Rules"], lid
        if "AccessLogs" not in lid:
            sse = p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
            assert sse["SSEAlgorithm"] == "aws:kms", lid
            assert "LoggingConfiguration" in p, lid


def test_every_bucket_denies_plain_http(synth: Synth) -> None:
    policies = synth.resources("AWS::S3::BucketPolicy")
    secured = set()
    for pol in policies.values():
        for st in pol["Properties"]["PolicyDocument"]["Statement"]:
            if st["Effect"] == "Deny" and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false":
                secured.add(json.dumps(pol["Properties"]["Bucket"], sort_keys=True))
    assert len(secured) == len(synth.resources("AWS::S3::Bucket"))


def test_tables_have_kms_and_point_in_time_recovery(synth: Synth) -> None:
    tables = synth.resources("AWS::DynamoDB::Table")
    assert len(tables) == len(synth.platform.tables)
    for lid, t in tables.items():
        p = t["Properties"]
        assert p["SSESpecification"]["SSEEnabled"] is True and p["SSESpecification"]["SSEType"] == "KMS", lid
        assert p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, lid
        assert p["BillingMode"] == "PAY_PER_REQUEST", lid


def test_topics_and_queues_are_encrypted_and_tls_only(synth: Synth) -> None:
    for lid, t in synth.resources("AWS::SNS::Topic").items():
        assert "KmsMasterKeyId" in t["Properties"], lid
    for lid, q in synth.resources("AWS::SQS::Queue").items():
        assert "KmsMasterKeyId" in q["Properties"], lid
    assert synth.resources("AWS::SNS::TopicPolicy") and synth.resources("AWS::SQS::QueuePolicy")


def test_key_rotation_and_function_tracing(synth: Synth) -> None:
    for lid, k in synth.resources("AWS::KMS::Key").items():
        assert k["Properties"]["EnableKeyRotation"] is True, lid
    fns = {lid: f for lid, f in synth.resources("AWS::Lambda::Function").items() if f["Properties"].get("FunctionName")}
    assert len(fns) == len(synth.platform.functions)
    for lid, f in fns.items():
        assert f["Properties"]["TracingConfig"]["Mode"] == "Active", lid
        assert "DeadLetterConfig" in f["Properties"], lid
        assert f["Properties"]["LoggingConfig"]["LogFormat"] == "JSON", lid


def test_log_groups_have_retention(synth: Synth) -> None:
    groups = synth.resources("AWS::Logs::LogGroup")
    assert groups
    for lid, g in groups.items():
        assert g["Properties"]["RetentionInDays"] == synth.platform.config.log_retention_days, lid


def test_removal_policy_follows_environment(synth: Synth, synth_prod: Synth) -> None:
    write_once = tuple(f"data/{b.logical.title()}Bucket" for b in synth.platform.buckets if b.write_once_days)
    for s, expected in ((synth, "Delete"), (synth_prod, "Retain")):
        for rtype in ("AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::KMS::Key"):
            for lid, r in s.resources(rtype).items():
                # write-once (Object Lock) buckets are always retained: locked objects cannot be deleted
                want = "Retain" if lid.startswith(write_once) else expected
                assert r.get("DeletionPolicy") == want, (lid, r.get("DeletionPolicy"))


def test_api_is_regional_throttled_and_iam_authorized(synth: Synth) -> None:
    (api,) = synth.resources("AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["EndpointConfiguration"]["Types"] == ["REGIONAL"]
    (stage,) = synth.resources("AWS::ApiGateway::Stage").values()
    settings = stage["Properties"]["MethodSettings"][0]
    assert settings["ThrottlingRateLimit"] == synth.platform.config.serving.throttle_rate
    assert stage["Properties"]["TracingEnabled"] is True
    methods = [
        m for m in synth.resources("AWS::ApiGateway::Method").values() if m["Properties"]["HttpMethod"] != "OPTIONS"
    ]
    auth = sorted(m["Properties"]["AuthorizationType"] for m in methods)
    public = sum(1 for r in synth.platform.routes if not r.authorized)
    assert auth == sorted(["NONE"] * public + ["AWS_IAM"] * (len(synth.platform.routes) - public))


def test_key_policy_binds_every_service_principal_to_this_account(synth: Synth) -> None:
    (key,) = synth.resources("AWS::KMS::Key").values()
    services = [
        st
        for st in key["Properties"]["KeyPolicy"]["Statement"]
        if isinstance(st.get("Principal"), dict) and "Service" in st["Principal"]
    ]
    names: set[str] = set()
    for st in services:
        service = st["Principal"]["Service"]
        names.update(
            json.dumps(x) if not isinstance(x, str) else x
            for x in (service if isinstance(service, list) else [service])
        )
        assert st.get("Condition"), f"no condition for {service} (confused deputy)"
        text = json.dumps(st["Condition"])
        assert "aws:SourceAccount" in text or "aws:logs:arn" in text or "event-bus:arn" in text, text
    assert {
        "events.amazonaws.com",
        "sns.amazonaws.com",
        "firehose.amazonaws.com",
        "cloudwatch.amazonaws.com",
    } <= names and any("logs." in n for n in names)


def test_no_function_may_delete_object_versions_or_curated_data(synth: Synth) -> None:
    """Ingest and train could DeleteObjectVersion (CDK's grant_read_write): data could be destroyed."""
    statements = [
        st
        for lid, p in synth.resources("AWS::IAM::Policy").items()
        if "Fn" in lid
        for st in p["Properties"]["PolicyDocument"]["Statement"]
    ]  # the functions' roles
    deletes = []
    for st in statements:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        assert not any(a.startswith("s3:DeleteObjectVersion") or a == "s3:DeleteObject*" for a in actions), st
        if "s3:DeleteObject" in actions:
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            deletes += [r["Fn::Join"][1][-1] for r in resources]  # <features bucket ARN> + this suffix
    # only uploads leave incoming/ and commit markers curated/<fs>/_pending/ (a delete marker each)
    assert set(deletes) == {"/incoming/*", "/curated/*/_pending/*"}, deletes


def test_workflow_logs_carry_no_execution_data(synth: Synth) -> None:
    """The approval task token was written to the execution-data logs (issue 16, item 12)."""
    machines = synth.resources("AWS::StepFunctions::StateMachine", "pipeline")
    assert machines
    for sm in machines.values():
        logging = sm["Properties"]["LoggingConfiguration"]
        assert logging["Level"] == "ALL" and logging["IncludeExecutionData"] is False


def test_functions_are_invoked_only_by_the_deployed_api_stage(synth: Synth) -> None:
    """No console test-invoke permission: the approval route must only run behind the stage's IAM auth."""
    perms = synth.resources("AWS::Lambda::Permission", "serving")
    assert perms
    text = json.dumps(perms)
    assert "test-invoke-stage" not in text


def test_dashboard_and_alarms_cover_serving_drift_workflow_ingest_and_dlqs(synth: Synth) -> None:
    (dash,) = synth.resources("AWS::CloudWatch::Dashboard", "monitoring").values()
    body = json.dumps(dash["Properties"]["DashboardBody"])
    for needle in (
        "5XXError",
        "Latency",
        "Throttles",
        "Requests",
        "CaptureFailures",
        "ShareDrifted",
        "Performance_roc_auc",
        "DriftScore",
        "ExecutionsFailed",
        "RowsAccepted",
        "FilesQuarantined",
    ):
        assert needle in body, needle
    alarms = synth.resources("AWS::CloudWatch::Alarm", "monitoring")
    names = {a["Properties"]["AlarmName"] for a in alarms.values()}
    p = synth.platform
    expected = {
        p.name("api5xxrate"),
        p.name("apip99latency"),
        p.name("workflowfailures"),
        p.name("quarantinespike"),
    } | {p.name(f"dlq{q.replace('-', '')}") for q in p.queues}
    assert expected <= names, expected - names
    for a in alarms.values():
        assert a["Properties"]["AlarmActions"], a["Properties"]["AlarmName"]


def test_approve_function_may_only_decide_approvals(synth: Synth) -> None:
    """The approval route's function: the DynamoDB/KMS calls of resolve_approval and the task-token
    answers on the retraining workflow, nothing more (no table scans, no StartExecution)."""
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for lid, p in synth.resources("AWS::IAM::Policy", "serving").items()
        if "ApproveFn" in lid
    ]
    (statements,) = policies
    actions: set[str] = set()
    for st in statements:
        acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        actions |= set(acts)
    assert actions == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sqs:SendMessage",
        "xray:PutTelemetryRecords",
        "xray:PutTraceSegments",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:DeleteItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",
        "kms:Decrypt",
        "kms:DescribeKey",
        "kms:Encrypt",
        "kms:GenerateDataKey*",
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
        "states:DescribeExecution",
        "s3:PutObject",
        "kms:GenerateDataKey",  # seals its audit entry in the write-once audit bucket
    }
    states = [
        st
        for st in statements
        if any(
            str(a).startswith("states:") for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
        )
    ]
    rendered = json.dumps(states)
    assert ":stateMachine:" + synth.platform.name("retrain") in rendered
    assert ":execution:" + synth.platform.name("retrain") + ":*" in rendered


def test_approval_route_is_iam_even_in_api_key_mode(tmp_path: Any) -> None:
    """serving.auth=api_key moves the prediction routes to API keys; the approver must still sign."""
    from aws_cdk import App

    from driftline import config
    from stacks.app_builder import build
    from tests.infrastructure.conftest import ROOT

    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    cfg = config.from_context(context, "dev")
    cfg = cfg.model_copy(update={"serving": cfg.serving.model_copy(update={"auth": "api_key"})})
    app = App(context={**context, "aws:cdk:bundling-stacks": []}, outdir=str(tmp_path))
    built = build(app, cfg, nag=False)
    template = app.synth().get_stack_by_name(built.serving.stack_name).template
    methods = {
        (m["Properties"]["HttpMethod"], m["Properties"]["AuthorizationType"], m["Properties"].get("ApiKeyRequired"))
        for m in template["Resources"].values()
        if m["Type"] == "AWS::ApiGateway::Method" and m["Properties"]["HttpMethod"] == "POST"
    }
    assert ("POST", "AWS_IAM", False) in methods  # the approval route
    assert ("POST", "NONE", True) in methods  # predict/feedback take API keys
    assert all(auth == "NONE" for _, auth, key in methods if key)


def test_snap_start_publishes_a_version_and_the_api_calls_its_alias(tmp_path: Any) -> None:
    """serving.snap_start: SnapStart applies to published versions only, so the API must invoke the
    'live' alias; without it every request would run the unpublished $LATEST, never a snapshot."""
    from aws_cdk import App

    from driftline import config
    from stacks.app_builder import build
    from tests.infrastructure.conftest import ROOT

    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    cfg = config.from_context(context, "dev")
    cfg = cfg.model_copy(update={"serving": cfg.serving.model_copy(update={"snap_start": True})})
    app = App(context={**context, "aws:cdk:bundling-stacks": []}, outdir=str(tmp_path))
    built = build(app, cfg, nag=True)
    stack = app.synth().get_stack_by_name(built.serving.stack_name)
    warnings = [
        str(m.entry.data) for m in stack.messages if str(m.level).endswith(("WARNING", "ERROR")) and "/Serve" in m.id
    ]
    assert not warnings, warnings  # cdk-nag findings and CDK's publish warning are all answered
    resources = stack.template["Resources"]
    serve_name = built.platform.name("serve")
    fns = {
        lid: r
        for lid, r in resources.items()
        if r["Type"] == "AWS::Lambda::Function" and r["Properties"].get("FunctionName") == serve_name
    }
    ((fn_id, fn),) = fns.items()
    assert fn["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    versions = [lid for lid, r in resources.items() if r["Type"] == "AWS::Lambda::Version"]
    aliases = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Alias"]
    assert len(versions) == 1 and len(aliases) == 1
    assert aliases[0]["Properties"]["Name"] == "live"
    assert "ProvisionedConcurrencyConfig" not in aliases[0]["Properties"]
    (alias_id,) = [lid for lid, r in resources.items() if r["Type"] == "AWS::Lambda::Alias"]
    predict_uris = [
        json.dumps(r["Properties"]["Integration"]["Uri"])
        for r in resources.values()
        if r["Type"] == "AWS::ApiGateway::Method"
        and r["Properties"]["HttpMethod"] == "POST"
        and "Integration" in r["Properties"]
    ]
    assert any(alias_id in uri for uri in predict_uris)
    assert not any(fn_id in uri for uri in predict_uris)  # nothing calls the serve function's $LATEST
