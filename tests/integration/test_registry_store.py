"""Registry behaviour against moto's DynamoDB (real boto3 calls)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from driftline.registry.artifacts import ArtifactRef
from driftline.registry.store import (
    ConcurrentUpdateError,
    InvalidTransitionError,
    NotAllowedError,
    QualityGateFailedError,
    Registry,
    UnknownModelError,
    UnknownVersionError,
)


@pytest.fixture(scope="module")
def _registry_table(platform_def: Any) -> Iterator[str]:
    """One moto registry table for the module (provisioning the whole platform per test costs seconds).

    Tests stay independent by using a fresh model name each (``MODEL`` fixture).
    """
    from moto import mock_aws

    from driftline import aws as aws_mod

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        aws_mod.reset_clients()
        with mock_aws():
            name = platform_def.name("registry")
            aws_mod.client("dynamodb").create_table(
                TableName=name,
                BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
            )
            yield name
        aws_mod.reset_clients()


@pytest.fixture
def reg(_registry_table: str) -> Registry:
    return Registry(_registry_table)


@pytest.fixture
def MODEL() -> str:
    return f"m-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def serialized_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto handle one DynamoDB request at a time, as DynamoDB itself linearizes each request.

    moto's in-process transactions are not thread-safe (they deep-copy tables another thread is
    writing). Only whole requests are serialized, so our read -> conditional write sequences still
    interleave across threads: exactly the race the registry must survive.
    """
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with lock:
            return original(self)

    monkeypatch.setattr(DynamoHandler, "call_action", call_action)


def _register(reg: Registry, model: str, **kw: Any) -> int:
    art = ArtifactRef(uri=f"s3://bucket/models/{model}/vX/model.onnx", sha256="ab" * 32, version_id="v1", size=3)
    mv = reg.register(
        model,
        algorithm="hist_gradient_boosting",
        params={"max_iter": 10},
        metrics={"roc_auc": 0.8},
        input_schema={"features": []},
        feature_set="credit_default",
        feature_set_version=1,
        feature_set_fingerprint="f" * 16,
        artifacts={"onnx": art},
        lineage={"parent_version": None},
        trigger="manual",
        **kw,
    )
    return mv.version


def _approved(reg: Registry, model: str, n: int) -> list[int]:
    versions = [_register(reg, model) for _ in range(n)]
    for v in versions:
        reg.approve(model, v, "alice", "looks good")
    return versions


def test_register_assigns_increasing_versions_and_round_trips(reg: Registry, MODEL: str) -> None:
    v1, v2 = _register(reg, MODEL), _register(reg, MODEL)
    assert (v1, v2) == (1, 2)
    mv = reg.get_version(MODEL, 2)
    assert mv.status == "candidate"
    assert mv.metrics == {"roc_auc": 0.8}
    assert mv.params == {"max_iter": 10}
    assert mv.artifacts["onnx"].version_id == "v1"
    assert mv.feature_set_fingerprint == "f" * 16
    assert [m.version for m in reg.list_versions(MODEL)] == [1, 2]
    assert MODEL in reg.list_models()
    al = reg.aliases(MODEL)
    assert (al.champion, al.challenger, al.revision) == (None, None, 0)
    assert al.traffic == {"mode": "none", "percent": 0}


def test_registering_the_same_number_twice_is_refused(reg: Registry, MODEL: str) -> None:
    v = reg.next_version(MODEL)
    reg.register(MODEL, version=v)
    with pytest.raises(InvalidTransitionError, match="already registered"):
        reg.register(MODEL, version=v)


def test_unknown_model_and_version_errors(reg: Registry, MODEL: str) -> None:
    with pytest.raises(UnknownModelError, match="not in the registry") as e:
        reg.aliases("nope")
    assert e.value.status_code == 404
    with pytest.raises(UnknownModelError):
        reg.get_version("nope", 1)
    _register(reg, MODEL)
    with pytest.raises(UnknownVersionError, match="no version 7"):
        reg.get_version(MODEL, 7)


def test_approve_promote_and_audit_trail(reg: Registry, MODEL: str) -> None:
    v = _register(reg, MODEL)
    with pytest.raises(InvalidTransitionError, match="approve it first"):
        reg.promote(MODEL, v, "alice", "ship it")
    reg.approve(MODEL, v, "alice", "metrics fine")
    al = reg.promote(MODEL, v, "bob", "ship it")
    assert (al.champion, al.revision) == (v, 1)
    assert reg.aliases(MODEL).champion == v
    trail = reg.audit(MODEL)
    assert [(e.action, e.who, e.version, e.why) for e in trail] == [
        ("register", "driftline", v, "registered as candidate"),
        ("approve", "alice", v, "metrics fine"),
        ("promote", "bob", v, "ship it"),
    ]
    assert trail[2].details["previous_champion"] is None
    assert all(e.ts for e in trail)


