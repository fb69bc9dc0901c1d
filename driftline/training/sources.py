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


def with_feedback(
    uploads: Any,
    lineage: dict[str, Any],
    fs: Any,
    bucket: str,
    *,
    model: str,
    run_id: str,
    settings: Any,
    captures_bucket: str | None,
    labelers: Any = (),
    now: Any = None,
    clients: Any = None,
    uploads_error: str | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The training set plus the feedback rows (``training.feedback``), and its lineage.

    ``uploads`` is the feature store's training table (None when it had nothing to train on:
    ``uploads_error`` says why, and training may still run from feedback alone). When feedback rows are
    used, the combined table replaces the snapshot at the same key (a SageMaker job reads that file), and
    the lineage's ``uri``, ``sha256``, ``version_id`` and ``rows`` describe it. The lineage always says
    ``rows_from_uploads``, ``rows_from_feedback`` and, with feedback on, ``feedback`` (the join's counts,
    :class:`~driftline.training.feedback_rows.FeedbackStats`). Raises :class:`TrainingDataError` when
    neither source has rows.
    """
    import hashlib
    from datetime import UTC, datetime

    from driftline import aws
    from driftline.features.curated import parquet_bytes
    from driftline.training.feedback_rows import FeedbackStats, combine, read_feedback_rows

    clients = clients or aws.client
    uploaded = 0 if uploads is None else int(uploads.num_rows)
    out = {**lineage, "rows_from_uploads": uploaded, "rows_from_feedback": 0}
    if not settings.enabled:
        if uploads is None:
            raise TrainingDataError(uploads_error or "no training data")
        return uploads, out
    if not captures_bucket:
        stats = FeedbackStats(weight=settings.weight, skipped="this function has no CAPTURES_BUCKET; redeploy")
        feedback = None
    else:
        feedback, stats = read_feedback_rows(
            fs,
            captures_bucket,
            model,
            now=now or datetime.now(UTC),
            max_age_days=settings.max_age_days,
            max_rows=settings.max_rows,
            weight=settings.weight,
            labelers=labelers,
            client=clients("s3"),
        )
    table = uploads if feedback is None else combine(uploads, feedback, fs, stats, min_labels=settings.min_labels)
    out["feedback"] = stats.to_dict()
    if stats.used == 0:
        if uploads is None:
            why = stats.skipped or "no usable feedback label"
            raise TrainingDataError(f"{uploads_error or 'no uploaded training data'}; feedback: {why}")
        return uploads, out
    body = parquet_bytes(table)
    digest = hashlib.sha256(body).hexdigest()
    key = training_set_key(model, run_id)
    resp = clients("s3").put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="application/vnd.apache.parquet",
        Metadata={"sha256": digest, "feature-set": fs.name, "rows": str(table.num_rows)},
    )
    out.update(
        {
            "uri": f"s3://{bucket}/{key}",
            "sha256": digest,
            "version_id": resp.get("VersionId"),
            "rows": int(table.num_rows),
            "rows_from_feedback": stats.used,
        }
    )
    out.setdefault("feature_set", fs.name)
    out.setdefault("feature_set_version", fs.version)
    out.setdefault("feature_set_fingerprint", fs.fingerprint)
    if uploads is None:
        out["uploads"] = uploads_error
    return table, out


def training_table(
    fs: Any,
    bucket: str,
    *,
    model: str,
    run_id: str,
    feedback: Any,
    labelers: Any = (),
    captures_bucket: str | None = None,
    clients: Any = None,
    **store: Any,
) -> tuple[Any, dict[str, Any]]:
    """What a run trains on: :func:`from_feature_store` (``store`` are its join arguments) plus the feedback
    rows of :func:`with_feedback` (``feedback``: the model's ``training.feedback``). With feedback on, a
    feature store without data is not yet a failure: the feedback rows alone may be enough. The train step
    and ``driftline train`` both build their table here."""
    uploads: Any = None
    lineage: dict[str, Any] = {}
    error: str | None = None
    try:
        uploads, lineage = from_feature_store(fs, bucket, model=model, run_id=run_id, clients=clients, **store)
    except TrainingDataError as e:
        if not feedback.enabled:
            raise
        error = str(e)
    return with_feedback(
        uploads,
        lineage,
        fs,
        bucket,
        model=model,
        run_id=run_id,
        settings=feedback,
        captures_bucket=captures_bucket,
        labelers=labelers,
        clients=clients,
        uploads_error=error,
    )
