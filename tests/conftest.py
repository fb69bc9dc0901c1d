"""Shared fixtures. Integration tests run real boto3 calls against moto (in-process)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
FEATURE_SETS = ROOT / "examples" / "feature_sets"

# Never reach a real account from the test suite.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SECURITY_TOKEN", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["AWS_REGION"] = "us-east-1"
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "DriftlineTest")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def platform_config() -> Any:
    from driftline import config

    return config.load(ROOT / "cdk.json", env="dev")


@pytest.fixture(scope="session")
def platform_def(platform_config: Any) -> Any:
    from driftline.platform import build_platform

    return build_platform(platform_config)


@pytest.fixture(scope="session")
def credit_fs() -> Any:
    from driftline.features.schema import load_feature_set

    return load_feature_set(FEATURE_SETS / "credit_default.yaml")


@pytest.fixture
def aws(platform_def: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """moto in-process with every data resource of the platform provisioned.

    Yields the environment variables a function would receive (also set in os.environ).
    """
    from moto import mock_aws

    from driftline import aws as aws_mod
    from driftline.local.provision import provision_data

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    aws_mod.reset_clients()
    with mock_aws():
        names = provision_data(platform_def, aws_mod.client, "us-east-1")
        env = names.env(platform_def)
        env["FEATURE_SETS_DIR"] = str(FEATURE_SETS)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        yield env
    aws_mod.reset_clients()
