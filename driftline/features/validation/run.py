"""Validate a whole table: missing and extra columns, then every column's and the key's checks,
on threads for large tables, merged in a fixed order."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa

from driftline.features.schema import FeatureSet
from driftline.features.tables import curated_schema, required_columns
from driftline.features.validation.column_checks import check_column, check_feature, check_label
from driftline.features.validation.failures import Failures
from driftline.features.validation.key_checks import check_duplicate_keys, check_entity_keys
from driftline.features.validation.parallel import thread_count
from driftline.features.validation.result import Check, ValidationResult
from driftline.features.validation.text import coerce_text
from driftline.features.validation.timestamp import coerce_timestamp

__all__ = ["validate"]


def validate(
    raw: pa.Table, fs: FeatureSet, *, others: Iterable[FeatureSet] = (), sample_rows: int | None = None
) -> ValidationResult:
    """Run every check of ``fs`` over ``raw`` (a table as read from the upload).

    ``others`` (the rest of the catalog) only improves the message when the file belongs to
    another feature set.
    """
    run = Failures(raw, fs, fs.ingest.sample_rows_in_report if sample_rows is None else sample_rows)
    n = raw.num_rows
    present_cols = set(raw.column_names)
    required = required_columns(fs)
    known = set(required) | {lb.name for lb in fs.labels}
    missing = [c for c in required if c not in present_cols]
    extra = [c for c in raw.column_names if c not in known]
    if extra:
        run.checks.append(
            Check(
                "extra_columns",
                None,
                "warning",
                0,
                f"{len(extra)} column(s) not in feature set {fs.name!r} were ignored: {', '.join(extra)}",
                "remove them or add them to the feature set definition",
                details={"columns": extra},
            )
        )
    if missing:
        hint_parts = []
        for m in missing:
            near = _near_miss(m, extra)
            if near is not None:
                hint_parts.append(f"column {near!r} looks like {m!r} (names are exact: lowercase, no spaces)")
        for other in others:
            if other.name != fs.name and set(required_columns(other)) <= present_cols:
                hint_parts.append(
                    f"the columns match feature set {other.name!r}: upload the file to incoming/{other.name}/ instead"
                )
        if len(missing) > len(required) / 2 and not any("match feature set" in h for h in hint_parts):
            hint_parts.append(
                f"most required columns are missing: is this a file of another feature set? "
                f"{fs.name!r} needs {', '.join(required)}"
            )
        hint_parts.append("add the missing columns (leave values empty where a feature is nullable)")
        all_rows = np.ones(n, dtype=bool)
        run.masks["missing_columns"] = all_rows
        run.checks.append(
            Check(
                "missing_columns",
                None,
                "error",
                n,
                f"{len(missing)} required column(s) missing: {', '.join(missing)}; no row can be accepted",
                "; ".join(hint_parts),
                details={"columns": missing},
            )
        )
        return ValidationResult(fs, raw, None, run.masks, run.checks, np.zeros(n, dtype=bool))

    def column(name: str) -> pa.Array:
        """The raw column; chunked columns stay chunked (compute kernels take them; no copy)."""
        col = raw.column(name)
        return col.chunk(0) if col.num_chunks == 1 else col

    # entity keys and event timestamp first (the duplicate-key check needs them), then one job per
    # feature and label plus the duplicate-key check, on threads for large tables: the work is in
    # Arrow and numpy kernels, which release the GIL. Each job fails into its own child run and
    # the children are merged in definition order, so results do not depend on thread timing.
    typed: dict[str, pa.Array] = {}
    for e in fs.entity:
        typed[e] = check_column(run, e, "entity", coerce_text, column(e), required="entity key")
    check_entity_keys(run, fs, typed)
    typed[fs.timestamp] = check_column(
        run, fs.timestamp, "timestamp", coerce_timestamp, column(fs.timestamp), required="event timestamp"
    )
    keys = dict(typed)
    jobs: list[tuple[str | None, Callable[[Failures], pa.Array | None]]] = [
        (f.name, functools.partial(check_feature, f=f, raw_col=column(f.name))) for f in fs.features
    ]
    jobs += [
        (lb.name, functools.partial(check_label, lb=lb, raw_col=column(lb.name) if lb.name in present_cols else None))
        for lb in fs.labels
    ]
    jobs.append((None, functools.partial(check_duplicate_keys, fs=fs, typed=keys)))
    children = [run.child() for _ in jobs]
    workers = thread_count(n, len(jobs))
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:  # the longest job, duplicate keys, first
            futures = {i: pool.submit(jobs[i][1], children[i]) for i in reversed(range(len(jobs)))}
            arrays = [futures[i].result() for i in range(len(jobs))]
    else:
        arrays = [job[1](child) for job, child in zip(jobs, children, strict=True)]
    for (name, _), arr, child in zip(jobs, arrays, children, strict=True):
        if name is not None and arr is not None:
            typed[name] = arr
        run.merge(child)

    schema = curated_schema(fs)
    table = pa.Table.from_arrays([typed[f.name] for f in schema], names=schema.names)
    rejected = np.zeros(n, dtype=bool)
    for failed in run.masks.values():
        rejected |= failed
    return ValidationResult(fs, raw, table, run.masks, run.checks, ~rejected)


def _near_miss(missing: str, extra: list[str]) -> str | None:
    key = missing.strip().lower().replace(" ", "_").replace("-", "_")
    for e in extra:
        if e.strip().lower().replace(" ", "_").replace("-", "_") == key:
            return e
    return None
