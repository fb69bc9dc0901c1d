"""Interrupted executions: where each was (from the control table), and resuming or dismissing one
(driftline/local/resume.py) against in-memory stand-ins of the control table, registry and bus."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from driftline.control_items import ApprovalRequest
from driftline.local.resume import (
    APPROVAL_STEP,
    Interrupted,
    NotResumableError,
    ResumeError,
    dismiss,
    locate,
    resume,
)

ROOT = Path(__file__).resolve().parents[2]
MODEL = "credit-default"
ARN = "arn:aws:states:us-east-1:123456789012:execution:dev-driftline-retrain:manual-1"
NEW_ARN = "arn:aws:states:us-east-1:123456789012:execution:dev-driftline-retrain:manual-2"
RECORD = {
    "arn": ARN,
    "machine": "arn:aws:states:us-east-1:123456789012:stateMachine:dev-driftline-retrain",
    "started": 100.0,
    "interrupted": 200.0,
    "input": json.dumps({"model": MODEL, "trigger": "manual"}),
}


def _approval(version: int, arn: str = ARN) -> ApprovalRequest:
    return ApprovalRequest(
        model=MODEL,
        version=version,
        task_token="dead-token",
        execution_arn=arn,
        requested_at="2026-12-03T00:00:00+00:00",
        timeout_seconds=3600,
        summary="passed",
        expires_at=0,
    )


@dataclass
class Store:
    """ControlStore's approval and history reads, in memory."""

    approval_items: dict[tuple[str, int], ApprovalRequest] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)  # newest first, as retrain_history

    def approvals(self, model: str) -> list[ApprovalRequest]:
        return [a for (m, _), a in sorted(self.approval_items.items()) if m == model]

    def approval(self, model: str, version: int) -> ApprovalRequest | None:
        return self.approval_items.get((model, version))

    def delete_approval(self, model: str, version: int) -> None:
        self.approval_items.pop((model, version), None)

    def retrain_history(self, model: str, limit: int, kind: str | None) -> list[dict[str, Any]]:
        return [s for s in self.steps if kind in (None, s.get("kind"))][:limit]


@dataclass
class Control:
    """ControlTable's lock release and decision log; ``decide`` is what the retrain-trigger records."""

    locks: dict[str, str] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def release(self, model: str, holder: str) -> bool:
        if self.locks.get(model) == holder:
            del self.locks[model]
            return True
        return False

    def history(self, model: str, limit: int = 50, kind: str | None = None) -> list[dict[str, Any]]:
        return list(self.decisions)


@dataclass
class Version:
    status: str


@dataclass
class Registry:
    statuses: dict[int, str]

    def get_version(self, model: str, version: int) -> Version:
        return Version(self.statuses[version])


def _step(action: str, version: int | None, *, arn: str = ARN, error: str | None = None) -> dict[str, Any]:
    out = None if error else ({"version": version} if version is not None else {})
    return {
        "kind": "step",
        "action": action,
        "execution_arn": arn,
        "payload": {"input": {}, "output": out},
        "error": error,
    }


def test_a_run_holding_an_approval_item_was_waiting_for_that_version() -> None:
    found = locate(RECORD, Store(approval_items={(MODEL, 3): _approval(3), (MODEL, 4): _approval(4, NEW_ARN)}))
    assert (found.waiting_for_approval, found.version, found.name) == (True, 3, "manual-1")
    assert found.where() == f"waiting for approval of {MODEL} v3"
    assert found.to_dict()["resumable"] is True