def test_approvals_restricted_to_configured_principals(reg: Registry, MODEL: str) -> None:
    v = _register(reg, MODEL)
    lead = "arn:aws:iam::111111111111:role/ml-lead"
    with pytest.raises(NotAllowedError, match="may not approve") as e:
        reg.approve(MODEL, v, "arn:aws:iam::111111111111:user/mallory", "me", allowed=[lead])
    assert e.value.status_code == 403
    assert reg.get_version(MODEL, v).status == "candidate"
    session = "arn:aws:sts::111111111111:assumed-role/ml-lead/alice"
    assert reg.approve(MODEL, v, session, "ok", allowed=[lead]).status == "approved"
    with pytest.raises(NotAllowedError):
        reg.promote(MODEL, v, "arn:aws:iam::111111111111:user/mallory", "me", allowed=[lead])


def test_rejected_versions_never_serve(reg: Registry, MODEL: str) -> None:
    v = _register(reg, MODEL)
    reg.reject(MODEL, v, "alice", "leaks the label")
    assert reg.get_version(MODEL, v).reason == "leaks the label"
    with pytest.raises(InvalidTransitionError, match="'rejected'"):
        reg.promote(MODEL, v, "alice", "try anyway")
    with pytest.raises(InvalidTransitionError):
        reg.approve(MODEL, v, "alice", "changed my mind")
    with pytest.raises(InvalidTransitionError):
        reg.set_challenger(MODEL, v, "canary", 10)


def test_champion_cannot_be_rejected_and_reason_is_required(reg: Registry, MODEL: str) -> None:
    (v,) = _approved(reg, MODEL, 1)
    reg.promote(MODEL, v, "alice", "first")
    with pytest.raises(InvalidTransitionError, match="current champion"):
        reg.reject(MODEL, v, "alice", "oops")
    with pytest.raises(InvalidTransitionError, match="needs a reason"):
        reg.approve(MODEL, _register(reg, MODEL), "alice", "")


def test_challenger_then_promotion_clears_the_split(reg: Registry, MODEL: str) -> None:
    v1, v2 = _approved(reg, MODEL, 2)
    reg.promote(MODEL, v1, "alice", "first")
    al = reg.set_challenger(MODEL, v2, "canary", 20, principal="workflow", reason="canary")
    assert (al.champion, al.challenger, al.traffic) == (v1, v2, {"mode": "canary", "percent": 20})
    with pytest.raises(InvalidTransitionError, match="percent"):
        reg.set_challenger(MODEL, v2, "canary", 0)
    with pytest.raises(InvalidTransitionError, match="mode"):
        reg.set_challenger(MODEL, v2, "blue-green", 5)
    with pytest.raises(InvalidTransitionError, match="is the champion"):
        reg.set_challenger(MODEL, v1, "shadow", 100)
    al = reg.promote(MODEL, v2, "workflow", "canary healthy")
    assert (al.champion, al.challenger, al.traffic_mode) == (v2, None, "none")
    stored = reg.aliases(MODEL, consistent=True)
    assert (stored.champion, stored.challenger, stored.revision) == (v2, None, 3)


def test_clear_challenger_is_audited_and_idempotent(reg: Registry, MODEL: str) -> None:
    v1, v2 = _approved(reg, MODEL, 2)
    reg.promote(MODEL, v1, "alice", "first")
    reg.set_challenger(MODEL, v2, "shadow", 100)
    al = reg.clear_challenger(MODEL, principal="workflow", reason="canary breached error rate")
    assert (al.challenger, al.traffic_mode, al.champion) == (None, "none", v1)
    assert reg.clear_challenger(MODEL).revision == al.revision
    actions = [e.action for e in reg.audit(MODEL)]
    assert actions.count("clear_challenger") == 1
    assert actions.count("set_challenger") == 1


def test_rollback_walks_back_the_champion_history(reg: Registry, MODEL: str) -> None:
    v1, v2, v3 = _approved(reg, MODEL, 3)
    for v in (v1, v2, v3):
        reg.promote(MODEL, v, "alice", f"v{v}")
    assert reg.champion_history(MODEL) == [v1, v2, v3]
    assert reg.rollback(MODEL, "bob", "v3 misbehaves").champion == v2
    assert reg.rollback(MODEL, "bob", "v2 too").champion == v1
    with pytest.raises(InvalidTransitionError, match="no previous champion"):
        reg.rollback(MODEL, "bob", "again")
    assert reg.rollback(MODEL, "bob", "explicit", to_version=v3).champion == v3
    last = reg.audit(MODEL)[-1]
    assert (last.action, last.version, last.details["previous_champion"]) == ("rollback", v3, v1)


