"""Asking for a retraining run and following it, from outside the platform (CLI, demo, notebooks).

The request is a ``RetrainRequested`` event on the platform's bus: the same path every trigger
takes, so the lock and the decision log apply. The caller then reads the decision the
retrain-trigger recorded for its event id and may follow the workflow run to its end.
"""

from __future__ import annotations

import getpass
import time
from typing import Any

from driftline.contracts import RETRAIN_REQUESTED

__all__ = ["TERMINAL", "follow_execution", "request_retrain", "wait_for_decision", "whoami"]

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def whoami() -> str:
    """The caller's ARN (STS), or the local user name when no identity is available."""
    from driftline import aws

    try:
        return str(aws.client("sts").get_caller_identity()["Arn"])
    except Exception:
        return getpass.getuser()


def request_retrain(
    platform: Any,
    model: str,
    reason: str,
    requested_by: str,
    require_approval: bool = False,
    version: int | None = None,
    *,
    client: Any | None = None,
) -> str:
    """Put a RetrainRequested event on the bus; returns the event id the decision will carry.

    With ``version`` the run rolls out that registered candidate (gate, approval, canary) instead of
    training a new one. ``client``: an EventBridge client (default ``aws.client("events")``). Raises
    :class:`~driftline.event_bus.EventRejectedError` when the bus refuses the request.
    """
    from driftline.event_bus import EventBus

    detail: dict[str, Any] = {"model": model, "requested_by": requested_by, "reason": reason}
    if require_approval:
        detail["require_approval"] = True
    if version is not None:
        detail["version"] = version
    return EventBus(platform.event_bus, client).publish(RETRAIN_REQUESTED, detail)


def wait_for_decision(platform: Any, model: str, event_id: str, timeout_s: float = 30.0) -> dict[str, Any] | None:
    """The decision the retrain-trigger recorded for ``event_id`` (None if none within the timeout)."""
    from driftline.retraining.control import ControlTable

    control = ControlTable(platform.name("control"))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for rec in control.history(model, limit=50, kind="decision"):
            if rec.get("trigger_id") == event_id:
                return rec
        time.sleep(0.3)
    return None


def follow_execution(arn: str, timeout_s: float, on_step: Any = None) -> dict[str, Any]:
    """Poll an execution until it ends; ``on_step(state_name)`` is called for each state entered."""
    from driftline import aws

    sfn = aws.client("stepfunctions")
    seen: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while True:
        if on_step is not None:
            for ev in sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]:
                details = ev.get("stateEnteredEventDetails")
                if details and ev["id"] not in seen:
                    seen.add(ev["id"])
                    on_step(details["name"])
        d = sfn.describe_execution(executionArn=arn)
        if d["status"] in TERMINAL:
            return dict(d)
        if time.monotonic() > deadline:
            return dict(d)
        time.sleep(0.5)