def test_without_the_item_the_newest_step_record_of_that_run_says_where_it_was() -> None:
    steps = [_step("gate", 9, arn=NEW_ARN), _step(APPROVAL_STEP, 5), _step("gate", 5), _step("train", 5)]
    found = locate(RECORD, Store(steps=steps))
    assert (found.last_step, found.version, found.waiting_for_approval) == (APPROVAL_STEP, 5, True)

    failed = locate(RECORD, Store(steps=[_step(APPROVAL_STEP, None, error="boom"), _step("gate", 5)]))
    assert failed.waiting_for_approval is False and failed.version == 5
    assert failed.where() == f"after step {APPROVAL_STEP} (failed) of {MODEL} v5"

    training = locate(RECORD, Store(steps=[_step("validate", None)]))
    assert training.where() == "after step validate" and not training.waiting_for_approval
    assert locate(RECORD, Store()).where() == "before its first recorded step"
    assert locate({"arn": ARN, "input": "not json"}, Store()).where() == "state unknown"


def _waiting() -> Interrupted:
    return locate(RECORD, Store(approval_items={(MODEL, 3): _approval(3)}))


def test_resume_supersedes_the_dead_token_releases_the_lock_and_asks_again_through_the_bus() -> None:
    store = Store(approval_items={(MODEL, 3): _approval(3)})
    control = Control(locks={MODEL: ARN})
    published: list[dict[str, Any]] = []

    def publish(detail: dict[str, Any]) -> str:
        published.append(detail)
        # while the item is gone and the lock free, the retrain-trigger decides
        assert (MODEL, 3) not in store.approval_items and MODEL not in control.locks
        control.decisions.append({"trigger_id": "other", "decision": "skipped"})
        control.decisions.append({"trigger_id": "evt-1", "decision": "started", "execution_arn": NEW_ARN})
        return "evt-1"

    out = resume(
        _waiting(),
        store=store,
        control=control,
        registry=Registry({3: "candidate"}),
        publish=publish,
        requested_by="alice",
        poll_s=0.01,
    )
    assert out.execution_arn == NEW_ARN and out.event_id == "evt-1"
    (detail,) = published
    assert detail["model"] == MODEL and detail["version"] == 3
    assert detail["require_approval"] is True and detail["requested_by"] == "alice"
    assert "manual-1" in detail["reason"]
    assert out.to_dict()["resumed_as"] == NEW_ARN


def test_resume_leaves_another_runs_approval_item_and_lock_alone() -> None:
    store = Store(approval_items={(MODEL, 3): _approval(3, NEW_ARN)})
    control = Control(locks={MODEL: NEW_ARN})
    found = locate(RECORD, Store(steps=[_step(APPROVAL_STEP, 3)]))

    def publish(detail: dict[str, Any]) -> str:
        control.decisions.append({"trigger_id": "e", "decision": "skipped", "reason": "run manual-2 is in progress"})
        return "e"

    with pytest.raises(ResumeError, match=r"did not start the resumed run.*skipped: run manual-2 is in progress"):
        resume(
            found, store=store, control=control, registry=Registry({3: "candidate"}), publish=publish, requested_by="a"
        )
    assert store.approval(MODEL, 3) is not None and control.locks == {MODEL: NEW_ARN}


@pytest.mark.parametrize(
    ("found", "statuses", "message"),
    [
        (
            locate(RECORD, Store(steps=[_step("train", 2)])),
            {2: "candidate"},
            "only a run waiting for a manual approval",
        ),
        (locate(RECORD, Store()), {}, "before its first recorded step"),
        (_waiting(), {3: "approved"}, "v3 is approved now, not a candidate"),
    ],
)
def test_resume_refuses_what_cannot_be_asked_again_and_changes_nothing(
    found: Interrupted, statuses: dict[int, str], message: str
) -> None:
    store = Store(approval_items={(MODEL, 3): _approval(3)})
    control = Control(locks={MODEL: ARN})

    def publish(detail: dict[str, Any]) -> str:
        raise AssertionError("nothing may be published")

    with pytest.raises(NotResumableError, match=message) as refused:
        resume(found, store=store, control=control, registry=Registry(statuses), publish=publish, requested_by="a")
    assert "driftline local dismiss manual-1" in str(refused.value)
    assert store.approval(MODEL, 3) is not None and control.locks == {MODEL: ARN}


