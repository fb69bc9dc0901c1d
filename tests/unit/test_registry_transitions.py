"""Every allowed and refused registry transition, from the pure rules (no table, no moto).

The expected outcomes are written out here, not derived from ``STATUS_CHANGES``: a change to a rule
has to change this table too.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from driftline.registry import transitions as t
from driftline.registry.errors import InvalidTransitionError, NotAllowedError, RegistryError
from driftline.registry.transitions import Slots

LEAD = "arn:aws:iam::111111111111:role/ml-lead"
LEAD_SESSION = "arn:aws:sts::111111111111:assumed-role/ml-lead/alice"

ALLOWED_STATUS_CHANGES = {
    ("approve", "candidate"): "approved",
    ("reject", "candidate"): "rejected",
    ("reject", "approved"): "rejected",
    ("archive", "approved"): "archived",
    ("record_failure", "candidate"): "rejected",
    ("record_failure", "approved"): "rejected",
    ("record_failure", "archived"): "rejected",
}
"""(action, current status) -> new status; every other pair is refused."""


def test_the_tables_name_every_status_and_only_known_ones() -> None:
    assert set(t.STATUSES) == {"candidate", "approved", "rejected", "archived"}
    named = {s for c in t.STATUS_CHANGES.values() for s in (c.to, *c.sources)}
    groups = (
        t.INITIAL_STATUSES,
        t.NOT_SERVING_STATUSES,
        t.PROMOTABLE_STATUSES,
        t.ROLLBACK_STATUSES,
        t.CHALLENGER_STATUSES,
    )
    assert named | set().union(*groups) <= set(t.STATUSES)
    assert set(t.CHALLENGER_MODES) < set(t.TRAFFIC_MODES)


@pytest.mark.parametrize(("action", "current"), list(itertools.product(t.STATUS_CHANGES, t.STATUSES)))
def test_status_changes(action: str, current: str) -> None:
    expected = ALLOWED_STATUS_CHANGES.get((action, current))
    if expected is not None:
        assert t.status_change(action, "m", 3, current) == expected
        return
    with pytest.raises(
        InvalidTransitionError,
        match=rf"cannot {action} 'm' v3: its status is '{current}', "
        rf"and {action} applies only to .* versions",
    ) as e:
        t.status_change(action, "m", 3, current)
    assert e.value.status_code == 409


@pytest.mark.parametrize("action", ["promote", "rollback", "set_challenger", "nonsense"])
def test_actions_that_are_not_status_changes_are_refused(action: str) -> None:
    with pytest.raises(InvalidTransitionError, match="does not change a version's status"):
        t.status_change(action, "m", 1, "candidate")


def test_only_a_failure_record_may_repeat() -> None:
    repeats = {a: (c.repeat_ok, c.to) for a, c in t.STATUS_CHANGES.items() if c.repeat_ok}
    assert repeats == {"record_failure": (True, "rejected")}


@pytest.mark.parametrize(
    ("status", "reason", "ok"),
    [
        ("candidate", "", True),
        ("candidate", "why", True),
        ("rejected", "gate failed", True),
        ("rejected", "", False),
        ("approved", "why", False),
        ("archived", "why", False),
        ("bogus", "", False),
    ],
)
def test_registration(status: str, reason: str, ok: bool) -> None:
    if ok:
        t.check_registration(status, reason)
        return
    with pytest.raises(InvalidTransitionError, match=r"a new version starts as|registered as 'rejected' needs"):
        t.check_registration(status, reason)


@pytest.mark.parametrize(
    ("principal", "allowed", "error"),
    [
        ("bob", None, None),
        ("bob", [], None),
        (LEAD, [LEAD], None),
        (LEAD_SESSION, [LEAD], None),
        ("", None, "needs a principal"),
        ("", [LEAD], "needs a principal"),
        ("bob", [LEAD], "bob may not approve versions of model 'm'"),
        ("arn:aws:sts::222222222222:assumed-role/ml-lead/alice", [LEAD], "may not approve"),
    ],
)
def test_who_may_act(principal: str, allowed: list[str] | None, error: str | None) -> None:
    if error is None:
        t.check_allowed("approve", "m", principal, allowed)
        return
    with pytest.raises(NotAllowedError, match=error) as e:
        t.check_allowed("approve", "m", principal, allowed)
    assert e.value.status_code == 403


def test_a_change_needs_a_reason() -> None:
    t.check_reason("promote", "m", "better auc")
    with pytest.raises(InvalidTransitionError, match=r"^promote of 'm' needs a reason \(--reason\)$"):
        t.check_reason("promote", "m", "")
    with pytest.raises(InvalidTransitionError, match=r"^reject of 'm' v4 needs a reason"):
        t.check_reason("reject", "m", "", 4)


SERVING = Slots(champion=1, challenger=2, traffic_mode="canary", traffic_percent=10)


@pytest.mark.parametrize(
    ("new", "version", "error"),
    [
        (new, version, (f"current {role}" if new in ("rejected", "archived") and role else None))
        for new in t.STATUSES
        for version, role in ((1, "champion"), (2, "challenger"), (3, None))
    ],
)
def test_a_serving_version_never_leaves_service(new: str, version: int, error: str | None) -> None:
    assert t.leaves_service(new) is (new in ("rejected", "archived"))
    if error is None:
        t.check_not_serving("reject", "m", version, new, SERVING)
        return
    fix = "roll back or promote another version" if version == 1 else "clear the challenger"
    with pytest.raises(InvalidTransitionError, match=f"{error}; {fix} first"):
        t.check_not_serving("reject", "m", version, new, SERVING)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        ("approved", None),
        ("candidate", "approve it first"),
        ("rejected", "cannot become champion"),
        ("archived", "cannot become champion"),
    ],
)
def test_promotion(status: str, error: str | None) -> None:
    if error is None:
        t.check_promotion("m", 3, status)
        return
    with pytest.raises(InvalidTransitionError, match=f"cannot promote 'm' v3: its status is '{status}'; .*{error}"):
        t.check_promotion("m", 3, status)


def test_the_champion_is_not_made_champion_again() -> None:
    t.check_new_champion("m", 2, SERVING)
    with pytest.raises(InvalidTransitionError, match="'m' v1 is already the champion"):
        t.check_new_champion("m", 1, SERVING)


@pytest.mark.parametrize(
    ("history", "to_version", "expected"),
    [
        ([], 4, 4),
        ([1, 2], 7, 7),
        ([1, 2], None, 1),
        ([3, 1, 2], None, 1),
        ([], None, None),
        ([5], None, None),
    ],
)
def test_rollback_target(history: list[int], to_version: int | None, expected: int | None) -> None:
    if expected is not None:
        assert t.rollback_target("m", history, to_version) == expected
        return
    with pytest.raises(
        InvalidTransitionError,
        match=r"no previous champion to roll back to \(champion history: " + (r"empty" if not history else r"\[5\]"),
    ):
        t.rollback_target("m", history, to_version)


@pytest.mark.parametrize(
    ("status", "ok"), [("approved", True), ("archived", True), ("candidate", False), ("rejected", False)]
)
def test_rollback_needs_a_version_that_may_serve(status: str, ok: bool) -> None:
    if ok:
        t.check_rollback("m", 2, status)
        return
    with pytest.raises(InvalidTransitionError, match="only approved or archived versions can serve"):
        t.check_rollback("m", 2, status)


@pytest.mark.parametrize(
    ("mode", "percent", "error"),
    [
        ("shadow", 0, None),
        ("shadow", 100, None),
        ("canary", 1, None),
        ("canary", 100, None),
        ("canary", 0, "percent"),
        ("canary", 101, "percent"),
        ("shadow", -1, "percent"),
        ("canary", 10.0, "percent"),
        ("canary", "10", "percent"),
        ("none", 0, "mode"),
        ("blue-green", 10, "mode"),
    ],
)
def test_challenger_policy(mode: str, percent: Any, error: str | None) -> None:
    if error is None:
        t.check_challenger_policy(mode, percent)
        return
    with pytest.raises(InvalidTransitionError, match=f"challenger {error} must be"):
        t.check_challenger_policy(mode, percent)


@pytest.mark.parametrize(
    ("status", "ok"), [("candidate", True), ("approved", True), ("rejected", False), ("archived", False)]
)
def test_challenger_status(status: str, ok: bool) -> None:
    if ok:
        t.check_challenger("m", 3, status)
        return
    with pytest.raises(InvalidTransitionError, match=f"cannot make 'm' v3 challenger: its status is '{status}'"):
        t.check_challenger("m", 3, status)


def test_the_champion_cannot_be_the_challenger_too() -> None:
    t.check_challenger_slot("m", 3, SERVING)
    with pytest.raises(InvalidTransitionError, match="is the champion; it cannot also be the challenger"):
        t.check_challenger_slot("m", 1, SERVING)


@pytest.mark.parametrize(
    ("slots", "version", "expected"),
    [
        (SERVING, 2, Slots(2, None, "none", 0)),  # the challenger is promoted: no more split
        (SERVING, 3, Slots(3, 2, "canary", 10)),  # another version: the challenger keeps its policy
        (Slots(None, None), 1, Slots(1, None, "none", 0)),  # the first champion
    ],
)
def test_the_slots_after_a_new_champion(slots: Slots, version: int, expected: Slots) -> None:
    assert t.with_champion(slots, version) == expected


def test_the_slots_with_and_without_a_challenger() -> None:
    assert t.with_challenger(Slots(1, None), 4, "shadow", 0) == Slots(1, 4, "shadow", 0)
    assert t.with_challenger(SERVING, 4, "shadow", 50) == Slots(1, 4, "shadow", 50)
    assert t.without_challenger(SERVING) == Slots(1, None, "none", 0)
    assert t.without_challenger(Slots(1, None, "shadow", 0)) == Slots(1, None, "none", 0)
    assert t.without_challenger(Slots(1, None)) is None  # nothing to clear: nothing written


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ([], []),
        ([("promote", 1, 1, "a"), ("promote", 2, 2, "b"), ("promote", 3, 3, "c")], [1, 2, 3]),
        ([("promote", 1, 1, "a"), ("promote", 2, 2, "b"), ("rollback", 1, 3, "c")], [1]),
        ([("promote", 3, 3, "c"), ("promote", 1, 1, "a"), ("promote", 2, 2, "b")], [1, 2, 3]),  # by revision
        ([("promote", 1, 1, "a"), ("rollback", 5, 2, "b")], [1, 5]),  # a rollback to a never-champion pushes
        (
            [
                ("promote", 1, 1, "a"),
                ("promote", 2, 2, "b"),
                ("promote", 3, 3, "c"),
                ("rollback", 2, 4, "d"),
                ("promote", 4, 5, "e"),
            ],
            [1, 2, 4],
        ),
    ],
)
def test_champion_history_replay(changes: list[tuple[str, int, int, str]], expected: list[int]) -> None:
    assert t.replay_champions(changes) == expected


def test_gate_refusal_is_the_registrys() -> None:
    class V:
        model, version, status = "m", 2, "candidate"

    failed = {"passed": False, "reasons": ["auc 0.6 < floor 0.7"]}
    assert t.gate_refusal("approve", V(), {"passed": True}, False) is None
    assert t.gate_refusal("approve", V(), failed, True) is None
    assert t.gate_refusal("approve", V(), None, False) is None
    msg = t.gate_refusal("approve", V(), failed, False)
    assert msg is not None and msg.startswith("cannot approve 'm' v2: it failed the quality gate")


def test_the_store_reexports_the_rules_and_errors() -> None:
    from driftline.registry import store

    assert store.gate_refusal is t.gate_refusal and store.principal_matches is t.principal_matches
    assert store.InvalidTransitionError is InvalidTransitionError and issubclass(store.NotAllowedError, RegistryError)
    assert store.STATUSES == t.STATUSES and store.TRAFFIC_MODES == t.TRAFFIC_MODES
