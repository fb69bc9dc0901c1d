"""Late captures against moto: counted by the next scheduled check through S3 LastModified, re-checks, leases.

moto dates an object when it is put, so a capture that "arrives late" is an object put after the
check of its window. S3 dates objects to the second and a check's read covers the objects dated up to
the second before it started, hence the short sleeps around checks.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from driftline import aws as aws_mod
from driftline.contracts import LATE_ROWS_METRIC
from driftline.monitoring import Context, run_check
from driftline.monitoring.history import DriftHistory, Lease
from tests.integration.test_monitoring_check import (
    MODEL,
    T0,
    ctx_with,
    drain,
    observe,
    register_champion,
    write_captures,
)

W0 = (T0.isoformat(), (T0 + timedelta(hours=1)).isoformat())


def settle() -> None:
    """Let S3's one-second clock move past the objects just written (or the check just made)."""
    time.sleep(1.1)


def write_late(fs: Any, version: int, start: datetime, n: int, seed: int, shift: float = 0.0) -> None:
    """Captures stamped from ``start`` but delivered now, filed under the next hour like Firehose would."""
    ids = write_captures(fs, version, start, n, seed, shift)
    assert len(ids) == n
    s3 = aws_mod.client("s3")
    bucket = aws_mod.env("CAPTURES_BUCKET")
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=f"captures/model={MODEL}/{start:%Y/%m/%d/%H}/")["Contents"]:
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        if ids[0].encode() in body:
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
            later = start + timedelta(hours=1)
            key = f"captures/model={MODEL}/{later:%Y/%m/%d/%H}/{MODEL}-late-{uuid.uuid4().hex}"
            s3.put_object(Bucket=bucket, Key=key, Body=body)


def history_item(end: str) -> Any:
    return next(e for e in DriftHistory(aws_mod.env("CONTROL_TABLE")).list(MODEL, 50) if e.window_end == end)


