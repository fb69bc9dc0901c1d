"""Where a model came from: code version, library versions and a content hash of the training table."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa

PACKAGE_DIR = Path(__file__).resolve().parents[1]
LIBRARIES = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "pyarrow", "skops")


@cache
def code_version() -> str:
    """``DRIFTLINE_CODE_VERSION`` if set (the image build bakes it), else the git commit (``-dirty``
    when driftline/ has uncommitted changes), else a SHA-256 of the driftline sources."""
    env = os.environ.get("DRIFTLINE_CODE_VERSION")
    if env:
        return env
    try:
        root = PACKAGE_DIR.parent
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "driftline"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        if sha:
            return f"git:{sha}{'-dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        pass
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode())
        digest.update(path.read_bytes())
    return f"src-sha256:{digest.hexdigest()[:16]}"


def library_versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def training_set_lineage(table: pa.Table, training_set: Mapping[str, Any] | None) -> dict[str, Any]:
    """The training data's lineage as given (``uri``, ``sha256``, object versions...), completed for an
    in-memory table with a placeholder URI, a content hash and the row count."""
    out = dict(training_set or {})
    out.setdefault("uri", "memory://table")
    out.setdefault("sha256", table_sha256(table))
    out.setdefault("rows", table.num_rows)
    return out


def table_sha256(table: pa.Table) -> str:
    """Content hash of a table (Arrow IPC stream of its rows): same rows, same hash."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks())
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
