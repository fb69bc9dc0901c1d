"""Every function's synthesized role policy is exactly the expansion of its declared ``access``
(``driftline.platform.Platform.policy``) plus what every Lambda function needs to run (its own log
group, its stack's dead-letter queue, X-Ray): no statement added elsewhere, none missing."""

from __future__ import annotations

import json
from typing import Any

from driftline.platform import Platform
from tests.infrastructure.conftest import Synth

ACCOUNT, REGION, PARTITION = "${AWS::AccountId}", "${AWS::Region}", "${AWS::Partition}"
KEY = "<platform key>"

Pair = tuple[str, str, str, str]
"""(effect, action, resource, condition as JSON)"""


class _Resolver:
    """Turns CloudFormation expressions into ARN strings, naming resources by their physical names."""

    def __init__(self, synth: Synth, kind: str) -> None:
        # Ref and GetAtt name the policy's own stack; an import may name any (each stack has a DeadLetterQueue)
        self.resources = {lid: r for k, t in synth.templates.items() if k != kind for lid, r in t["Resources"].items()}
        self.resources.update(synth.templates[kind]["Resources"])
        # longest first: an import's export name contains the logical ID of the exported resource
        self.lids = sorted(self.resources, key=len, reverse=True)

    def __call__(self, v: Any) -> str:
        if isinstance(v, str):
            return v
        if "Ref" in v:
            ref = v["Ref"]
            return "${" + ref + "}" if ref.startswith("AWS::") else self.arn(ref)
        if "Fn::GetAtt" in v:
            return self.arn(v["Fn::GetAtt"][0])
        if "Fn::Join" in v:
            return "".join(self(x) for x in v["Fn::Join"][1])
        if "Fn::ImportValue" in v:
            name = v["Fn::ImportValue"]
            lid = next(lid for lid in self.lids if f"FnGetAtt{lid}Arn" in name or f"Ref{lid}" in name)
            return self.arn(lid)
        raise AssertionError(f"unexpected expression {v}")

    def arn(self, lid: str) -> str:
        r = self.resources[lid]
        props, rtype = r["Properties"], r["Type"]

        def base(service: str, resource: str) -> str:
            return f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT}:{resource}"

        if rtype == "AWS::S3::Bucket":
            return f"arn:{PARTITION}:s3:::{self(props['BucketName'])}"
        if rtype == "AWS::DynamoDB::Table":
            return base("dynamodb", f"table/{self(props['TableName'])}")
        if rtype == "AWS::SNS::Topic":
            return base("sns", self(props["TopicName"]))
        if rtype == "AWS::Events::EventBus":
            return base("events", f"event-bus/{self(props['Name'])}")
        if rtype == "AWS::SQS::Queue":
            return base("sqs", self(props["QueueName"]))
        if rtype == "AWS::Logs::LogGroup":
            return base("logs", f"log-group:{self(props['LogGroupName'])}:*")
        if rtype == "AWS::KMS::Key":
            return KEY
        raise AssertionError(f"no ARN rule for {rtype} ({lid})")


def _pairs(statements: list[dict[str, Any]], resolve: _Resolver) -> set[Pair]:
    out = set()
    for st in statements:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        cond = json.dumps(st.get("Condition", {}), sort_keys=True)
        out |= {(st["Effect"], a, resolve(r), cond) for a in actions for r in resources}
    return out


def _declared(platform: Platform, logical: str) -> set[Pair]:
    fn = platform.function(logical)
    statements = [st.document() for st in platform.policy(logical, ACCOUNT, REGION, PARTITION, key_arn=KEY)]
    # what every function needs to run, added by the function construct itself
    statements += [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{platform.name(logical)}:*",
        },
        {
            "Effect": "Allow",
            "Action": "sqs:SendMessage",
            "Resource": f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{platform.name(f'dlq-{fn.stack}')}",
        },
        {"Effect": "Allow", "Action": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"], "Resource": "*"},
    ]
    return _pairs(statements, lambda v: v)  # type: ignore[arg-type]


def test_every_function_role_policy_is_exactly_its_declaration(synth: Synth) -> None:
    platform = synth.platform
    checked = []
    for fn in platform.functions:
        resources = synth.templates[fn.stack]["Resources"]
        cid = "".join(part.title() for part in fn.logical.split("-")) + "FnRole"
        (role,) = [lid for lid, r in resources.items() if lid.startswith(cid) and r["Type"] == "AWS::IAM::Role"]
        statements = [
            st
            for r in resources.values()
            if r["Type"] == "AWS::IAM::Policy" and {"Ref": role} in r["Properties"]["Roles"]
            for st in r["Properties"]["PolicyDocument"]["Statement"]
        ]
        synthesized = _pairs(statements, _Resolver(synth, fn.stack))
        declared = _declared(platform, fn.logical)
        assert synthesized == declared, (fn.logical, sorted(synthesized - declared), sorted(declared - synthesized))
        checked.append(fn.logical)
    assert len(checked) == len(platform.functions) >= 7


def test_removing_a_declared_permission_removes_it_from_the_role() -> None:
    """The expansion follows the declaration: drop the serve function's registry read, and no
    statement of its policy names the registry table any more."""
    import dataclasses

    from driftline import config
    from driftline.platform import build_platform
    from tests.infrastructure.conftest import ROOT

    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    platform = build_platform(config.from_context(context, "dev"))
    serve = platform.function("serve")
    narrowed = dataclasses.replace(serve, access=tuple(g for g in serve.access if g.logical != "registry"))
    smaller = dataclasses.replace(
        platform, functions=tuple(narrowed if f.logical == "serve" else f for f in platform.functions)
    )
    registry = platform.arn("table", "registry", "1", "r")
    assert any(registry in st.resources for st in platform.policy("serve", "1", "r"))
    assert not any(registry in st.resources for st in smaller.policy("serve", "1", "r"))
