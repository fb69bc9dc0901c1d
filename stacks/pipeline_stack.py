"""PipelineStack: the retraining workflow (Step Functions, ASL file shared with the local runtime),
its functions and the EventBridge triggers that reach it."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, IgnoreMode, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from driftline.platform import TRAINING_ROLE
from stacks.constructs import PlatformFunction
from stacks.functions import make_function, policy_statement, resource_arns
from stacks.packaging import ROOT
from stacks.resources import SharedResources
from stacks.workflows import state_machine

# Only what the training image needs goes into its build context.
IMAGE_CONTEXT = [
    "*",
    "!driftline/**",
    "!lambdas/**",
    "!docker/**",
    "!pyproject.toml",
    "!uv.lock",
    "!README.md",
    "!examples/feature_sets/**",
    "!examples/trainers/**",
    "**/__pycache__",
    "driftline/local/**",
]


NO_TRAINERS = "docker/no-trainers"


def trainers_build_dir(trainers_dir: str, needed: bool) -> str:
    """The folder copied into the image as ``trainers/`` (relative to the repository root).

    cdk.json's ``trainers_dir`` when it exists; a placeholder when it does not and no model names a
    trainer; a synth-time error when a model names a trainer the image could not contain.
    """
    path = (ROOT / trainers_dir).resolve()
    if path.is_dir():
        try:
            return path.relative_to(ROOT).as_posix()
        except ValueError:
            raise ValueError(
                f"trainers_dir {trainers_dir!r} must be inside the repository ({ROOT}) so the "
                f"training image can contain it"
            ) from None
    if needed:
        raise ValueError(f"a model names a trainer but trainers_dir {trainers_dir!r} does not exist under {ROOT}")
    return NO_TRAINERS


class PipelineStack(Stack):
    def __init__(self, scope: Construct, cid: str, *, shared: SharedResources, **kwargs: object) -> None:
        super().__init__(scope, cid, **kwargs)  # type: ignore[arg-type]
        platform = shared.platform

        trainers = trainers_build_dir(platform.config.trainers_dir, any(m.trainer for m in platform.config.models))
        build: dict[str, Any] = {
            "file": "docker/train.Dockerfile",
            "exclude": [*IMAGE_CONTEXT, f"!{trainers}/**"],
            "ignore_mode": IgnoreMode.DOCKER,
            "build_args": {"TRAINERS_DIR": trainers},
        }
        train_arns: dict[str, str] | None = None
        self.training_role: iam.Role | None = None
        if "TRAINING_IMAGE_URI" in platform.function("train").env:  # a model may train on SageMaker
            # one image asset for the function and the training jobs, so both run the same code
            asset = ecr_assets.DockerImageAsset(self, "TrainImage", directory=str(ROOT), **build)
            image = lambda_.DockerImageCode.from_ecr(asset.repository, tag_or_digest=asset.image_tag)
            self.training_role = training_job_role(self, shared, asset.repository.repository_arn)
            train_arns = {"role:training": self.training_role.role_arn, "image:train": asset.image_uri}
        else:
            image = lambda_.DockerImageCode.from_image_asset(str(ROOT), **build)
        self.train = make_function(self, shared, "train", image_code=image, extra_arns=train_arns)
        self.workflow_fn = make_function(self, shared, "workflow")
        fns: dict[str, PlatformFunction] = {"train": self.train, "workflow": self.workflow_fn}

        self.state_machines: dict[str, sfn.StateMachine] = {}
        for wf in platform.workflows:
            if wf.stack != "pipeline":
                continue
            sm = state_machine(self, shared, wf, fns)
            self.state_machines[wf.logical] = sm

        retrain_sm = self.state_machines["retrain"]
        self.trigger = make_function(
            self, shared, "retrain-trigger", extra_arns={"workflow:retrain": retrain_sm.state_machine_arn}
        )

        target_fns = {"retrain-trigger": self.trigger}
        for rule in platform.event_rules:
            events.Rule(
                self,
                f"Rule{rule.logical.title().replace('-', '')}",
                rule_name=platform.name(rule.logical),
                event_bus=shared.bus,
                event_pattern=_pattern(rule.pattern),
                targets=[
                    targets.LambdaFunction(
                        target_fns[rule.target].function,
                        dead_letter_queue=shared.dlq(self, "pipeline"),
                        retry_attempts=4,
                        max_event_age=Duration.hours(2),
                    )
                ],
            )
        for sched in platform.schedules:
            if sched.stack != "pipeline":
                continue
            events.Rule(
                self,
                f"Schedule{sched.logical.title().replace('-', '')}",
                rule_name=platform.name(sched.logical),
                schedule=events.Schedule.expression(sched.expression),
                targets=[
                    targets.LambdaFunction(
                        target_fns[sched.target].function,
                        event=events.RuleTargetInput.from_object(sched.input),
                        dead_letter_queue=shared.dlq(self, "pipeline"),
                        retry_attempts=2,
                    )
                ],
            )


def training_job_role(stack: Stack, shared: SharedResources, repository_arn: str) -> iam.Role:
    """The SageMaker training jobs' execution role, with exactly ``Platform.training_role_policy``'s statements
    (the training sets and job prefix of the two buckets, the image's repository, the jobs' log group)."""
    platform = shared.platform
    role = iam.Role(
        stack,
        "TrainingJobRole",
        role_name=platform.name(TRAINING_ROLE),  # the name the functions' iam:PassRole is scoped to
        assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),  # type: ignore[arg-type]
        description=f"Driftline SageMaker training jobs ({platform.config.env_name})",
    )
    statements = platform.training_role_policy(
        stack.account,
        stack.region,
        stack.partition,
        arn=resource_arns(stack, shared),
        key_arn=shared.key.key_arn,
        image_repository_arn=repository_arn,
    )
    for st in statements:
        role.add_to_policy(policy_statement(st))
    return role


def _pattern(raw: dict[str, Any]) -> events.EventPattern:
    return events.EventPattern(source=raw.get("source"), detail_type=raw.get("detail-type"), detail=raw.get("detail"))
