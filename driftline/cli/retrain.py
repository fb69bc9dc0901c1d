"""`driftline retrain`: ask for a retraining run, see what the trigger decided, optionally follow it.

The request is a ``RetrainRequested`` event on the platform's bus (the same path every trigger takes,
so the lock and the decision log apply); the command then reads the decision recorded for its event
id and, with ``--wait``, follows the workflow run to its end. Works against AWS or the local
platform (``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import getpass
import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from driftline.cli.common import console, fail, load_platform

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def whoami() -> str:
    """The caller's ARN (STS), or the local user name when no identity is available."""
    from driftline import aws

    try:
        return str(aws.client("sts").get_caller_identity()["Arn"])
    except Exception:
        return getpass.getuser()


def request_retrain(platform: Any, model: str, reason: str, requested_by: str,
                    require_approval: bool = False, version: int | None = None) -> str:
    """Put a RetrainRequested event on the bus; returns the event id the decision will carry.

    With ``version`` the run rolls out that registered candidate (gate, approval, canary) instead of
    training a new one.
    """
    from driftline import aws

    detail: dict[str, Any] = {"model": model, "requested_by": requested_by, "reason": reason}
    if require_approval:
        detail["require_approval"] = True
    if version is not None:
        detail["version"] = version
    resp = aws.client("events").put_events(Entries=[{
        "Source": "driftline.cli", "DetailType": "RetrainRequested", "Detail": json.dumps(detail),
        "EventBusName": platform.event_bus}])
    entry = resp["Entries"][0]
    if resp.get("FailedEntryCount") or "EventId" not in entry:
        raise RuntimeError(f"the event bus refused the request: {entry.get('ErrorCode')} "
                           f"{entry.get('ErrorMessage')}")
    return str(entry["EventId"])


def wait_for_decision(platform: Any, model: str, event_id: str,
                      timeout_s: float = 30.0) -> dict[str, Any] | None:
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


def register(app: typer.Typer) -> None:
    @app.command("retrain")
    def retrain(
        model: str = typer.Option(..., "--model", "-m", help="Model to retrain (as named in cdk.json)."),
        reason: str = typer.Option("manual retraining", "--reason", help="Why; recorded with the decision."),
        wait: bool = typer.Option(False, "--wait", help="Follow the run until it ends."),
        require_approval: bool = typer.Option(False, "--require-approval",
                                              help="Pause for a manual approval even if the model's mode is auto."),
        timeout: float = typer.Option(1800.0, "--timeout", help="Seconds to follow the run with --wait."),
        version: int = typer.Option(None, "--version", "-v", min=1,
                                    help="Roll out this registered candidate (e.g. one imported with `driftline "
                                         "models register`) through gate, approval and canary instead of "
                                         "training a new one."),
        history: bool = typer.Option(False, "--history", help="Show recent start/skip decisions instead."),
        config: Path = typer.Option(Path("cdk.json"), "--config", help="Path to cdk.json."),
        env: str = typer.Option(None, "--env", help="Environment in cdk.json (default: driftline:env)."),
    ) -> None:
        """Request a retraining run (one run per model at a time; the decision and reason are recorded).

        With --version, the run takes that registered candidate through the quality gate, approval and
        canary instead of training a new one.
        """
        from driftline.config import ConfigError

        platform = load_platform(config, env)
        try:
            platform.config.model(model)
        except ConfigError as e:
            fail(f"{e}; nothing was requested")
        if history:
            _show_history(platform, model)
            return
        event_id = request_retrain(platform, model, reason, whoami(), require_approval, version)
        decision = wait_for_decision(platform, model, event_id)
        if decision is None:
            fail(f"request {event_id} was sent, but no decision was recorded within 30 s; is the "
                 f"retrain-trigger function deployed and the on-retrain-request rule enabled?", 1)
        assert decision is not None
        colour = {"started": "green", "skipped": "yellow"}.get(str(decision["decision"]), "red")
        console.print(f"[{colour}]{decision['decision']}[/]: {decision['reason']}", highlight=False)
        arn = str(decision.get("execution_arn") or "")
        if arn:
            console.print(f"execution: {arn}", highlight=False, soft_wrap=True)
        if decision["decision"] == "rejected":
            raise typer.Exit(2)
        if wait and decision["decision"] == "started":
            d = follow_execution(arn, timeout, on_step=lambda s: console.print(f"  → {s}", highlight=False))
            colour = "green" if d["status"] == "SUCCEEDED" else "red"
            console.print(f"[{colour}]{d['status']}[/]", highlight=False)
            if d["status"] != "SUCCEEDED":
                raise typer.Exit(1)


def _show_history(platform: Any, model: str) -> None:
    from driftline.retraining.control import ControlTable

    rows = ControlTable(platform.name("control")).history(model, limit=20, kind="decision")
    table = Table(title=f"retraining decisions for {model} (newest first)")
    for col in ("at", "trigger", "decision", "execution", "reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(str(r.get("at", ""))[:19], str(r.get("trigger")), str(r.get("decision")),
                      str(r.get("execution_name") or ""), str(r.get("reason")))
    console.print(table)