def result_doc(out: dict[str, Any]) -> dict[str, Any]:
    bucket, key = out["result_uri"].removeprefix("s3://").split("/", 1)
    return json.loads(aws_mod.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def test_capture_landing_after_its_windows_check_is_counted_by_the_next_scheduled_check(
    aws: dict[str, str], credit_fs: Any
) -> None:
    """Regression (issue 19): a capture stamped in window W whose object lands after W's check was read
    by no later scheduled check (the next window starts at W's end)."""
    v = register_champion(credit_fs)
    write_captures(credit_fs, v, T0, 300, seed=60)
    settle()
    first = run_check(MODEL, window_start=W0[0], window_end=W0[1])
    assert first["n_current"] == 300 and first["late_rows"] == 0 and not first["rechecked"]
    write_late(credit_fs, v, T0 + timedelta(minutes=5), 5, seed=61)  # stamped 10:05-10:45, lands now
    write_captures(credit_fs, v, T0 + timedelta(hours=1), 250, seed=62)
    settle()
    settle()
    second = run_check(MODEL, now=T0 + timedelta(hours=2, minutes=5))  # scheduled: starts where W ended
    assert second["window_start"] == W0[1] and second["n_current"] == 250
    assert second["late_rows"] == 5
    assert second["late"]["windows"] == [
        {
            "window_start": W0[0],
            "window_end": W0[1],
            "late_rows": 5,
            "late_rows_since_check": 5,
            "rechecked": False,
        }
    ]
    assert history_item(W0[1]).late_rows == 5
    doc = result_doc(second)
    assert doc["late_rows"] == 5 and any("5 rows of the window" in n for n in doc["notes"])
    names = {m["MetricName"] for m in aws_mod.client("cloudwatch").list_metrics(Namespace=aws_ns())["Metrics"]}
    assert LATE_ROWS_METRIC in names
    # the same objects are never counted twice: a retry right after finds nothing new
    settle()
    retry = run_check(MODEL, now=T0 + timedelta(hours=2, minutes=5))
    assert retry["status"] == "not_due" and retry["late_rows"] == 0
    assert history_item(W0[1]).late_rows == 5


def aws_ns() -> str:
    return aws_mod.env("POWERTOOLS_METRICS_NAMESPACE")


def test_late_rows_above_the_share_recheck_the_window_once(aws: dict[str, str], credit_fs: Any) -> None:
    v = register_champion(credit_fs)
    probes = observe(aws)
    write_captures(credit_fs, v, T0, 250, seed=70)
    settle()
    first = run_check(MODEL, window_start=W0[0], window_end=W0[1])
    assert first["status"] == "ok" and not first["alarm"]
    write_late(credit_fs, v, T0, 900, seed=71, shift=1.0)  # drifted rows of W0, delivered after its check
    write_captures(credit_fs, v, T0 + timedelta(hours=1), 300, seed=72)
    settle()
    settle()
    second = run_check(MODEL, now=T0 + timedelta(hours=2, minutes=5))
    assert second["late_rows"] == 900
    (w,) = second["late"]["windows"]
    assert w["rechecked"] is True and w["late_rows"] == 900
    rechecked = history_item(W0[1])
    assert rechecked.rechecks == 1 and rechecked.late_rows == 0 and rechecked.n_current == 1150
    assert rechecked.alarm and rechecked.streak == 1
    doc = json.loads(
        aws_mod.client("s3")
        .get_object(Bucket=aws["REPORTS_BUCKET"], Key=rechecked.result_uri.split("/", 3)[3])["Body"]
        .read()
    )
    assert doc["rechecked"] is True and doc["late_rows"] == 900 and doc["n_current"] == 1150
    assert doc["dataset_drifted"] is True
    # the window after it continues from the re-checked streak: clean, so it ends the streak
    assert second["streak"] == 0 and not second["alarm"]
    assert len(drain(probes["alerts-probe"])) == 1  # the re-check started the alarm: one alert
    assert len(drain(probes["events-probe"])) == 1
    # nothing new: no second re-check, no second alert
    settle()
    third = run_check(MODEL, now=T0 + timedelta(hours=3, minutes=5))
    assert third["late_rows"] == 0 and third["late"]["windows"] == []
    assert history_item(W0[1]).rechecks == 1
    assert drain(probes["alerts-probe"]) == [] and drain(probes["events-probe"]) == []


def test_a_recheck_recomputes_the_streaks_after_it(aws: dict[str, str], credit_fs: Any) -> None:
    ctx = ctx_with(lambda d: d["models"][0]["drift"].update(persistence_windows=2))
    v = register_champion(credit_fs)
    probes = observe(aws)
    write_captures(credit_fs, v, T0, 250, seed=80)  # W0 clean
    write_captures(credit_fs, v, T0 + timedelta(hours=1), 1000, seed=81, shift=1.0)  # W1 drifted
    settle()
    run_check(MODEL, window_start=W0[0], window_end=W0[1], ctx=ctx)
    w1 = run_check(MODEL, ctx=ctx, now=T0 + timedelta(hours=2, minutes=5))
    assert w1["drifted"] and w1["streak"] == 1 and not w1["alarm"]
    write_late(credit_fs, v, T0, 900, seed=82, shift=1.0)  # W0 turns out drifted
    settle()
    settle()
    w2 = run_check(MODEL, ctx=ctx, now=T0 + timedelta(hours=3, minutes=5))
    assert w2["late"]["windows"][0]["rechecked"] is True
    assert history_item(W0[1]).streak == 1 and not history_item(W0[1]).alarm
    after = history_item(w1["window_end"])
    assert after.streak == 2 and after.alarm  # W1's streak continues from the re-checked W0
    # W2 has no captures: it keeps the streak (2); the alarm W1 now raises is announced once
    assert w2["status"] == "insufficient_data" and w2["streak"] == 2 and not w2["alarm"]
    assert len(drain(probes["alerts-probe"])) == 1
    (event,) = drain(probes["events-probe"])
    assert event["detail"]["window_end"] == w1["window_end"]


def test_any_late_row_rechecks_a_window_below_min_window_rows(aws: dict[str, str], credit_fs: Any) -> None:
    v = register_champion(credit_fs)
    write_captures(credit_fs, v, T0, 20, seed=90)
    settle()
    first = run_check(MODEL, window_start=W0[0], window_end=W0[1])
    assert first["status"] == "insufficient_data"
    write_late(credit_fs, v, T0 + timedelta(minutes=55), 1, seed=91)
    settle()
    settle()
    out = run_check(MODEL, now=T0 + timedelta(hours=2, minutes=5))
    assert out["late"]["windows"][0]["rechecked"] is True
    assert history_item(W0[1]).n_current == 21


def test_an_overlapping_run_checks_nothing(aws: dict[str, str], credit_fs: Any) -> None:
    v = register_champion(credit_fs)
    write_captures(credit_fs, v, T0, 300, seed=100)
    history = DriftHistory(aws["CONTROL_TABLE"])
    with history.lease(MODEL) as held:
        assert held is not None
        busy = run_check(MODEL, window_start=W0[0], window_end=W0[1])
        assert busy["status"] == "busy" and "another drift check" in busy["message"]
        # counts and the scan mark move only for the lease holder and from the mark it read
        assert history.record_late(MODEL, held, "2026-11-26T11:00:00+00:00", {}) is True
        assert history.record_late(MODEL, Lease(held.holder, ""), "2026-11-26T12:00:00+00:00", {}) is False
        assert (
            history.record_late(MODEL, Lease("another-run", held.late_mark), "2026-11-26T12:00:00+00:00", {}) is False
        )
    assert history.list(MODEL) == []
    out = run_check(MODEL, window_start=W0[0], window_end=W0[1])
    assert out["status"] == "ok" and len(history.list(MODEL)) == 1


def test_scheduled_end_leaves_the_allowed_lateness(aws: dict[str, str], credit_fs: Any) -> None:
    v = register_champion(credit_fs)
    write_captures(credit_fs, v, T0, 300, seed=110)
    out = run_check(MODEL, now=T0 + timedelta(hours=1, minutes=10))
    assert out["lateness"] == {"allowed_seconds": 300, "checked_early": False}
    assert out["window_end"] == (T0 + timedelta(hours=1, minutes=5)).isoformat()
    early = run_check(MODEL, window_start=out["window_end"], window_end=(T0 + timedelta(hours=2)).isoformat())
    assert early["lateness"]["checked_early"] is False  # the wall clock is long past 2026-11-26
    soon = run_check(
        MODEL,
        window_start=(T0 + timedelta(hours=2)).isoformat(),
        window_end=(T0 + timedelta(hours=3)).isoformat(),
        now=T0 + timedelta(hours=3, minutes=1),
    )
    assert soon["lateness"]["checked_early"] is True
    assert any("before its end plus the allowed lateness" in n for n in soon["notes"])


@pytest.mark.parametrize("local", [True, False])
def test_the_local_platform_default_lateness_is_small(aws: dict[str, str], local: bool) -> None:
    ctx = Context.from_env({**aws, **({"DRIFTLINE_LOCAL": "1"} if local else {})})
    assert ctx.local is local
    seconds = ctx.config.monitoring.lateness_seconds(ctx.config.model(MODEL).drift, local=ctx.local)
    assert seconds == (5 if local else 300)


def test_a_recheck_that_failed_is_done_by_the_next_run(
    aws: dict[str, str], credit_fs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from driftline.monitoring import check as check_mod

    v = register_champion(credit_fs)
    write_captures(credit_fs, v, T0, 250, seed=120)
    settle()
    run_check(MODEL, window_start=W0[0], window_end=W0[1])
    write_late(credit_fs, v, T0, 900, seed=121, shift=1.0)
    settle()
    settle()
    real = check_mod.check_prepared

    def failing_recheck(ctx: Any, prep: Any, now: datetime, **kw: Any) -> dict[str, Any]:
        if kw.get("recheck") is not None:
            raise RuntimeError("throttled")
        return real(ctx, prep, now, **kw)

    monkeypatch.setattr(check_mod, "check_prepared", failing_recheck)
    with pytest.raises(RuntimeError, match="throttled"):
        run_check(MODEL, now=T0 + timedelta(hours=2, minutes=5))
    monkeypatch.setattr(check_mod, "check_prepared", real)
    assert history_item(W0[1]).late_rows == 900 and history_item(W0[1]).rechecks == 0  # counted, once
    out = run_check(MODEL, now=T0 + timedelta(hours=2, minutes=5))  # the lease was released: not busy
    (w,) = out["late"]["windows"]
    assert w["late_rows"] == 0 and w["late_rows_since_check"] == 900 and w["rechecked"] is True
    assert history_item(W0[1]).rechecks == 1 and history_item(W0[1]).n_current == 1150
