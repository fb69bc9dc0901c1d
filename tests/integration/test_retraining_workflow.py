"""The real ``retrain.asl.json`` on moto's Step Functions interpreter, with the workflow steps running
in-process (every Lambda invocation is routed to ``run_step`` or a stand-in trainer).

Covers: first model (direct), gate failure (champion unchanged, outcome recorded on the version), manual
approval (rejected, and an unauthorized principal changing nothing; approved; timed out), canary breach →
automatic rollback with an SNS alert, canary success → promotion, a canary without traffic → extended
bake → inconclusive (candidate kept, promotable later) or promoted when traffic arrives, the approval
route refusing a gate-failed version, training and request failures, and a burst of 10
identical triggers giving exactly one run. One moto world serves the module; each test uses its own
model name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
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
FEATURE_SETS = Path(__file__).resolve().parents[2] / "examples" / "feature_sets"


def _config(name: str, **model: Any) -> PlatformConfig:
    base: dict[str, Any] = {
        "name": name,
        "feature_set": "credit_default",
        "gate": {"min_metrics": {"roc_auc": 0.65}, "max_regression": 0.02},
        "deploy": {"mode": "canary", "canary_percent": 50, "bake_seconds": 1},
    }
    base.update(model)
    return PlatformConfig.model_validate({"models": [base]})


class Harness:
    """State machine + two stand-in Lambdas whose invocations run in this process."""

    def __init__(self, env: dict[str, str], config: PlatformConfig, credit_fs: Any, sm_arn: str) -> None:
        self.env = env
        self.config = config
        self.model = config.models[0].name
        self.sm_arn = sm_arn
        self.schema = credit_fs.input_schema()
        self.platform = build_platform(config)
        self.registry = Registry(env["REGISTRY_TABLE"])
        self.control = ControlTable(env["CONTROL_TABLE"])
        self.ctx = StepContext(
            config=config,
            registry=self.registry,
            control=self.control,
            feature_sets={"credit_default"},
            captures_bucket=env["CAPTURES_BUCKET"],
            approvals_topic=env["APPROVALS_TOPIC_ARN"],
        )
        self.train_metrics: dict[str, float] = {"roc_auc": 0.80}
        self.after_step: dict[str, Callable[[dict[str, Any]], None]] = {}
        self.calls: list[str] = []
        self.sfn = aws_mod.client("stepfunctions")

    # ---- stand-in trainer: registers a candidate and reports the champion's metrics on the same holdout
    def train(self, event: dict[str, Any]) -> dict[str, Any]:
        req = event["request"]
        version = self.registry.next_version(self.model)
        self.registry.register(
            self.model,
            version=version,
            metrics=self.train_metrics,
            input_schema=self.schema,
            feature_set="credit_default",
            trigger=req["trigger"],
            reason=req["reason"],
        )
        champion = req.get("champion_version")
        out: dict[str, Any] = {
            "model": self.model,
            "version": version,
            "status": "candidate",
            "metrics": self.train_metrics,
            "champion": None,
        }
        if champion is not None:
            out["champion"] = {"version": champion, "metrics": self.registry.get_version(self.model, champion).metrics}
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

    def start(self, name: str, **input_: Any) -> str:
        body = {"model": self.model, "trigger": "manual", "reason": "test", "requested_by": "tester", **input_}
        return str(
            self.sfn.start_execution(stateMachineArn=self.sm_arn, name=name, input=json.dumps(body))["executionArn"]
        )

    def wait(self, arn: str, timeout: float = 60.0, until: Callable[[], bool] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            d = self.sfn.describe_execution(executionArn=arn)
            if d["status"] != "RUNNING" or (until is not None and until()):
                return dict(d)
            time.sleep(0.1)
        raise AssertionError(f"execution {arn} still running after {timeout} s; steps so far: {self.calls}")

    def seed_champion(self, roc_auc: float = 0.78) -> int:
        v = self.registry.next_version(self.model)
        self.registry.register(
            self.model, version=v, metrics={"roc_auc": roc_auc}, input_schema=self.schema, feature_set="credit_default"
        )
        self.registry.approve(self.model, v, "tester", "seed")
        self.registry.promote(self.model, v, "tester", "seed")
        return v

    def captures(self, champion: int, challenger: int, n: int, challenger_broken: float) -> None:
        write_captures(self.env["CAPTURES_BUCKET"], self.model, champion, challenger, n, challenger_broken)

    def alerts_queue(self) -> str:
        sqs, sns = aws_mod.client("sqs"), aws_mod.client("sns")
        url = sqs.create_queue(QueueName=f"alerts-probe-{self.model}")["QueueUrl"]
        qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for topic in (self.env["ALERTS_TOPIC_ARN"], self.env["APPROVALS_TOPIC_ARN"]):
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn)
        return str(url)

    def subjects(self, url: str) -> list[str]:
        msgs = aws_mod.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]).get("Subject", "") for m in msgs]


@pytest.fixture(scope="module")
def moto_env(platform_def: Any) -> Iterator[dict[str, Any]]:
    """One moto world for the module (provisioning once saves seconds per test); tests isolate
    themselves by model name. Lambda invocations go to whichever harness is current."""
    from moto import mock_aws
    from moto.awslambda.models import LambdaFunction

    from driftline.local.provision import provision_data

    world: dict[str, Any] = {"current": None}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        aws_mod.reset_clients()
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            env = provision_data(platform_def, aws_mod.client, REGION).env(platform_def)
            env["FEATURE_SETS_DIR"] = str(FEATURE_SETS)
            for k, v in env.items():
                mp.setenv(k, v)
            mp.setattr(LambdaFunction, "_invoke_lambda", lambda fn, event=None: world["current"].invoke(fn, event))
            world["env"] = env
            world["sm_arn"] = provision_workflow(platform_def, env)
            yield world
        aws_mod.reset_clients()


def provision_workflow(platform: Any, env: dict[str, str]) -> str:
    """The two functions and the state machine, with the ASL's placeholders substituted as CDK does."""
    import io
    import zipfile

    lam = aws_mod.client("lambda")
    role = f"arn:aws:iam::{ACCOUNT}:role/{platform.prefix}-local-role"
    arns = {"topic:alerts": env["ALERTS_TOPIC_ARN"], "topic:approvals": env["APPROVALS_TOPIC_ARN"]}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x.py", "")
    for logical in ("train", "workflow"):
        arns[f"function:{logical}"] = lam.create_function(
            FunctionName=platform.name(logical),
            Runtime="python3.12",
            Role=role,
            Handler="x.handler",
            Code={"ZipFile": buf.getvalue()},
        )["FunctionArn"]
    wf = platform.workflows[0]
    text = platform.workflow_definition(wf)
    for placeholder, (kind, logical) in wf.substitutions.items():
        text = text.replace("${" + placeholder + "}", arns[f"{kind}:{logical}"])
    assert "${" not in text
    return str(
        aws_mod.client("stepfunctions").create_state_machine(
            name=platform.name("retrain"), definition=text, roleArn=role
        )["stateMachineArn"]
    )


