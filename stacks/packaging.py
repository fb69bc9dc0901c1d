"""Lambda packaging without Docker at synth.

* The function code asset holds ``driftline/``, ``lambdas/`` and the feature set definitions.
* Each dependency layer (base, data, serving, drift) is installed from manylinux wheels for the
  Lambda runtime and architecture chosen in ``driftline.platform``, pinned by ``uv.lock``, trimmed,
  and byte-compiled for the runtime's Python. Wheels are cached in ``.cache/`` between synths.
* Tests skip bundling with the context ``aws:cdk:bundling-stacks: []``; CDK then hashes the source.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from driftline.platform import LAMBDA_PYTHON_VERSION, Package
from stacks.bundle_contents import CODE_INCLUDE, NOT_IN_LAMBDA

ROOT = Path(__file__).resolve().parents[1]
LAYERS_DIR = ROOT / "stacks" / "layers"
CACHE_DIR = ROOT / ".cache" / "layers"


# What each layer holds: top-level requirements; versions come from uv.lock (constraints).
LAYER_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "base": ("aws-lambda-powertools[tracer]", "pydantic", "pyyaml", "orjson"),
    "data": ("aws-lambda-powertools[tracer]", "pydantic", "pyyaml", "pyarrow", "numpy", "orjson"),
    "serving": ("aws-lambda-powertools[tracer]", "onnxruntime", "numpy", "orjson", "msgspec"),
    "drift": ("aws-lambda-powertools[tracer]", "pydantic", "pyyaml", "numpy", "pyarrow", "jinja2", "orjson"),
    # the workflow steps: registry, gate and canary arithmetic (numpy), no pyarrow or jinja2
    "workflow": ("aws-lambda-powertools[tracer]", "pydantic", "pyyaml", "numpy", "orjson"),
}

# Never needed at run time in Lambda: tests, headers, type stubs, CLI entry points, pyarrow extras.
TRIM_GLOBS = (
    "**/tests",
    "**/test",
    "**/__pycache__",
    "**/*.pyi",
    "**/*.h",
    "**/*.hpp",
    "**/*.pxd",
    "**/*.pyx",
    "bin",
    "**/include",
    "pyarrow/*flight*",
    "pyarrow/libarrow_flight*",
    "pyarrow/_s3fs*",
    "pyarrow/_gcsfs*",
    "pyarrow/_azurefs*",
    "pyarrow/_hdfs*",
    "pyarrow/_pyarrow_cpp_tests*",
    # libarrow_substrait stays: pyarrow.lib links against it.
)
# numpy/_core/tests is imported by nothing, but numpy.testing is (by pyarrow) — keep 'testing'.


def _python_for_bytecode() -> str | None:
    """The runtime's Python, so .pyc files match the Lambda interpreter; None when it is not installed
    (bytecode for another Python would only waste space: Lambda would ignore it)."""
    candidates = [str(p) for p in sorted(Path("/root/.pyenv/versions").glob(f"{LAMBDA_PYTHON_VERSION}.*/bin/python"))]
    candidates.append(shutil.which(f"python{LAMBDA_PYTHON_VERSION}") or "")
    for cand in filter(None, candidates):
        ok = subprocess.run(
            [cand, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True, check=False
        )
        if ok.returncode == 0 and ok.stdout.strip() == str(tuple(map(int, LAMBDA_PYTHON_VERSION.split(".")))):
            return cand
    return None


def _compile(path: Path) -> None:
    python = _python_for_bytecode()
    if python:
        subprocess.run(
            [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(path)],
            check=False,
            capture_output=True,
        )


def _constraints() -> Path:
    out = CACHE_DIR / "constraints.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    subprocess.run(
        [
            uv,
            "export",
            "--frozen",
            "--no-hashes",
            "--no-emit-project",
            "--all-extras",
            "--color",
            "never",
            "--quiet",
            "--format",
            "requirements-txt",
            "--output-file",
            str(out),
        ],
        cwd=ROOT,
        check=True,
    )
    return out


def _trim(target: Path) -> None:
    for pattern in TRIM_GLOBS:
        for p in target.glob(pattern):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists():
                p.unlink()
    for dist in target.glob("*.dist-info"):
        for name in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
            (dist / name).unlink(missing_ok=True)


def install_for_lambda(target: Path, requirements: tuple[str, ...] | list[str]) -> None:
    """Install manylinux wheels for the Lambda runtime and architecture into ``target``, pinned by uv.lock."""
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--target",
            str(target),
            "--python-platform",
            "x86_64-manylinux_2_28",
            "--python-version",
            LAMBDA_PYTHON_VERSION,
            "--only-binary",
            ":all:",
            "--no-installer-metadata",
            "-c",
            str(_constraints()),
            *requirements,
        ],
        cwd=ROOT,
        check=True,
    )


def build_layer(name: str, output_dir: Path) -> None:
    """Install the layer into ``output_dir/python`` (cached by requirements + lock hash)."""
    reqs = LAYER_REQUIREMENTS[name]
    lock_hash = _layer_hash(name)[:16]  # lock + requirements + this file (its trim rules)
    cached = CACHE_DIR / f"{name}-{lock_hash}"
    if not cached.exists():
        # per process: parallel synths (pytest-xdist workers, dev and prod) may build the same layer
        tmp = cached.with_suffix(f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        target = tmp / "python"
        install_for_lambda(target, reqs)
        # boto3/botocore come with the Lambda runtime; don't ship a second copy.
        for pkg in ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six.py"):
            for p in target.glob(f"{pkg}*"):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        _trim(target)
        _compile(target)
        try:
            tmp.rename(cached)
        except OSError:  # another process finished the same layer first: its copy is identical
            if not cached.exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(cached, output_dir, dirs_exist_ok=True)


def copy_code(output_dir: Path, feature_sets_dir: Path) -> None:
    """Function code: the core library, the handlers and the feature set definitions."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in CODE_INCLUDE:
        shutil.copytree(ROOT / name, output_dir / name, ignore=ignore, dirs_exist_ok=True)
    shutil.copytree(feature_sets_dir, output_dir / "feature_sets", ignore=ignore, dirs_exist_ok=True)
    for name in NOT_IN_LAMBDA:
        path = output_dir / "driftline" / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    _compile(output_dir)


