"""The notebook API: load the training set, fit your own pipeline, register it as a candidate.

Works against AWS or the local platform alike: the AWS SDK's usual environment decides where calls
go (``AWS_ENDPOINT_URL`` for the local platform, credentials and ``AWS_REGION`` for AWS), and the
platform definition (``cdk.json``) names the model, its feature set and the resources. Resource
names come from the functions' variables (``REGISTRY_TABLE``, ``ARTIFACTS_BUCKET``,
``FEATURES_BUCKET``) when set, else they are derived as the stacks name them.

Example::

    import driftline
    df = driftline.load_training_set("credit-default")
    train = df[df.split == "train"]
    pipe.fit(train[features], train["defaulted"])
    version = driftline.register_model(pipe, model="credit-default")

A registered model is a **candidate**: it goes through the quality gate, approval and canary like
any retrained version (``driftline models approve ...``); nothing here makes it champion.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ModelRejectedError", "NotebookError", "RegisteredModel", "load_training_set", "register_model"]

CONFIG_ENV = "DRIFTLINE_CONFIG"
ENVIRONMENT_ENV = "DRIFTLINE_ENV"
ARTIFACT_KINDS = (".skops", ".onnx", ".txt", ".json", ".ubj")


class NotebookError(ValueError):
    """A mistake the caller can fix (unknown model, missing config, unreadable artifact), with the fix."""


class ModelRejectedError(NotebookError):
    """The model was registered as ``rejected``; ``version`` is on record with ``reason``."""

    def __init__(self, model: str, version: int, reason: str) -> None:
        super().__init__(f"{model} v{version} was registered as rejected: {reason}")
        self.model = model
        self.version = version
        self.reason = reason


@dataclass(frozen=True)
class RegisteredModel:
    """A registered candidate: its version number, metrics and the champion's on the same rows."""

    model: str
    version: int
    status: str
    metrics: dict[str, float]
    champion_version: int | None = None
    champion_metrics: dict[str, float] | None = None
    lineage: dict[str, Any] = field(default_factory=dict, repr=False)

    def __int__(self) -> int:
        return self.version


@dataclass(frozen=True)
class _Context:
    platform: Any
    config_path: Path
    cfg: Any
    fs: Any
    registry_table: str
    artifacts_bucket: str
    features_bucket: str
    audit_bucket: str


def _find_config(config: str | Path | None) -> Path:
    if config is not None:
        path = Path(config)
    elif os.environ.get(CONFIG_ENV):
        path = Path(os.environ[CONFIG_ENV])
    else:
        here = Path.cwd().resolve()
        found = next((d / "cdk.json" for d in (here, *here.parents) if (d / "cdk.json").is_file()), None)
        if found is None:
            raise NotebookError(
                f"no cdk.json in {here} or its parents; pass config='path/to/cdk.json' or set {CONFIG_ENV}"
            )
        path = found
    if not path.is_file():
        raise NotebookError(f"{path}: config file not found")
    return path


def _context(model: str, config: str | Path | None, env: str | None) -> _Context:
    from driftline import aws
    from driftline import config as config_mod
    from driftline.features.schema import FeatureSetCatalog
    from driftline.platform import build_platform

    path = _find_config(config)
    try:
        platform = build_platform(config_mod.load(path, env or os.environ.get(ENVIRONMENT_ENV) or None))
        cfg = platform.config.model(model)
    except config_mod.ConfigError as e:
        raise NotebookError(str(e)) from None
    directory = Path(platform.config.feature_sets_dir)
    if not directory.is_absolute():
        directory = path.resolve().parent / directory
    fs = FeatureSetCatalog(directory).get(cfg.feature_set)
    names = platform.caller_names(os.environ, lambda: _identity()["Account"], aws.region())
    return _Context(
        platform=platform,
        config_path=path,
        cfg=cfg,
        fs=fs,
        registry_table=names["REGISTRY_TABLE"],
        artifacts_bucket=names["ARTIFACTS_BUCKET"],
        features_bucket=names["FEATURES_BUCKET"],
        audit_bucket=names["AUDIT_BUCKET"],
    )


