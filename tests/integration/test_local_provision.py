"""Provisioning every function, state machine, rule and trigger of the definition (moto in-process)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from driftline import aws as aws_mod
from driftline.local.provision import provision_platform, substitute_workflow


def provision(platform_def: Any, **kw: Any) -> Any:
    return provision_platform(
        platform_def,
        aws_mod.client,
        "us-east-1",
        local_env={"AWS_ENDPOINT_URL": "http://e"},
        feature_sets_dir="/abs/feature_sets",
        **kw,
    )


def test_functions_have_the_definitions_names_handlers_and_environment(aws: dict[str, str], platform_def: Any) -> None:
    names = provision(platform_def, handler_overrides={"serve": "tests.fixtures.lambda_handlers.api"})
    lam = aws_mod.client("lambda")
    for fn in platform_def.functions:
        cfg = lam.get_function_configuration(FunctionName=platform_def.name(fn.logical))
        expected_env = platform_def.function_env(fn, "123456789012", "us-east-1", names.arns)
        env = cfg["Environment"]["Variables"]
        assert cfg["Handler"] == ("tests.fixtures.lambda_handlers.api" if fn.logical == "serve" else fn.handler)
        assert cfg["Timeout"] == fn.timeout_s and cfg["MemorySize"] == fn.memory_mb and cfg["Runtime"] == "python3.12"
        assert env["AWS_ENDPOINT_URL"] == "http://e"
        for key, value in expected_env.items():
            assert env[key] == ("/abs/feature_sets" if key == "FEATURE_SETS_DIR" else value), key
    trigger_env = lam.get_function_configuration(FunctionName=platform_def.name("retrain-trigger"))["Environment"]
    assert trigger_env["Variables"]["RETRAIN_STATE_MACHINE_ARN"] == names.arns["workflow:retrain"]


def test_state_machine_rules_and_s3_trigger(aws: dict[str, str], platform_def: Any) -> None:
    names = provision(platform_def)
    sfn = aws_mod.client("stepfunctions")
    definition = json.loads(sfn.describe_state_machine(stateMachineArn=names.arns["workflow:retrain"])["definition"])
    resources = json.dumps(definition)
    assert (
        "${" not in resources
        and names.arns["function:workflow"] in resources
        and names.arns["topic:alerts"] in resources
    )
    events = aws_mod.client("events")
    for s in platform_def.schedules:
        rule = events.describe_rule(Name=platform_def.name(s.logical))
        assert rule["ScheduleExpression"] == s.expression
        target = events.list_targets_by_rule(Rule=platform_def.name(s.logical))["Targets"][0]
        assert target["Arn"] == names.arns[f"function:{s.target}"] and json.loads(target["Input"]) == s.input
        assert target["DeadLetterConfig"]["Arn"] == names.arns[f"queue:dlq-{s.stack}"]
    for r in platform_def.event_rules:
        rule = events.describe_rule(Name=platform_def.name(r.logical), EventBusName=platform_def.event_bus)
        assert json.loads(rule["EventPattern"]) == r.pattern
    s3 = aws_mod.client("s3")
    for t in platform_def.s3_triggers:
        conf = s3.get_bucket_notification_configuration(
            Bucket=platform_def.bucket_name(t.bucket, "123456789012", "us-east-1")
        )
        lambda_confs = conf["LambdaFunctionConfigurations"]
        assert any(
            c["LambdaFunctionArn"] == names.arns[f"function:{t.function}"]
            and c["Filter"]["Key"]["FilterRules"][0]["Value"] == t.prefix
            for c in lambda_confs
        )


def test_provisioning_twice_updates_in_place(aws: dict[str, str], platform_def: Any) -> None:
    first = provision(platform_def)
    second = provision(platform_def, handler_overrides={"drift": "tests.fixtures.lambda_handlers.record"})
    assert first.arns == second.arns
    cfg = aws_mod.client("lambda").get_function_configuration(FunctionName=platform_def.name("drift"))
    assert cfg["Handler"] == "tests.fixtures.lambda_handlers.record"
    assert len(aws_mod.client("stepfunctions").list_state_machines()["stateMachines"]) == len(platform_def.workflows)


def test_handler_override_for_an_unknown_function_is_rejected(aws: dict[str, str], platform_def: Any) -> None:
    with pytest.raises(ValueError, match=r"unknown function.*servr.*functions are"):
        provision(platform_def, handler_overrides={"servr": "a.b"})
    with pytest.raises(ValueError, match=r"must be module\.function"):
        provision(platform_def, handler_overrides={"serve": "nodot"})


def test_workflow_placeholder_without_substitution_is_reported(platform_def: Any) -> None:
    wf = platform_def.workflows[0]
    arns = {f"{kind}:{logical}": "arn:x" for kind, logical in wf.substitutions.values()}
    assert "${" not in substitute_workflow(platform_def, wf, arns)
    missing = dict(arns)
    missing.pop(next(iter(arns)))
    with pytest.raises(ValueError, match="which the platform does not define"):
        substitute_workflow(platform_def, wf, missing)
