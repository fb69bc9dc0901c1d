"""`driftline drift`: drift reports on local files, reference profiles, and the scheduled check.

``report`` compares a current file (Parquet/CSV) with a reference file or a saved profile and
writes the same HTML/JSON the scheduled check writes; ``profile`` saves a reference profile;
``check`` runs a model's scheduled check now (against AWS or whatever ``AWS_ENDPOINT_URL`` points
at) and ``history`` lists past checks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from driftline.cli.common import console, err_console, fail, load_platform, print_json

app = typer.Typer(no_args_is_help=True, add_completion=False)

ConfigOpt = typer.Option(Path("cdk.json"), "--config", help="Path to cdk.json (feature sets and models).")
EnvOpt = typer.Option(None, "--env", help="Environment in cdk.json (default: driftline:env).")
FeatureSetOpt = typer.Option(None, "--feature-set", "-f", help="Feature set whose drift columns and overrides to use.")
NumericalOpt = typer.Option(None, "--numerical", help="Comma-separated numerical columns (default: inferred).")
CategoricalOpt = typer.Option(None, "--categorical", help="Comma-separated categorical columns (default: inferred).")


# ---------------------------------------------------------------- helpers
def _feature_set(name: str, config: Path, env: str | None) -> Any:
    from driftline.features.schema import FeatureSetCatalog, FeatureSetError

    platform = load_platform(config, env)
    directory = Path(platform.config.feature_sets_dir)
    if not directory.is_absolute():
        directory = config.resolve().parent / directory
    try:
        return FeatureSetCatalog(directory).get(name)
    except FeatureSetError as e:
        fail(str(e))


def _read_table(path: Path, fs: Any = None) -> Any:
    from driftline.features.readers import UnreadableFileError, read_path

    try:
        return read_path(path, fs).table
    except UnreadableFileError as e:
        fail(f"{e.message}; {e.hint}")


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _infer_columns(table: Any) -> tuple[list[str], list[str]]:
    """Numbers are numerical; text, dictionary and bool columns are categorical unless they look like
    identifiers (nearly one distinct value per row); timestamps and dates are left out."""
    import pyarrow as pa
    import pyarrow.compute as pc

    numerical, categorical = [], []
    for field in table.schema:
        t = field.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            numerical.append(field.name)
        elif pa.types.is_boolean(t) or pa.types.is_dictionary(t):
            categorical.append(field.name)
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            distinct = pc.count_distinct(table.column(field.name)).as_py()
            if distinct <= max(50, table.num_rows // 2):
                categorical.append(field.name)
    return numerical, categorical


def _load_reference(
    reference: Path,
    fs: Any,
    numerical: list[str] | None,
    categorical: list[str] | None,
    sample_size: int,
) -> Any:
    from driftline.drift import DriftInputError, Profile, ProfileFormatError, build_profile
    from driftline.drift.feature_set import build_profile_for_feature_set

    if not reference.exists():
        fail(f"{reference}: file not found")
    if reference.suffix.lower() == ".json":
        try:
            return Profile.load(reference)
        except ProfileFormatError as e:
            fail(str(e))
    table = _read_table(reference, fs)
    try:
        if fs is not None and numerical is None and categorical is None:
            return build_profile_for_feature_set(fs, table, sample_size=sample_size)
        inferred = _infer_columns(table)
        num = numerical if numerical is not None else inferred[0]
        cat = categorical if categorical is not None else inferred[1]
        return build_profile(table, num, cat, sample_size=sample_size)
    except DriftInputError as e:
        fail(f"{reference}: {e}")


def print_result(result: dict[str, Any]) -> None:
    """A readable table of the per-column tests and the verdict."""
    table = Table(show_lines=False)
    for col, just in (
        ("column", "left"),
        ("kind", "left"),
        ("test", "left"),
        ("statistic", "right"),
        ("p-value", "right"),
        ("threshold", "right"),
        ("drift", "left"),
        ("missing", "right"),
        ("notes", "left"),
    ):
        table.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
    cols = sorted(result["columns"].items(), key=lambda kv: (not kv[1]["drifted"], kv[1]["role"], kv[0]))
    for name, c in cols:
        if c["status"] != "ok":
            drift = f"[yellow]{c['status'].replace('_', ' ')}[/]"
        else:
            drift = "[bold red]drift[/]" if c["drifted"] else "[green]no[/]"
        notes = []
        if c["new_categories"]:
            notes.append("new: " + ", ".join(c["new_categories"][:4]))
        if c["vanished_categories"]:
            notes.append("vanished: " + ", ".join(c["vanished_categories"][:4]))
        if c["message"]:
            notes.append(c["message"])
        label = f"{name} [dim](prediction)[/]" if c["role"] == "prediction" else name
        table.add_row(
            label,
            c["kind"][:3],
            c["method"] or "",
            _fmt(c["statistic"], c),
            _fmt(c["p_value"], None),
            "" if c["threshold"] is None else str(c["threshold"]),
            drift,
            f"{_pct(c['missing_rate_reference'])} → {_pct(c['missing_rate_current'])}",
            "; ".join(notes),
        )
    console.print(table)
    if result["status"] != "ok":
        console.print(f"[bold yellow]insufficient data:[/] {result['message']}", highlight=False)
        return
    verdict = "[bold red]dataset drift[/]" if result["dataset_drifted"] else "[bold green]no dataset drift[/]"
    console.print(
        f"{verdict}: {result['n_drifted']} of {result['n_columns_tested']} feature columns drifted "
        f"({result['share_drifted']:.0%}; threshold {result['share_threshold']:.0%})",
        highlight=False,
    )
    if result.get("prediction_drifted") is not None:
        console.print(f"prediction drift: {'[bold red]yes[/]' if result['prediction_drifted'] else 'no'}")


def _fmt(x: float | None, col: dict[str, Any] | None) -> str:
    if x is None:
        return "inf" if col is not None and col.get("method") == "chisquare" and col.get("status") == "ok" else ""
    return f"{x:.4g}"


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


# ---------------------------------------------------------------- commands
@app.command()
def report(
    current: Path = typer.Argument(..., help="Current data: a Parquet or CSV file."),
    reference: Path = typer.Option(..., "--reference", "-r", help="Reference data file, or a saved profile (.json)."),
    feature_set: str | None = FeatureSetOpt,
    numerical: str | None = NumericalOpt,
    categorical: str | None = CategoricalOpt,
    outs: list[Path] = typer.Option(
        [],
        "--out",
        "-o",
        help="Write the report here: .html for the HTML report, .json for the JSON result (repeatable).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON result instead of the table."),
    min_rows: int = typer.Option(1, "--min-rows", min=1, help="Fewer current rows -> insufficient data."),
    sample_size: int = typer.Option(5000, "--sample-size", min=100, help="Profile sample size (data references)."),
    fail_on_drift: bool = typer.Option(False, "--fail-on-drift", help="Exit with status 1 on dataset drift."),
    config: Path = ConfigOpt,
    env: str | None = EnvOpt,
) -> None:
    """Compare CURRENT with a reference (file or profile); print the tests, write HTML/JSON.

    Exit status: 0 when done (1 with --fail-on-drift and dataset drift), 2 for bad input.
    """
    from driftline.drift import DriftInputError, ProfileMismatchError, check_drift
    from driftline.drift.report import save_html

    odd = [str(o) for o in outs if o.suffix.lower() not in (".html", ".json")]
    if odd:
        fail(f"--out {', '.join(odd)}: name a .html (HTML report) or .json (JSON result) file")
    fs = _feature_set(feature_set, config, env) if feature_set else None
    profile = _load_reference(reference, fs, _split(numerical), _split(categorical), sample_size)
    if not current.exists():
        fail(f"{current}: file not found")
    table = _read_table(current, fs)
    expected = {"feature_set_fingerprint": fs.fingerprint} if fs is not None and reference.suffix == ".json" else None
    try:
        result = check_drift(profile, table, expected_metadata=expected, min_rows=min_rows)
    except (DriftInputError, ProfileMismatchError) as e:
        fail(str(e))
    data = result.to_dict()
    if as_json:
        print_json(json.dumps(data, allow_nan=False))
    else:
        print_result(data)
    for out in outs:
        if out.suffix.lower() == ".json":
            out.write_text(json.dumps(data, indent=2, allow_nan=False))
        else:
            save_html(result, out, window={"start": None, "end": None})
        err_console.print(f"wrote {out}", highlight=False)
    if fail_on_drift and data["dataset_drifted"]:
        raise typer.Exit(1)


@app.command()
def profile(
    data: Path = typer.Argument(..., help="Reference data: a Parquet or CSV file."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the profile (.json)."),
    feature_set: str | None = FeatureSetOpt,
    numerical: str | None = NumericalOpt,
    categorical: str | None = CategoricalOpt,
    sample_size: int = typer.Option(5000, "--sample-size", min=100, help="Values kept per numeric column."),
    config: Path = ConfigOpt,
    env: str | None = EnvOpt,
) -> None:
    """Build a reference profile from DATA once, for later `drift report --reference profile.json`."""
    if out.suffix.lower() != ".json":
        fail(f"{out}: a profile is written as JSON; use a .json file name")
    fs = _feature_set(feature_set, config, env) if feature_set else None
    prof = _load_reference(data, fs, _split(numerical), _split(categorical), sample_size)
    prof.save(out)
    console.print(
        f"wrote {out}: {len(prof.columns)} columns ({len(prof.numerical)} numerical, "
        f"{len(prof.categorical)} categorical) from {prof.n_rows:,} rows",
        highlight=False,
    )


# ---------------------------------------------------------------- the scheduled check, on demand
def _monitoring_context(config: Path, env: str | None) -> Any:
    """The check's resources: the function's env vars when set, else derived like the platform does."""
    from driftline.cli.resources import NoCallerIdentityError, Resources
    from driftline.monitoring import Context

    platform = load_platform(config, env)
    res = Resources(platform)
    try:
        return Context(
            config=platform.config,
            registry_table=res.table("registry"),
            control_table=res.table("control"),
            captures_bucket=res.bucket("captures"),
            reports_bucket=res.bucket("reports"),
            alerts_topic_arn=res.topic_arn("alerts"),
            event_bus=res.event_bus(),
            local=os.environ.get("DRIFTLINE_LOCAL") == "1",  # the local platform's small default lateness
        )
    except NoCallerIdentityError as e:
        fail(
            f"cannot determine the AWS account for resource names ({e}); configure credentials or point "
            f"AWS_ENDPOINT_URL at the local platform"
        )
        raise


@app.command()
def check(
    model: str = typer.Option(..., "--model", "-m", help="Model to check (as configured in cdk.json)."),
    window_start: str | None = typer.Option(
        None,
        "--window-start",
        help="ISO-8601 start (default: where the previous check ended, or an hour before the end).",
    ),
    window_end: str | None = typer.Option(None, "--window-end", help="ISO-8601 end (default: now)."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
    config: Path = ConfigOpt,
    env: str | None = EnvOpt,
) -> None:
    """Run MODEL's scheduled drift check now: report, history, metrics, and alerts on an alarm."""
    from driftline.monitoring import MonitoringError, run_check

    ctx = _monitoring_context(config, env)
    try:
        with err_console.status(f"checking {model}: reading captures, comparing with the reference…"):
            out = run_check(model, window_start=window_start, window_end=window_end, ctx=ctx)
    except MonitoringError as e:
        fail(str(e))
    if as_json:
        print_json(json.dumps(out))
        return
    if out["status"] in ("no_champion", "not_due", "busy"):  # nothing checked: a champion-less model, a retry
        console.print(f"[yellow]{out['message']}[/]")
        for w in (out.get("late") or {}).get("windows", []):
            again = "checked again" if w["rechecked"] else w.get("note") or "not checked again"
            console.print(
                f"late: {w['late_rows']:,} rows of {w['window_start']} → {w['window_end']} ({again})", highlight=False
            )
        return
    console.print(
        f"{model} v{out['version']}: window {out['window_start']} → {out['window_end']}, {out['n_current']:,} requests",
        highlight=False,
    )
    if out["status"] != "ok":
        console.print(f"[bold yellow]insufficient data:[/] {out['message']}", highlight=False)
    else:
        verdict = "[bold red]dataset drift[/]" if out["dataset_drifted"] else "[green]no dataset drift[/]"
        cols = ", ".join(out["drifted_columns"]) or "none"
        console.print(
            f"{verdict} ({out['share_drifted']:.0%} of features drifted: {cols}); prediction drift: "
            f"{'[bold red]yes[/]' if out['prediction_drifted'] else 'no'}",
            highlight=False,
        )
    perf = out.get("performance")
    if perf:
        state = "[bold red]degraded[/]" if perf["degraded"] else perf["status"].replace("_", " ")
        console.print(f"performance: {state} ({perf['n_labels']} labeled predictions)", highlight=False)
    alarm = "[bold red]ALARM[/]" if out["alarm"] else "no alarm"
    console.print(
        f"{alarm}: {out['streak']} drifted window(s) in a row, {out['required_windows']} required"
        + (f"; DriftDetected sent ({out['event_id']})" if out["event_id"] else ""),
        highlight=False,
    )
    for note in out["notes"]:
        console.print(f"[dim]note: {note}[/]", highlight=False)
    console.print(f"report: {out['report_uri']}", highlight=False)


