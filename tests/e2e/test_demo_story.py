"""`driftline demo`'s story on the real local platform, asserted step by step, then the failure paths
on the same running platform: a burst of identical requests (exactly one run), a canary that breaches
and rolls back, a rejected manual approval, a candidate that fails the gate, and bad input.

Everything goes through the platform's real surfaces (S3 uploads, the HTTP API, the event bus, the
local scheduler); nothing calls a handler directly. Slow by nature: it starts the platform, trains
and canaries twice.

It is one test on purpose: the failure paths run on the state the story leaves behind (a champion,
a finished run), which separate tests could only share through an order pytest does not promise.
Every step and path is still checked and reported on its own; all of them run even when one fails.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from driftline import config
from driftline.demo.story import DRIFTED, DemoSettings, Story
from driftline.platform import build_platform

ROOT = Path(__file__).resolve().parents[2]
MODEL = "credit-default"

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_story(tmp: Path) -> Story:
    platform = build_platform(config.load(ROOT / "cdk.json", env="demo"))
    settings = DemoSettings(
        config=ROOT / "cdk.json",
        env="demo",
        state_dir=tmp / "state",
        out_dir=tmp / "out",
        port=free_port(),
        api_port=free_port(),
        keep=True,
    )
    story = Story(settings, platform)
    story.ok = story.run()  # type: ignore[attr-defined]
    return story


def check(name: str, fn: Callable[[], Any]) -> list[str]:
    """Run one check; its failure is reported by name instead of stopping the others."""
    try:
        fn()
    except Exception as e:  # AssertionError included: collect, report all at the end
        return [f"{name}: {type(e).__name__}: {e}"]
    return []


def test_demo_story_then_failure_paths(tmp_path: Path) -> None:
    story = run_story(tmp_path)
    try:
        problems = [f"story step {r.title!r}: {r.status}: {r.detail}" for r in story.results if r.status != "ok"]
        if getattr(story, "ok", False):
            problems += check("story facts", lambda: story_facts(story))
        if story.local is not None and story.results[4].status == "ok":  # v1 promoted: a champion exists
            story.local.activate()
            runs: dict[str, str] = {}
            problems += check("burst of identical triggers", lambda: runs.update(burst=burst(story)))
            problems += check("canary breach rolls back", lambda: canary_breach(story, runs.get("burst")))
            problems += check("rejected manual approval", lambda: rejected_manual_approval(story))
            problems += check("gate failure keeps the champion", lambda: gate_failure(story))
            problems += check("bad input starts nothing", lambda: bad_input(story))
        assert not problems, "\n".join(problems)
    finally:
        if story.local is not None:
            story.local.deactivate()
            story.local.stop()
            from driftline.local.state import group_members

            assert group_members(story.local.state.pgid) == [], "processes of the platform survived `down`"


def story_facts(story: Story) -> None:
    f = story.facts
    assert f.v1_metrics["roc_auc"] >= 0.65
    assert f.clean_check and f.drift_check
    assert f.labels_decision["decision"] == "skipped" and "on_new_labels" in f.labels_decision["reason"]
    assert f.drift_decision["decision"] == "started" and f.drift_decision["trigger"] == "drift"
    assert f.v2_gate["passed"] and any(c["kind"] == "regression" for c in f.v2_gate["checks"])
    assert f.canary["healthy"] and f.canary["challenger"]["rows"] >= 20
    assert set(f.serve_pids_before) & set(f.serve_pids_after)
    assert Path(f.report_path).read_text(errors="replace").lstrip().lower().startswith(("<!doctype", "<html"))
    assert f.step_durations["v2"]["Bake"] >= 8.0
    assert 2 in f.traffic_versions  # live traffic reached v2 during the canary


# ------------------------------------------------------------------ failure paths (same platform)


def _decisions_for(story: Story, event_ids: list[str], timeout: float = 60.0) -> list[dict[str, Any]]:
    from driftline.retraining.control import ControlTable

    control = ControlTable(story.platform.name("control"))
    deadline = time.monotonic() + timeout
    while True:
        recs = {
            r["trigger_id"]: r
            for r in control.history(MODEL, limit=200, kind="decision")
            if r.get("trigger_id") in event_ids
        }
        if len(recs) == len(event_ids) or time.monotonic() > deadline:
            return list(recs.values())
        time.sleep(0.3)


def _put(story: Story, entries: list[dict[str, Any]]) -> list[str]:
    resp = story.local.client("events").put_events(  # type: ignore[union-attr]
        Entries=[  # type: ignore[union-attr]
            {**e, "EventBusName": story.platform.event_bus, "Detail": json.dumps(e["Detail"])} for e in entries
        ]
    )
    assert resp["FailedEntryCount"] == 0, resp
    return [x["EventId"] for x in resp["Entries"]]


def _registry(story: Story) -> Any:
    from driftline.registry.store import Registry

    return Registry(story.platform.name("registry"))


def _alerts_queue(story: Story) -> str:
    sqs, sns = story.local.client("sqs"), story.local.client("sns")  # type: ignore[union-attr]
    url = str(sqs.create_queue(QueueName=f"e2e-alerts-{int(time.time())}")["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=f"arn:aws:sns:us-east-1:123456789012:{story.platform.name('alerts')}", Protocol="sqs", Endpoint=arn
    )
    return url


def _subjects(story: Story, url: str) -> list[str]:
    out = []
    for _ in range(3):
        msgs = (
            story.local.client("sqs")  # type: ignore[union-attr]
            .receive_message(  # type: ignore[union-attr]
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            .get("Messages", [])
        )
        out += [json.loads(m["Body"]).get("Subject", "") for m in msgs]
    return out


def _idle(story: Story, timeout: float = 240.0) -> None:
    """Wait until no retraining run is in progress (a failed test must not leak into the next one)."""
    sfn = story.local.client("stepfunctions")  # type: ignore[union-attr]
    sm = f"arn:aws:states:us-east-1:123456789012:stateMachine:{story.platform.name('retrain')}"
    deadline = time.monotonic() + timeout
    while sfn.list_executions(stateMachineArn=sm, statusFilter="RUNNING")["executions"]:
        assert time.monotonic() < deadline, "a retraining run is still in progress"
        time.sleep(0.5)


def burst(live: Story) -> str:
    """Ten identical requests at once: exactly one run starts (returned), nine are skipped."""
    _idle(live)
    detail = {"model": MODEL, "requested_by": "e2e", "reason": "burst"}
    ids = _put(live, [{"Source": "driftline.cli", "DetailType": "RetrainRequested", "Detail": detail}] * 10)
    decisions = _decisions_for(live, ids)
    assert len(decisions) == 10
    started = [d for d in decisions if d["decision"] == "started"]
    assert len(started) == 1, [(d["decision"], d["reason"]) for d in decisions]
    assert all("in progress" in d["reason"] for d in decisions if d["decision"] == "skipped")
    arn = str(started[0]["execution_arn"])
    # automatic triggers inside the cooldown of the drift-started run collapse into it
    drift = {"model": MODEL, "version": 1, "share_drifted": 0.9, "drifted_columns": ["income"]}
    ids = _put(live, [{"Source": "driftline.monitoring", "DetailType": "DriftDetected", "Detail": drift}] * 5)
    assert all(d["decision"] == "skipped" for d in _decisions_for(live, ids))
    return arn


def canary_breach(live: Story, run_arn: str | None) -> None:
    """The burst's run goes to canary; feedback labels make the challenger look wrong: rollback."""
    from driftline.demo.runs import RunFollower
    from driftline.demo.traffic import predict

    assert run_arn, "no run from the burst to canary"
    champion = _registry(live).aliases(MODEL).champion
    url = _alerts_queue(live)
    run = RunFollower(run_arn)
    dep = run.wait_for("Deploy", 180)["deploy"]["value"]
    assert dep["mode"] == "canary"
    candidate = dep["challenger_version"]
    rows = live._records(live._table(200, DRIFTED, 991, drifted=True))
    labeled = {"champion": 0, "challenger": 0}
    deadline = time.monotonic() + dep["bake_seconds"] - 1
    while time.monotonic() < deadline and min(labeled.values()) < 150:
        a = predict(live.facts.api_url, MODEL, rows[:50])
        assert a.status == 200, a.body
        feedback = []
        for p in a.body["predictions"]:  # labels that make the challenger look wrong, the champion right
            side = "challenger" if p["version"] == candidate else "champion"
            labeled[side] += 1
            feedback.append(
                {"request_id": p["request_id"], "label": 1 - p["label"] if side == "challenger" else p["label"]}
            )
        assert predict_feedback(live.facts.api_url, feedback) in (200, 202)
    assert min(labeled.values()) >= 100, labeled
    assert run.wait_end(120) == "FAILED" and run.description.get("error") == "CanaryRolledBack"
    verdict = run.exited_output("EvaluateCanary")["canary"]["value"]  # type: ignore[index]
    assert not verdict["healthy"] and any("labeled rows" in r for r in verdict["reasons"])
    al = _registry(live).aliases(MODEL)
    assert al.champion == champion and al.challenger is None
    mv = _registry(live).get_version(MODEL, candidate)
    assert mv.status == "rejected" and "canary breached" in mv.reason
    assert [e.action for e in _registry(live).audit(MODEL)][-2:] == ["clear_challenger", "record_failure"]
    assert "Driftline: canary rolled back" in _subjects(live, url)


