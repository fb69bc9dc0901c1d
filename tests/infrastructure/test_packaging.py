"""Zip functions fit Lambda's size limit, and each handler imports with only its own layer.

The layers are built exactly as ``make synth`` builds them (manylinux wheels for the Lambda
runtime, pinned by uv.lock, cached in .cache/layers), so this test downloads wheels once per machine.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from driftline.platform import LAMBDA_PYTHON_VERSION, build_platform
from stacks import packaging

LAMBDA_UNZIPPED_LIMIT = 262_144_000  # bytes, function code + all layers
ROOT = Path(__file__).resolve().parents[2]


def _platform():  # type: ignore[no-untyped-def]
    from driftline import config

    return build_platform(config.load(ROOT / "cdk.json", "dev"))


ZIP_FUNCTIONS = [f for f in _platform().functions if f.package != "image"]


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out: dict[str, Path] = {}
    code = tmp_path_factory.mktemp("code")
    packaging.copy_code(code, ROOT / "examples" / "feature_sets")
    out["code"] = code
    for package in {f.package for f in ZIP_FUNCTIONS}:
        target = tmp_path_factory.mktemp(f"layer-{package}")
        packaging.build_layer(package, target)
        out[package] = target
    runtime = tmp_path_factory.mktemp("runtime")  # what the Lambda runtime itself provides
    packaging.install_for_lambda(runtime, ["boto3"])
    out["runtime"] = runtime
    return out


@pytest.mark.parametrize("fn", ZIP_FUNCTIONS, ids=lambda f: f.logical)
def test_zip_function_fits_lambda_limit(fn, built: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    total = _size(built["code"]) + _size(built[fn.package])
    assert total < LAMBDA_UNZIPPED_LIMIT, f"{fn.logical}: {total / 2**20:.0f} MiB unzipped"


def test_code_bundle_holds_no_cli_local_platform_demo_dataset_or_test_helper(built: dict[str, Path]) -> None:
    from stacks.bundle_contents import NOT_IN_LAMBDA

    code = built["code"] / "driftline"
    left = [name for name in NOT_IN_LAMBDA if (code / name).exists()]
    assert not left and (code / "serving" / "service.py").is_file(), left


RUN_TIME_IMPORTS: dict[str, tuple[str, ...]] = {
    "workflow": (
        "driftline.retraining.steps",
        "driftline.retraining.canary",
        "driftline.retraining.gate",
        "driftline.retraining.approvals",
        "driftline.retraining.captures",
    ),
    "drift": ("driftline.monitoring.check", "driftline.drift.report"),
}
"""Modules a handler imports inside its functions (the steps it runs), checked against its layer too."""


def _lambda_python() -> str | None:
    return packaging._python_for_bytecode()


@pytest.mark.parametrize("fn", ZIP_FUNCTIONS, ids=lambda f: f.logical)
def test_handler_imports_with_only_its_layer(fn, built: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    python = _lambda_python()
    if python is None:
        pytest.skip(f"python{LAMBDA_PYTHON_VERSION} (the Lambda runtime's Python) is not installed here")
    module, _, attr = fn.handler.rpartition(".")
    path = os.pathsep.join([str(built["code"]), str(built[fn.package] / "python"), str(built["runtime"])])
    lazy = RUN_TIME_IMPORTS.get(fn.logical, ())
    probe = (
        f"import importlib, sys; m = importlib.import_module({module!r}); "
        f"assert callable(getattr(m, {attr!r})); "
        f"[importlib.import_module(n) for n in {lazy!r}]; "
        f"bad = sorted({{'sklearn', 'pandas', 'scipy'}} & set(sys.modules)); "
        f"print('heavy:', bad)"
    )
    fenv = _platform().function_env(
        fn,
        "123456789012",
        "us-east-1",
        {
            "topic:alerts": "arn:aws:sns:us-east-1:123456789012:a",
            "topic:approvals": "arn:aws:sns:us-east-1:123456789012:b",
            "workflow:retrain": "arn:aws:states:us-east-1:123456789012:stateMachine:r",
        },
    )
    env = {
        **fenv,
        "PYTHONPATH": path,
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_SERVICE_NAME": fn.logical,
    }
    proc = subprocess.run(
        [python, "-s", "-c", probe], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "heavy: []" in proc.stdout, f"{fn.logical} imports {proc.stdout}"


def test_training_image_gets_the_trainers_folder() -> None:
    """cdk.json's trainers_dir is copied into the image; a trainer without its folder fails at synth."""
    from stacks.pipeline_stack import NO_TRAINERS, trainers_build_dir

    assert trainers_build_dir("examples/trainers", True) == "examples/trainers"
    assert trainers_build_dir("no/such/dir", False) == NO_TRAINERS
    with pytest.raises(ValueError, match="does not exist"):
        trainers_build_dir("no/such/dir", True)