def test_record_failure_rejects_with_reason(reg: Registry, MODEL: str) -> None:
    v = _register(reg, MODEL)
    mv = reg.record_failure(MODEL, v, "quality gate: roc_auc 0.55 < 0.65")
    assert (mv.status, mv.reason) == ("rejected", "quality gate: roc_auc 0.55 < 0.65")
    again = reg.record_failure(MODEL, v, "second failure")
    assert again.reason == "quality gate: roc_auc 0.55 < 0.65"
    assert [e.action for e in reg.audit(MODEL)].count("record_failure") == 2


def test_expected_revision_detects_a_stale_read(reg: Registry, MODEL: str) -> None:
    v1, v2 = _approved(reg, MODEL, 2)
    stale = reg.aliases(MODEL, consistent=True).revision
    reg.promote(MODEL, v1, "alice", "first")
    with pytest.raises(ConcurrentUpdateError, match="lost a race"):
        reg.promote(MODEL, v2, "bob", "second", expected_revision=stale)
    assert reg.aliases(MODEL, consistent=True).champion == v1


def test_concurrent_promotions_leave_exactly_one_champion(reg: Registry, MODEL: str, serialized_dynamodb: None) -> None:
    n = 8
    versions = _approved(reg, MODEL, n)
    start = reg.aliases(MODEL, consistent=True).revision
    barrier = threading.Barrier(n)
    won: list[int] = []
    lost: list[int] = []
    lock = threading.Lock()

    def attempt(v: int) -> None:
        barrier.wait()
        try:
            reg.promote(MODEL, v, f"user-{v}", "race", expected_revision=start)
        except ConcurrentUpdateError:
            with lock:
                lost.append(v)
        else:
            with lock:
                won.append(v)

    threads = [threading.Thread(target=attempt, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == n - 1
    al = reg.aliases(MODEL, consistent=True)
    assert al.champion == won[0]
    assert al.revision == start + 1
    promotions = [e for e in reg.audit(MODEL) if e.action == "promote"]
    assert [e.version for e in promotions] == won


def test_concurrent_promotions_with_retries_lose_no_update(
    reg: Registry, MODEL: str, serialized_dynamodb: None
) -> None:
    """Every thread retries until it wins once: the audit chain must link every change to the previous one."""
    n = 6
    versions = _approved(reg, MODEL, n)
    barrier = threading.Barrier(n)

    def attempt(v: int) -> None:
        barrier.wait()
        while True:
            try:
                reg.promote(MODEL, v, f"user-{v}", "race")
                return
            except ConcurrentUpdateError:
                continue

    threads = [threading.Thread(target=attempt, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    promotions = sorted((e for e in reg.audit(MODEL) if e.action == "promote"), key=lambda e: e.details["revision"])
    assert sorted(e.version or 0 for e in promotions) == versions  # every promotion recorded once
    assert [e.details["revision"] for e in promotions] == list(range(1, n + 1))
    previous = None
    for e in promotions:  # each change saw the state the previous change wrote
        assert e.details["previous_champion"] == previous
        previous = e.version
    al = reg.aliases(MODEL, consistent=True)
    assert (al.champion, al.revision) == (previous, n)


def test_aliases_is_one_get_item_even_for_unknown_models(reg: Registry, MODEL: str) -> None:
    """Serving polls aliases(); an unknown model name must not turn into a Scan."""
    from driftline import aws as aws_mod

    calls: list[str] = []

    def count(model: Any, **_: Any) -> None:
        calls.append(model.name)

    client = aws_mod.client("dynamodb")
    client.meta.events.register("before-call.dynamodb.*", count)
    try:
        with pytest.raises(UnknownModelError):
            reg.aliases("never-registered")
        assert calls == ["GetItem"]
        _register(reg, MODEL)
        calls.clear()
        reg.aliases(MODEL)
        assert calls == ["GetItem"]
    finally:
        client.meta.events.unregister("before-call.dynamodb.*", count)


# ---- the quality gate binds approve and promote (recorded outcome, or one the caller evaluated)
FAILED_GATE = {
    "passed": False,
    "reasons": ["rmse 35.0000 > ceiling 10.0000"],
    "summary": "quality gate failed",
    "checks": [],
    "champion_version": None,
    "comparison": "no_champion",
    "evaluated_by": "run r1",
    "evaluated_at": "2026-12-01T00:00:00+00:00",
}
PASSED_GATE = {**FAILED_GATE, "passed": True, "reasons": [], "summary": "quality gate passed"}


def test_recorded_failed_gate_refuses_approve_and_promote_unless_overridden(reg: Registry, MODEL: str) -> None:
    v = _register(reg, MODEL)
    mv = reg.record_gate(MODEL, v, FAILED_GATE)
    assert mv.gate == FAILED_GATE and mv.status == "candidate"
    gate_entry = reg.audit(MODEL)[-1]
    assert (gate_entry.action, gate_entry.version, gate_entry.details["passed"]) == ("gate", v, False)
    with pytest.raises(
        QualityGateFailedError,
        match=r"cannot approve .* v1: it failed the quality gate "
        r"\(with no champion to compare with, evaluated by run r1\): "
        r"rmse 35.0000 > ceiling 10.0000; .*--override-gate",
    ) as e:
        reg.approve(MODEL, v, "alice", "looks fine")
    assert e.value.status_code == 409
    assert reg.get_version(MODEL, v).status == "candidate"  # nothing changed
    assert [x.action for x in reg.audit(MODEL)] == ["register", "gate"]
    # a passing outcome supplied by the caller never overrides the recorded failure
    with pytest.raises(QualityGateFailedError):
        reg.approve(MODEL, v, "alice", "looks fine", gate=PASSED_GATE)

    reg.approve(MODEL, v, "alice", "business accepts the error for launch", override_gate=True)
    approve = reg.audit(MODEL)[-1]
    assert (approve.action, approve.who, approve.why) == ("approve", "alice", "business accepts the error for launch")
    assert approve.details["gate_override"] == {
        "reason": "business accepts the error for launch",
        "failed": ["rmse 35.0000 > ceiling 10.0000"],
    }
    assert approve.details["gate"]["passed"] is False

    with pytest.raises(QualityGateFailedError, match=r"cannot promote .*--override-gate"):
        reg.promote(MODEL, v, "alice", "ship it")
    assert reg.aliases(MODEL).champion is None
    reg.promote(MODEL, v, "alice", "ship it anyway", override_gate=True)
    promote = reg.audit(MODEL)[-1]
    assert promote.action == "promote" and promote.details["gate_override"]["reason"] == "ship it anyway"
    assert reg.aliases(MODEL).champion == v


def test_caller_evaluated_gate_is_stored_with_the_approval(reg: Registry, MODEL: str) -> None:
    v = _register(reg, MODEL)
    with pytest.raises(QualityGateFailedError):
        reg.approve(MODEL, v, "alice", "ok", gate=FAILED_GATE)
    assert reg.get_version(MODEL, v).gate == {}  # a refused attempt records no verdict
    mv = reg.approve(MODEL, v, "alice", "ok", gate=PASSED_GATE)
    assert mv.gate == PASSED_GATE and mv.status == "approved"
    assert reg.audit(MODEL)[-1].details["gate"] == {
        "passed": True,
        "champion_version": None,
        "comparison": "no_champion",
        "evaluated_by": "run r1",
    }
    assert "gate_override" not in reg.audit(MODEL)[-1].details
    reg.promote(MODEL, v, "alice", "ship it")
    assert reg.aliases(MODEL).champion == v


def test_promote_stores_a_caller_evaluated_gate_in_the_same_transaction(reg: Registry, MODEL: str) -> None:
    v = _register(reg, MODEL)
    reg.approve(MODEL, v, "alice", "approved before gates were recorded")  # no outcome at all
    with pytest.raises(QualityGateFailedError, match="cannot promote"):
        reg.promote(MODEL, v, "alice", "ship", gate=FAILED_GATE)
    assert reg.get_version(MODEL, v).gate == {} and reg.aliases(MODEL).champion is None
    reg.promote(MODEL, v, "alice", "ship", gate=PASSED_GATE)
    assert reg.get_version(MODEL, v).gate == PASSED_GATE and reg.aliases(MODEL).champion == v


def test_record_event_appends_an_audit_entry_only(reg: Registry, MODEL: str) -> None:
    v = _register(reg, MODEL)
    reg.record_event(MODEL, v, "canary_inconclusive", "too little traffic", {"rows": 0})
    entry = reg.audit(MODEL)[-1]
    assert (entry.action, entry.version, entry.why, entry.details) == (
        "canary_inconclusive",
        v,
        "too little traffic",
        {"rows": 0},
    )
    assert reg.get_version(MODEL, v).status == "candidate"
    with pytest.raises(UnknownVersionError):
        reg.record_gate(MODEL, 99, PASSED_GATE)