@jsii.implements(ILocalBundling)
class _LocalBundler:
    def __init__(self, kind: str, feature_sets_dir: Path | None = None) -> None:
        self.kind = kind
        self.feature_sets_dir = feature_sets_dir

    def try_bundle(self, output_dir: str, *, image: Any = None, **_: Any) -> bool:
        out = Path(output_dir)
        if self.kind == "code":
            assert self.feature_sets_dir is not None
            copy_code(out, self.feature_sets_dir)
        else:
            build_layer(self.kind, out)
        return True


def _bundling(kind: str, feature_sets_dir: Path | None = None) -> BundlingOptions:
    # The image is only a fallback CDK requires to be named; local bundling always succeeds first.
    return BundlingOptions(
        image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.12"),
        local=_LocalBundler(kind, feature_sets_dir),
    )


def function_code(feature_sets_dir: Path) -> lambda_.Code:
    return lambda_.Code.from_asset(
        str(ROOT / "lambdas"),
        bundling=_bundling("code", feature_sets_dir),
        asset_hash=_source_hash(feature_sets_dir),
        asset_hash_type=AssetHashType.CUSTOM,
    )


def layer_code(package: Package) -> lambda_.Code:
    return lambda_.Code.from_asset(
        str(LAYERS_DIR),
        bundling=_bundling(package),
        asset_hash=_layer_hash(package),
        asset_hash_type=AssetHashType.CUSTOM,
    )


def _source_hash(feature_sets_dir: Path) -> str:
    h = hashlib.sha256()
    for base in [*(ROOT / n for n in CODE_INCLUDE), feature_sets_dir]:
        for p in sorted(base.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
                h.update(str(p.relative_to(ROOT)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()


def _layer_hash(package: str) -> str:
    reqs = "\n".join(LAYER_REQUIREMENTS[package]).encode()
    return hashlib.sha256((ROOT / "uv.lock").read_bytes() + reqs + Path(__file__).read_bytes()).hexdigest()