@pytest.fixture
def harness(request: pytest.FixtureRequest, moto_env: dict[str, Any], credit_fs: Any) -> Iterator[Harness]:
    params = dict(getattr(request, "param", {}))
    timeout = params.pop("approval_timeout_seconds", None)
    base = request.node.originalname.removeprefix("test_").replace("_", "-")
    name = "m-" + base[:30].rstrip("-")
    cfg = _config(name, **params)
    if timeout is not None:  # below the config's 60 s floor: model_copy skips validation, for this test only
        cfg = cfg.model_copy(
            update={"models": (cfg.models[0].model_copy(update={"approval_timeout_seconds": timeout}),)}
        )
    h = Harness(moto_env["env"], cfg, credit_fs, moto_env["sm_arn"])
    moto_env["current"] = h
    yield h
    moto_env["current"] = None


def write_captures(bucket: str, model: str, champion: int, challenger: int, n: int, challenger_broken: float) -> None:
    """n rows per side; a share of the challenger's predictions are invalid (errors)."""
    now = datetime.now(UTC)
    lines = []
    for i in range(n):
        for role, version in (("champion", champion), ("challenger", challenger)):
            broken = role == "challenger" and i < n * challenger_broken
            pred = {"label": 0, "probability": float("nan") if broken else 0.3}
            lines.append(
                json.dumps(
                    {
                        "request_id": f"r{i}:{role}",
                        "model": model,
                        "version": version,
                        "role": role,
                        "ts": now.isoformat(),
                        "latency_ms": 0.05,
                        "features": {},
                        "prediction": pred,
                    }
                )
            )
    aws_mod.client("s3").put_object(
        Bucket=bucket, Key=f"captures/model={model}/{now:%Y/%m/%d/%H}/batch-1", Body="\n".join(lines).encode()
    )


