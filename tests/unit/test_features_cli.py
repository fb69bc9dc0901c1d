"""`driftline features validate|list`: same checks as ingest, readable output, honest exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from typer.testing import CliRunner

from driftline.cli.features import app
from driftline.datasets.credit_default import generate, write_table

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ["--config", str(ROOT / "cdk.json")]
runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    good = generate(200, "2026-01-01", "2026-01-05", seed=1)
    ages = good.column("age").to_pylist()
    ages[3] = 300
    bad = good.set_column(good.column_names.index("age"), "age", pa.array(ages))
    out = {"good": write_table(good, d / "good.parquet"), "bad": write_table(bad, d / "bad.csv")}
    (d / "corrupt.parquet").write_bytes(b"PAR1 not really")
    out["corrupt"] = d / "corrupt.parquet"
    pacsv.write_csv(pa.table({"store": ["a"], "sales": [1.0]}), d / "other.csv")
    out["other"] = d / "other.csv"
    return out


def test_validate_good_file_exits_zero(files: dict[str, Path]) -> None:
    res = runner.invoke(app, ["validate", str(files["good"]), "-f", "credit_default", *CONFIG])
    assert res.exit_code == 0, res.output
    assert "accepted: 200 of 200 rows accepted" in res.output


def test_validate_bad_rows_exit_one_and_write_the_report(files: dict[str, Path], tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    res = runner.invoke(
        app,
        ["validate", str(files["bad"]), "--feature-set", "credit_default", "--report", str(report), *CONFIG],
        terminal_width=200,
    )
    assert res.exit_code == 1
    assert "partial: 199 of 200 rows accepted" in res.output and "above the maximum 100" in res.output
    assert "row 3: 300" in res.output
    data = json.loads(report.read_text())
    assert data["rows_rejected"] == 1 and data["checks"][0]["sample"] == [{"row": 3, "age": 300}]


def test_validate_json_output(files: dict[str, Path]) -> None:
    res = runner.invoke(app, ["validate", str(files["other"]), "-f", "credit_default", "--json", *CONFIG])
    assert res.exit_code == 1
    data = json.loads(res.output)
    assert data["status"] == "rejected" and data["checks"][0]["check"] == "missing_columns"


def test_validate_unreadable_and_unknown_inputs(files: dict[str, Path]) -> None:
    res = runner.invoke(app, ["validate", str(files["corrupt"]), "-f", "credit_default", *CONFIG])
    assert res.exit_code == 1 and "unreadable" in res.output and "cannot be read" in res.output
    res = runner.invoke(app, ["validate", "/nope.csv", "-f", "credit_default", *CONFIG])
    assert res.exit_code == 2 and "file not found" in res.output  # an input error, not rejected rows
    res = runner.invoke(app, ["validate", str(files["good"]), "-f", "nope", *CONFIG])
    assert res.exit_code == 2 and "unknown feature set 'nope'" in res.output


def test_list(files: dict[str, Path]) -> None:
    res = runner.invoke(app, ["list", *CONFIG], terminal_width=200)
    assert res.exit_code == 0 and "credit_default" in res.output and "accept_valid" in res.output
