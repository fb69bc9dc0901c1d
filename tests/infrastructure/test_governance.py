"""Governance enforced by AWS, asserted on the synthesized templates (issue 16 items 11, 12, 14).

The approve function can be invoked only by API Gateway for the approval route, and no IAM policy of
the platform may invoke it directly (a direct invoker could write any ``userArn`` into the event).
"""

from __future__ import annotations

import json
from typing import Any

from driftline.retraining.approval_api import API_ID_ENV
from tests.infrastructure.conftest import Synth

APPROVAL_SOURCE_SUFFIX = "/POST/v1/models/*/versions/*/approval"


def _logical_id(synth: Synth, kind: str, prefix: str, rtype: str) -> str:
    resources = synth.templates[kind]["Resources"].items()
    ids = [lid for lid, r in resources if r["Type"] == rtype and lid.startswith(prefix)]
    assert len(ids) == 1, ids
    return ids[0]


def _all_statements(synth: Synth) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for kind, tpl in synth.templates.items():
        for lid, res in tpl["Resources"].items():
            props = res.get("Properties", {})
            docs = [props["PolicyDocument"]] if "PolicyDocument" in props else []
            docs += [p["PolicyDocument"] for p in props.get("Policies", [])]
            for doc in docs:
                out += [(f"{kind}/{lid}", st) for st in doc["Statement"]]
    return out


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_only_the_approval_route_of_the_live_stage_may_invoke_the_approve_function(synth: Synth) -> None:
    fn = _logical_id(synth, "serving", "ApproveFnFunction", "AWS::Lambda::Function")
    perms = [
        r["Properties"]
        for r in synth.resources("AWS::Lambda::Permission").values()
        if json.dumps(r["Properties"]["FunctionName"]).count(f'"{fn}"')
    ]
    assert len(perms) == 1, perms  # no test-invoke permission, no other principal
    perm = perms[0]
    assert perm["Principal"] == "apigateway.amazonaws.com" and perm["Action"] == "lambda:InvokeFunction"
    parts = perm["SourceArn"]["Fn::Join"][1]
    api = _logical_id(synth, "serving", "Api", "AWS::ApiGateway::RestApi")
    stage = _logical_id(synth, "serving", "ApiDeploymentStage", "AWS::ApiGateway::Stage")
    assert {"Ref": api} in parts and {"Ref": stage} in parts, parts  # this API, its live stage only
    assert parts[-1] == APPROVAL_SOURCE_SUFFIX, parts


def test_the_approve_function_knows_its_api(synth: Synth) -> None:
    fn = synth.templates["serving"]["Resources"][
        _logical_id(synth, "serving", "ApproveFnFunction", "AWS::Lambda::Function")
    ]
    api = _logical_id(synth, "serving", "Api", "AWS::ApiGateway::RestApi")
    assert fn["Properties"]["Environment"]["Variables"][API_ID_ENV] == {"Ref": api}


def test_no_iam_policy_may_invoke_the_approve_function(synth: Synth) -> None:
    """Anyone allowed lambda:InvokeFunction on it could forge the approver: no platform role is."""
    fn = _logical_id(synth, "serving", "ApproveFnFunction", "AWS::Lambda::Function")
    name = synth.platform.name("approve")
    invokers = []
    for lid, st in _all_statements(synth):
        actions = [a.lower() for a in _as_list(st.get("Action", []))]
        if st.get("Effect") != "Allow" or not any(
            a in ("lambda:invokefunction", "lambda:invoke*", "lambda:*", "*") for a in actions
        ):
            continue
        resources = json.dumps(st.get("Resource"))
        if fn in resources or name in resources or '"*"' in resources or ":function:*" in resources:
            invokers.append((lid, st))
    assert not invokers, invokers
    # the check sees invoke grants at all: the workflow may invoke its own functions
    assert any("lambda:InvokeFunction" in _as_list(st.get("Action")) for _, st in _all_statements(synth))


def _role_statements(synth: Synth) -> dict[str, list[dict[str, Any]]]:
    """Role logical id -> every statement of every policy attached to it."""
    out: dict[str, list[dict[str, Any]]] = {}
    for res in synth.resources("AWS::IAM::Policy").values():
        for role in res["Properties"].get("Roles", []):
            out.setdefault(role["Ref"], []).extend(res["Properties"]["PolicyDocument"]["Statement"])
    return out


