"""The model directory a SageMaker training job leaves behind, and how registration reads it back.

SageMaker tars ``/opt/ml/model`` into ``model.tar.gz`` under the job's output path. The directory
holds what :func:`driftline.training.publish.register_result` needs to register the run exactly as
the ``train`` Lambda would: the ONNX and skops artifacts, the validation rows (Parquet) and their
encoded targets (``.npy``, no pickle), the labelled training rows the drift reference is built from
(``reference.parquet``, at most ``drift.reference_rows`` evenly spaced), and ``training.json``
(algorithm, params, metrics, split, parity, timings, feature importances, the container's code and
library versions, and a SHA-256 of every file). A run
whose data or model cannot give a servable version writes ``training.json`` with ``rejected`` only:
a normal outcome registered as ``rejected``, not a failed job.

The champion comparison and the drift profile are computed at registration (they need the registry
and the version number); the validation prediction is recomputed from the ONNX graph, which is what
the job measured its metrics with, so the profile is the same as the Lambda's.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from driftline.drift.feature_set import DEFAULT_REFERENCE_ROWS, even_rows
from driftline.features.schema import FeatureSet
from driftline.training.core import TrainedModel
from driftline.training.dataset import PreparedData, encode_table
from driftline.training.errors import TrainingRejectedError
from driftline.training.onnx_export import OnnxModel

__all__ = [
    "FORMAT",
    "MAX_MEMBER_BYTES",
    "ModelDirError",
    "read_model_dir",
    "read_model_tar",
    "write_model_dir",
    "write_rejected",
]

FORMAT = 1
MANIFEST = "training.json"
MAX_MEMBER_BYTES = 4 << 30
"""A member of ``model.tar.gz`` larger than this is refused (a model is megabytes; a bomb is not read)."""
_FILES = ("model.onnx", "model.skops", "validation.parquet", "y_val.npy", "reference.parquet")


class ModelDirError(ValueError):
    """The job's output is not a model directory this code wrote (missing file, hash mismatch, bad tar)."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(directory: Path, files: dict[str, bytes], manifest: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    doc = {"format": FORMAT, **manifest, "sha256": {n: _sha(d) for n, d in files.items()}}
    (directory / MANIFEST).write_text(json.dumps(doc, sort_keys=True, indent=1))


def write_model_dir(trained: TrainedModel, directory: str | Path, extra: dict[str, Any]) -> None:
    """Write a successful run; ``extra`` (code and library versions) goes into the manifest."""
    sink = io.BytesIO()
    pq.write_table(trained.data.validation_table, sink)
    y = io.BytesIO()
    np.save(y, np.asarray(trained.data.y_val), allow_pickle=False)
    files = {"model.onnx": trained.onnx, "validation.parquet": sink.getvalue(), "y_val.npy": y.getvalue()}
    if trained.skops:
        files["model.skops"] = trained.skops
    reference = trained.reference_table
    if reference is not None:
        limit = trained.reference_rows
        if limit is not None and reference.num_rows > limit:  # the profile would keep these rows only
            reference = reference.take(pa.array(even_rows(reference.num_rows, limit)))
        ref_sink = io.BytesIO()
        pq.write_table(reference, ref_sink)
        files["reference.parquet"] = ref_sink.getvalue()
    manifest = {
        "algorithm": trained.algorithm,
        "task": trained.task,
        "params": trained.params,
        "metrics": trained.metrics,
        "parity": trained.parity,
        "split": trained.split,
        "timings_s": trained.timings_s,
        "rows_unlabeled": trained.rows_unlabeled,
        "rows_total": trained.data.rows_total,
        "fit_threads": trained.fit_threads,
        "feature_importance": trained.feature_importance,
        "importance_method": trained.importance_method,
        "reference_rows": trained.reference_rows,
        "reference_rows_available": trained.reference_table.num_rows if trained.reference_table is not None else None,
        **extra,
    }
    _write(Path(directory), files, manifest)