def test_resume_without_a_decision_in_time_says_so() -> None:
    with pytest.raises(ResumeError, match="no decision on the resume request"):
        resume(
            _waiting(),
            store=Store(),
            control=Control(),
            registry=Registry({3: "candidate"}),
            publish=lambda detail: "evt",
            requested_by="a",
            timeout_s=0.05,
            poll_s=0.01,
        )


def test_dismiss_removes_the_dead_token_and_the_stale_lock() -> None:
    store = Store(approval_items={(MODEL, 3): _approval(3), (MODEL, 4): _approval(4, NEW_ARN)})
    control = Control(locks={MODEL: ARN})
    dismiss(_waiting(), store=store, control=control)
    assert list(store.approval_items) == [(MODEL, 4)] and control.locks == {}


def test_status_shows_the_bare_record_when_cdk_json_cannot_be_read(tmp_path: Path) -> None:
    from driftline.cli.local import _located
    from driftline.local.state import PlatformState

    broken = tmp_path / "cdk.json"
    broken.write_text("{not json")
    state = PlatformState(
        pid=1, pgid=1, host="127.0.0.1", port=1, api_port=2, started_at=0.0, status="ready", env="dev",
        config=str(broken), region="us-east-1", account="123456789012", prefix="dev-driftline",
    )  # fmt: skip
    (found,) = _located(state, [RECORD])
    assert (found.name, found.model, found.version) == ("manual-1", MODEL, None)
    assert found.where() == "before its first recorded step"


class _Kept:
    """Persistence's interrupted-execution records, in memory."""

    def __init__(self) -> None:
        self.listed = {ARN: {**RECORD, "name": "manual-1"}}

    def interrupted(self) -> list[dict[str, Any]]:
        return list(self.listed.values())

    def resolve(self, arn: str, resolution: str, detail: str = "") -> dict[str, Any]:
        from driftline.local.persistence import RESOLUTIONS, UnknownExecutionError

        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {', '.join(RESOLUTIONS)}, got {resolution!r}")
        if arn not in self.listed:
            raise UnknownExecutionError(f"no interrupted execution {arn!r}")
        return {**self.listed.pop(arn), "ended": True, "resolution": resolution, "detail": detail}


@pytest.mark.parametrize(
    ("body", "code", "said"),
    [
        (b"not json", 400, "expected a JSON body with 'arn', 'resolution'"),
        (b"[1]", 400, "expected a JSON body"),
        (b'{"arn": "x"}', 400, "expected a JSON body"),
        (json.dumps({"arn": ARN, "resolution": "forgotten"}).encode(), 400, "resolution must be one of"),
        (json.dumps({"arn": "arn:nope", "resolution": "dismissed"}).encode(), 404, "no interrupted execution"),
    ],
)
def test_the_resolve_endpoint_answers_hostile_bodies_precisely(
    tmp_path: Path, body: bytes, code: int, said: str
) -> None:
    from driftline import config
    from driftline.local.runtime import LocalOptions, LocalPlatform
    from driftline.platform import build_platform

    local = LocalPlatform(build_platform(config.load(ROOT / "cdk.json")), LocalOptions(state_dir=tmp_path))
    local.persistence = _Kept()
    status, doc = local._control("POST", "/_driftline/interrupted", body)
    assert status == code and said in doc["error"], doc
    assert [e["arn"] for e in local.status()["interrupted"]] == [ARN]  # nothing resolved

    resolved = local._control(
        "POST", "/_driftline/interrupted", json.dumps({"arn": ARN, "resolution": "resumed", "detail": NEW_ARN}).encode()
    )
    assert resolved == (200, {**RECORD, "name": "manual-1", "ended": True, "resolution": "resumed", "detail": NEW_ARN})
    assert local.status()["interrupted"] == []
    local.persistence = None  # --in-memory: nothing is kept, nothing can be interrupted
    assert local._control("POST", "/_driftline/interrupted", body)[0] == 409