pytestmark = pytest.mark.filterwarnings("ignore")
MANUAL = pytest.mark.parametrize("harness", [{"approval": "manual", "approvers": ["alice"]}], indirect=True)


def test_first_model_goes_direct_and_becomes_champion(harness: Harness) -> None:
    d = harness.wait(harness.start("first"))
    assert d["status"] == "SUCCEEDED", d
    assert harness.calls == ["validate", "train", "gate", "deploy", "promote"]
    assert harness.registry.aliases(harness.model).champion == 1
    assert harness.registry.get_version(harness.model, 1).status == "approved"
    steps = harness.control.history(harness.model, kind="step")
    assert {s["action"] for s in steps} == {"validate", "gate", "deploy", "promote"}
    assert all(s["execution_name"] == "first" for s in steps)


def test_gate_failure_leaves_champion(harness: Harness) -> None:
    champ = harness.seed_champion(roc_auc=0.80)
    harness.train_metrics = {"roc_auc": 0.75}  # above the floor but 0.05 worse than the champion
    url = harness.alerts_queue()
    d = harness.wait(harness.start("gate-fails"))
    assert d["status"] == "SUCCEEDED"  # ends as designed, in NotPromoted
    assert harness.calls == ["validate", "train", "gate"]
    assert harness.registry.aliases(harness.model).champion == champ
    v2 = harness.registry.get_version(harness.model, 2)
    assert v2.status == "rejected" and "worse than the champion v1" in v2.reason
    assert "Driftline: candidate not promoted" in harness.subjects(url)
    # the outcome is recorded on the version, with the champion it was judged against
    assert v2.gate["passed"] is False and v2.gate["champion_version"] == champ
    assert v2.gate["comparison"] == "same_holdout" and v2.gate["evaluated_by"] == "run gate-fails"
    assert v2.gate["reasons"] == ["roc_auc 0.7500 is worse than the champion v1's 0.8000 (max_regression 0.02)"]


@MANUAL
def test_manual_approval_rejected(harness: Harness) -> None:
    champ = harness.seed_champion()
    arn = harness.start("manual-1")
    table = harness.control.table
    harness.wait(arn, until=lambda: bool(pending_approvals(table, harness.model)))
    (pending,) = pending_approvals(table, harness.model)
    assert pending.version == 2 and pending.execution_arn == arn
    with pytest.raises(ApprovalNotAllowedError, match="mallory may not approve"):
        resolve_approval(harness.model, 2, True, "mallory", "looks fine", config=harness.config)
    with pytest.raises(ApprovalNotWaitingError, match="no retraining run is waiting"):
        resolve_approval(harness.model, 7, True, "alice", "looks fine", config=harness.config)
    assert harness.registry.get_version(harness.model, 2).status == "candidate"  # nothing changed
    out = resolve_approval(harness.model, 2, False, "alice", "holdout too small", config=harness.config)
    assert out["decision"] == "rejected"
    d = harness.wait(arn)
    assert d["status"] == "SUCCEEDED"
    assert "deploy" not in harness.calls
    assert harness.registry.aliases(harness.model).champion == champ
    v2 = harness.registry.get_version(harness.model, 2)
    assert v2.status == "rejected"
    audit = [e for e in harness.registry.audit(harness.model) if e.action == "reject"]
    assert audit[-1].who == "alice" and audit[-1].why == "holdout too small"
    assert pending_approvals(table, harness.model) == []


