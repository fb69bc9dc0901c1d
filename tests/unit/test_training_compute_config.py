"""models[].training: where a model trains, and the combinations refused with one line each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from driftline.config import ConfigError, from_context


def _cfg(training: dict[str, Any], **model: Any) -> Any:
    ctx = {
        "driftline:environments": {
            "dev": {"models": [{"name": "m", "feature_set": "penguins", "training": training, **model}]}
        }
    }
    return from_context(ctx).models[0]


def test_default_is_the_lambda() -> None:
    t = _cfg({}).training
    assert t.compute == "lambda"
    assert t.instance_type == "ml.m5.large"


def test_sagemaker_with_spot_and_defaults() -> None:
    t = _cfg({"compute": "sagemaker", "spot": True, "max_runtime_seconds": 600, "max_wait_seconds": 900}).training
    assert (t.spot, t.max_wait_seconds, t.spot_retries, t.wait_seconds) == (True, 900, 2, 900)
    assert _cfg({"compute": "sagemaker", "spot": True, "max_runtime_seconds": 600}).training.wait_seconds == 1200
    assert _cfg({"compute": "sagemaker", "warm_pool_seconds": 300}).training.wait_seconds == 3600


@pytest.mark.parametrize(
    ("training", "expected"),
    [
        ({"compute": "gpu"}, "'driftline:environments.dev.models[0].training.compute': \"gpu\" is not allowed"),
        ({"instance_type": "ml.c5.xlarge"}, "instance_type: only used by SageMaker training jobs"),
        ({"compute": "sagemaker", "instance_type": "m5.large"}, "must be a SageMaker training instance type"),
        ({"compute": "sagemaker", "auto_rows": 5}, "auto_rows and auto_bytes only apply to compute: auto"),
        ({"compute": "auto", "auto_rows": None}, "compute auto needs auto_rows or auto_bytes"),
        ({"compute": "sagemaker", "max_wait_seconds": 4000}, "only apply with spot: true"),
        ({"compute": "sagemaker", "spot": True, "warm_pool_seconds": 60}, "cannot be combined with spot"),
        (
            {"compute": "sagemaker", "spot": True, "max_runtime_seconds": 600, "max_wait_seconds": 300},
            "max_wait_seconds (300) must be at least max_runtime_seconds (600)",
        ),
        ({"compute": "sagemaker", "warm_pool_seconds": 3601}, "less than or equal to 3600"),
        ({"compute": "sagemaker", "volume_gb": 0}, "greater than or equal to 1"),
        (
            {"compute": "sagemaker", "spot": True, "max_runtime_seconds": 200_000, "spot_retries": 3},
            "the training job's longest run",
        ),
    ],
)
def test_refused_with_one_line(training: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        _cfg(training)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_a_dumped_config_validates_again() -> None:
    """The functions receive the config as ``model_dump_json`` (every key, defaults included): it must load."""
    from driftline.config import PlatformConfig, load

    for env in ("dev", "demo", "prod"):
        cfg = load(Path(__file__).resolve().parents[2] / "cdk.json", env)
        assert PlatformConfig.model_validate_json(cfg.model_dump_json()) == cfg
