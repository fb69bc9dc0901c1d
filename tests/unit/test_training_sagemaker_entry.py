"""The SageMaker entry point: SageMaker's directory conventions in, the model directory (or the failure
file) out, and the model directory read back into the same TrainedModel the registration step needs."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftline.config import ModelConfig
from driftline.features.schema import FeatureSet
from driftline.training import model_dir, sagemaker_entry
from driftline.training.core import train_model
from driftline.training.errors import TrainingRejectedError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def credit_table() -> pa.Table:
    from driftline.datasets.credit_default import generate

    return generate(1200, "2026-01-01", "2026-04-01", seed=5)


def _cfg(min_rows: int = 200) -> ModelConfig:
    return ModelConfig(
        name="credit-default",
        feature_set="credit_default",
        params={"max_iter": 20},
        retrain={"min_training_rows": min_rows},  # type: ignore[arg-type]
    )


def _job_dir(tmp: Path, table: pa.Table, fs: FeatureSet, cfg: ModelConfig, hp: dict[str, str]) -> dict[str, str]:
    root = tmp / "ml"
    (root / "input" / "data" / "train").mkdir(parents=True)
    (root / "input" / "data" / "job").mkdir(parents=True)
    (root / "input" / "config").mkdir(parents=True)
    pq.write_table(table, root / "input" / "data" / "train" / "part-0.parquet")
    job = {
        "model_config": cfg.model_dump(mode="json"),
        "feature_set": fs.name,
        "feature_set_fingerprint": fs.fingerprint,
    }
    (root / "input" / "data" / "job" / "job.json").write_text(json.dumps(job))
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hp))
    return {"DRIFTLINE_ML_ROOT": str(root), "FEATURE_SETS_DIR": str(ROOT / "examples" / "feature_sets")}


def _tar(directory: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for p in sorted(directory.iterdir()):
            tar.add(p, arcname=p.name)
    return buf.getvalue()


def test_trains_into_the_model_dir_like_the_lambda(
    tmp_path: Path, credit_table: pa.Table, credit_fs: FeatureSet
) -> None:
    env = _job_dir(tmp_path, credit_table, credit_fs, _cfg(), {"seed": "0"})
    assert sagemaker_entry.main(env) == 0
    model = tmp_path / "ml" / "model"
    assert {p.name for p in model.iterdir()} == {
        "model.onnx",
        "model.skops",
        "validation.parquet",
        "y_val.npy",
        "reference.parquet",
        "training.json",
    }
    assert not (tmp_path / "ml" / "output" / "failure").exists()
    trained, doc = model_dir.read_model_dir(model_dir.read_model_tar(_tar(model)), credit_fs)
    assert not isinstance(trained, TrainingRejectedError)
    direct = train_model(credit_table, credit_fs, _cfg(), seed=0)
    # the same code on the same rows: the same graph, metrics and validation rows
    assert trained.onnx == direct.onnx
    assert trained.metrics == pytest.approx(direct.metrics)
    assert trained.data.validation_table.equals(direct.data.validation_table)
    np.testing.assert_array_equal(trained.data.y_val, direct.data.y_val)
    np.testing.assert_allclose(trained.prediction_column(), direct.prediction_column())
    # the drift reference: the training rows and importances, as the Lambda's (not the holdout only)
    assert trained.reference_table is not None and direct.reference_table is not None
    assert trained.reference_table.equals(direct.reference_table)
    assert trained.feature_importance == pytest.approx(direct.feature_importance)
    assert trained.importance_method == direct.importance_method == "permutation"
    assert doc["code_version"] and doc["rows_read"] == credit_table.num_rows


def test_rejection_is_an_outcome_not_a_failure(tmp_path: Path, credit_table: pa.Table, credit_fs: FeatureSet) -> None:
    env = _job_dir(tmp_path, credit_table.slice(0, 50), credit_fs, _cfg(min_rows=500), {})
    assert sagemaker_entry.main(env) == 0
    files = {p.name: p.read_bytes() for p in (tmp_path / "ml" / "model").iterdir()}
    result, _ = model_dir.read_model_dir(files, credit_fs)
    assert isinstance(result, TrainingRejectedError) and "500" in result.reason


@pytest.mark.parametrize(
    ("hp", "expected"),
    [
        ({"seed": "x"}, "EntryError: a hyperparameter cannot be read"),
        ({"learning_rate": "1"}, "EntryError: unknown hyperparameter(s) ['learning_rate']"),
        ({"params": "[1]"}, "EntryError: hyperparameter 'params' must be a JSON object"),
        ({"algorithm": "nope"}, ""),  # an unknown algorithm is a rejection of the run, not a failure
    ],
)
def test_bad_hyperparameters_write_the_failure_file(
    tmp_path: Path, credit_table: pa.Table, credit_fs: FeatureSet, hp: dict[str, str], expected: str
) -> None:
    env = _job_dir(tmp_path, credit_table, credit_fs, _cfg(), hp)
    code = sagemaker_entry.main(env)
    failure = tmp_path / "ml" / "output" / "failure"
    if not expected:
        assert code == 0 and not failure.exists()
        return
    assert code == 1
    assert failure.read_text().startswith(expected)


def test_missing_channel_and_foreign_fingerprint(tmp_path: Path, credit_table: pa.Table, credit_fs: FeatureSet) -> None:
    env = _job_dir(tmp_path, credit_table, credit_fs, _cfg(), {})
    for p in (tmp_path / "ml" / "input" / "data" / "train").iterdir():
        p.unlink()
    assert sagemaker_entry.main(env) == 1
    assert "channel 'train' has no Parquet file" in (tmp_path / "ml" / "output" / "failure").read_text()
    job = tmp_path / "ml" / "input" / "data" / "job" / "job.json"
    doc: dict[str, Any] = json.loads(job.read_text())
    job.write_text(json.dumps({**doc, "feature_set_fingerprint": "0" * 16}))
    pq.write_table(credit_table, tmp_path / "ml" / "input" / "data" / "train" / "p.parquet")
    assert sagemaker_entry.main(env) == 1
    assert "redeploy both" in (tmp_path / "ml" / "output" / "failure").read_text()


def test_tampered_or_foreign_output_is_refused(tmp_path: Path, credit_table: pa.Table, credit_fs: FeatureSet) -> None:
    env = _job_dir(tmp_path, credit_table, credit_fs, _cfg(), {})
    assert sagemaker_entry.main(env) == 0
    model = tmp_path / "ml" / "model"
    files = {p.name: p.read_bytes() for p in model.iterdir()}
    with pytest.raises(model_dir.ModelDirError, match="does not match its SHA-256"):
        model_dir.read_model_dir({**files, "model.onnx": files["model.onnx"] + b"x"}, credit_fs)
    with pytest.raises(model_dir.ModelDirError, match="cannot be read"):
        model_dir.read_model_tar(b"not a tar")
    (model / "training.json").unlink()
    with pytest.raises(model_dir.ModelDirError, match=r"has no training\.json"):
        model_dir.read_model_tar(_tar(model))
