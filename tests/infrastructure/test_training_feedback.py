"""A deployment with a model that trains on feedback labels (``training.feedback.enabled``): the train
function gets the captures bucket's name and may read only its captures and feedback prefixes, and its
synthesized role policy is exactly its declaration; with ``retrain_after_labels`` the retrain-trigger function
may read the feedback prefix and an hourly rule sends it the model's label count check. The shipped
environments (feedback off) grant none of it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infrastructure.conftest import Synth, synthesize
from tests.infrastructure.test_declared_permissions import test_every_function_role_policy_is_exactly_its_declaration


def _with_feedback(context: dict[str, Any]) -> None:
    context["driftline:environments"]["dev"]["models"][0]["training"] = {
        "feedback": {"enabled": True, "retrain_after_labels": 500}
    }


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize("dev", tmp_path_factory.mktemp("cdk-feedback"), _with_feedback, annotations=False)


def test_train_reads_only_captures_and_feedback(synth: Synth) -> None:
    test_every_function_role_policy_is_exactly_its_declaration(synth)
    statements = synth.platform.policy("train", "1", "r")
    captures = synth.platform.bucket_name("captures", "1", "r")
    reads = sorted(r for st in statements for r in st.resources if r.startswith(f"arn:aws:s3:::{captures}/"))
    assert reads == [f"arn:aws:s3:::{captures}/captures/*", f"arn:aws:s3:::{captures}/feedback/*"]
    assert not any(a == "*" or a.endswith(":*") for st in statements for a in st.actions)
    resources: dict[str, Any] = synth.templates["pipeline"]["Resources"]
    (fn,) = [
        r
        for lid, r in resources.items()
        if r["Type"] == "AWS::Lambda::Function" and lid.startswith("TrainFn") and "Environment" in r["Properties"]
    ]
    assert "CAPTURES_BUCKET" in fn["Properties"]["Environment"]["Variables"]


def test_retrain_trigger_counts_labels_hourly(synth: Synth) -> None:
    statements = synth.platform.policy("retrain-trigger", "1", "r")
    captures = synth.platform.bucket_name("captures", "1", "r")
    reads = sorted(r for st in statements for r in st.resources if r.startswith(f"arn:aws:s3:::{captures}/"))
    assert reads == [f"arn:aws:s3:::{captures}/feedback/*"]
    rules = [
        r["Properties"]
        for r in synth.templates["pipeline"]["Resources"].values()
        if r["Type"] == "AWS::Events::Rule" and r["Properties"].get("ScheduleExpression") == "rate(1 hour)"
    ]
    assert len(rules) == 1
    assert json.loads(rules[0]["Targets"][0]["Input"]) == {"model": "credit-default", "trigger": "feedback"}