def _identity() -> dict[str, str]:
    """Who is calling, as AWS (or the local platform's STS) proves it: never taken from an argument."""
    from driftline import aws

    try:
        got = aws.client("sts").get_caller_identity()
    except Exception as e:
        raise NotebookError(
            f"cannot tell who you are from STS ({type(e).__name__}: {e}); configure AWS "
            f"credentials, or start the local platform and set AWS_ENDPOINT_URL"
        ) from None
    return {"Arn": str(got["Arn"]), "Account": str(got["Account"])}


def _store_table(ctx: _Context) -> tuple[Any, dict[str, Any]]:
    from driftline.training.sources import TrainingDataError, from_feature_store

    run_id = f"notebook-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    try:
        return from_feature_store(ctx.fs, ctx.features_bucket, model=ctx.cfg.name, run_id=run_id)
    except TrainingDataError as e:
        raise NotebookError(str(e)) from None


def load_training_set(
    model: str, *, config: str | Path | None = None, env: str | None = None, validation_fraction: float | None = None
) -> Any:
    """The point-in-time training set of ``model`` from the feature store, as a pandas DataFrame.

    Parameters
    ----------
    model
        A model named in cdk.json; its feature set decides the columns.
    config, env
        cdk.json (default: ``$DRIFTLINE_CONFIG``, else the nearest cdk.json upwards) and its environment.
    validation_fraction
        Share of the newest rows in ``split == "validation"`` (default: the model's, else 0.2).

    Returns
    -------
    pandas.DataFrame
        Labelled rows: entity, timestamp, one column per model feature in its natural dtype
        (categoricals as strings, NaN for null), the label, and ``split`` (``train``/``validation``:
        the time split built-in training uses). ``df.attrs["driftline"]`` holds the split and lineage.

    Raises
    ------
    NotebookError
        Unknown model, no config, no identity, or nothing to train on (the reason says which).
    """
    from driftline.training.core import validation_fraction_of
    from driftline.training.errors import TrainingRejectedError
    from driftline.training.frames import training_frame

    ctx = _context(model, config, env)
    table, lineage = _store_table(ctx)
    try:
        frame = training_frame(table, ctx.fs, validation_fraction_of(ctx.cfg, validation_fraction))
    except TrainingRejectedError as e:
        raise NotebookError(e.reason) from None
    frame.attrs["driftline"]["training_set"] = lineage
    frame.attrs["driftline"]["model"] = ctx.cfg.name
    return frame


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_artifact(path: str | Path) -> Any:
    """A model file as an :class:`~driftline.training.imported.ImportedModel` (or a precise refusal).

    ``.skops``: a fitted scikit-learn estimator or pipeline (only scikit-learn, NumPy and SciPy
    types are loaded); ``.onnx``: an exported graph; ``.txt``: a LightGBM model; ``.json``/``.ubj``:
    an XGBoost model. Boosters are trained on the feature set's encoded matrix (see docs/notebook.md).
    """
    from driftline.training.imported import ImportedModel

    p = Path(path)
    if not p.is_file():
        raise NotebookError(f"{p}: file not found")
    suffix = p.suffix.lower()
    if suffix not in ARTIFACT_KINDS:
        raise NotebookError(
            f"{p}: unknown model file kind {suffix or '(no extension)'!r}; use .skops (scikit-learn), "
            f".onnx, .txt (LightGBM) or .json/.ubj (XGBoost)"
        )
    data = p.read_bytes()
    if not data:
        raise NotebookError(f"{p}: the file is empty")
    digest = hashlib.sha256(data).hexdigest()
    common: dict[str, Any] = {"source": "file", "artifact_name": p.name, "artifact_sha256": digest}
    if suffix == ".onnx":
        return ImportedModel(onnx=data, **common)
    if suffix == ".skops":
        from driftline.training.skops_io import UntrustedArtifactError, load_pipeline

        try:
            return ImportedModel(estimator=load_pipeline(data), **common)
        except UntrustedArtifactError as e:
            raise NotebookError(f"{p}: {e}; export such a model to ONNX and register the .onnx file") from None
        except Exception as e:
            raise NotebookError(f"{p}: not a readable skops file ({type(e).__name__}: {str(e)[:200]})") from None
    from driftline.training.boosters import read_booster
    from driftline.training.errors import TrainingRejectedError

    try:
        booster = read_booster(p, data)
    except TrainingRejectedError as e:
        raise NotebookError(e.reason) from None
    return ImportedModel(onnx=booster.onnx, class_indices=True, reference=booster.predict, **common)


