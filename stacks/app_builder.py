"""Assemble the Driftline CDK app from the platform definition."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import App, Aspects, Environment, Tags
from cdk_nag import AwsSolutionsChecks

from driftline.config import PlatformConfig
from driftline.platform import Platform, build_platform
from driftline.retraining.approval_api import API_ID_ENV
from stacks.data_stack import DataStack
from stacks.monitoring_stack import MonitoringStack
from stacks.nag import acknowledge
from stacks.packaging import ROOT
from stacks.pipeline_stack import PipelineStack
from stacks.serving_stack import ServingStack


@dataclass
class DriftlineApp:
    platform: Platform
    data: DataStack
    serving: ServingStack
    monitoring: MonitoringStack
    pipeline: PipelineStack

    @property
    def stacks(self) -> list[DataStack | ServingStack | MonitoringStack | PipelineStack]:
        return [self.data, self.serving, self.monitoring, self.pipeline]


def build(app: App, config: PlatformConfig, *, nag: bool = True) -> DriftlineApp:
    platform = build_platform(config)
    env = Environment(account=config.account, region=config.region) if config.account or config.region else None
    prefix = "".join(p.title() for p in platform.prefix.split("-"))
    feature_sets_dir = (ROOT / config.feature_sets_dir).resolve()
    data = DataStack(
        app,
        f"{prefix}Data",
        platform=platform,
        feature_sets_dir=feature_sets_dir,
        env=env,
        description="Driftline data: key, buckets, tables, topics, bus, catalog, ingest",
    )
    shared = data.shared
    serving = ServingStack(
        app,
        f"{prefix}Serving",
        shared=shared,
        env=env,
        description="Driftline serving: prediction API and capture streams",
    )
    # The approve function refuses events of any other API; ServingStack creates both, the id is bound here.
    serving.approve.function.add_environment(API_ID_ENV, serving.api.rest_api_id)
    monitoring = MonitoringStack(
        app,
        f"{prefix}Monitoring",
        shared=shared,
        env=env,
        description="Driftline monitoring: scheduled drift checks, dashboard, alarms",
    )
    pipeline = PipelineStack(
        app, f"{prefix}Pipeline", shared=shared, env=env, description="Driftline retraining workflow and triggers"
    )
    result = DriftlineApp(platform, data, serving, monitoring, pipeline)
    for stack in result.stacks:
        Tags.of(stack).add("driftline:env", config.env_name)
        Tags.of(stack).add("driftline:managed-by", "cdk")
        acknowledge(stack)
    if nag:
        Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return result


def feature_sets_path(config: PlatformConfig) -> Path:
    return (ROOT / config.feature_sets_dir).resolve()