@app.command()
def history(
    model: str = typer.Option(..., "--model", "-m", help="Model whose checks to list."),
    limit: int = typer.Option(24, "--limit", "-n", min=1, max=1000, help="How many recent windows."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    config: Path = ConfigOpt,
    env: str | None = EnvOpt,
) -> None:
    """Past drift checks of MODEL, most recent first."""
    from driftline.monitoring.history import DriftHistory

    ctx = _monitoring_context(config, env)
    try:
        ctx.config.model(model)
    except Exception as err:  # ConfigError: unknown model
        fail(str(err))
    entries = DriftHistory(ctx.control_table).list(model, limit)
    if as_json:
        print_json(json.dumps([h.to_dict() for h in entries]))
        return
    if not entries:
        console.print(
            f"no drift checks recorded for {model} yet (the schedule runs them; or run "
            f"`driftline drift check --model {model}`)"
        )
        return
    table = Table()
    for col in ("window end", "v", "status", "rows", "share", "drifted columns", "reasons", "streak", "alarm"):
        table.add_column(col, overflow="fold")
    for h in entries:
        share = "" if h.share_drifted is None else f"{h.share_drifted:.0%}"
        alarm = "[bold red]yes[/]" if h.alarm else "no"
        table.add_row(
            h.window_end,
            str(h.version or ""),
            h.status,
            f"{h.n_current:,}",
            share,
            ", ".join(h.drifted_columns[:6]) + (" …" if len(h.drifted_columns) > 6 else ""),
            ", ".join(h.reasons),
            str(h.streak),
            alarm,
        )
    console.print(table)