@MANUAL
def test_manual_approval_approved_deploys(harness: Harness) -> None:
    harness.seed_champion()
    harness.after_step["deploy"] = lambda out: harness.captures(1, 2, 40, 0.0)
    arn = harness.start("manual-2")
    harness.wait(arn, until=lambda: bool(pending_approvals(harness.control.table, harness.model)))
    resolve_approval(harness.model, 2, True, "alice", "reviewed", config=harness.config)
    d = harness.wait(arn)
    assert d["status"] == "SUCCEEDED", harness.calls
    assert harness.registry.aliases(harness.model).champion == 2
    approve = [e for e in harness.registry.audit(harness.model) if e.action == "approve"][-1]
    assert (approve.who, approve.version) == ("alice", 2)


@pytest.mark.parametrize(
    "harness", [{"approval": "manual", "approvers": ["alice"], "approval_timeout_seconds": 2}], indirect=True
)
def test_approval_timeout_rejects(harness: Harness) -> None:
    champ = harness.seed_champion()
    d = harness.wait(harness.start("nobody-answers"))
    assert d["status"] == "SUCCEEDED"
    assert harness.calls[-2:] == ["request_approval", "reject_timeout"]
    v2 = harness.registry.get_version(harness.model, 2)
    assert v2.status == "rejected" and "no approval within 2 s" in v2.reason
    assert harness.registry.aliases(harness.model).champion == champ
    assert pending_approvals(harness.control.table, harness.model) == []


def test_canary_breach_rolls_back(harness: Harness) -> None:
    champ = harness.seed_champion()
    url = harness.alerts_queue()
    harness.after_step["deploy"] = lambda out: harness.captures(champ, out["challenger_version"], 40, 0.25)
    d = harness.wait(harness.start("canary-bad"))
    assert d["status"] == "FAILED" and d.get("error") == "CanaryRolledBack"
    assert harness.calls[-3:] == ["deploy", "evaluate_canary", "rollback"]
    al = harness.registry.aliases(harness.model)
    assert al.champion == champ and al.challenger is None and al.traffic_mode == "none"
    v2 = harness.registry.get_version(harness.model, 2)
    assert v2.status == "rejected" and "error rate 25.00%" in v2.reason
    actions = [e.action for e in harness.registry.audit(harness.model)]
    assert actions[-3:] == ["set_challenger", "clear_challenger", "record_failure"]
    assert "Driftline: canary rolled back" in harness.subjects(url)


NO_TRAFFIC = pytest.mark.parametrize(
    "harness",
    [{"deploy": {"mode": "canary", "canary_percent": 50, "bake_seconds": 1, "max_bake_extensions": 1}}],
    indirect=True,
)


@NO_TRAFFIC
def test_canary_without_traffic_extends_then_ends_inconclusive(harness: Harness) -> None:
    champ = harness.seed_champion()
    url = harness.alerts_queue()
    d = harness.wait(harness.start("canary-idle"))
    assert d["status"] == "SUCCEEDED", harness.calls
    # one extension (max_bake_extensions 1), then the inconclusive end: no rollback, no rejection
    assert harness.calls[-4:] == ["deploy", "evaluate_canary", "evaluate_canary", "canary_inconclusive"]
    out = json.loads(d["output"])
    verdict = out["canary"]["value"]
    assert (verdict["verdict"], verdict["outcome"], verdict["extensions"]) == ("inconclusive", "inconclusive", 1)
    assert "the challenger handled 0 rows during the bake" in verdict["summary"]
    assert "after 1 bake extension(s)" in verdict["summary"]
    al = harness.registry.aliases(harness.model)
    assert al.champion == champ and al.challenger is None and al.traffic_mode == "none"
    v2 = harness.registry.get_version(harness.model, 2)
    assert v2.status == "approved" and v2.gate["passed"] is True  # not rejected: nothing was found wrong
    audit = harness.registry.audit(harness.model)
    assert [e.action for e in audit][-3:] == ["set_challenger", "clear_challenger", "canary_inconclusive"]
    assert audit[-1].version == 2 and "v2 stays approved" in audit[-1].why and audit[-1].details["rows"] == 0
    assert "Driftline: canary inconclusive" in harness.subjects(url)
    # still promotable later, without any override (it passed the gate)
    harness.registry.promote(harness.model, 2, "alice", "promoted after a quiet canary")
    assert harness.registry.aliases(harness.model).champion == 2


