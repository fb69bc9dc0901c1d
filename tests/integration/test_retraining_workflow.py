"""The real ``retrain.asl.json`` on moto's Step Functions interpreter, with the workflow steps running
in-process (every Lambda invocation is routed to ``run_step`` or a stand-in trainer).

Covers: first model (direct), gate failure (champion unchanged), manual approval (rejected, and an
unauthorized principal changing nothing), canary breach → automatic rollback with an SNS alert,
canary success → promotion, and a burst of 10 identical triggers giving exactly one run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from driftline import aws as aws_mod
from driftline.config import PlatformConfig
from driftline.platform import build_platform
from driftline.registry.store import Registry
from driftline.retraining.approvals import (
    ApprovalNotAllowedError,
    ApprovalNotWaitingError,
    pending_approvals,
    resolve_approval,
)
from driftline.retraining.control import ControlTable
from driftline.retraining.steps import StepContext, run_step
from driftline.retraining.triggers import RetrainTrigger

ACCOUNT, REGION = "123456789012", "us-east-1"
MODEL = "credit-default"


def _config(**model: Any) -> PlatformConfig:
    base: dict[str, Any] = {"name": MODEL, "feature_set": "credit_default",
                            "gate": {"min_metrics": {"roc_auc": 0.65}, "max_regression": 0.02},
                            "deploy": {"mode": "canary", "canary_percent": 50, "bake_seconds": 1}}
    base.update(model)
    return PlatformConfig.model_validate({"models": [base]})


class Harness:
    """State machine + two stand-in Lambdas whose invocations run in this process."""

    def __init__(self, env: dict[str, str], config: PlatformConfig, credit_fs: Any) -> None:
        self.env = env
        self.config = config
        self.schema = credit_fs.input_schema()
        self.platform = build_platform(config)
        self.registry = Registry(env["REGISTRY_TABLE"])
        self.control = ControlTable(env["CONTROL_TABLE"])
        self.ctx = StepContext(config=config, registry=self.registry, control=self.control,
                               feature_sets={"credit_default"}, captures_bucket=env["CAPTURES_BUCKET"],
                               approvals_topic=env["APPROVALS_TOPIC_ARN"])
        self.train_metrics: dict[str, float] = {"roc_auc": 0.80}
        self.after_step: dict[str, Callable[[dict[str, Any]], None]] = {}
        self.calls: list[str] = []
        self.sfn = aws_mod.client("stepfunctions")

    # ---- stand-in trainer: registers a candidate and reports the champion's metrics on the same holdout
    def train(self, event: dict[str, Any]) -> dict[str, Any]:
        req = event["request"]
        version = self.registry.next_version(MODEL)
        self.registry.register(MODEL, version=version, metrics=self.train_metrics, input_schema=self.schema,
                               feature_set="credit_default", trigger=req["trigger"], reason=req["reason"])
        champion = req.get("champion_version")
        out: dict[str, Any] = {"model": MODEL, "version": version, "status": "candidate",
                               "metrics": self.train_metrics, "champion": None}
        if champion is not None:
            out["champion"] = {"version": champion,
                               "metrics": self.registry.get_version(MODEL, champion).metrics}
        return out

    def invoke(self, fn: Any, event: Any = None) -> tuple[str, bool, str]:
        payload = json.loads(event) if isinstance(event, (str, bytes)) else event
        name = fn.function_name
        try:
            if name.endswith("-train"):
                self.calls.append("train")
                out = self.train(payload)
            else:
                self.calls.append(payload["action"])
                out = run_step(payload, self.ctx)
                hook = self.after_step.get(payload["action"])
                if hook:
                    hook(out)
        except Exception as e:
            return json.dumps({"errorType": type(e).__name__, "errorMessage": str(e)}), True, ""
        return json.dumps(out), False, ""

    def provision(self) -> str:
        lam = aws_mod.client("lambda")
        role = f"arn:aws:iam::{ACCOUNT}:role/{self.platform.prefix}-local-role"
        arns = {"topic:alerts": self.env["ALERTS_TOPIC_ARN"],
                "topic:approvals": self.env["APPROVALS_TOPIC_ARN"]}
        import io
        import zipfile

        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("x.py", "")
        for logical in ("train", "workflow"):
            arns[f"function:{logical}"] = lam.create_function(
                FunctionName=self.platform.name(logical), Runtime="python3.12", Role=role,
                Handler="x.handler", Code={"ZipFile": buf.getvalue()})["FunctionArn"]
        wf = self.platform.workflows[0]
        text = self.platform.workflow_definition(wf)
        for placeholder, (kind, logical) in wf.substitutions.items():
            text = text.replace("${" + placeholder + "}", arns[f"{kind}:{logical}"])
        assert "${" not in text
        self.sm_arn = str(self.sfn.create_state_machine(name=self.platform.name("retrain"), definition=text,
                                                        roleArn=role)["stateMachineArn"])
        return self.sm_arn

    def start(self, name: str, **input_: Any) -> str:
        body = {"model": MODEL, "trigger": "manual", "reason": "test", "requested_by": "tester", **input_}
        return str(self.sfn.start_execution(stateMachineArn=self.sm_arn, name=name,
                                            input=json.dumps(body))["executionArn"])

    def wait(self, arn: str, timeout: float = 60.0,
             until: Callable[[], bool] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            d = self.sfn.describe_execution(executionArn=arn)
            if d["status"] != "RUNNING" or (until is not None and until()):
                return dict(d)
            time.sleep(0.1)
        raise AssertionError(f"execution {arn} still running after {timeout} s; steps so far: {self.calls}")

    def seed_champion(self, roc_auc: float = 0.78) -> int:
        v = self.registry.next_version(MODEL)
        self.registry.register(MODEL, version=v, metrics={"roc_auc": roc_auc}, input_schema=self.schema,
                               feature_set="credit_default")
        self.registry.approve(MODEL, v, "tester", "seed")
        self.registry.promote(MODEL, v, "tester", "seed")
        return v

    def alerts_queue(self) -> str:
        sqs, sns = aws_mod.client("sqs"), aws_mod.client("sns")
        url = sqs.create_queue(QueueName="alerts-probe")["QueueUrl"]
        qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for topic in (self.env["ALERTS_TOPIC_ARN"], self.env["APPROVALS_TOPIC_ARN"]):
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn)
        return str(url)

    def subjects(self, url: str) -> list[str]:
        msgs = aws_mod.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]).get("Subject", "") for m in msgs]


@pytest.fixture
def harness(request: pytest.FixtureRequest, aws: dict[str, str], credit_fs: Any,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    from moto.awslambda.models import LambdaFunction
    from moto.core.config import default_user_config

    monkeypatch.setitem(default_user_config["stepfunctions"], "execute_state_machine", True)
    params = dict(getattr(request, "param", {}))
    timeout = params.pop("approval_timeout_seconds", None)
    cfg = _config(**params)
    if timeout is not None:  # below the config's 60 s floor: model_copy skips validation, for this test only
        cfg = cfg.model_copy(update={"models": (cfg.models[0].model_copy(
            update={"approval_timeout_seconds": timeout}),)})
    h = Harness(aws, cfg, credit_fs)
    monkeypatch.setattr(LambdaFunction, "_invoke_lambda", lambda fn, event=None: h.invoke(fn, event))
    h.provision()
    yield h


def write_captures(bucket: str, champion: int, challenger: int, n: int, challenger_broken: float) -> None:
    """n rows per side; a share of the challenger's predictions are invalid (errors)."""
    now = datetime.now(UTC)
    lines = []
    for i in range(n):
        for role, version in (("champion", champion), ("challenger", challenger)):
            broken = role == "challenger" and i < n * challenger_broken
            pred = {"label": 0, "probability": float("nan") if broken else 0.3}
            lines.append(json.dumps({"request_id": f"r{i}:{role}", "model": MODEL, "version": version,
                                     "role": role, "ts": now.isoformat(), "latency_ms": 0.05,
                                     "features": {}, "prediction": pred}))
    aws_mod.client("s3").put_object(Bucket=bucket, Key=f"captures/model={MODEL}/{now:%Y/%m/%d/%H}/batch-1",
                                    Body="\n".join(lines).encode())


