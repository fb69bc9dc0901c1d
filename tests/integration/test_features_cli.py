"""`driftline features upload|uploads` against moto: the file lands in incoming/, results are listed."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftline import aws as aws_mod
from driftline.cli.features import app
from driftline.datasets.credit_default import generate, write_table
from driftline.features.ingest import Ingestor, IngestTargets, S3Object
from driftline.features.schema import FeatureSetCatalog

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ["--config", str(ROOT / "cdk.json")]
runner = CliRunner()


def _process_latest(env: dict[str, str], key: str) -> None:
    s3 = aws_mod.client("s3")
    head = s3.head_object(Bucket=env["FEATURES_BUCKET"], Key=key)
    Ingestor(FeatureSetCatalog(env["FEATURE_SETS_DIR"]), IngestTargets.from_env()).process(
        S3Object(
            env["FEATURES_BUCKET"],
            key,
            head.get("VersionId"),
            head["ETag"],
            head["ContentLength"],
            "2026-11-26T00:00:00Z",
        )
    )


def test_upload_then_uploads(aws: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEATURES_BUCKET")  # the bucket name is derived from STS account + region
    good = write_table(generate(50, "2026-01-01", "2026-01-02", seed=1), tmp_path / "day 1.parquet")
    res = runner.invoke(app, ["upload", str(good), "-f", "credit_default", *CONFIG], terminal_width=200)
    assert res.exit_code == 0, res.output
    key = "incoming/credit_default/day 1.parquet"
    assert f"s3://{aws['FEATURES_BUCKET']}/{key}" in res.output.replace("\n", "")

    res = runner.invoke(app, ["uploads", *CONFIG])
    assert res.exit_code == 0 and "no uploads yet" in res.output

    monkeypatch.setenv("FEATURES_BUCKET", aws["FEATURES_BUCKET"])
    _process_latest(aws, key)
    res = runner.invoke(app, ["uploads", "--json", "-f", "credit_default", *CONFIG])
    assert res.exit_code == 0, res.output
    (record,) = json.loads(res.output)
    assert record["status"] == "accepted" and record["rows_accepted"] == 50


def test_upload_wait_reports_the_ingest_result(aws: dict[str, str], tmp_path: Path) -> None:
    bad = generate(30, "2026-01-01", "2026-01-02", seed=2).drop_columns(["age"])
    path = write_table(bad, tmp_path / "bad.csv")
    key = "incoming/credit_default/bad.csv"

    def ingest_soon() -> None:
        s3 = aws_mod.client("s3")
        for _ in range(100):
            try:
                s3.head_object(Bucket=aws["FEATURES_BUCKET"], Key=key)
                break
            except Exception:
                time.sleep(0.1)
        _process_latest(aws, key)

    worker = threading.Thread(target=ingest_soon)
    worker.start()
    res = runner.invoke(app, ["upload", str(path), "-f", "credit_default", "--wait", "--timeout", "60", *CONFIG])
    worker.join()
    assert res.exit_code == 1, res.output
    assert "ingest result: rejected" in res.output and "/report.json" in res.output


def test_upload_refuses_bad_names_before_touching_s3(aws: dict[str, str], tmp_path: Path) -> None:
    f = tmp_path / "notes.txt.xlsx"
    f.write_text("x")
    res = runner.invoke(app, ["upload", str(f), "-f", "credit_default", *CONFIG])
    assert res.exit_code == 2 and "unsupported file type" in " ".join(res.output.split())
    res = runner.invoke(app, ["upload", str(tmp_path / "missing.csv"), "-f", "credit_default", *CONFIG])
    assert res.exit_code == 2 and "file not found" in " ".join(res.output.split())
    res = runner.invoke(app, ["upload", str(f), "-f", "credit_default", "--name", "a/b.csv", *CONFIG])
    assert res.exit_code == 2
