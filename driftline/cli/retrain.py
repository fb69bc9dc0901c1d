"""`driftline retrain`: ask for a retraining run, see what the trigger decided, optionally follow it.

The request is a ``RetrainRequested`` event on the platform's bus (the same path every trigger takes,
so the lock and the decision log apply); the command then reads the decision recorded for its event
id and, with ``--wait``, follows the workflow run to its end. Works against AWS or the local
platform (``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from driftline.cli.common import console, fail, load_platform
from driftline.cli.resources import NoCallerIdentityError, Resources
from driftline.retraining.requests import follow_execution, request_retrain, wait_for_decision


def register(app: typer.Typer) -> None:
    @app.command("retrain")
    def retrain(
        model: str = typer.Option(..., "--model", "-m", help="Model to retrain (as named in cdk.json)."),
        reason: str = typer.Option("manual retraining", "--reason", help="Why; recorded with the decision."),
        wait: bool = typer.Option(False, "--wait", help="Follow the run until it ends."),
        require_approval: bool = typer.Option(
            False, "--require-approval", help="Pause for a manual approval even if the model's mode is auto."
        ),
        timeout: float = typer.Option(1800.0, "--timeout", help="Seconds to follow the run with --wait."),
        version: int = typer.Option(
            None,
            "--version",
            "-v",
            min=1,
            help="Roll out this registered candidate (e.g. one imported with `driftline "
            "models register`) through gate, approval and canary instead of "
            "training a new one.",
        ),
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
        event_id = request_retrain(platform, model, reason, _who(platform), require_approval, version)
        decision = wait_for_decision(platform, model, event_id)
        if decision is None:
            fail(
                f"request {event_id} was sent, but no decision was recorded within 30 s; is the "
                f"retrain-trigger function deployed and the on-retrain-request rule enabled?",
                1,
            )
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


def _who(platform: Any) -> str:
    """The caller's ARN (STS), or the local user name when no identity is available."""
    import getpass

    try:
        return Resources(platform).caller_arn()
    except NoCallerIdentityError:
        return getpass.getuser()


def _show_history(platform: Any, model: str) -> None:
    from driftline.retraining.control import ControlTable

    rows = ControlTable(Resources(platform).table("control")).history(model, limit=20, kind="decision")
    table = Table(title=f"retraining decisions for {model} (newest first)")
    for col in ("at", "trigger", "decision", "execution", "reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            str(r.get("at", ""))[:19],
            str(r.get("trigger")),
            str(r.get("decision")),
            str(r.get("execution_name") or ""),
            str(r.get("reason")),
        )
    console.print(table)
