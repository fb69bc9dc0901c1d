"""`driftline features`: validate files locally, upload them, see what ingest made of them.

``validate`` runs exactly the checks (and prints the same report) the ingest function runs, so a
file that passes here is accepted after upload. ``upload`` puts a file under
``incoming/<feature_set>/`` of the features bucket (AWS, or the local platform when
``AWS_ENDPOINT_URL`` points at it); ``uploads`` lists recent ingest results from the control table;
``redrive`` processes unfinished uploads again (failed, dead attempts, dead-lettered events).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from driftline.cli.common import console, err_console, fail, load_platform, print_json

app = typer.Typer(no_args_is_help=True, add_completion=False)

ConfigOpt = typer.Option(Path("cdk.json"), "--config", help="Path to cdk.json.")
EnvOpt = typer.Option(None, "--env", help="Environment in cdk.json (default: driftline:env).")
FeatureSetOpt = typer.Option(
    ..., "--feature-set", "-f", help="Feature set name (a YAML file in the configured feature_sets_dir)."
)
STATUS_STYLE = {
    "accepted": "green",
    "partial": "yellow",
    "rejected": "red",
    "unreadable": "red",
    "too_large": "red",
    "failed": "red",
    "skipped": "dim",
    "processing": "cyan",
    "committing": "cyan",
}


def _catalog(config: Path, env: str | None) -> tuple[Any, Any]:
    from driftline.features.schema import FeatureSetCatalog

    platform = load_platform(config, env)
    directory = Path(platform.config.feature_sets_dir)
    if not directory.is_absolute():
        directory = config.resolve().parent / directory
    return platform, FeatureSetCatalog(directory)


def _feature_set(catalog: Any, name: str) -> Any:
    from driftline.features.schema import FeatureSetError

    try:
        return catalog.get(name)
    except FeatureSetError as e:
        fail(str(e))


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 1] + "…"


def _sample_values(sample: dict[str, Any]) -> str:
    values = {k: v for k, v in sample.items() if k != "row"}
    if len(values) == 1:
        return _short(next(iter(values.values())), 30)
    return _short(values, 50)


def outcome_line(report: dict[str, Any]) -> str:
    """The report's outcome in one sentence: the headline of :func:`print_report`."""
    failed = sum(1 for c in report["checks"] if c["severity"] == "error")
    return (
        f"{report['status']}: {report['rows_accepted']} of {report['rows_total']} rows accepted, "
        f"{report['rows_rejected']} rejected ({failed} failed checks)"
    )


def print_report(report: dict[str, Any]) -> None:
    """The validation report as a headline plus one table row per failed check."""
    style = STATUS_STYLE.get(report["status"], "white")
    console.print(
        f"[bold {style}]{outcome_line(report)}[/] (feature set {report['feature_set']} "
        f"v{report['feature_set_version']}, policy {report['policy']})",
        highlight=False,
    )
    if report.get("policy_note"):
        console.print(f"[yellow]{report['policy_note']}[/]", highlight=False)
    if not report["checks"]:
        return
    table = Table(show_lines=False)
    for col in ("severity", "check", "column", "rows", "message", "sample rows"):
        table.add_column(col, overflow="fold")
    for c in report["checks"]:
        sample = ", ".join(f"row {s['row']}: {_sample_values(s)}" for s in c.get("sample", [])[:3])
        rows = "" if c["failed_rows"] is None else str(c["failed_rows"])
        sev = "[red]error[/]" if c["severity"] == "error" else "[yellow]warning[/]"
        table.add_row(
            sev,
            c["check"],
            c["column"] or "",
            rows,
            c["message"] + (f"\n[dim]fix: {c['hint']}[/]" if c.get("hint") else ""),
            sample,
        )
    console.print(table)
    console.print(f"[dim]{report.get('row_numbering', '')}[/]", highlight=False)