def test_only_the_workflow_and_approve_may_touch_approval_items(synth: Synth) -> None:
    """A task token resumes a run: every other role with access to the control table is denied its items."""
    from driftline.retraining.approvals import APPROVAL_KEY_PREFIX
    from stacks.functions import ITEM_ACTIONS, KEYLESS_READS

    checked = []
    for role, statements in _role_statements(synth).items():
        on_control = [st for st in statements if "ControlTable" in json.dumps(st.get("Resource"))]
        allowed = {a for st in on_control if st["Effect"] == "Allow" for a in _as_list(st["Action"])}
        if not allowed & {*ITEM_ACTIONS, *KEYLESS_READS}:
            continue
        if role.startswith(("WorkflowFn", "ApproveFn")):
            continue
        denies = [st for st in on_control if st["Effect"] == "Deny"]
        keyed = [
            st
            for st in denies
            if st.get("Condition") == {"ForAnyValue:StringLike": {"dynamodb:LeadingKeys": [f"{APPROVAL_KEY_PREFIX}*"]}}
        ]
        assert keyed and set(ITEM_ACTIONS) <= {a for st in keyed for a in _as_list(st["Action"])}, role
        keyless = {a for st in denies if "Condition" not in st for a in _as_list(st["Action"])}
        assert "dynamodb:Scan" in keyless and set(KEYLESS_READS) <= keyless, role
        checked.append(role.split("Fn")[0])
    assert sorted(checked) == ["Drift", "DriftReduce", "Ingest", "IngestCommit", "RetrainTrigger"], checked


AUDIT_WRITERS = ("TrainFn", "WorkflowFn", "ApproveFn")
CHANGES_TO_AUDIT_OBJECTS = (
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:BypassGovernanceRetention",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketVersioning",
    "s3:DeleteBucket",
)


def _grants(action: str, pattern: str) -> bool:
    """Whether an IAM action pattern (``s3:Put*``, ``s3:*``) covers ``action``."""
    import fnmatch

    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


def test_the_audit_trail_is_write_once_and_its_writers_can_only_append(synth: Synth) -> None:
    """Issue 16 item 14: the train, workflow and approve roles cannot change or delete sealed audit entries."""
    data = synth.templates["data"]["Resources"]
    (audit_id,) = [lid for lid in data if lid.startswith("AuditBucket") and data[lid]["Type"] == "AWS::S3::Bucket"]
    bucket = data[audit_id]
    props = bucket["Properties"]
    assert props["ObjectLockEnabled"] is True and props["VersioningConfiguration"]["Status"] == "Enabled"
    retention = props["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert retention["Mode"] in ("GOVERNANCE", "COMPLIANCE") and retention["Days"] >= 365
    assert bucket["DeletionPolicy"] == "Retain"
    (policy,) = [
        r
        for r in data.values()
        if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == {"Ref": audit_id}
    ]
    denies = [st for st in policy["Properties"]["PolicyDocument"]["Statement"] if st["Effect"] == "Deny"]
    assert any(
        st["Action"] == "s3:PutObject"
        and st.get("Condition") == {"Null": {"s3:if-none-match": "true"}}
        and st["Principal"] == {"AWS": "*"}
        for st in denies
    ), denies  # no overwrite, by anyone
    denied = {
        a for st in denies if "Condition" not in st and st["Principal"] == {"AWS": "*"} for a in _as_list(st["Action"])
    }
    assert {"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"} <= denied

    export = f"GetAtt{audit_id}Arn"
    writers = set()
    for role, statements in _role_statements(synth).items():
        on_audit = [
            st
            for st in statements
            if audit_id in json.dumps(st.get("Resource")) or export in json.dumps(st.get("Resource"))
        ]
        allowed = [a for st in on_audit if st["Effect"] == "Allow" for a in _as_list(st["Action"])]
        for action in CHANGES_TO_AUDIT_OBJECTS:
            assert not any(_grants(action, a) for a in allowed), (role, action, allowed)
        puts = [st for st in on_audit if any(_grants("s3:PutObject", a) for a in _as_list(st["Action"]))]
        if puts:
            writers.add(role.split("Fn")[0] + "Fn")
            only_put = [_as_list(st["Action"]) == ["s3:PutObject"] for st in puts]
            under_audit = [json.dumps(st["Resource"]).endswith('/*"]]}') for st in puts]
            assert all(only_put) and all(under_audit), puts
    assert writers == set(AUDIT_WRITERS), writers
