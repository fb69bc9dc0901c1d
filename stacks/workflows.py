"""Step Functions state machines from the platform definition's ``Workflow`` entries (one builder for the
pipeline stack's retraining workflow and the monitoring stack's scale-out drift workflow)."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn

from driftline.config import WORKFLOW_TIMEOUT_SECONDS
from driftline.platform import Workflow
from stacks.constructs import RETENTION, PlatformFunction, removal_policy
from stacks.functions import policy_statement, resource_arns
from stacks.resources import SharedResources


def state_machine(
    stack: Stack, shared: SharedResources, wf: Workflow, fns: dict[str, PlatformFunction]
) -> sfn.StateMachine:
    """The workflow's state machine: its ASL with the functions' and topics' ARNs substituted, logs without
    execution data, X-Ray, invoke rights on its functions and exactly its declared ``access``."""
    platform = shared.platform
    subst: dict[str, str] = {}
    for placeholder, (kind, logical) in wf.substitutions.items():
        subst[placeholder] = (
            fns[logical].function.function_arn if kind == "function" else shared.topics[logical].topic_arn
        )
    title = "".join(part.title() for part in wf.logical.split("-"))
    log_group = logs.LogGroup(
        stack,
        f"{title}WorkflowLogs",
        log_group_name=f"/aws/vendedlogs/states/{platform.name(wf.logical)}",
        retention=RETENTION[platform.config.log_retention_days],
        removal_policy=removal_policy(platform),
        encryption_key=shared.key,
    )
    sm = sfn.StateMachine(
        stack,
        f"{title}Workflow",
        state_machine_name=platform.name(wf.logical),
        definition_body=sfn.DefinitionBody.from_string(platform.workflow_definition(wf)),
        definition_substitutions=subst,
        state_machine_type=sfn.StateMachineType.STANDARD,
        tracing_enabled=True,
        timeout=Duration.seconds(WORKFLOW_TIMEOUT_SECONDS),
        # every event, without payloads: a waiting approval's task token is in the state, and who may
        # resume a run must not be readable from the logs (each step's input and output, minus the
        # token, is recorded in the control table instead)
        logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
    )
    for logical in wf.functions:
        fns[logical].function.grant_invoke(sm)
    for kind, logical in wf.substitutions.values():
        if kind == "topic":
            shared.topics[logical].grant_publish(sm)

    for st in platform.workflow_policy(
        wf.logical,
        stack.account,
        stack.region,
        stack.partition,
        arn=resource_arns(stack, shared),
        key_arn=shared.key.key_arn,
    ):
        sm.add_to_role_policy(policy_statement(st))
    return sm
