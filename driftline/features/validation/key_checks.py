"""The checks of the row key: entity key size and format, and rows sharing entity key and timestamp."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.features.online import max_entity_bytes
from driftline.features.schema import FeatureSet
from driftline.features.validation.arrays import as_numpy_mask, present_rows, take_rows
from driftline.features.validation.failures import Failures

__all__ = ["check_duplicate_keys", "check_entity_keys"]


def check_entity_keys(run: Failures, fs: FeatureSet, typed: Mapping[str, pa.Array]) -> None:
    """Rows whose entity key is too long for the online store's item key (DynamoDB: 2,048 bytes)."""
    limit = max_entity_bytes(fs.name)
    sizes = np.full(run.n, len(fs.entity) - 1, dtype=np.int64)  # the '|' separators
    for e in fs.entity:
        lengths = pc.binary_length(pc.cast(typed[e], pa.string()))
        sizes += np.asarray(pc.fill_null(lengths, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    for e in fs.entity:  # a stray quote in a CSV field ends up inside the value: U2-C0000161"
        text = pc.cast(typed[e], pa.string())
        odd = as_numpy_mask(pc.fill_null(pc.match_substring_regex(text, r'["\x00-\x1f\x7f]'), False))
        run.fail(
            "entity_format",
            e,
            odd,
            f"{{count}} entity key(s) of {e!r} contain a double quote or a control character, which no "
            f"identifier has (a stray quote in a CSV file ends up inside the value)",
            "check the file's quoting (a field with a quote must be quoted, its quotes doubled) and line endings",
            sample_columns=[e],
        )
    run.fail(
        "entity_length",
        fs.entity[0] if len(fs.entity) == 1 else None,
        sizes > limit,
        f"{{count}} row(s) have an entity key longer than {limit:,} bytes (UTF-8), more than the online "
        f"store's key can hold",
        "entity keys are identifiers: shorten them (e.g. hash long natural keys)",
        sample_columns=list(fs.entity),
    )


def check_duplicate_keys(run: Failures, fs: FeatureSet, typed: dict[str, pa.Array]) -> None:
    """Rows sharing entity key and event timestamp: which one is right is unknowable, reject all.

    Rows can only share a key when they share the event timestamp, so the int64 timestamps find
    the candidates (usually a few percent of the rows; no sort for a time-ordered upload)
    and only those are compared by the whole key: entity keys dictionary-encoded to int codes,
    then one numpy lexsort (cheaper than Arrow's hash grouping of the text keys).
    """
    keys = [*fs.entity, fs.timestamp]
    valid = np.ones(run.n, dtype=bool)
    for k in keys:
        valid &= present_rows(typed[k])
    rows = None if valid.all() else np.flatnonzero(valid)  # None: every row
    if (run.n if rows is None else rows.size) < 2:
        return
    micros = pc.fill_null(pc.cast(typed[fs.timestamp], pa.int64()), 0)
    stamps = np.asarray(micros.to_numpy(), dtype=np.int64)
    if rows is not None:
        stamps = stamps[rows]
    if bool(np.all(stamps[1:] >= stamps[:-1])):  # time-ordered upload: ties are neighbours
        tie = stamps[1:] == stamps[:-1]
        if not tie.any():
            return
        shared = np.zeros(len(stamps), dtype=bool)
        shared[1:] |= tie
        shared[:-1] |= tie
    else:  # the tied values from a sort of the values (cheaper than an argsort), then their rows
        ordered = np.sort(stamps)
        tie = ordered[1:] == ordered[:-1]
        if not tie.any():
            return
        tied = np.unique(ordered[1:][tie])
        shared = as_numpy_mask(pc.is_in(pa.array(stamps), value_set=pa.array(tied)))
    candidates = np.flatnonzero(shared)
    if rows is not None:
        candidates = rows[candidates]

    def codes(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Entity key text as int codes, equal exactly when the text is."""
        taken = take_rows(col, candidates)
        taken = taken.combine_chunks() if isinstance(taken, pa.ChunkedArray) else taken
        return np.asarray(pc.dictionary_encode(taken).indices.to_numpy(), dtype=np.int64)

    sort_keys = [codes(typed[e]) for e in fs.entity]
    cand_stamps = (
        stamps[candidates]
        if rows is None
        else np.asarray(micros.take(pa.array(candidates, pa.int64())).to_numpy(), dtype=np.int64)
    )
    by_key = np.lexsort([*sort_keys, cand_stamps])  # the last key is the primary one
    same = cand_stamps[by_key][1:] == cand_stamps[by_key][:-1]
    for key_codes in sort_keys:
        same &= key_codes[by_key][1:] == key_codes[by_key][:-1]
    if not same.any():
        return
    dup = np.zeros(run.n, dtype=bool)
    dup[candidates[by_key[1:][same]]] = True
    dup[candidates[by_key[:-1][same]]] = True
    run.fail(
        "duplicate_key",
        ",".join(keys),
        dup,
        f"{{count}} row(s) share their {' + '.join(keys)} with another row, so it is unknowable which "
        f"values are right; all of them were rejected",
        "keep exactly one row per entity and event timestamp",
        sample_columns=keys,
    )