def write_rejected(reason: str, directory: str | Path, extra: dict[str, Any]) -> None:
    """Write a run rejected for its data or model (registered as ``rejected`` with ``reason``)."""
    _write(Path(directory), {}, {"rejected": reason, **extra})


def read_model_tar(body: bytes) -> dict[str, bytes]:
    """The regular files at the top of ``model.tar.gz`` (SageMaker's layout), by name."""
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if not member.isfile() or "/" in name or name not in (*_FILES, MANIFEST):
                    continue
                if member.size > MAX_MEMBER_BYTES:
                    raise ModelDirError(f"model.tar.gz member {name} is {member.size} bytes, over the limit")
                fh = tar.extractfile(member)
                if fh is not None:
                    out[name] = fh.read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ModelDirError(f"model.tar.gz cannot be read: {e}") from None
    if MANIFEST not in out:
        raise ModelDirError(f"model.tar.gz has no {MANIFEST}; the job did not run the driftline entry point")
    return out


def _manifest(files: dict[str, bytes]) -> dict[str, Any]:
    try:
        doc = json.loads(files[MANIFEST])
    except (KeyError, ValueError) as e:
        raise ModelDirError(f"{MANIFEST} is missing or not JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelDirError(f"{MANIFEST} is not format {FORMAT} (written by another driftline version?)")
    for name, digest in (doc.get("sha256") or {}).items():
        if name not in files:
            raise ModelDirError(f"the model directory lacks {name}, listed in {MANIFEST}")
        if _sha(files[name]) != digest:
            raise ModelDirError(f"{name} does not match its SHA-256 in {MANIFEST} (corrupted output)")
    return doc


RunResult = tuple[TrainedModel | TrainingRejectedError, dict[str, Any]]


def read_model_dir(files: dict[str, bytes], fs: FeatureSet) -> RunResult:
    """The run's result (a :class:`TrainedModel`, or the rejection) and its manifest, hashes verified."""
    doc = _manifest(files)
    if "rejected" in doc:
        return TrainingRejectedError(str(doc["rejected"])), doc
    for name in ("model.onnx", "validation.parquet", "y_val.npy"):
        if name not in doc.get("sha256", {}):
            raise ModelDirError(f"{MANIFEST} lists no {name}")
    validation = pq.read_table(pa.BufferReader(files["validation.parquet"]))
    y_val = np.load(io.BytesIO(files["y_val.npy"]), allow_pickle=False)
    X_val = encode_table(fs.input_schema(), validation)
    prediction = OnnxModel(files["model.onnx"]).predict(X_val)
    empty = np.empty((0, X_val.shape[1]))
    data = PreparedData(
        X_train=empty,
        y_train=np.empty(0),
        X_val=X_val,
        y_val=y_val,
        validation_table=validation,
        split=dict(doc["split"]),
        rows_total=int(doc.get("rows_total", 0)),
        rows_unlabeled=int(doc.get("rows_unlabeled", 0)),
    )
    trained = TrainedModel(
        algorithm=str(doc["algorithm"]),
        task=str(doc["task"]),
        params=dict(doc["params"]),
        metrics={k: float(v) for k, v in doc["metrics"].items()},
        parity=dict(doc["parity"]),
        split=dict(doc["split"]),
        onnx=files["model.onnx"],
        skops=files.get("model.skops", b""),
        data=data,
        validation_prediction=prediction,
        timings_s=dict(doc.get("timings_s") or {}),
        rows_unlabeled=int(doc.get("rows_unlabeled", 0)),
        fit_threads=doc.get("fit_threads"),
        reference_table=pq.read_table(pa.BufferReader(files["reference.parquet"]))
        if "reference.parquet" in files
        else None,
        feature_importance=doc.get("feature_importance"),
        importance_method=str(doc.get("importance_method") or ""),
        reference_rows=doc.get("reference_rows", DEFAULT_REFERENCE_ROWS),
    )
    return trained, doc
