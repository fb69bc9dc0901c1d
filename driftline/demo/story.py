"""The Driftline story, end to end on the local platform, one checked step at a time.

ingest reference data → train v1 (a manual ``RetrainRequested``) → quality gate → promote → real
traffic through the local HTTP API → a clean scheduled drift check raises nothing → traffic drifts
(and its labeled data is uploaded) → the scheduled drift check detects it → retraining starts by
itself (``DriftDetected`` → rule → retrain-trigger → workflow) → v2 passes the gate → canary with
live traffic → promoted → the same serving workers answer with v2 → the HTML drift report.

Every step asserts what it claims (a version number, a decision in the control table, a state in
the workflow history) and raises :class:`DemoError` with what it saw otherwise. Nothing here talks
to a handler directly: data goes in through S3 and HTTP, schedules fire through the local
scheduler, and everything else happens through the platform's own events.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from driftline.capture_format import captured_rows
from driftline.contracts import capture_prefix, incoming_key
from driftline.demo.local import DemoError, LocalRun
from driftline.demo.runs import RunFollower
from driftline.demo.traffic import BackgroundTraffic, send

StepStatus = Literal["pending", "running", "ok", "failed", "skipped"]

DEMO_DRIFT_SHIFT = {
    "income": -1.0,
    "utilization": 1.0,
    "age": -0.8,
    "num_inquiries_6m": 1.2,
    "tenure_months": -0.8,
    "num_accounts": 0.8,
    "payment_ratio": -0.8,
}
DEMO_DRIFT_WEIGHTS = {
    "employment_type": {"student": 3.0, "retired": 0.3},
    "channel": {"online": 2.5},
    "housing": {"rent": 2.5},
}
"""The demo's traffic drift: a strong covariate shift (the label keeps its relation to the features),
so the drift check alarms clearly and a model retrained on the new period is at least as good."""

REFERENCE = ("2026-01-01", "2026-04-01")
DRIFTED = ("2026-04-01", "2026-05-01")


@dataclass
class DemoSettings:
    config: Path = Path("cdk.json")
    env: str = "demo"
    state_dir: Path = Path(".driftline")
    out_dir: Path = Path(".driftline/demo")
    port: int = 4566
    api_port: int = 3000
    keep: bool = False
    model: str = "credit-default"
    reference_rows: int = 4000
    drifted_rows: int = 2000
    clean_traffic_rows: int = 300
    drifted_traffic_rows: int = 600
    seed: int = 7
    step_timeout_s: float = 120.0


@dataclass
class StepResult:
    title: str
    status: StepStatus = "pending"
    seconds: float = 0.0
    detail: str = ""


@dataclass
class Facts:
    """What the story learned on the way (the summary, the e2e test and the benchmark read it)."""

    endpoint: str = ""
    api_url: str = ""
    v1_run: str = ""
    v2_run: str = ""
    v1_metrics: dict[str, Any] = field(default_factory=dict)
    v2_gate: dict[str, Any] = field(default_factory=dict)
    canary: dict[str, Any] = field(default_factory=dict)
    clean_check: dict[str, Any] = field(default_factory=dict)
    drift_check: dict[str, Any] = field(default_factory=dict)
    drift_decision: dict[str, Any] = field(default_factory=dict)
    labels_decision: dict[str, Any] = field(default_factory=dict)
    serve_pids_before: list[int] = field(default_factory=list)
    serve_pids_after: list[int] = field(default_factory=list)
    report_path: str = ""
    report_uri: str = ""
    drifted_upload_at: float = 0.0
    drift_fired_at: float = 0.0
    v2_started_at: float = 0.0
    v2_promoted_at: float = 0.0
    v2_serving_at: float = 0.0
    step_durations: dict[str, dict[str, float]] = field(default_factory=dict)
    traffic_versions: dict[int, int] = field(default_factory=dict)


class Story:
    """Runs the steps in order; the first failure stops the story (later steps are skipped)."""

    def __init__(
        self, settings: DemoSettings, platform: Any, on_change: Callable[[list[StepResult]], None] | None = None
    ) -> None:
        self.settings = settings
        self.platform = platform
        self.on_change = on_change or (lambda _steps: None)
        self.local: LocalRun | None = None
        self.facts = Facts()
        self.traffic: BackgroundTraffic | None = None
        self._runs: dict[str, RunFollower] = {}
        self._current: StepResult | None = None
        self._drift_since = ""
        self.steps: list[tuple[StepResult, Callable[[], str]]] = [
            (StepResult("Start the local platform"), self.start_platform),
            (StepResult("Ingest reference data (S3 upload)"), self.ingest_reference),
            (StepResult("Train v1 (driftline retrain)"), self.train_v1),
            (StepResult("Quality gate v1"), self.gate_v1),
            (StepResult("Promote v1"), self.promote_v1),
            (StepResult("Serve traffic over HTTP"), self.serve_clean),
            (StepResult("Scheduled drift check: clean"), self.clean_check),
            (StepResult("Traffic drifts (+ labeled upload)"), self.traffic_drifts),
            (StepResult("Scheduled drift check: drift"), self.drift_check),
            (StepResult("Retraining starts by itself"), self.retraining_starts),
            (StepResult("Train v2 and pass the gate"), self.gate_v2),
            (StepResult("Canary with live traffic"), self.canary),
            (StepResult("Promote v2"), self.promote_v2),
            (StepResult("Serving answers with v2, no restart"), self.serving_v2),
            (StepResult("HTML drift report"), self.drift_report),
        ]

    # ------------------------------------------------------------ running
    @property
    def results(self) -> list[StepResult]:
        return [r for r, _ in self.steps]

    def note(self, text: str) -> None:
        if self._current is not None:
            self._current.detail = text
            self.on_change(self.results)

    def run(self) -> bool:
        ok = True
        try:
            for result, fn in self.steps:
                if not ok:
                    result.status = "skipped"
                    continue
                self._current = result
                result.status = "running"
                self.on_change(self.results)
                t0 = time.monotonic()
                try:
                    result.detail = fn()
                    result.status = "ok"
                except DemoError as e:
                    result.status, result.detail, ok = "failed", str(e), False
                except Exception as e:  # an unexpected failure still ends the story cleanly
                    result.status, result.detail, ok = "failed", f"{type(e).__name__}: {e}", False
                result.seconds = time.monotonic() - t0
                self.on_change(self.results)
        finally:
            self._current = None
            self.finish()
        return ok

    def finish(self) -> None:
        if self.traffic is not None:
            self.traffic.stop()
            self.traffic = None
        if self.local is not None:
            self.local.deactivate()
            if not self.settings.keep:
                self.local.stop()

    # ------------------------------------------------------------ helpers
    def _local(self) -> LocalRun:
        if self.local is None:
            raise DemoError("the local platform is not running")
        return self.local

    def _wait(self, check: Callable[[], Any], what: str, timeout_s: float | None = None, interval: float = 0.25) -> Any:
        deadline = time.monotonic() + (timeout_s or self.settings.step_timeout_s)
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise DemoError(f"timed out after {timeout_s or self.settings.step_timeout_s:.0f} s waiting for {what}")
            time.sleep(interval)

    def _table(self, rows: int, span: tuple[str, str], seed: int, drifted: bool) -> Any:
        from driftline.datasets.credit_default import DriftSpec, generate

        spec = DriftSpec(shift=DEMO_DRIFT_SHIFT, category_weights=DEMO_DRIFT_WEIGHTS) if drifted else None
        return generate(rows, span[0], span[1], seed=seed, drift=spec)

    def _records(self, table: Any) -> list[dict[str, Any]]:
        from driftline.datasets.credit_default import FEATURES

        rows: list[dict[str, Any]] = table.select(list(FEATURES)).to_pylist()
        return rows

    def _upload(self, table: Any, name: str) -> dict[str, Any]:
        """Upload a Parquet file to incoming/ and wait for its ingest record."""
        import pyarrow.parquet as pq

        from driftline.datasets.credit_default import FEATURE_SET
        from driftline.features.ingest import IN_FLIGHT, recent_uploads

        local = self._local()
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        bucket = local.bucket("features")
        key = incoming_key(FEATURE_SET, f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%S}.parquet")
        local.client("s3").put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
        uri = f"s3://{bucket}/{key}"
        table_name = self.platform.name("control")

        def record() -> dict[str, Any] | None:  # the upload's outcome, not an attempt still under way
            for rec in recent_uploads(table_name, [FEATURE_SET], limit=25, client=local.client):
                if rec.get("source") == uri and rec.get("status") not in IN_FLIGHT and not rec.get("retryable"):
                    return rec
            return None

        rec: dict[str, Any] = self._wait(record, f"the ingest record of {uri} (is the ingest function working?)")
        if rec.get("status") != "accepted":
            raise DemoError(
                f"ingest of {uri} ended {rec.get('status')}: {rec.get('reason')} (report: {rec.get('report_uri')})"
            )
        return rec

    def _decision(self, trigger: str, since: str, started_only: bool = False) -> dict[str, Any] | None:
        from driftline.retraining.control import ControlTable

        for rec in ControlTable(self.platform.name("control")).history(self.settings.model, limit=50, kind="decision"):
            if (
                rec.get("trigger") == trigger
                and str(rec.get("at", "")) >= since
                and (not started_only or rec.get("decision") == "started")
            ):
                return rec
        return None

    def _aliases(self) -> Any:
        from driftline.registry.store import Registry

        return Registry(self.platform.name("registry")).aliases(self.settings.model, consistent=True)

    def _follow(self, key: str, arn: str) -> RunFollower:
        self._runs[key] = RunFollower(arn)
        return self._runs[key]

    # ------------------------------------------------------------ steps
    def start_platform(self) -> str:
        t0 = time.monotonic()
        cfg = self.settings
        self.local = LocalRun.start(
            self.platform, config=cfg.config, env=cfg.env, state_dir=cfg.state_dir, port=cfg.port, api_port=cfg.api_port
        )
        self.local.activate()
        self.facts.endpoint, self.facts.api_url = self.local.state.endpoint, self.local.state.api_url
        return f"emulator {self.facts.endpoint}, API {self.facts.api_url} ({time.monotonic() - t0:.1f} s)"

    def ingest_reference(self) -> str:
        table = self._table(self.settings.reference_rows, REFERENCE, self.settings.seed, drifted=False)
        rec = self._upload(table, "reference")
        return f"{rec.get('rows_accepted')} rows accepted into curated/ ({REFERENCE[0]} to {REFERENCE[1]})"

    def train_v1(self) -> str:
        from driftline.retraining.requests import request_retrain

        since = datetime.now(UTC).isoformat()
        event_id = request_retrain(self.platform, self.settings.model, "demo: first model", "driftline-demo")

        def decided() -> dict[str, Any] | None:
            rec = self._decision("manual", since)
            return rec if rec and rec.get("trigger_id") == event_id else None

        d = self._wait(decided, "the retrain-trigger's decision on the RetrainRequested event")
        if d["decision"] != "started":
            raise DemoError(f"retraining was not started: {d['decision']}: {d['reason']}")
        run = self._follow("v1", str(d["execution_arn"]))
        self.facts.v1_run = run.name
        state = run.wait_for(
            "Train",
            self.settings.step_timeout_s,
            tick=lambda: self.note(f"run {run.name}: {' → '.join(run.entered())}"),
        )
        cand = _result(state, "candidate", "Train")
        if cand.get("status") != "candidate":
            raise DemoError(f"training did not produce a candidate: {cand.get('status')}: {cand.get('reason')}")
        self.facts.v1_metrics = dict(cand.get("metrics") or {})
        auc = self.facts.v1_metrics.get("roc_auc")
        return f"v{cand['version']} trained by run {run.name}" + (f"; roc_auc {auc:.3f}" if auc is not None else "")

    def gate_v1(self) -> str:
        run = self._runs["v1"]
        gate = _result(run.wait_for("Gate", self.settings.step_timeout_s), "gate", "Gate")
        if not gate.get("passed"):
            raise DemoError(f"v1 failed the gate: {gate.get('summary')}")
        return str(gate.get("summary", "passed"))

    def promote_v1(self) -> str:
        run = self._runs["v1"]
        status = run.wait_end(self.settings.step_timeout_s)
        if status != "SUCCEEDED":
            raise DemoError(f"run {run.name} ended {status}; states: {' → '.join(run.entered())}")
        aliases = self._aliases()
        if aliases.champion != 1:
            raise DemoError(f"expected v1 to be champion after run {run.name}, the registry says {aliases.champion}")
        self.facts.step_durations["v1"] = run.durations()
        return f"v1 is champion (direct deploy: no champion to canary against); run {status}"

    def serve_clean(self) -> str:
        local = self._local()
        cfg = self.settings
        rows = self._records(self._table(cfg.clean_traffic_rows, REFERENCE, cfg.seed + 100, drifted=False))
        answers = self._wait(
            lambda: _try_send(self.facts.api_url, self.settings.model, rows[:10]),
            "the serving endpoint to answer with v1",
            timeout_s=30,
        )
        answers += send(self.facts.api_url, self.settings.model, rows[10:])
        versions = {v for a in answers for v in a.versions}
        if versions != {1}:
            raise DemoError(f"expected every answer from v1, got versions {sorted(versions)}")
        self.facts.serve_pids_before = local.worker_pids("serve")
        lat = sorted(a.latency_ms for a in answers)
        self._wait_captures(len(rows))
        return (
            f"{len(rows)} rows in {len(answers)} requests, all answered by v1; p50 {lat[len(lat) // 2]:.1f} ms "
            f"per request (HTTP)"
        )

    def _wait_captures(self, at_least: int) -> int:
        local = self._local()
        s3 = local.client("s3")
        bucket = local.bucket("captures")
        prefix = capture_prefix(self.settings.model)

        def count() -> int:
            n = 0
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                    n += sum(captured_rows(json.loads(line)) for line in body.splitlines() if line.strip())
            return n if n >= at_least else 0

        n: int = self._wait(count, f"{at_least} captured rows in s3://{bucket}/{prefix}", timeout_s=30, interval=0.5)
        return n

    def _fire_drift(self) -> dict[str, Any]:
        # a scheduled window ends the allowed lateness before now: let the traffic just sent fall inside it
        cfg = self.platform.config
        time.sleep(cfg.monitoring.lateness_seconds(cfg.model(self.settings.model).drift, local=True) + 1)
        rule = f"drift-{self.settings.model}"
        doc = self._local().fire(rule, wait_s=self.settings.step_timeout_s)
        dispatches = doc.get("dispatches", [])
        if not dispatches:
            raise DemoError(f"firing {rule} reached no target")
        d = dispatches[0]
        if not d.get("succeeded"):
            raise DemoError(f"the drift check failed: {d.get('error') or d.get('payload')}")
        payload = d.get("payload")
        if isinstance(payload, str):
            with contextlib.suppress(ValueError):
                payload = json.loads(payload)
        if not isinstance(payload, dict):
            raise DemoError(f"the drift check returned {payload!r}, not a result object")
        if payload.get("status") == "error":
            raise DemoError(f"the drift check could not run: {payload.get('message')}")
        return payload

    def clean_check(self) -> str:
        result = self._fire_drift()
        self.facts.clean_check = result
        if _drifted(result):
            raise DemoError(f"the drift check alarmed on clean traffic: {_drift_line(result)}")
        return f"no drift: {_drift_line(result)}"

    def traffic_drifts(self) -> str:
        since = datetime.now(UTC).isoformat()
        self.facts.drifted_upload_at = time.time()
        cfg = self.settings
        rec = self._upload(self._table(cfg.drifted_rows, DRIFTED, cfg.seed + 1, drifted=True), "drifted")
        labels = self._wait(lambda: self._decision("labels", since), "the decision on the labeled upload", timeout_s=30)
        self.facts.labels_decision = labels
        rows = self._records(self._table(cfg.drifted_traffic_rows, DRIFTED, cfg.seed + 200, drifted=True))
        answers = send(self.facts.api_url, self.settings.model, rows)
        self._wait_captures(self.settings.clean_traffic_rows + len(rows))
        return (
            f"labeled upload: {rec.get('rows_accepted')} rows accepted, trigger {labels['decision']} "
            f"({labels['reason']}); {len(rows)} drifted rows served in {len(answers)} requests"
        )

    def drift_check(self) -> str:
        self._drift_since = datetime.now(UTC).isoformat()
        self.facts.drift_fired_at = time.time()
        result = self._fire_drift()
        self.facts.drift_check = result
        if not _drifted(result):
            raise DemoError(f"the drift check did not detect the drift: {_drift_line(result)}")
        return f"drift detected: {_drift_line(result)}"

    def retraining_starts(self) -> str:
        d = self._wait(
            lambda: self._decision("drift", self._drift_since),
            "a retraining decision for the DriftDetected event (on-drift rule → retrain-trigger)",
        )
        self.facts.drift_decision = d
        if d["decision"] != "started":
            raise DemoError(f"the DriftDetected trigger was {d['decision']}: {d['reason']}")
        run = self._follow("v2", str(d["execution_arn"]))
        self.facts.v2_run = run.name
        run.refresh()
        self.facts.v2_started_at = run.description["startDate"].timestamp()
        # keep traffic flowing from here on, so the canary has live requests to judge
        rows = self._records(self._table(400, DRIFTED, self.settings.seed + 300, drifted=True))
        self.traffic = BackgroundTraffic(self.facts.api_url, self.settings.model, rows)
        self.traffic.start()
        return f"run {run.name} started by the drift trigger: {d['reason']}"

    def gate_v2(self) -> str:
        run = self._runs["v2"]
        state = run.wait_for(
            "Gate", self.settings.step_timeout_s, tick=lambda: self.note(f"run {run.name}: {' → '.join(run.entered())}")
        )
        gate = _result(state, "gate", "Gate")
        self.facts.v2_gate = gate
        if not gate.get("passed"):
            raise DemoError(f"v2 did not pass the gate: {gate.get('summary')}")
        return str(gate.get("summary"))

    def canary(self) -> str:
        run = self._runs["v2"]
        dep = _result(run.wait_for("Deploy", self.settings.step_timeout_s), "deploy", "Deploy")
        if dep.get("mode") != "canary":
            raise DemoError(f"expected a canary deploy, got {dep.get('mode')} ({dep.get('note')})")
        self.note(f"v{dep['challenger_version']} takes {dep['percent']}% of traffic for {dep['bake_seconds']} s")
        state = run.wait_for(
            "EvaluateCanary",
            self.settings.step_timeout_s + float(dep.get("bake_seconds", 0)),
            tick=lambda: self.note(f"baking: {self.traffic.requests if self.traffic else 0} requests so far"),
        )
        verdict = _result(state, "canary", "EvaluateCanary")
        self.facts.canary = verdict
        if not verdict.get("healthy"):
            raise DemoError(f"the canary was judged unhealthy: {verdict.get('summary')}")
        ch, cp = verdict.get("challenger", {}), verdict.get("champion", {})
        return (
            f"healthy: challenger {ch.get('rows')} rows, {ch.get('error_rate', 0):.1%} errors vs champion "
            f"{cp.get('rows')} rows; {dep['percent']}% for {dep['bake_seconds']} s"
        )

    def promote_v2(self) -> str:
        run = self._runs["v2"]
        status = run.wait_end(self.settings.step_timeout_s)
        self.facts.step_durations["v2"] = run.durations()
        stop = run.description.get("stopDate")
        self.facts.v2_promoted_at = stop.timestamp() if stop is not None else time.time()
        if status != "SUCCEEDED":
            raise DemoError(f"run {run.name} ended {status}; states: {' → '.join(run.entered())}")
        aliases = self._aliases()
        if aliases.champion != 2 or aliases.challenger is not None:
            raise DemoError(
                f"expected v2 champion and no challenger, the registry says champion "
                f"{aliases.champion}, challenger {aliases.challenger}"
            )
        return f"v2 is champion, challenger cleared; run {status}"

    def serving_v2(self) -> str:
        local = self._local()
        rows = self._records(self._table(20, DRIFTED, self.settings.seed + 400, drifted=True))

        def answered_by_v2() -> bool:
            a = send(self.facts.api_url, self.settings.model, rows)
            return {v for x in a for v in x.versions} == {2}

        self._wait(answered_by_v2, "the endpoint to answer with v2 (champion cache TTL)", timeout_s=30)
        self.facts.v2_serving_at = time.time()
        if self.traffic is not None:
            self.traffic.stop()
            self.facts.traffic_versions = dict(self.traffic.versions)
            self.traffic = None
        self.facts.serve_pids_after = local.worker_pids("serve")
        before, after = self.facts.serve_pids_before, self.facts.serve_pids_after
        if not before or not set(before) & set(after):
            raise DemoError(f"the serving workers changed (before {before}, after {after}): a restart happened")
        return f"every row answered by v2; serve worker pid(s) {', '.join(map(str, before))} kept running"

    def drift_report(self) -> str:
        local = self._local()
        uri = _report_uri(self.facts.drift_check)
        if not uri:
            raise DemoError(f"the drift result names no HTML report: keys {sorted(self.facts.drift_check)}")
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        body = local.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        self.settings.out_dir.mkdir(parents=True, exist_ok=True)
        path = (self.settings.out_dir / "drift-report.html").resolve()
        path.write_bytes(body)
        self.facts.report_path, self.facts.report_uri = str(path), uri
        return f"{path} ({len(body) / 1024:.0f} KiB; {uri})"


def _result(state: dict[str, Any], key: str, step: str) -> dict[str, Any]:
    """``state[key]['value']``, or the error the step was caught with."""
    node = state.get(key)
    if isinstance(node, dict) and isinstance(node.get("value"), dict):
        return dict(node["value"])
    err = state.get("error") if isinstance(state.get("error"), dict) else {}
    cause = str((err or {}).get("Cause", ""))
    with contextlib.suppress(ValueError, AttributeError):
        cause = json.loads(cause).get("errorMessage", cause)
    raise DemoError(f"{step} failed: {(err or {}).get('Error', 'no result')}: {cause[:500]}")


def _try_send(api_url: str, model: str, rows: list[dict[str, Any]]) -> Any:
    try:
        answers = send(api_url, model, rows)
    except DemoError:
        return None
    return answers if all(a.versions for a in answers) else None


def _drifted(result: dict[str, Any]) -> bool:
    for key in ("drift_detected", "alarm", "dataset_drifted", "drifted"):
        if isinstance(result.get(key), bool):
            return bool(result[key])
    return False


def _drift_line(result: dict[str, Any]) -> str:
    share = result.get("share_drifted")
    cols = result.get("drifted_columns") or []
    parts = []
    if isinstance(share, (int, float)):
        parts.append(f"{share:.0%} of columns drifted")
    if cols:
        parts.append(", ".join(map(str, cols[:6])) + (" …" if len(cols) > 6 else ""))
    status = result.get("status")
    if status and not parts:
        parts.append(str(status))
    return "; ".join(parts) or "no summary in the result"


def _report_uri(result: dict[str, Any]) -> str:
    for key in ("report_uri", "html_uri", "report_html_uri"):
        v = result.get(key)
        if isinstance(v, str) and v.startswith("s3://"):
            return v
    return ""