pytestmark = pytest.mark.filterwarnings("ignore")
MANUAL = pytest.mark.parametrize("harness", [{"approval": "manual", "approvers": ["alice"]}], indirect=True)


def test_first_model_goes_direct_and_becomes_champion(harness: Harness) -> None:
    d = harness.wait(harness.start("first"))
    assert d["status"] == "SUCCEEDED", d
    assert harness.calls == ["validate", "train", "gate", "deploy", "promote"]
    assert harness.registry.aliases(MODEL).champion == 1
    assert harness.registry.get_version(MODEL, 1).status == "approved"
    steps = harness.control.history(MODEL, kind="step")
    assert {s["action"] for s in steps} == {"validate", "gate", "deploy", "promote"}
    assert all(s["execution_name"] == "first" for s in steps)


def test_gate_failure_leaves_champion(harness: Harness) -> None:
    champ = harness.seed_champion(roc_auc=0.80)
    harness.train_metrics = {"roc_auc": 0.75}  # above the floor but 0.05 worse than the champion
    url = harness.alerts_queue()
    d = harness.wait(harness.start("gate-fails"))
    assert d["status"] == "SUCCEEDED"  # ends as designed, in NotPromoted
    assert harness.calls == ["validate", "train", "gate"]
    assert harness.registry.aliases(MODEL).champion == champ
    v2 = harness.registry.get_version(MODEL, 2)
    assert v2.status == "rejected" and "worse than the champion v1" in v2.reason
    assert "Driftline: candidate not promoted" in harness.subjects(url)


