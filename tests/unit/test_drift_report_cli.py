"""The HTML report is self-contained; `driftline drift report/profile` work on local files."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from driftline.cli.main import app
from driftline.drift import build_profile, check_drift
from driftline.drift.report import render_html

ROOT = Path(__file__).resolve().parents[2]


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    regions = ["north", "south", "east"] + (["mars"] if shift else [])
    return pd.DataFrame(
        {
            "customer_id": [f"c{seed}-{i}" for i in range(n)],
            "age": rng.normal(40 + 8 * shift, 10, n),
            "income": rng.lognormal(10, 0.5, n),
            "kids": rng.integers(0, 3, n),
            "region": rng.choice(regions, n),
        }
    )


def test_html_report_is_self_contained_and_shows_every_column() -> None:
    prof = build_profile(frame(2000, 1), ["age", "income", "kids"], ["region"], metadata={"model": "m", "version": 2})
    res = check_drift(prof, frame(500, 2, shift=1))
    history = [
        {
            "window_end": f"2026-11-26T0{i}:00:00+00:00",
            "share_drifted": s,
            "dataset_drifted": False,
            "status": "ok",
            "drifted_columns": [],
        }
        for i, s in enumerate([0.0, 0.25])
    ]
    html = render_html(res, history=history, window={"start": "2026-11-26T02:00", "end": "2026-11-26T03:00"})
    assert "<script" not in html.lower()
    assert not re.search(r"(src|href)=\"https?://", html)  # no CDN, no remote assets
    assert "Drift report: m v2" in html
    for col in ("age", "income", "kids", "region"):
        assert f'id="col-{col}"' in html
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 5  # four columns + the trend
    for svg in svgs:
        ET.fromstring(svg)  # well-formed
    assert "Trend over past windows" in html and "dataset drift at 50%" in html
    assert "new: mars" in html


def test_report_escapes_category_names() -> None:
    ref = pd.DataFrame({"c": ["<b>x</b>", "y"] * 50})
    res = check_drift(build_profile(ref, categorical=["c"]), ref)
    html = render_html(res)
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


def test_insufficient_data_report() -> None:
    prof = build_profile(frame(300, 1), ["age"], ["region"])
    html = render_html(check_drift(prof, frame(0, 2)))
    assert "Insufficient data" in html


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    ref, cur = tmp_path / "ref.parquet", tmp_path / "cur.csv"
    frame(3000, 1).to_parquet(ref)
    frame(800, 2, shift=1).to_csv(cur, index=False)
    same = tmp_path / "same.csv"
    frame(800, 3).to_csv(same, index=False)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    return {"ref": ref, "cur": cur, "same": same, "bad": bad, "dir": tmp_path}


def run(*args: Any) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_cli_report_on_local_files(files: dict[str, Path]) -> None:
    out, js = files["dir"] / "r.html", files["dir"] / "r.json"
    res = run("drift", "report", files["cur"], "--reference", files["ref"], "--out", out, "--out", js)
    assert res.exit_code == 0, res.output
    assert "dataset drift" in res.output
    printed = run("drift", "report", files["cur"], "--reference", files["ref"], "--json")
    assert printed.exit_code == 0 and json.loads(printed.stdout)["drifted_columns"] == ["age", "region"]
    assert run("drift", "report", files["cur"], "-r", files["ref"], "--out", files["dir"] / "r.txt").exit_code == 2
    doc = json.loads(js.read_text())
    assert set(doc["columns"]) == {"age", "income", "kids", "region"}  # the id column is left out
    assert doc["drifted_columns"] == ["age", "region"]
    assert out.read_text().startswith("<!doctype html>")
    assert run("drift", "report", files["same"], "-r", files["ref"], "--fail-on-drift").exit_code == 0
    assert run("drift", "report", files["cur"], "-r", files["ref"], "--fail-on-drift").exit_code == 1


def test_cli_profile_then_report(files: dict[str, Path]) -> None:
    prof = files["dir"] / "profile.json"
    res = run("drift", "profile", files["ref"], "--out", prof, "--numerical", "age,income", "--categorical", "region")
    assert res.exit_code == 0, res.output
    res = run("drift", "report", files["cur"], "-r", prof, "--out", files["dir"] / "r.json")
    assert res.exit_code == 0
    assert set(json.loads((files["dir"] / "r.json").read_text())["columns"]) == {"age", "income", "region"}


def test_cli_report_with_feature_set(tmp_path: Path, credit_fs: Any) -> None:
    rng = np.random.default_rng(4)
    n = 1500
    data: dict[str, Any] = {}
    for f in credit_fs.features:
        if f.type in ("int", "float"):
            data[f.name] = rng.integers(0, 10, n) if f.type == "int" else rng.random(n)
        elif f.type == "categorical":
            data[f.name] = rng.choice(list(f.categories), n)
        elif f.type == "bool":
            data[f.name] = rng.random(n) < 0.5
    pd.DataFrame(data).to_parquet(tmp_path / "ref.parquet")
    pd.DataFrame(data).iloc[:400].to_parquet(tmp_path / "cur.parquet")
    res = run(
        "drift",
        "report",
        tmp_path / "cur.parquet",
        "-r",
        tmp_path / "ref.parquet",
        "-f",
        "credit_default",
        "--config",
        ROOT / "cdk.json",
        "--out",
        tmp_path / "r.json",
    )
    assert res.exit_code == 0, res.output
    cols = json.loads((tmp_path / "r.json").read_text())["columns"]
    assert cols["online_sessions_30d"]["method"] == "psi" and cols["online_sessions_30d"]["threshold"] == 0.2


@pytest.mark.parametrize(
    ("which", "fragment"),
    [
        ("missing", "file not found"),
        ("bad", "Parquet file cannot be read"),
        ("not_profile", "not a driftline drift profile"),
    ],
)
def test_cli_bad_files_give_one_line_errors(files: dict[str, Path], which: str, fragment: str) -> None:
    if which == "missing":
        args = ["drift", "report", files["dir"] / "nope.csv", "-r", files["ref"]]
    elif which == "bad":
        args = ["drift", "report", files["bad"], "-r", files["ref"]]
    else:
        fake = files["dir"] / "fake.json"
        fake.write_text('{"hello": 1}')
        args = ["drift", "report", files["cur"], "-r", fake]
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 2
    assert fragment in " ".join(res.output.split())
    assert "Traceback" not in res.output
