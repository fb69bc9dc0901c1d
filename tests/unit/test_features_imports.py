"""Import discipline of the ingest Lambda: its layer has no pandas and no scikit-learn."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ingest_handler_imports_neither_pandas_nor_sklearn() -> None:
    code = (
        "import sys, lambdas.ingest, driftline.features.ingest, driftline.features.training_set; "
        "print(','.join(m for m in ('pandas', 'sklearn', 'scipy') if m in sys.modules))"
    )
    env = {**os.environ, "POWERTOOLS_TRACE_DISABLED": "1", "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    assert out.stdout.strip() == ""
