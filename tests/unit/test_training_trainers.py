"""models[].trainer: the user's own pipeline code trains, converts and passes parity like a built-in;
every broken trainer is refused with what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from driftline.config import ConfigError, ModelConfig, PlatformConfig
from driftline.training.core import train_model
from driftline.training.errors import TrainingRejectedError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "trainers"


@pytest.fixture(scope="module")
def credit_table() -> pa.Table:
    from driftline.datasets.credit_default import generate

    return generate(1500, "2026-01-01", "2026-04-01", seed=8)


def cfg(trainer: str | None = "credit_pipeline:build", **params: Any) -> ModelConfig:
    return ModelConfig(
        name="credit-default",
        feature_set="credit_default",
        trainer=trainer,
        params=params,
        retrain={"min_training_rows": 200},  # type: ignore[arg-type]
    )


def test_own_trainer_trains_and_passes_parity(credit_table: pa.Table, credit_fs: Any) -> None:
    trained = train_model(credit_table, credit_fs, cfg(max_iter=30), trainers_dir=EXAMPLES)
    assert trained.algorithm == "trainer:credit_pipeline:build"
    assert trained.params == {"max_iter": 30}
    assert trained.parity["max_abs_diff"] <= 1e-5 and trained.parity["label_mismatches"] == 0
    assert 0.5 < trained.metrics["roc_auc"] <= 1.0
    built_in = train_model(credit_table, credit_fs, cfg(), algorithm="hist_gradient_boosting", trainers_dir=EXAMPLES)
    assert built_in.algorithm == "hist_gradient_boosting"  # an explicit algorithm overrides the trainer


def test_trainers_dir_from_the_environment(
    credit_table: pa.Table, credit_fs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINERS_DIR", str(EXAMPLES))
    assert train_model(credit_table, credit_fs, cfg(max_iter=10)).algorithm.startswith("trainer:")


@pytest.mark.parametrize(
    ("source", "spec", "message"),
    [
        ("import nonexistent_package_xyz\n", "bad:build", r"does not import .*ModuleNotFoundError"),
        ("def build(fs, params):\n    return 42\n", "bad:build", "returned int, not an estimator"),
        ("def build(fs, params):\n    raise RuntimeError('no')\n", "bad:build", "raised RuntimeError: no"),
        ("x = 1\n", "bad:build", "has no function 'build'"),
        (
            "from sklearn.linear_model import Ridge\ndef build(fs, params):\n    return Ridge()\n",
            "bad:build",
            "not a classifier",
        ),
        (
            "from sklearn.linear_model import LogisticRegression\ndef build(fs, params):\n"
            "    return LogisticRegression(C=-1)\n",
            "bad:build",
            "fitting trainer 'bad:build' failed",
        ),
    ],
)
def test_broken_trainers_are_refused(
    tmp_path: Path, credit_table: pa.Table, credit_fs: Any, source: str, spec: str, message: str
) -> None:
    (tmp_path / "bad.py").write_text(source)
    with pytest.raises(TrainingRejectedError, match=message):
        train_model(credit_table, credit_fs, cfg(spec), trainers_dir=tmp_path)


def test_missing_folder_and_malformed_spec(tmp_path: Path, credit_table: pa.Table, credit_fs: Any) -> None:
    with pytest.raises(TrainingRejectedError, match="does not exist"):
        train_model(credit_table, credit_fs, cfg(), trainers_dir=tmp_path / "nope")
    with pytest.raises(ValueError, match="module:function"):
        cfg("not a spec")


def test_config_mistakes_are_one_line(tmp_path: Path) -> None:
    from driftline import config

    doc = (
        '{"context": {"driftline:env": "dev", "driftline:environments": {"dev": {"models": '
        '[{"name": "m", "feature_set": "credit_default", "trainer": "a b"}]}}}}'
    )
    (tmp_path / "cdk.json").write_text(doc)
    with pytest.raises(ConfigError, match="trainer"):
        config.load(tmp_path / "cdk.json")
    assert PlatformConfig.model_fields["trainers_dir"].default == "trainers"
