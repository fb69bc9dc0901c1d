"""bandit over the project's Python code: zero findings. Skipped test ids are listed with their reason
in pyproject.toml ([tool.bandit]); a single justified line carries a ``# nosec BXXX`` comment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bandit_reports_nothing() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bandit",
            "-q",
            "-c",
            "pyproject.toml",
            "-r",
            "driftline",
            "lambdas",
            "stacks",
            "app.py",
            "-f",
            "json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(proc.stdout)
    findings = [f"{r['test_id']} {r['filename']}:{r['line_number']} {r['issue_text']}" for r in report["results"]]
    assert not findings, "\n".join(findings)
