"""The synthesized templates match the platform definition: every function, handler, env var name,
rule, route and workflow. This is what keeps the CDK app and the local runtime from drifting apart."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.infrastructure.conftest import Synth


def _functions(synth: Synth) -> dict[str, dict[str, Any]]:
    out = {}
    for res in synth.resources("AWS::Lambda::Function").values():
        name = res["Properties"].get("FunctionName")
        if isinstance(name, str) and name.startswith(synth.platform.prefix):
            out[name] = res["Properties"]
    return out


def test_every_function_has_its_handler_env_memory_and_timeout(synth: Synth) -> None:
    fns = _functions(synth)
    assert set(fns) == {synth.platform.name(f.logical) for f in synth.platform.functions}
    for spec in synth.platform.functions:
        props = fns[synth.platform.name(spec.logical)]
        if spec.package == "image":
            assert props["PackageType"] == "Image"
        else:
            assert props["Handler"] == spec.handler
            assert props["Runtime"] == "python3.12"
            assert len(props["Layers"]) == 1
        assert props["MemorySize"] == spec.memory_mb
        assert props["Timeout"] == spec.timeout_s
        env = set(props["Environment"]["Variables"])
        expected = set(
            synth.platform.function_env(
                spec, "a", "r", {"topic:alerts": "x", "topic:approvals": "y", "workflow:retrain": "z"}
            )
        )
        assert env == expected, (spec.logical, env ^ expected)


def _rules(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["Name"]: r["Properties"]
        for r in synth.resources("AWS::Events::Rule").values()
        if isinstance(r["Properties"].get("Name"), str)
    }


def test_every_schedule_and_event_rule_exists_with_its_pattern(synth: Synth, synth_prod: Synth) -> None:
    for s in (synth, synth_prod):
        rules = _rules(s)
        for sched in s.platform.schedules:
            props = rules[s.platform.name(sched.logical)]
            assert props["ScheduleExpression"] == sched.expression
            (target,) = props["Targets"]
            assert json.loads(target["Input"]) == sched.input
            assert "DeadLetterConfig" in target and target["RetryPolicy"]
        for rule in s.platform.event_rules:
            props = rules[s.platform.name(rule.logical)]
            assert props["EventPattern"] == rule.pattern
            (target,) = props["Targets"]
            assert "DeadLetterConfig" in target
        assert len(rules) == len(s.platform.schedules) + len(s.platform.event_rules)


def test_every_route_exists_with_its_method(synth: Synth) -> None:
    resources = synth.resources("AWS::ApiGateway::Resource")
    by_id = {lid.split("/", 1)[1]: r["Properties"] for lid, r in resources.items()}

    def path_of(ref: Any) -> str:
        if isinstance(ref, dict) and "Ref" in ref and ref["Ref"] in by_id:
            props = by_id[ref["Ref"]]
            return path_of(props["ParentId"]) + "/" + props["PathPart"]
        return ""

    found = set()
    static = {(r.method, r.path) for r in synth.platform.routes if r.static_response is not None}
    for m in synth.resources("AWS::ApiGateway::Method").values():
        p = m["Properties"]
        if p["HttpMethod"] == "OPTIONS":
            continue
        route = (p["HttpMethod"], path_of(p["ResourceId"]))
        found.add(route)
        assert p["Integration"]["Type"] == ("MOCK" if route in static else "AWS_PROXY"), route
    assert found == {(r.method, r.path) for r in synth.platform.routes}


def test_state_machine_is_the_repo_asl_with_placeholders_substituted(synth: Synth) -> None:
    machines = synth.resources("AWS::StepFunctions::StateMachine")
    assert len(machines) == len(synth.platform.workflows)
    for wf in synth.platform.workflows:
        (sm,) = [
            m["Properties"]
            for m in machines.values()
            if m["Properties"]["StateMachineName"] == synth.platform.name(wf.logical)
        ]
        assert set(sm["DefinitionSubstitutions"]) == set(wf.substitutions)
        asl = synth.platform.workflow_definition(wf)
        assert set(re.findall(r"\$\{(\w+)\}", asl)) == set(wf.substitutions)
        assert sm["DefinitionString"] == asl


def test_s3_trigger_reaches_ingest_for_incoming_prefix(synth: Synth) -> None:
    (notif,) = synth.resources("Custom::S3BucketNotifications").values()
    cfg = notif["Properties"]["NotificationConfiguration"]["LambdaFunctionConfigurations"]
    (trigger,) = synth.platform.s3_triggers
    assert cfg[0]["Events"] == ["s3:ObjectCreated:*"]
    assert cfg[0]["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": trigger.prefix}]


def test_capture_streams_write_where_monitoring_reads(synth: Synth) -> None:
    streams = synth.resources("AWS::KinesisFirehose::DeliveryStream")
    assert len(streams) == len(synth.platform.streams)
    prefixes = {s["Properties"]["ExtendedS3DestinationConfiguration"]["Prefix"] for s in streams.values()}
    assert prefixes == {s.prefix for s in synth.platform.streams}