@NO_TRAFFIC
def test_canary_traffic_arriving_during_an_extension_promotes(harness: Harness) -> None:
    champ = harness.seed_champion()

    def late_traffic(out: dict[str, Any]) -> None:
        if out.get("outcome") == "extend":
            harness.captures(champ, 2, 40, 0.0)

    harness.after_step["evaluate_canary"] = late_traffic
    d = harness.wait(harness.start("canary-late"))
    assert d["status"] == "SUCCEEDED", harness.calls
    assert harness.calls[-4:] == ["deploy", "evaluate_canary", "evaluate_canary", "promote"]
    verdict = json.loads(d["output"])["canary"]["value"]
    assert verdict["healthy"] is True and verdict["extensions"] == 1
    assert harness.registry.aliases(harness.model).champion == 2


def test_canary_healthy_promotes(harness: Harness) -> None:
    champ = harness.seed_champion()
    harness.after_step["deploy"] = lambda out: harness.captures(champ, out["challenger_version"], 40, 0.0)
    d = harness.wait(harness.start("canary-good"))
    assert d["status"] == "SUCCEEDED", harness.calls
    out = json.loads(d["output"])
    assert out["canary"]["value"]["healthy"] is True
    al = harness.registry.aliases(harness.model)
    assert al.champion == 2 and al.challenger is None


def test_train_failure_is_recorded_and_champion_unchanged(harness: Harness) -> None:
    champ = harness.seed_champion()
    harness.train_metrics = {"accuracy": 0.9}  # the gate's primary metric is missing
    d = harness.wait(harness.start("no-auc"))
    assert d["status"] == "SUCCEEDED"
    assert "missing or not a finite number" in harness.registry.get_version(harness.model, 2).reason
    assert harness.registry.aliases(harness.model).champion == champ


def test_invalid_request_fails_cleanly(harness: Harness) -> None:
    d = harness.wait(harness.start("bad", model="nope"))
    assert d["status"] == "FAILED" and d.get("error") == "RetrainingFailed"
    assert harness.calls == ["validate", "record_failure"]


def test_burst_of_identical_triggers_gives_one_run(harness: Harness) -> None:
    harness.seed_champion()
    harness.after_step["deploy"] = lambda out: harness.captures(1, 2, 40, 0.0)
    trig = RetrainTrigger(harness.config, harness.control, harness.sm_arn, {"credit_default"})
    event = {
        "source": "driftline.monitoring",
        "detail-type": "DriftDetected",
        "id": "same",
        "detail": {"model": harness.model, "version": 1, "share_drifted": 0.6},
    }
    decisions = [trig.handle(dict(event, id=f"e{i}")).decisions[0] for i in range(10)]
    assert [d.decision for d in decisions].count("started") == 1
    (execution,) = [
        e
        for e in harness.sfn.list_executions(stateMachineArn=harness.sm_arn)["executions"]
        if e["name"].startswith(harness.model)
    ]
    d = harness.wait(execution["executionArn"])
    assert d["status"] == "SUCCEEDED", harness.calls
    assert harness.calls.count("train") == 1
    # the run has ended, but the cooldown still collapses further drift triggers into it
    later = trig.handle(dict(event, id="e11")).decisions[0]
    assert later.decision == "skipped" and later.reason.startswith("cooldown")


# ---- the IAM-authorized approval route (lambdas/approve.py): same decision path as the CLI
APPROVER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/Approvers"
ALICE = f"arn:aws:sts::{ACCOUNT}:assumed-role/Approvers/alice"
MALLORY = f"arn:aws:sts::{ACCOUNT}:assumed-role/Deployers/mallory"
ROUTE_MANUAL = pytest.mark.parametrize("harness", [{"approval": "manual", "approvers": [APPROVER_ROLE]}], indirect=True)


class _Context:
    function_name = "test-driftline-approve"
    memory_limit_in_mb = 256
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:test-driftline-approve"
    aws_request_id = "req-1"


