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


# The inner loop (`make test-fast`: unit + integration without these) leaves out the modules that take
# most of the suite's time: real-dataset matrices, workflow runs, subprocess import probes, comparisons
# with Evidently and fuzz corpora. `make test` (CI) runs everything.
SLOW_MODULES = frozenset(
    {
        "tests/integration/test_features_ingest.py",
        "tests/integration/test_local_athena.py",  # a moto server, Step Functions polls, a cancelled query
        "tests/integration/test_athena_training_set.py",  # a moto server, local Athena per hypothesis example
        "tests/integration/test_local_sagemaker_hook.py",  # training jobs in worker processes, a max runtime
        "tests/integration/test_sagemaker_workflow.py",  # workflow runs with training jobs in worker processes
        "tests/integration/test_training_job_registration.py",  # moto provisioning per test
        "tests/unit/test_local_athena.py",  # DuckDB over golden data, hostile-query matrix
        "tests/unit/test_local_athena_memory.py",  # a DuckDB sort past its memory limit (spills)
        "tests/unit/test_training_public_matrix.py",
        "tests/integration/test_retraining_workflow.py",
        "tests/unit/test_training_image.py",
        "tests/integration/test_monitoring_check.py",
        "tests/integration/test_estimated_performance_check.py",  # trains estimators, three checks on moto
        "tests/integration/test_segment_check.py",  # drift checks with segments and estimates on moto
        "tests/integration/test_segment_scale.py",  # the shard query on DuckDB and both check paths on moto
        "tests/integration/test_estimate_scale.py",  # both check paths with an estimator, six moto windows
        "tests/unit/test_drift_segments_training.py",  # trains two models to read their profiles
        "tests/unit/test_estimation.py",  # fits boosted models and ONNX loss models per seed
        "tests/integration/test_monitoring_lateness.py",
        "tests/unit/test_training_imported_conversion.py",
        "tests/integration/test_local_moto_hooks.py",
        "tests/unit/test_drift_evidently_agreement.py",
        "tests/integration/test_notebook_api.py",
        "tests/integration/test_serving_fuzz.py",
        "tests/integration/test_feedback_binding.py",
        "tests/integration/test_serving_endpoint.py",
        "tests/integration/test_test_traffic.py",  # 2,000+ handler calls and three checks on moto
        "tests/unit/test_training_core.py",
        "tests/integration/test_features_cli.py",
        "tests/integration/test_approval_token.py",
        "tests/unit/test_drift_scipy_parity.py",
        "tests/unit/test_drift_multivariate.py",  # cross-validated domain classifiers
        "tests/unit/test_drift_alarms.py",  # trains models on diabetes and a 30-feature set
        "tests/integration/test_monitoring_alarms.py",  # moto, three scheduled checks per test
        "tests/integration/test_training_cli.py",
        "tests/integration/test_training_handler.py",
        "tests/integration/test_feedback_training.py",  # three retrainings on moto
        "tests/integration/test_training_publish.py",
        "tests/integration/test_local_iam.py",
        "tests/integration/test_local_executor.py",
        "tests/integration/test_local_persistence.py",
        "tests/integration/test_drift_scale.py",
        "tests/integration/test_drift_scale_dispatch.py",
        "tests/integration/test_drift_scale_workflow.py",
        "tests/integration/test_ingest_parts.py",  # every step of the parts path on moto, online-store writes
        "tests/integration/test_ingest_parts_workflow.py",  # a moto server, the Distributed Map, a 10 MB upload
        "tests/integration/test_attack_session25.py",  # hostile ingest-parts states, moto provisioned per case
        "tests/e2e/test_local_ingest_parts.py",  # local up, a 10 MB upload through the parts workflow
        "tests/unit/test_s3_hook.py",  # every Range form and multipart completion, with and without the hook
        "tests/e2e/test_local_walkthrough.py",
        "tests/e2e/test_local_resume.py",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.split("::", 1)[0] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
