"""Where training data comes from: the feature store's point-in-time training set.

Kept apart from the training core so the core can be tested on plain tables.
"""

from __future__ import annotations

from typing import Any


class TrainingDataError(LookupError):
    """The training set cannot be built from the feature store (no data, or no builder)."""


TRAINING_SETS_PREFIX = "training-sets"
"""Features-bucket prefix of the training-set snapshots (what a SageMaker training job's role may read)."""


def training_set_key(model: str, run_id: str) -> str:
    """Where the snapshot goes (docs/architecture.md): ``training-sets/<model>/<run id>.parquet``."""
    return f"{TRAINING_SETS_PREFIX}/{model}/{run_id}.parquet"


def from_feature_store(
    fs: Any,
    bucket: str,
    *,
    model: str,
    run_id: str,
    join: str = "in_process",
    join_auto_bytes: int = 1 << 30,
    athena: tuple[str, str] | None = None,
    clients: Any = None,
) -> tuple[Any, dict[str, Any]]:
    """Build and persist the point-in-time training set; returns the table and its lineage.

    Lineage (from :meth:`TrainingSet.lineage`): ``uri`` and ``version_id`` of the snapshot,
    ``sha256``, ``rows``, label/unmatched counts and the curated inputs' S3 ``object_versions``.
    "Nothing to train on" (no curated data, no labelled rows, no point-in-time match) becomes
    :class:`TrainingDataError`; S3 errors propagate.
    """
    try:
        from driftline.features.training_set import TrainingSetError, build_training_set
    except ModuleNotFoundError as e:
        if e.name != "driftline.features.training_set":
            raise
        raise TrainingDataError(
            "this build has no feature-store training-set builder "
            "(driftline.features.training_set); pass --data with a local table"
        ) from None
    if join == "in_process":
        try:
            result = build_training_set(fs, bucket, output_key=training_set_key(model, run_id))
        except TrainingSetError as e:
            raise TrainingDataError(str(e)) from None
        return result.table, dict(result.lineage())
    return _through_athena(fs, bucket, model, run_id, join, join_auto_bytes, athena, clients)


def _through_athena(
    fs: Any,
    bucket: str,
    model: str,
    run_id: str,
    join: str,
    auto_bytes: int,
    athena: tuple[str, str] | None,
    clients: Any,
) -> tuple[Any, dict[str, Any]]:
    """``training.join`` athena or auto: the Athena builder when chosen (``athena`` = (Glue database,
    workgroup), ``clients`` the client factory), else the in-process one; the choice goes into the lineage."""
    from driftline.features.athena_training_set import build_training_set_athena, choose_join
    from driftline.features.training_set import TrainingSet, TrainingSetError, build_training_set

    if athena is None or clients is None:
        raise TrainingDataError(f"training.join is {join} but this function has no Athena workgroup configured")
    chosen, decision = choose_join(join, auto_bytes, fs, bucket, clients("s3"))
    key = training_set_key(model, run_id)
    result: TrainingSet
    try:
        if chosen == "athena":
            database, workgroup = athena
            result = build_training_set_athena(
                fs,
                bucket,
                database=database,
                workgroup=workgroup,
                athena_client=clients("athena"),
                output_key=key,
                client=clients,
            )
        else:
            result = build_training_set(fs, bucket, output_key=key, client=clients)
    except TrainingSetError as e:
        raise TrainingDataError(str(e)) from None
    return result.table, {**result.lineage(), "join_decision": decision}