def call_route(
    harness: Harness,
    monkeypatch: pytest.MonkeyPatch,
    version: int | str,
    body: Any,
    principal: str | None = ALICE,
    model: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """One API Gateway proxy event through the real handler, as the signed caller ``principal``."""
    import lambdas.approve as approve

    monkeypatch.setenv("PLATFORM_CONFIG", harness.config.model_dump_json())
    approve._config.cache_clear()
    event = {
        "resource": "/v1/models/{model}/versions/{version}/approval",
        "httpMethod": "POST",
        "path": f"/v1/models/{model or harness.model}/versions/{version}/approval",
        "pathParameters": {"model": model or harness.model, "version": str(version)},
        "body": body if isinstance(body, str) else json.dumps(body),
        "isBase64Encoded": False,
        "requestContext": {
            "requestId": "rid-1",
            "resourcePath": "/v1/models/{model}/versions/{version}/approval",
            "httpMethod": "POST",
            "identity": {"userArn": principal, "caller": None},
        },
    }
    out = approve.handler(event, _Context())  # type: ignore[arg-type]
    return int(out["statusCode"]), json.loads(out["body"])


@ROUTE_MANUAL
def test_approval_route_rejects_and_refuses_client_mistakes(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    champ = harness.seed_champion()
    arn = harness.start("route-reject")
    table = harness.control.table
    harness.wait(arn, until=lambda: bool(pending_approvals(table, harness.model)))
    ok = {"decision": "reject", "reason": "holdout too small"}

    status, body = call_route(harness, monkeypatch, 2, ok, principal=MALLORY)
    assert status == 403 and "may not reject" in body["error"]["message"]
    status, body = call_route(harness, monkeypatch, 2, ok, principal=None)
    assert status == 403 and body["error"]["code"] == "no_principal"
    status, body = call_route(harness, monkeypatch, 7, ok)
    assert status == 404 and "has no version 7" in body["error"]["message"] and "v2" in body["error"]["message"]
    status, body = call_route(harness, monkeypatch, 2, ok, model="no-such-model")
    assert status == 404 and "unknown model 'no-such-model'" in body["error"]["message"]
    status, body = call_route(harness, monkeypatch, 2, {"decision": "reject"})
    assert status == 422 and "'reason' is missing" in body["error"]["message"]
    status, body = call_route(harness, monkeypatch, 2, "not json")
    assert status == 400
    # nothing changed by any of the above: still a waiting candidate, no audit entry
    assert harness.registry.get_version(harness.model, 2).status == "candidate"
    assert [p.version for p in pending_approvals(table, harness.model)] == [2]
    assert not [
        e for e in harness.registry.audit(harness.model) if e.version == 2 and e.action not in ("register", "gate")
    ]

    status, body = call_route(harness, monkeypatch, 2, ok)
    assert status == 200, body
    assert (body["decision"], body["by"], body["execution_arn"]) == ("rejected", ALICE, arn)
    d = harness.wait(arn)
    assert d["status"] == "SUCCEEDED" and "deploy" not in harness.calls
    assert harness.registry.aliases(harness.model).champion == champ
    assert harness.registry.get_version(harness.model, 2).status == "rejected"
    audit = [e for e in harness.registry.audit(harness.model) if e.action == "reject"]
    assert audit[-1].who == ALICE and audit[-1].why == "holdout too small"

    status, body = call_route(harness, monkeypatch, 2, ok)  # decided already: no run waits
    assert status == 409 and "no retraining run is waiting" in body["error"]["message"]


def test_approval_route_refuses_a_gate_failed_version(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    harness.seed_champion(roc_auc=0.80)
    harness.train_metrics = {"roc_auc": 0.75}
    assert harness.wait(harness.start("route-gate-fails"))["status"] == "SUCCEEDED"
    status, body = call_route(harness, monkeypatch, 2, {"decision": "approve", "reason": "I like it"})
    assert status == 409 and body["error"]["code"] == "quality_gate_failed", body
    assert body["error"]["message"] == (
        f"cannot approve '{harness.model}' v2: it failed the quality gate (against champion v1 on the same "
        "holdout, evaluated by run route-gate-fails): roc_auc 0.7500 is worse than the champion v1's 0.8000 "
        "(max_regression 0.02); it is rejected and can never be approved; train a new version"
    )
    # a version registered by hand that fails the gate: refused for the gate, not for "no run waiting"
    v = harness.registry.register(harness.model, metrics={"roc_auc": 0.55}, created_by="notebook").version
    status, body = call_route(harness, monkeypatch, v, {"decision": "approve", "reason": "I like it"})
    assert status == 409 and body["error"]["code"] == "quality_gate_failed"
    assert "roc_auc 0.5500 < floor 0.6500" in body["error"]["message"]
    assert "--override-gate" in body["error"]["message"]
    assert harness.registry.get_version(harness.model, v).status == "candidate"
    assert harness.registry.get_version(harness.model, v).gate == {}


@ROUTE_MANUAL
def test_approval_route_approves_and_the_run_deploys(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    harness.seed_champion()
    harness.after_step["deploy"] = lambda out: harness.captures(1, 2, 40, 0.0)
    arn = harness.start("route-approve")
    harness.wait(arn, until=lambda: bool(pending_approvals(harness.control.table, harness.model)))
    status, body = call_route(harness, monkeypatch, 2, {"decision": "approve", "reason": "reviewed"})
    assert status == 200 and body["decision"] == "approved", body
    d = harness.wait(arn)
    assert d["status"] == "SUCCEEDED", harness.calls
    assert harness.registry.aliases(harness.model).champion == 2
    approve = [e for e in harness.registry.audit(harness.model) if e.action == "approve"][-1]
    assert (approve.who, approve.version, approve.why) == (ALICE, 2, "reviewed")


def _register_imported(h: Harness, roc_auc: float, parent: int | None, champion_roc_auc: float | None) -> int:
    """A version registered outside the workflow (what driftline.register_model writes)."""
    v = h.registry.next_version(h.model)
    lineage: dict[str, Any] = {"source": "notebook", "parent_version": parent}
    if champion_roc_auc is not None:
        lineage["champion_metrics"] = {"roc_auc": champion_roc_auc}
    h.registry.register(
        h.model,
        version=v,
        metrics={"roc_auc": roc_auc},
        input_schema=h.schema,
        feature_set="credit_default",
        trigger="notebook",
        lineage=lineage,
        algorithm="imported:Pipeline",
    )
    return v


def test_registered_candidate_goes_through_gate_and_canary_without_training(harness: Harness) -> None:
    champ = harness.seed_champion(roc_auc=0.78)
    v = _register_imported(harness, 0.81, champ, 0.78)
    harness.after_step["deploy"] = lambda _: harness.captures(champ, v, n=200, challenger_broken=0.0)
    d = harness.wait(harness.start("imported", rollout_version=v))
    assert d["status"] == "SUCCEEDED", d
    assert "train" not in harness.calls
    assert harness.calls[:3] == ["validate", "registered", "gate"] and "evaluate_canary" in harness.calls
    assert harness.registry.aliases(harness.model).champion == v
    assert harness.registry.get_version(harness.model, v).gate["comparison"] == "same_holdout"


def test_registered_candidate_that_fails_the_gate_is_rejected(harness: Harness) -> None:
    champ = harness.seed_champion(roc_auc=0.80)
    v = _register_imported(harness, 0.70, champ, 0.80)
    d = harness.wait(harness.start("imported-bad", rollout_version=v))
    assert d["status"] == "SUCCEEDED"
    assert harness.calls == ["validate", "registered", "gate"]
    assert harness.registry.get_version(harness.model, v).status == "rejected"
    assert harness.registry.aliases(harness.model).champion == champ


def test_registered_version_must_be_a_candidate(harness: Harness) -> None:
    champ = harness.seed_champion()
    d = harness.wait(harness.start("not-candidate", rollout_version=champ))
    assert d["status"] == "FAILED"
    assert harness.calls == ["validate", "record_failure"]
    d = harness.wait(harness.start("no-such-version", rollout_version=99))
    assert d["status"] == "FAILED"
