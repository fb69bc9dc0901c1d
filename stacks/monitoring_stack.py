"""MonitoringStack: the scheduled drift check per model, the dashboard and the alarms."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct

from stacks.functions import make_function
from stacks.observability import Observability
from stacks.resources import SharedResources
from stacks.workflows import state_machine


class MonitoringStack(Stack):
    def __init__(self, scope: Construct, cid: str, *, shared: SharedResources, **kwargs: object) -> None:
        super().__init__(scope, cid, **kwargs)  # type: ignore[arg-type]
        platform = shared.platform
        # the scale-out drift workflow first: the drift function starts it (its ARN is in the function's env)
        fns = {logical: make_function(self, shared, logical) for logical in ("drift-shard", "drift-reduce")}
        self.state_machines = {
            wf.logical: state_machine(self, shared, wf, fns) for wf in platform.workflows if wf.stack == "monitoring"
        }
        self.drift = make_function(
            self,
            shared,
            "drift",
            extra_arns={f"workflow:{k}": sm.state_machine_arn for k, sm in self.state_machines.items()},
        )
        self.rules: dict[str, events.Rule] = {}
        for rule in platform.schedules:
            if rule.stack != "monitoring":
                continue
            assert rule.target == "drift", f"schedule {rule.logical} targets {rule.target}, not in MonitoringStack"
            self.rules[rule.logical] = events.Rule(
                self,
                f"Schedule{rule.logical.title().replace('-', '')}",
                rule_name=platform.name(rule.logical),
                schedule=events.Schedule.expression(rule.expression),
                description=f"Driftline scheduled {rule.target} ({rule.input})",
                targets=[
                    targets.LambdaFunction(
                        self.drift.function,
                        event=events.RuleTargetInput.from_object(rule.input),
                        dead_letter_queue=shared.dlq(self, "monitoring"),
                        retry_attempts=2,
                        max_event_age=Duration.hours(1),
                    )
                ],
            )
        self.observability = Observability(self, "Observability", platform=platform, alerts=shared.topics["alerts"])
