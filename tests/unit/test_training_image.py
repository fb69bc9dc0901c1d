"""The train image cannot be built here (no Docker), so its Dockerfile is checked against the platform."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "docker" / "train.Dockerfile").read_text()


def test_base_image_python_and_architecture_match_the_platform() -> None:
    from driftline.platform import LAMBDA_ARCHITECTURE, LAMBDA_PYTHON_VERSION

    base = re.search(r"^FROM\s+(?:--platform=(\S+)\s+)?(\S+)", DOCKERFILE, re.M)
    assert base is not None
    assert base.group(2) == f"public.ecr.aws/lambda/python:{LAMBDA_PYTHON_VERSION}"
    assert base.group(1) == {"x86_64": "linux/amd64", "arm64": "linux/arm64"}[LAMBDA_ARCHITECTURE]


def test_cmd_is_the_platform_train_handler() -> None:
    from driftline import config
    from driftline.platform import build_platform

    handler = build_platform(config.load(ROOT / "cdk.json")).function("train").handler
    assert re.search(r'^CMD \["([^"]+)"\]', DOCKERFILE, re.M).group(1) == handler  # type: ignore[union-attr]


def test_every_copied_path_exists_and_is_in_the_context() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    included = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S*)$", DOCKERFILE, re.M))
    for src in re.findall(r"^COPY\s+(.+?)\s+\S+$", DOCKERFILE, re.M):
        for path in re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], src).split():
            assert (ROOT / path).exists(), path
            assert any(path == inc or path.startswith(inc + "/") for inc in included), f"{path} not in context"


@pytest.mark.skipif(
    shutil.which("uv") is None and not (Path(sys.prefix) / "bin" / "uv").exists(), reason="uv not installed"
)
def test_locked_requirements_hold_the_training_stack_and_nothing_local() -> None:
    uv = shutil.which("uv") or str(Path(sys.prefix) / "bin" / "uv")
    cmd = re.search(r"uv export ([^\\&]+?)(?: -o \S+)?\s*\\", DOCKERFILE).group(1).split()  # type: ignore[union-attr]
    out = subprocess.run([uv, "export", *cmd], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    names = {re.split(r"[=<> ;]", line)[0].lower() for line in out.splitlines() if line and line[0].isalpha()}
    assert {
        "scikit-learn",
        "skl2onnx",
        "onnxruntime",
        "onnx",
        "skops",
        "pandas",
        "pyarrow",
        "numpy",
        "aws-lambda-powertools",
        "boto3",
    } <= names
    assert not names & {"moto", "aws-cdk-lib", "pytest", "evidently"}


def test_the_handler_imports_without_the_local_runtime() -> None:
    """driftline/local/ is not in the image; the train handler must not need it."""
    code = (
        "import sys, lambdas.train; "
        "bad = [m for m in sys.modules if m.startswith('driftline.local')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_the_training_job_entry_point_is_in_the_image_and_needs_no_local_runtime() -> None:
    """SageMaker runs the same image with ``python3 -m driftline.training.sagemaker_entry``."""
    from driftline.retraining.sagemaker import ENTRYPOINT, IMAGE_TASK_ROOT

    assert "driftline.training.sagemaker_entry" in DOCKERFILE and ENTRYPOINT[-1] == "driftline.training.sagemaker_entry"
    assert "LAMBDA_TASK_ROOT}/driftline" in DOCKERFILE and IMAGE_TASK_ROOT == "/var/task"  # the base image's root
    code = (
        "import sys, driftline.training.sagemaker_entry; "
        "bad = [m for m in sys.modules if m.startswith('driftline.local')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