def register_model(
    estimator: Any,
    *,
    model: str,
    config: str | Path | None = None,
    env: str | None = None,
    data: Any = None,
    code_path: str | Path | None = None,
    validation_fraction: float | None = None,
) -> RegisteredModel:
    """Convert, check and register ``estimator`` as a **candidate** version of ``model``.

    Parameters
    ----------
    estimator
        A fitted scikit-learn estimator or Pipeline taking the feature columns by name (as in
        :func:`load_training_set`), an LightGBM/XGBoost scikit-learn model inside such a pipeline,
        ONNX bytes, or the path of a model file (see :func:`read_artifact`).
    model
        The model in cdk.json the version belongs to.
    data
        The labelled table to evaluate on (default: the feature store's training set, as
        :func:`load_training_set` builds it); parity, metrics and the drift profile use its
        validation rows.
    code_path
        The notebook or script that fitted the model; its path and SHA-256 go into the lineage.

    Returns
    -------
    RegisteredModel
        The candidate's version and metrics (``int(result)`` is the version number).

    Raises
    ------
    ModelRejectedError
        A check failed; the version is on record as ``rejected`` with the reason.
    NotebookError
        Nothing was registered (unknown model, unreadable file, no identity, no data).
    """
    from driftline.registry.store import Registry
    from driftline.training.imported import ImportedModel, register_imported
    from driftline.training.lineage import table_sha256

    if isinstance(estimator, str | Path):
        imported = read_artifact(estimator)
    elif isinstance(estimator, bytes | bytearray):
        imported = ImportedModel(onnx=bytes(estimator), source="notebook")
    else:
        imported = ImportedModel(estimator=estimator, source="notebook")
    ctx = _context(model, config, env)
    who = _identity()["Arn"]
    if data is None:
        table, lineage = _store_table(ctx)
    else:
        from driftline.training.dataset import to_arrow

        table = to_arrow(data)
        if "split" in table.column_names and "split" not in ctx.fs.feature_names:  # load_training_set's column
            table = table.drop_columns(["split"])
        lineage = {"uri": "memory://dataframe", "sha256": table_sha256(table), "rows": table.num_rows}
    code: dict[str, Any] = {}
    if code_path is not None:
        cp = Path(code_path)
        code = {"path": str(cp), "sha256": _sha256(cp) if cp.is_file() else "missing"}
    registry = Registry(ctx.registry_table, ctx.audit_bucket)
    outcome = register_imported(
        imported,
        table,
        ctx.fs,
        ctx.cfg,
        registry=registry,
        artifacts_bucket=ctx.artifacts_bucket,
        created_by=who,
        training_set=lineage,
        code=code,
        validation_fraction=validation_fraction,
    )
    if outcome.status == "rejected":
        raise ModelRejectedError(outcome.model, outcome.version, outcome.reason)
    return RegisteredModel(
        model=outcome.model,
        version=outcome.version,
        status=outcome.status,
        metrics=outcome.metrics,
        champion_version=outcome.champion_version,
        champion_metrics=outcome.champion_metrics,
        lineage=outcome.lineage,
    )
