"""Synthesize the whole app once per test session (bundling skipped: assets are hashed from source)."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@dataclass
class Synth:
    platform: Any
    templates: dict[str, dict[str, Any]]
    """stack kind ('data', 'serving', 'monitoring', 'pipeline') -> CloudFormation template"""
    messages: list[tuple[str, str, str, str]]
    """(stack, level, construct path, text) for every annotation"""
    outdir: Path
    app: Any = None
    """The built ``stacks.app_builder.DriftlineApp`` (its stacks and constructs)."""

    def resources(self, rtype: str, kind: str | None = None) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for k, t in self.templates.items():
            if kind and k != kind:
                continue
            out.update({f"{k}/{lid}": r for lid, r in t["Resources"].items() if r["Type"] == rtype})
        return out


def synthesize(
    env: str, outdir: Path, customize: Callable[[dict[str, Any]], None] | None = None, *, annotations: bool = True
) -> Synth:
    """The app of ``env`` as cdk.json declares it; ``customize`` edits a copy of the context first, for a
    deployment the shipped environments do not declare (a model training on SageMaker, say).
    ``annotations=False`` skips reading the stacks' messages, for tests that judge only templates: in
    one CI worker, reading them from a second app failed inside jsii ('Unknown interface:
    aws-cdk-lib.cloud_assembly_schema.MetadataEntry'), which no single-process run reproduced."""
    from aws_cdk import App

    from driftline import config
    from stacks.app_builder import build

    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    if customize is not None:
        context = copy.deepcopy(context)
        customize(context)
    app = App(context={**context, "aws:cdk:bundling-stacks": []}, outdir=str(outdir))
    built = build(app, config.from_context(context, env))
    assembly = app.synth()
    kinds = {
        built.data.stack_name: "data",
        built.serving.stack_name: "serving",
        built.monitoring.stack_name: "monitoring",
        built.pipeline.stack_name: "pipeline",
    }
    templates = {kinds[s.stack_name]: s.template for s in assembly.stacks}
    messages = [
        (s.stack_name, str(m.level).rsplit(".", 1)[-1].lower(), m.id, str(m.entry.data))
        for s in (assembly.stacks if annotations else [])
        for m in s.messages
    ]
    return Synth(built.platform, templates, messages, outdir, built)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize("dev", tmp_path_factory.mktemp("cdk-dev"))


@pytest.fixture(scope="session")
def synth_prod(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize("prod", tmp_path_factory.mktemp("cdk-prod"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Keep every infrastructure test on one xdist worker so the app is synthesized once.
    for item in items:
        if "tests/infrastructure" in str(item.fspath):
            item.add_marker(pytest.mark.xdist_group("cdk"))
