"""`driftline models`: list, show, approve, reject, promote, rollback and audit registry versions, and list
the runs waiting for an approval (``pending``).

Talks to the registry table of the selected environment (AWS, or the local platform when
``AWS_ENDPOINT_URL`` points at it). Who you are comes from STS (``get_caller_identity``), or from
``--as`` when there is no real identity (local use). Approve/reject/promote/rollback honour the
model's ``approvers`` in cdk.json: only those principals may change versions and aliases. Approve and
promote honour the quality gate: a version that failed it (recorded by the workflow, or evaluated now
from its metrics and the model's ``gate`` for a version registered by hand) is refused unless
``--override-gate`` is given, and the override is audited with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from driftline.cli.common import console, fail, load_platform, print_json

app = typer.Typer(no_args_is_help=True, add_completion=False)

PRIMARY_METRICS = ("roc_auc", "pr_auc", "f1", "rmse", "r2")

ConfigOpt = typer.Option(Path("cdk.json"), "--config", help="Path to cdk.json.")
EnvOpt = typer.Option(None, "--env", help="Environment in cdk.json (default: driftline:env).")
ModelOpt = typer.Option(..., "--model", "-m", help="Model name (as in cdk.json).")
VersionOpt = typer.Option(..., "--version", "-v", help="Model version number.", min=1)
ReasonOpt = typer.Option(..., "--reason", "-r", help="Why; recorded in the audit trail.")
AsOpt = typer.Option(None, "--as", help="Act as this principal (local use); default: your STS caller ARN.")
OverrideGateOpt = typer.Option(
    False,
    "--override-gate",
    help="Approve/promote although the version failed the quality gate; --reason "
    "says why, and both go to the audit trail.",
)


def _emulated() -> bool:
    """Whether calls go to an emulator (a loopback endpoint, or STS answering with moto's fixed account)."""
    import os
    from urllib.parse import urlsplit

    from driftline.cli.resources import NoCallerIdentityError, caller_identity
    from driftline.local.provision import LOCAL_ACCOUNT

    host = urlsplit(os.environ.get("AWS_ENDPOINT_URL", "")).hostname or ""
    if host in ("127.0.0.1", "localhost", "::1") or host.startswith("127."):
        return True
    try:
        return caller_identity()["Account"] == LOCAL_ACCOUNT
    except NoCallerIdentityError:
        return False


def principal(as_: str | None) -> str:
    """``--as`` (the local platform only), else the STS caller ARN; no identity at all is a clear error.

    On AWS who approves is what STS proves, never a name typed on the command line: ``--as`` there
    would let anyone record someone else's approval in the audit trail.
    """
    if as_:
        if not _emulated():
            fail(
                "--as works only against the local platform; on AWS you act as the identity STS reports "
                "(assume the approver's role instead)"
            )
        return as_
    from driftline.cli.resources import NoCallerIdentityError, caller_identity

    try:
        return caller_identity()["Arn"]
    except NoCallerIdentityError as e:
        fail(
            f"cannot tell who you are from STS ({e}); configure AWS credentials, or pass --as NAME when "
            f"working against the local platform"
        )
        raise  # unreachable: fail() exits


def resource_names(platform: Any) -> dict[str, str]:
    """Registry table and buckets: from the function env vars when set, else derived for this account."""
    from driftline.cli.resources import NoCallerIdentityError, Resources

    try:
        return Resources(platform).caller_names()
    except NoCallerIdentityError as e:
        fail(
            f"cannot determine the AWS account for bucket names ({e}); set ARTIFACTS_BUCKET, FEATURES_BUCKET "
            f"and AUDIT_BUCKET or configure credentials"
        )
        raise


def _registry(config: Path, env: str | None) -> tuple[Any, Any]:
    from driftline.registry.store import Registry

    platform = load_platform(config, env)
    names = resource_names(platform)  # the audit bucket seals the entries this command writes
    return platform, Registry(names["REGISTRY_TABLE"], audit_bucket=names["AUDIT_BUCKET"])


def _approvers(platform: Any, model: str) -> tuple[str, ...]:
    for m in platform.config.models:
        if m.name == model:
            return tuple(m.approvers)
    return ()


def _run(action: Any) -> Any:
    """Registry errors become one red line (exit 2); infrastructure errors one line too (exit 1)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from driftline.registry.store import RegistryError

    try:
        return action()
    except RegistryError as e:
        fail(str(e))
    except (BotoCoreError, ClientError) as e:
        fail(f"the registry could not be reached: {e}", 1)
    return None


def _gate(platform: Any, reg: Any, model: str, version: int, evaluated_by: str) -> dict[str, Any]:
    """The gate outcome approve/promote must honour (recorded, or evaluated now from the config)."""
    from driftline.config import ConfigError
    from driftline.retraining.approvals import version_gate

    mv = _run(lambda: reg.get_version(model, version))
    try:
        gate = platform.config.model(model).gate
    except ConfigError as e:
        if mv.gate:
            return dict(mv.gate)
        fail(f"{e}: without the model's config the quality gate of {model} v{version} cannot be evaluated")
        raise
    return dict(_run(lambda: version_gate(reg, gate, mv, evaluated_by=evaluated_by)))


def _resolve_waiting_run(
    platform: Any, reg: Any, model: str, version: int, approve: bool, who: str, reason: str, override_gate: bool = False
) -> bool:
    """When a retraining run is paused on this version's manual approval, decide through the run
    (registry audit entry + resume the workflow). Returns False when no run is waiting."""
    from driftline.cli.resources import Resources
    from driftline.retraining.approvals import ApprovalError, pending_approvals, resolve_approval

    control = Resources(platform).table("control")
    waiting = _run(lambda: pending_approvals(control, model))
    if not any(p.version == version for p in waiting or ()):
        return False
    try:
        out = _run(
            lambda: resolve_approval(
                model,
                version,
                approve,
                who,
                reason,
                config=platform.config,
                registry=reg,
                control_table=control,
                override_gate=override_gate,
            )
        )
    except ApprovalError as e:
        fail(str(e))
        return True
    colour = "green" if approve else "red"
    console.print(
        f"[{colour}]{out['decision']}[/] {model} v{version} as {who}; the waiting retraining run "
        f"({out['execution_arn'].rsplit(':', 1)[-1]}) continues",
        highlight=False,
    )
    return True


def _fmt_metrics(metrics: dict[str, Any]) -> str:
    shown = [f"{k}={metrics[k]:.4f}" for k in PRIMARY_METRICS if isinstance(metrics.get(k), int | float)]
    return " ".join(shown[:3])


def _role(version: int, aliases: Any) -> str:
    if aliases is None:
        return ""
    if version == aliases.champion:
        return "[bold green]champion[/]"
    if version == aliases.challenger:
        return f"[yellow]challenger ({aliases.traffic_mode} {aliases.traffic_percent}%)[/]"
    return ""


def _plain_role(version: int, aliases: Any) -> str:
    """The role without Rich markup (``champion``, ``challenger (canary 20%)`` or empty), for JSON."""
    from rich.text import Text

    return Text.from_markup(_role(version, aliases)).plain


STATUS_STYLE = {"candidate": "cyan", "approved": "green", "rejected": "red", "archived": "dim"}


@app.command("list")
def list_(
    model: str = typer.Option(None, "--model", "-m", help="List the versions of this model."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    config: Path = ConfigOpt,
    env: str = EnvOpt,
) -> None:
    """Models in the registry, or the versions of one model."""
    _, reg = _registry(config, env)
    if model is None:
        names = _run(reg.list_models)
        rows = [_run(lambda n=n: reg.aliases(n)) for n in names]
        if as_json:
            print_json(json.dumps([a.to_dict() for a in rows]))
            return
        table = Table(title="models in the registry")
        for col in ("model", "champion", "challenger", "traffic", "updated"):
            table.add_column(col)
        for a in rows:
            table.add_row(
                a.model,
                str(a.champion or "-"),
                str(a.challenger or "-"),
                f"{a.traffic_mode} {a.traffic_percent}%" if a.traffic_mode != "none" else "-",
                a.updated_at[:19],
            )
        console.print(table if rows else "no models registered yet (train one: driftline train --model …)")
        return
    versions = _run(lambda: reg.list_versions(model))
    aliases = _run(lambda: reg.aliases(model))
    if as_json:
        print_json(json.dumps([v.to_dict() | {"role": _plain_role(v.version, aliases)} for v in versions], default=str))
        return
    table = Table(title=f"{model}: versions (champion v{aliases.champion or '-'})")
    for col in ("version", "status", "role"):  # short identifiers: never folded, even in a narrow terminal
        table.add_column(col, no_wrap=True)
    for col in ("algorithm", "metrics", "trigger", "created", "reason"):
        table.add_column(col, overflow="fold")
    for v in versions:
        style = STATUS_STYLE.get(v.status, "")
        table.add_row(
            str(v.version),
            f"[{style}]{v.status}[/]",
            _role(v.version, aliases),
            v.algorithm,
            _fmt_metrics(v.metrics),
            v.trigger,
            v.created_at[:19],
            v.reason[:80],
        )
    console.print(table)


def _run_status(sfn: Any, arn: str) -> str:
    """The Step Functions status of a waiting run; MISSING when the service does not know it."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return str(sfn.describe_execution(executionArn=arn)["status"])
    except sfn.exceptions.ExecutionDoesNotExist:
        return "MISSING"
    except (BotoCoreError, ClientError) as e:
        return f"unknown ({e})"


@app.command("pending")
def pending(
    model: str = typer.Option(None, "--model", "-m", help="Only this model (default: every model in cdk.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    config: Path = ConfigOpt,
    env: str = EnvOpt,
) -> None:
    """Retraining runs waiting for a manual approval: version, run, since when, and whether the run still
    waits (a local restart interrupts runs: `driftline local resume` asks again)."""
    from driftline import aws
    from driftline.cli.resources import Resources
    from driftline.retraining.approvals import pending_approvals

    platform = load_platform(config, env)
    control = Resources(platform).table("control")
    names = [model] if model else [m.name for m in platform.config.models]
    sfn = aws.client("stepfunctions")
    rows: list[dict[str, Any]] = []
    for name in names:
        for p in _run(lambda name=name: pending_approvals(control, name)) or []:
            run = p.execution_arn.rsplit(":", 1)[-1]
            rows.append(p.to_dict() | {"run": run, "run_status": _run_status(sfn, p.execution_arn)})
    if as_json:
        print_json(json.dumps(rows))
        return
    if not rows:
        console.print(f"no retraining run is waiting for an approval ({', '.join(names) or 'no models'})")
        return
    table = Table(title="waiting for approval")
    for col in ("model", "version", "run", "requested", "run status", "gate"):
        table.add_column(col, overflow="fold")  # a narrow terminal wraps, never truncates, a command to copy
    gone = [r["run"] for r in rows if r["run_status"] == "MISSING"]
    for r in rows:
        status = "interrupted (below)" if r["run_status"] == "MISSING" else r["run_status"]
        table.add_row(r["model"], f"v{r['version']}", r["run"], r["requested_at"][:19], status, r["summary"][:120])
    console.print(table)
    for run in gone:  # on a line of its own: a command to copy, whatever the terminal's width
        console.print(f"interrupted by a restart of the local platform: driftline local resume {run}", highlight=False)
    console.print("decide with: driftline models approve|reject --model M --version N --reason '...'", highlight=False)


@app.command("show")
def show(
    model: str = ModelOpt,
    version: int = typer.Option(None, "--version", "-v", help="Version (default: the champion)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    config: Path = ConfigOpt,
    env: str = EnvOpt,
) -> None:
    """One version: status, metrics, lineage and artifacts (default: the champion)."""
    _, reg = _registry(config, env)
    aliases = _run(lambda: reg.aliases(model))
    if version is None:
        version = aliases.champion
        if version is None:
            fail(f"{model} has no champion yet; pass --version (see: driftline models list --model {model})")
    mv = _run(lambda: reg.get_version(model, version))
    if as_json:
        print_json(json.dumps(mv.to_dict(), default=str))
        return
    style = STATUS_STYLE.get(mv.status, "")
    role = _role(mv.version, aliases)
    console.print(f"[bold]{model} v{mv.version}[/]  [{style}]{mv.status}[/] {role}", highlight=False)
    if mv.reason:
        console.print(f"reason: {mv.reason}", highlight=False)
    console.print(
        f"created {mv.created_at[:19]} by {mv.created_by}; trigger {mv.trigger}; algorithm "
        f"{mv.algorithm}; feature set {mv.feature_set} v{mv.feature_set_version} "
        f"({mv.feature_set_fingerprint})",
        highlight=False,
    )
    if mv.gate:
        colour = "green" if mv.gate.get("passed") else "red"
        against = (
            f"against champion v{mv.gate['champion_version']} ({mv.gate.get('comparison', '')})"
            if mv.gate.get("champion_version") is not None
            else "no champion to compare with"
        )
        console.print(
            f"quality gate: [{colour}]{'passed' if mv.gate.get('passed') else 'failed'}[/] {against}, "
            f"evaluated by {mv.gate.get('evaluated_by', '?')}: {mv.gate.get('summary', '')}",
            highlight=False,
        )
    else:
        console.print(
            "quality gate: not evaluated yet (approve/promote evaluates it from the model's config)", highlight=False
        )
    champion = mv.lineage.get("champion_metrics") or {}
    if mv.metrics:
        table = Table(title="validation metrics")
        table.add_column("metric")
        table.add_column("value", justify="right")
        if champion:
            table.add_column(f"champion v{mv.lineage.get('parent_version')} on the same rows", justify="right")
        for k, val in sorted(mv.metrics.items()):
            other = champion.get(k)
            row = [k, f"{val:.4f}"]
            if champion:
                row.append(f"{other:.4f}" if isinstance(other, int | float) else "")
            table.add_row(*row)
        console.print(table)
    lin = mv.lineage
    if lin:
        table = Table(title="lineage")
        table.add_column("field")
        table.add_column("value", overflow="fold")
        ts = lin.get("training_set", {})
        split = lin.get("split", {})
        for key, value in (
            ("training set", f"{ts.get('uri', '')} ({ts.get('rows', '?')} rows)"),
            ("training set sha256", ts.get("sha256", "")),
            *_feedback_rows(ts),
            ("object versions", json.dumps(ts.get("object_versions", {}))[:300]),
            (
                "split",
                f"train {split.get('train_rows', '?')} rows {split.get('train_range', '')}; "
                f"validate {split.get('validation_rows', '?')} rows {split.get('validation_range', '')}",
            ),
            ("parent version", str(lin.get("parent_version"))),
            ("code version", str(lin.get("code_version", ""))),
            ("params", json.dumps(mv.params, sort_keys=True)),
            ("parity", json.dumps(lin.get("parity", {}))),
            ("execution", str(lin.get("execution_id") or "")),
        ):
            table.add_row(key, str(value))
        console.print(table)
    if mv.artifacts:
        table = Table(title="artifacts (verified by SHA-256 at load)")
        for col in ("name", "uri", "size", "sha256", "s3 version"):
            table.add_column(col, overflow="fold")
        for name, ref in sorted(mv.artifacts.items()):
            table.add_row(name, ref.uri, f"{ref.size:,}", ref.sha256[:16] + "…", ref.version_id or "-")
        console.print(table)


def _feedback_rows(ts: dict[str, Any]) -> list[tuple[str, str]]:
    """Lineage lines on where the training rows came from (uploads, feedback labels) and what the
    feedback join left out; none for versions trained before the lineage said so."""
    if "rows_from_uploads" not in ts:
        return []
    out = [
        ("training rows", f"{ts['rows_from_uploads']} from uploads, {ts.get('rows_from_feedback', 0)} from feedback")
    ]
    fb = ts.get("feedback")
    if isinstance(fb, dict):
        counts = ("labels_read", "used", "unknown_request_ids", "wrong_type", "test_traffic_skipped", "not_counted")
        text = ", ".join(f"{k} {fb.get(k, 0)}" for k in counts) + f", weight {fb.get('weight')}"
        if fb.get("duplicates_of_uploads"):
            text += f", duplicates_of_uploads {fb['duplicates_of_uploads']}"
        if fb.get("truncated"):
            text += ", capture read cut at training.feedback.max_rows"
        if fb.get("skipped"):
            text += f"; not used: {fb['skipped']}"
        out.append(("feedback labels", text))
    return out


@app.command("audit")
def audit(
    model: str = ModelOpt,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    config: Path = ConfigOpt,
    env: str = EnvOpt,
) -> None:
    """The append-only audit trail: who did what to which version, when and why."""
    _, reg = _registry(config, env)
    entries = _run(lambda: reg.audit(model))
    if as_json:
        print_json(json.dumps([e.to_dict() for e in entries], default=str))
        return
    table = Table(title=f"{model}: audit trail (oldest first)")
    for col in ("when", "who", "action", "version", "why"):
        table.add_column(col, overflow="fold")
    for e in entries:
        action = f"{e.action} (gate overridden)" if e.details.get("gate_override") else e.action
        table.add_row(e.ts[:23], e.who, action, str(e.version if e.version is not None else "-"), e.why)
    console.print(table)


@app.command("approve")
def approve(
    model: str = ModelOpt,
    version: int = VersionOpt,
    reason: str = ReasonOpt,
    as_: str = AsOpt,
    config: Path = ConfigOpt,
    env: str = EnvOpt,
    override_gate: bool = OverrideGateOpt,
) -> None:
    """candidate -> approved (restricted to the model's approvers; refused if the quality gate failed)."""
    _decide(model, version, reason, as_, config, env, approve=True, override_gate=override_gate)


@app.command("reject")
def reject(
    model: str = ModelOpt,
    version: int = VersionOpt,
    reason: str = ReasonOpt,
    as_: str = AsOpt,
    config: Path = ConfigOpt,
    env: str = EnvOpt,
) -> None:
    """candidate/approved -> rejected (never serves again)."""
    _decide(model, version, reason, as_, config, env, approve=False)


def _decide(
    model: str,
    version: int,
    reason: str,
    as_: str,
    config: Path,
    env: str,
    *,
    approve: bool,
    override_gate: bool = False,
) -> None:
    """Approve or reject: through the retraining run waiting on this version, else in the registry."""
    platform, reg = _registry(config, env)
    who = principal(as_)
    if _resolve_waiting_run(platform, reg, model, version, approve, who, reason, override_gate):
        return
    allowed = _approvers(platform, model)
    if approve:
        gate = _gate(platform, reg, model, version, f"approve by {who}")
        mv = _run(
            lambda: reg.approve(model, version, who, reason, allowed=allowed, gate=gate, override_gate=override_gate)
        )
    else:
        mv = _run(lambda: reg.reject(model, version, who, reason, allowed=allowed))
    label = "[green]approved[/]" if approve else "[red]rejected[/]"
    console.print(f"{label} {model} v{mv.version} as {who}{_override_note(mv.gate, override_gate)}", highlight=False)


def _override_note(gate: dict[str, Any], override_gate: bool) -> str:
    return (
        " [yellow](quality gate failed; overridden, recorded in the audit trail)[/]"
        if (override_gate and gate and gate.get("passed") is not True)
        else ""
    )


@app.command("promote")
def promote(
    model: str = ModelOpt,
    version: int = VersionOpt,
    reason: str = ReasonOpt,
    as_: str = AsOpt,
    config: Path = ConfigOpt,
    env: str = EnvOpt,
    override_gate: bool = OverrideGateOpt,
) -> None:
    """Make an approved version the champion (conditional write: a concurrent change is refused;
    refused if the quality gate failed)."""
    platform, reg = _registry(config, env)
    who = principal(as_)
    before = _run(lambda: reg.aliases(model, consistent=True))
    gate = _gate(platform, reg, model, version, f"promote by {who}")
    after = _run(
        lambda: reg.promote(
            model,
            version,
            who,
            reason,
            allowed=_approvers(platform, model),
            expected_revision=before.revision,
            gate=gate,
            override_gate=override_gate,
        )
    )
    console.print(
        f"[bold green]champion[/] of {model}: v{before.champion or '-'} -> v{after.champion} "
        f"(revision {after.revision}, by {who}){_override_note(gate, override_gate)}",
        highlight=False,
    )


@app.command("rollback")
def rollback(
    model: str = ModelOpt,
    version: int = typer.Option(
        None, "--version", "-v", help="Target version (default: the previous champion from the audit trail)."
    ),
    reason: str = ReasonOpt,
    as_: str = AsOpt,
    config: Path = ConfigOpt,
    env: str = EnvOpt,
) -> None:
    """Put the previous champion back (or --version)."""
    platform, reg = _registry(config, env)
    who = principal(as_)
    before = _run(lambda: reg.aliases(model, consistent=True))
    after = _run(lambda: reg.rollback(model, who, reason, to_version=version, allowed=_approvers(platform, model)))
    console.print(
        f"[bold yellow]rolled back[/] {model}: v{before.champion or '-'} -> v{after.champion} "
        f"(revision {after.revision}, by {who})",
        highlight=False,
    )