def approval(api_url: str, version: int, body: dict[str, Any], *, principal: str | None) -> tuple[int, Any]:
    """POST /v1/models/{model}/versions/{version}/approval; locally the caller is the principal header."""
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json"}
    if principal is not None:
        headers["X-Driftline-Local-Principal"] = principal
    req = urllib.request.Request(
        f"{api_url}/v1/models/{MODEL}/versions/{version}/approval",
        method="POST",
        data=json.dumps(body).encode(),
        headers=headers,
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return int(e.code), json.loads(e.read())


def predict_feedback(api_url: str, labels: list[dict[str, Any]]) -> int:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        f"{api_url}/v1/models/{MODEL}/feedback",
        method="POST",
        data=json.dumps({"labels": labels}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def rejected_manual_approval(live: Story) -> None:
    from driftline.demo.runs import RunFollower
    from driftline.retraining.approvals import (
        ApprovalNotAllowedError,
        ApprovalNotWaitingError,
        pending_approvals,
        resolve_approval,
    )
    from driftline.retraining.requests import request_retrain

    _idle(live)
    champion = _registry(live).aliases(MODEL).champion
    event_id = request_retrain(live.platform, MODEL, "e2e: needs review", "e2e", require_approval=True)
    (d,) = _decisions_for(live, [event_id])
    assert d["decision"] == "started", d
    table = live.platform.name("control")
    deadline = time.monotonic() + 180
    while not pending_approvals(table, MODEL):
        assert time.monotonic() < deadline, "no approval was requested"
        time.sleep(0.5)
    (pending,) = pending_approvals(table, MODEL)
    strict = live.platform.config.model_copy(
        update={"models": (live.platform.config.models[0].model_copy(update={"approvers": ("alice",)}),)}
    )
    with pytest.raises(ApprovalNotAllowedError):
        resolve_approval(MODEL, pending.version, True, "mallory", "ship it", config=strict)
    with pytest.raises(ApprovalNotWaitingError):
        resolve_approval(MODEL, pending.version + 50, False, "alice", "no", config=strict)
    assert _registry(live).get_version(MODEL, pending.version).status == "candidate"  # nothing changed
    # the same decision over HTTPS, through the local gateway and the approve function
    body = {"decision": "reject", "reason": "holdout too small"}
    assert approval(live.facts.api_url, pending.version, body, principal=None)[0] == 403  # unsigned
    assert approval(live.facts.api_url, pending.version + 50, body, principal="alice")[0] == 404
    assert approval(live.facts.api_url, pending.version, {"decision": "maybe"}, principal="alice")[0] == 422
    assert _registry(live).get_version(MODEL, pending.version).status == "candidate"  # nothing changed
    status, answer = approval(live.facts.api_url, pending.version, body, principal="alice")
    assert status == 200, answer
    run = RunFollower(d["execution_arn"])
    assert run.wait_end(60) == "SUCCEEDED"
    assert "Deploy" not in run.entered() and "NotPromoted" in run.entered()
    assert _registry(live).aliases(MODEL).champion == champion
    mv = _registry(live).get_version(MODEL, pending.version)
    assert mv.status == "rejected"
    last = [e for e in _registry(live).audit(MODEL) if e.action == "reject"][-1]
    assert (last.who, last.why, last.version) == ("alice", "holdout too small", pending.version)


def gate_failure(live: Story) -> None:
    """Labels broken upstream (shuffled): the retrained candidate cannot pass the gate."""
    import numpy as np
    import pyarrow as pa

    from driftline.demo.runs import RunFollower
    from driftline.retraining.requests import request_retrain

    _idle(live)
    champion = _registry(live).aliases(MODEL).champion
    table = live._table(3000, ("2026-05-01", "2026-05-31"), 4242, drifted=True)
    labels = np.random.default_rng(0).permutation(table.column("defaulted").to_numpy())
    table = table.set_column(table.schema.get_field_index("defaulted"), "defaulted", pa.array(labels))
    live._upload(table, "shuffled-labels")
    event_id = request_retrain(live.platform, MODEL, "e2e: broken labels", "e2e")
    (d,) = _decisions_for(live, [event_id])
    assert d["decision"] == "started", d
    run = RunFollower(d["execution_arn"])
    assert run.wait_end(240) == "SUCCEEDED"
    gate = run.exited_output("Gate")["gate"]["value"]  # type: ignore[index]
    assert gate["passed"] is False and gate["reasons"]
    assert "Deploy" not in run.entered()
    assert _registry(live).aliases(MODEL).champion == champion
    mv = _registry(live).get_version(MODEL, gate["version"])
    assert mv.status == "rejected" and "quality gate failed" in mv.reason


def bad_input(live: Story) -> None:
    from driftline.retraining.control import ControlTable

    sfn = live.local.client("stepfunctions")  # type: ignore[union-attr]
    sm = f"arn:aws:states:us-east-1:123456789012:stateMachine:{live.platform.name('retrain')}"
    before = len(sfn.list_executions(stateMachineArn=sm)["executions"])
    _put(
        live,
        [
            {
                "Source": "driftline.cli",
                "DetailType": "RetrainRequested",
                "Detail": {"model": "no-such-model", "requested_by": "e2e"},
            },
            {"Source": "driftline.monitoring", "DetailType": "DriftDetected", "Detail": {"version": 1}},
        ],
    )
    control = ControlTable(live.platform.name("control"))
    deadline = time.monotonic() + 60
    while not (control.history("no-such-model") and control.history("_invalid")):
        assert time.monotonic() < deadline, "the bad events were not recorded"
        time.sleep(0.3)
    (unknown,) = control.history("no-such-model")
    assert unknown["decision"] == "rejected" and "unknown model 'no-such-model'" in unknown["reason"]
    assert "'model' is missing" in control.history("_invalid")[0]["reason"]
    assert len(sfn.list_executions(stateMachineArn=sm)["executions"]) == before