@MANUAL
def test_manual_approval_rejected(harness: Harness) -> None:
    champ = harness.seed_champion()
    arn = harness.start("manual-1")
    table = harness.control.table
    harness.wait(arn, until=lambda: bool(pending_approvals(table, MODEL)))
    (pending,) = pending_approvals(table, MODEL)
    assert pending.version == 2 and pending.execution_arn == arn
    with pytest.raises(ApprovalNotAllowedError, match="mallory may not approve"):
        resolve_approval(MODEL, 2, True, "mallory", "looks fine", config=harness.config)
    with pytest.raises(ApprovalNotWaitingError, match="no retraining run is waiting"):
        resolve_approval(MODEL, 7, True, "alice", "looks fine", config=harness.config)
    assert harness.registry.get_version(MODEL, 2).status == "candidate"  # nothing changed
    out = resolve_approval(MODEL, 2, False, "alice", "holdout too small", config=harness.config)
    assert out["decision"] == "rejected"
    d = harness.wait(arn)
    assert d["status"] == "SUCCEEDED"
    assert "deploy" not in harness.calls
    assert harness.registry.aliases(MODEL).champion == champ
    v2 = harness.registry.get_version(MODEL, 2)
    assert v2.status == "rejected"
    audit = [e for e in harness.registry.audit(MODEL) if e.action == "reject"]
    assert audit[-1].who == "alice" and audit[-1].why == "holdout too small"
    assert pending_approvals(table, MODEL) == []


@MANUAL
def test_manual_approval_approved_deploys(harness: Harness) -> None:
    harness.seed_champion()
    harness.after_step["deploy"] = lambda out: write_captures(harness.env["CAPTURES_BUCKET"], 1, 2, 40, 0.0)
    arn = harness.start("manual-2")
    harness.wait(arn, until=lambda: bool(pending_approvals(harness.control.table, MODEL)))
    resolve_approval(MODEL, 2, True, "alice", "reviewed", config=harness.config)
    d = harness.wait(arn)
    assert d["status"] == "SUCCEEDED", harness.calls
    assert harness.registry.aliases(MODEL).champion == 2
    approve = [e for e in harness.registry.audit(MODEL) if e.action == "approve"][-1]
    assert (approve.who, approve.version) == ("alice", 2)


