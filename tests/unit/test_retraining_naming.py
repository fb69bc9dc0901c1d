"""Execution names: identical triggers in one cooldown window collapse; distinct requests do not."""

from __future__ import annotations

import re

import pytest

from driftline.retraining.naming import MAX_NAME, cooldown_bucket, execution_arn, execution_name

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z, aligned to 30 minutes


def test_bucket_is_aligned_window_start() -> None:
    assert cooldown_bucket(T0, 30) == T0
    assert cooldown_bucket(T0 + 29 * 60 + 59, 30) == T0
    assert cooldown_bucket(T0 + 30 * 60, 30) == T0 + 1800
    with pytest.raises(ValueError, match="positive"):
        cooldown_bucket(T0, 0)


def test_automatic_triggers_in_one_window_share_a_name() -> None:
    a = execution_name("credit-default", "drift", "event-1", T0 + 10, 30)
    b = execution_name("credit-default", "labels", "event-2", T0 + 1700, 30)
    c = execution_name("credit-default", "schedule", "x", T0 + 1799, 30)
    assert a == b == c == "credit-default-auto-20270115T0800Z"


def test_next_window_gets_a_new_name() -> None:
    a = execution_name("m", "drift", "e", T0, 30)
    b = execution_name("m", "drift", "e", T0 + 1800, 30)
    assert a != b


def test_manual_names_follow_the_event_id() -> None:
    a = execution_name("m", "manual", "event-1", T0, 30)
    assert a == execution_name("m", "manual", "event-1", T0 + 5000, 30)  # redelivery: same name
    assert a != execution_name("m", "manual", "event-2", T0, 30)
    assert a.startswith("m-manual-")


def test_no_cooldown_names_follow_the_event_id() -> None:
    a = execution_name("m", "drift", "event-1", T0, 0)
    assert a != execution_name("m", "drift", "event-2", T0, 0)
    assert a == execution_name("m", "drift", "event-1", T0 + 99, 0)


def test_names_are_valid_step_functions_names() -> None:
    name = execution_name("a" * 40, "manual", "id with spaces/and:colons", T0, 30)
    assert len(name) <= MAX_NAME
    assert re.fullmatch(r"[A-Za-z0-9_-]+", name)


def test_execution_arn_is_known_before_start() -> None:
    sm = "arn:aws:states:us-east-1:123456789012:stateMachine:dev-driftline-retrain"
    expected = "arn:aws:states:us-east-1:123456789012:execution:dev-driftline-retrain:m-auto-x"
    assert execution_arn(sm, "m-auto-x") == expected
    with pytest.raises(ValueError, match="not a state machine ARN"):
        execution_arn("arn:aws:lambda:us-east-1:1:function:f", "x")