@app.command("validate")
def validate_cmd(
    file: Path = typer.Argument(..., help="Parquet, CSV or gzip CSV file."),
    feature_set: str = FeatureSetOpt,
    report_path: Path | None = typer.Option(None, "--out", "--report", help="Also write the JSON report here."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report instead of a table."),
    config: Path = ConfigOpt,
    env: str = EnvOpt,
) -> None:
    """Run the ingest checks on a local file; exit 1 if any row would be rejected (2: no such file)."""
    from driftline.features.readers import UnreadableFileError, read_path
    from driftline.features.validation import validate

    _, catalog = _catalog(config, env)
    fs = _feature_set(catalog, feature_set)
    if not file.is_file():
        fail(f"{file}: file not found")
    t0 = time.perf_counter()
    try:
        read = read_path(file, fs)
    except UnreadableFileError as e:
        report: dict[str, Any] = {
            "feature_set": fs.name,
            "feature_set_version": fs.version,
            "source": str(file),
            "status": "too_large" if e.check == "file_too_large" else "unreadable",
            "policy": fs.ingest.on_partial_failure,
            "rows_total": None,
            "rows_accepted": 0,
            "rows_rejected": None,
            "checks": [
                {
                    "check": e.check,
                    "column": None,
                    "severity": "error",
                    "failed_rows": None,
                    "message": e.message,
                    "hint": e.hint,
                }
            ],
        }
    else:
        result = validate(read.table, fs, others=list(catalog))
        report = result.report(source=str(file), format=read.format, seconds=round(time.perf_counter() - t0, 3))
    if report_path is not None:
        report_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if as_json:
        print_json(json.dumps(report, default=str))
    elif report["status"] in ("unreadable", "too_large"):
        check = report["checks"][0]
        err_console.print(
            f"[bold red]{report['status']}:[/] {check['message']}\n[dim]fix: {check['hint']}[/]", highlight=False
        )
    else:
        print_report(report)
    if report["status"] != "accepted":
        raise typer.Exit(1)


def _features_bucket(platform: Any) -> str:
    from driftline.cli.resources import NoCallerIdentityError, Resources

    try:
        return Resources(platform).bucket("features")
    except NoCallerIdentityError as e:
        fail(
            f"cannot determine the AWS account for the bucket name ({e}); configure credentials, point "
            f"AWS_ENDPOINT_URL at the local platform, or set FEATURES_BUCKET"
        )
        raise


def _control_table(platform: Any) -> str:
    from driftline.cli.resources import Resources

    return Resources(platform).table("control")


@app.command("upload")
def upload_cmd(
    file: Path = typer.Argument(..., help="Parquet, CSV or gzip CSV file."),
    feature_set: str = FeatureSetOpt,
    name: str = typer.Option(
        None, "--name", help="Object name under incoming/<feature_set>/ (default: the file name)."
    ),
    wait: bool = typer.Option(False, "--wait", help="Wait for the ingest result and show it."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait with --wait."),
    config: Path = ConfigOpt,
    env: str = EnvOpt,
) -> None:
    """Upload a file to s3://<features bucket>/incoming/<feature_set>/ (ingest validates it on arrival)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from driftline import aws
    from driftline.contracts import incoming_key
    from driftline.features.readers import suffix_format

    platform, catalog = _catalog(config, env)
    fs = _feature_set(catalog, feature_set)
    if not file.is_file():
        fail(f"{file}: file not found")
    object_name = name or file.name
    if "/" in object_name or not object_name.strip():
        fail(f"--name {object_name!r}: give a plain file name (no '/')")
    if suffix_format(object_name) is None:
        fail(f"{object_name}: unsupported file type; upload .parquet, .csv or .csv.gz files")
    bucket = _features_bucket(platform)
    key = incoming_key(fs.name, object_name)
    s3 = aws.client("s3")
    try:
        with err_console.status(f"uploading {file.name} ({file.stat().st_size / 2**20:.1f} MiB)…"):
            aws.s3_upload_file(s3, str(file), bucket, key)
        head = s3.head_object(Bucket=bucket, Key=key)
    except (BotoCoreError, ClientError) as e:
        fail(f"upload to s3://{bucket}/{key} failed: {e}", 1)
        raise
    version = head.get("VersionId")
    suffix = f" (version {version})" if version else ""
    # soft_wrap: a URI someone copies must not get a line break inserted at a space in the key
    console.print(f"uploaded [bold]{file}[/] → s3://{bucket}/{key}{suffix}", highlight=False, soft_wrap=True)
    if not wait:
        console.print(
            "[dim]ingest validates it on arrival; see the result with: driftline features uploads "
            f"--feature-set {fs.name}[/]",
            highlight=False,
        )
        return
    with err_console.status("waiting for the ingest result…"):
        record = _wait_for_record(platform, fs.name, f"s3://{bucket}/{key}", version, timeout)
    if record is None:
        fail(
            f"no ingest result within {timeout:.0f} s; is the ingest function deployed (or the local "
            f"platform running)? Check later with: driftline features uploads --feature-set {fs.name}",
            1,
        )
        return
    style = STATUS_STYLE.get(str(record.get("status")), "white")
    console.print(
        f"ingest result: [bold {style}]{record.get('status')}[/] — {record.get('reason', '')}",
        highlight=False,
        soft_wrap=True,
    )
    if record.get("report_uri"):
        console.print(f"report: {record['report_uri']}", highlight=False, soft_wrap=True)
    if record.get("status") != "accepted":
        raise typer.Exit(1)


def _wait_for_record(
    platform: Any, feature_set: str, source: str, version: str | None, timeout: float
) -> dict[str, Any] | None:
    from driftline.features.ingest import IN_FLIGHT, recent_uploads

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for rec in recent_uploads(_control_table(platform), [feature_set], limit=50):
            if rec.get("status") in IN_FLIGHT or (rec.get("status") == "failed" and rec.get("retryable")):
                continue  # not the outcome yet
            if rec.get("source") == source and (version is None or rec.get("version_id") == version):
                return rec
        time.sleep(1.0)
    return None


def _print_records(records: list[dict[str, Any]]) -> None:
    table = Table()
    table.add_column("when (UTC)", no_wrap=True)
    table.add_column("file", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("accepted / total", justify="right", no_wrap=True)
    table.add_column("report / reason", overflow="fold")
    for r in records:
        style = STATUS_STYLE.get(str(r.get("status")), "white")
        source = str(r.get("source", ""))
        name = source.split("/incoming/", 1)[-1]
        total = r.get("rows_total")
        counts = f"{r.get('rows_accepted', 0)} / {total}" if total is not None else "-"
        report = str(r.get("report_uri") or "")
        if report.startswith("s3://"):
            report = report.split("/", 3)[-1]  # the key; the bucket is the features bucket
        table.add_row(
            str(r.get("event_time") or r.get("recorded_at") or "")[:16].replace("T", " "),
            name,
            f"[{style}]{r.get('status')}[/]",
            counts,
            report or str(r.get("reason") or ""),
        )
    console.print(table)


@app.command("uploads")
def uploads_cmd(
    feature_set: str = typer.Option(None, "--feature-set", "-f", help="Only this feature set."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=1000, help="How many results."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    config: Path = ConfigOpt,
    env: str = EnvOpt,
) -> None:
    """Recent ingest results (newest first): counts, status and where the report is."""
    from botocore.exceptions import BotoCoreError, ClientError

    from driftline.features.ingest import recent_uploads

    platform, catalog = _catalog(config, env)
    names = [_feature_set(catalog, feature_set).name] if feature_set else catalog.names()
    try:
        records = recent_uploads(_control_table(platform), names, limit=limit)
    except (BotoCoreError, ClientError) as e:
        fail(f"the control table could not be read: {e}", 1)
        return
    if as_json:
        print_json(json.dumps(records, default=str))
        return
    if not records:
        console.print(
            f"no uploads yet for {', '.join(names)}; upload with: driftline features upload FILE --feature-set NAME",
            highlight=False,
        )
        return
    _print_records(records)


@app.command("list")
def list_cmd(config: Path = ConfigOpt, env: str = EnvOpt) -> None:
    """The feature sets defined for this environment."""
    _, catalog = _catalog(config, env)
    for fs in catalog:
        kinds: dict[str, int] = {}
        for f in fs.features:
            kinds[f.type] = kinds.get(f.type, 0) + 1
        request_time = [f.name for f in fs.features if f.request_time]
        console.print(
            f"[bold]{fs.name}[/] v{fs.version} [dim](fingerprint {fs.fingerprint})[/]"
            + (f": {fs.description}" if fs.description else ""),
            highlight=False,
        )
        console.print(f"  entity: {', '.join(fs.entity)}   timestamp: {fs.timestamp}", highlight=False)
        counts = ", ".join(f"{n} {k}" for k, n in kinds.items())
        extra = f"; request-time: {', '.join(request_time)}" if request_time else ""
        console.print(f"  features: {len(fs.features)} ({counts}){extra}", highlight=False)
        labels = "; ".join(
            f"{lb.name} ({lb.task}" + (f": {', '.join(map(str, lb.class_values))}" if lb.class_values else "") + ")"
            for lb in fs.labels
        )
        console.print(f"  labels: {labels or 'none'}", highlight=False)
        console.print(
            f"  ingest: on_partial_failure={fs.ingest.on_partial_failure}, "
            f"max_file_mb={fs.ingest.max_file_mb}; upload to incoming/{fs.name}/",
            highlight=False,
        )


@app.command("redrive")
def redrive_cmd(
    feature_set: str = typer.Option(None, "--feature-set", "-f", help="Only this feature set."),
    upload: list[str] = typer.Option(
        [],
        "--upload",
        "-u",
        help="Only this upload id (repeatable); redriven whatever its status, unless it is committed.",
    ),
    dlq: bool = typer.Option(
        True, "--dlq/--no-dlq", help="Also redrive upload events from the data dead-letter queue."
    ),
    stalled_after: float = typer.Option(
        None,
        "--stalled-after",
        min=0,
        help="Seconds after which an "
        "upload still 'processing' or 'committing' counts as dead (default: "
        "the ingest function's timeout).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be redriven."),
    config: Path = ConfigOpt,
    env: str = EnvOpt,
) -> None:
    """Process unfinished uploads again: failed, dead (stuck processing/committing) or dead-lettered ones.

    Each is sent to the ingest function with its original event time, so it writes the same keys
    (the commit rolls forward; nothing is duplicated). Dead-letter messages are deleted once their
    upload was processed.
    """
    from datetime import timedelta

    from botocore.exceptions import BotoCoreError, ClientError

    from driftline import aws
    from driftline.cli.resources import Resources
    from driftline.features.redrive import (
        dead_lettered,
        merge,
        redrive,
        running_parts_executions,
        unfinished_uploads,
    )

    platform, catalog = _catalog(config, env)
    names = [_feature_set(catalog, feature_set).name] if feature_set else catalog.names()
    ingest = platform.function("ingest")
    wait = timedelta(seconds=ingest.timeout_s if stalled_after is None else stalled_after)
    bucket = _features_bucket(platform)
    sqs = aws.client("sqs")
    res = Resources(platform)
    parts_arn = f"arn:aws:states:{res.region}:{res.account()}:stateMachine:{platform.name('ingest-parts')}"
    try:
        # an upload still validated in parts is not stalled, however long its workflow runs
        running = running_parts_executions(aws.client("stepfunctions"), parts_arn)
        found = unfinished_uploads(
            _control_table(platform),
            names,
            stalled_after=wait,
            client=aws.client("dynamodb"),
            upload_ids=upload,
            running_executions=running,
        )
        queue_url = ""
        if dlq and not upload:
            queue_url = sqs.get_queue_url(QueueName=Resources(platform).queue("dlq-data"))["QueueUrl"]
            found = merge(
                found,
                [
                    u
                    for u in dead_lettered(queue_url, bucket, client=sqs)
                    if u.key.split("/")[1:2] and u.key.split("/")[1] in names
                ],
            )
    except (BotoCoreError, ClientError) as e:
        fail(f"could not list unfinished uploads: {e}", 1)
        return
    if upload:
        missing = sorted(set(upload) - {u.upload_id for u in found})
        if missing:
            fail(
                f"no unfinished upload {', '.join(missing)} (committed, skipped, unknown or still being "
                f"validated by its ingest-parts workflow); see: "
                f"driftline features uploads",
                1,
            )
    if not found:
        console.print("nothing to redrive: every upload finished", highlight=False)
        return
    for u in found:
        console.print(
            f"{u.status:<14} {u.source} ({u.upload_id or 'no record'}): {u.reason}", highlight=False, soft_wrap=True
        )

    def release(receipt: str) -> None:  # visible again now, not after the queue's visibility timeout
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=0)

    if dry_run:
        for u in found:
            for receipt in u.receipts:
                release(receipt)
        console.print(f"[dim]{len(found)} upload(s) would be redriven[/]", highlight=False)
        return
    client = aws.sync_invoke_client(ingest.timeout_s + 60)
    function_name = Resources(platform).function("ingest")

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        resp = client.invoke(FunctionName=function_name, Payload=json.dumps(event).encode())
        body = json.loads(resp["Payload"].read() or b"{}")
        if resp.get("FunctionError"):
            return {"errorMessage": f"{resp['FunctionError']}: {body.get('errorMessage', body)}"}
        return dict(body)

    with err_console.status(f"redriving {len(found)} upload(s) through {function_name}…"):
        outcomes = redrive(
            found,
            invoke,
            release_message=release,
            delete_message=lambda receipt: sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=receipt),
        )
    failed = 0
    for o in outcomes:
        style = STATUS_STYLE.get(o.status, "red")
        failed += o.status in ("error", "failed")
        console.print(f"[{style}]{o.status}[/] {o.upload.source}: {o.detail}", highlight=False, soft_wrap=True)
    if failed:
        fail(f"{failed} of {len(outcomes)} upload(s) failed again; their records and reports say why", 1)
