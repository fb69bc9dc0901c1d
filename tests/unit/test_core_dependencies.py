"""The core dependencies are what the zip functions and the drift engine import: extras stay extras.

Installing ``driftline`` alone must be enough for the handlers that run from zips and for
``driftline.drift``; the CLI, training, the local platform and the CDK app come with their extras.
The import runs in a subprocess where every module of an extra's distribution fails to import.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULES = {
    "scikit-learn": "sklearn",
    "moto": "moto",
    "aws-cdk-lib": "aws_cdk",
    "cdk-nag": "cdk_nag",
    "pyyaml": "yaml",
    "xgboost-cpu": "xgboost",
}
"""Import names that differ from the distribution name."""
CORE_USERS = [
    "lambdas.ingest",
    "lambdas.serve",
    "lambdas.drift",
    "lambdas.workflow",
    "lambdas.approve",
    "lambdas.retrain_trigger",
    "driftline.drift.engine",
    "driftline.drift.report",
    "driftline.monitoring.check",
]


def _name(requirement: str) -> str:
    for sep in "[<>=!~ ;":
        requirement = requirement.split(sep, 1)[0]
    return requirement.strip()


def _extra_only_modules() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_name(r) for r in project["dependencies"]}
    extras = {_name(r) for reqs in project["optional-dependencies"].values() for r in reqs} - core - {"driftline"}
    return sorted(MODULES.get(n, n.replace("-", "_")) for n in extras)


def test_zip_handlers_and_the_drift_engine_import_with_only_the_core() -> None:
    blocked = _extra_only_modules()
    assert {"pandas", "sklearn", "typer", "rich", "croniter", "onnx", "skops"} <= set(blocked)
    code = f"""
import importlib, importlib.abc, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError(f'{{name}} belongs to an extra')
sys.meta_path.insert(0, Block())
for m in {CORE_USERS!r}:
    importlib.import_module(m)
print('OK')
"""
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "PYTHONPATH": str(ROOT),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]