@pytest.mark.parametrize("harness", [{"approval": "manual", "approval_timeout_seconds": 2}], indirect=True)
def test_approval_timeout_rejects(harness: Harness) -> None:
    champ = harness.seed_champion()
    d = harness.wait(harness.start("nobody-answers"))
    assert d["status"] == "SUCCEEDED"
    assert harness.calls[-2:] == ["request_approval", "reject_timeout"]
    v2 = harness.registry.get_version(MODEL, 2)
    assert v2.status == "rejected" and "no approval within 2 s" in v2.reason
    assert harness.registry.aliases(MODEL).champion == champ
    assert pending_approvals(harness.control.table, MODEL) == []


def test_canary_breach_rolls_back(harness: Harness) -> None:
    champ = harness.seed_champion()
    url = harness.alerts_queue()
    harness.after_step["deploy"] = lambda out: write_captures(harness.env["CAPTURES_BUCKET"], champ,
                                                              out["challenger_version"], 40, 0.25)
    d = harness.wait(harness.start("canary-bad"))
    assert d["status"] == "FAILED" and d.get("error") == "CanaryRolledBack"
    assert harness.calls[-3:] == ["deploy", "evaluate_canary", "rollback"]
    al = harness.registry.aliases(MODEL)
    assert al.champion == champ and al.challenger is None and al.traffic_mode == "none"
    v2 = harness.registry.get_version(MODEL, 2)
    assert v2.status == "rejected" and "error rate 25.00%" in v2.reason
    actions = [e.action for e in harness.registry.audit(MODEL)]
    assert actions[-3:] == ["set_challenger", "clear_challenger", "record_failure"]
    assert "Driftline: canary rolled back" in harness.subjects(url)


def test_canary_healthy_promotes(harness: Harness) -> None:
    champ = harness.seed_champion()
    harness.after_step["deploy"] = lambda out: write_captures(harness.env["CAPTURES_BUCKET"], champ,
                                                              out["challenger_version"], 40, 0.0)
    d = harness.wait(harness.start("canary-good"))
    assert d["status"] == "SUCCEEDED", harness.calls
    out = json.loads(d["output"])
    assert out["canary"]["value"]["healthy"] is True
    al = harness.registry.aliases(MODEL)
    assert al.champion == 2 and al.challenger is None


def test_train_failure_is_recorded_and_champion_unchanged(harness: Harness) -> None:
    champ = harness.seed_champion()
    harness.train_metrics = {"accuracy": 0.9}  # the gate's primary metric is missing
    d = harness.wait(harness.start("no-auc"))
    assert d["status"] == "SUCCEEDED"
    assert "missing or not a finite number" in harness.registry.get_version(MODEL, 2).reason
    assert harness.registry.aliases(MODEL).champion == champ


def test_invalid_request_fails_cleanly(harness: Harness) -> None:
    d = harness.wait(harness.start("bad", model="nope"))
    assert d["status"] == "FAILED" and d.get("error") == "RetrainingFailed"
    assert harness.calls == ["validate", "record_failure"]


def test_burst_of_identical_triggers_gives_one_run(harness: Harness) -> None:
    harness.seed_champion()
    harness.after_step["deploy"] = lambda out: write_captures(harness.env["CAPTURES_BUCKET"], 1, 2, 40, 0.0)
    trig = RetrainTrigger(harness.config, harness.control, harness.sm_arn, {"credit_default"})
    event = {"source": "driftline.monitoring", "detail-type": "DriftDetected", "id": "same",
             "detail": {"model": MODEL, "version": 1, "share_drifted": 0.6}}
    decisions = [trig.handle(dict(event, id=f"e{i}")).decisions[0] for i in range(10)]
    assert [d.decision for d in decisions].count("started") == 1
    (execution,) = harness.sfn.list_executions(stateMachineArn=harness.sm_arn)["executions"]
    d = harness.wait(execution["executionArn"])
    assert d["status"] == "SUCCEEDED", harness.calls
    assert harness.calls.count("train") == 1
    # the run has ended, but the cooldown still collapses further drift triggers into it
    later = trig.handle(dict(event, id="e11")).decisions[0]
    assert later.decision == "skipped" and later.reason.startswith("cooldown")
