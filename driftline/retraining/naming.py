"""Execution names: the same trigger in the same cooldown window always gets the same name.

Step Functions refuses a second execution with a name already used by the state machine
(``ExecutionAlreadyExists``), so deriving the name from the trigger makes a duplicate run
impossible even when two trigger Lambdas race past every other check. Pure functions, no AWS.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

MAX_NAME = 80
"""Step Functions' limit on execution names."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

AUTOMATIC_TRIGGERS = frozenset({"drift", "labels", "schedule"})
"""Triggers that collapse into one run per cooldown window; ``manual`` ones are explicit intent."""


def cooldown_bucket(now_epoch: float, cooldown_minutes: int) -> int:
    """Start (epoch seconds) of the cooldown window holding ``now_epoch`` (windows aligned to the epoch)."""
    if cooldown_minutes <= 0:
        raise ValueError("cooldown_minutes must be positive to bucket by it")
    width = cooldown_minutes * 60
    return int(now_epoch // width) * width


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def execution_name(model: str, trigger: str, trigger_id: str, now_epoch: float, cooldown_minutes: int) -> str:
    """The execution name for a trigger.

    - automatic triggers (drift, labels, schedule) with a cooldown: ``<model>-auto-<window start>``,
      so every automatic trigger in one cooldown window maps to one name (they collapse);
    - manual triggers, or any trigger without a cooldown: ``<model>-<trigger>-<hash of trigger id>``,
      so a redelivered event (same id) maps to the same name but distinct requests do not.
    """
    if trigger in AUTOMATIC_TRIGGERS and cooldown_minutes > 0:
        start = datetime.fromtimestamp(cooldown_bucket(now_epoch, cooldown_minutes), UTC)
        suffix = f"auto-{start:%Y%m%dT%H%MZ}"
    else:
        suffix = f"{trigger}-{_short_hash(trigger_id)}"
    name = _UNSAFE.sub("-", f"{model}-{suffix}")
    if len(name) > MAX_NAME:  # model names are at most 40 characters, so this keeps the suffix whole
        name = name[: MAX_NAME - len(suffix) - 1] + "-" + suffix
    return name


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN an execution of ``state_machine_arn`` named ``name`` has (known before it starts)."""
    if ":stateMachine:" not in state_machine_arn:
        raise ValueError(
            f"{state_machine_arn!r} is not a state machine ARN "
            f"(expected arn:aws:states:<region>:<account>:stateMachine:<name>)"
        )
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name
