"""Commit an upload validated in parts: check that every planned part reported, check the counts, then
commit exactly as the single-function path does (:meth:`~driftline.features.ingest.Ingestor.commit`).

Never a partial result presented as complete: a part without a result (its function failed after the
workflow's retries; under the local interpreter a failed Map item is only a null) fails the upload
naming the part; an unreadable part (a broken quote at a cut, a corrupt row group) makes the upload
``unreadable`` naming the part; a part whose parser rows differ from its independently counted lines
(CSV) or from the footer (Parquet) fails it too. Rows whose entity key and timestamp also occur in
another part are rejected as validation rejects duplicates within one table
(:mod:`driftline.features.parts.keys`). Only then do accepted + quarantined rows equal the rows in the
file, and the curated files (server-side copies of the staged ones), the online store, the record and
the event follow.

Idempotent like the single path: every key is derived from the upload id and the part, so a retried
commit copies the same staged files to the same curated keys and writes the same record.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from driftline.contracts import curated_part_key, ingest_part_key, quarantine_prefix
from driftline.features.curated import curated_files, parquet_bytes
from driftline.features.ingest import COMMITTED, Ingestor, IngestResult, S3Object, latest_rows
from driftline.features.online import OnlineRow
from driftline.features.parts.keys import (
    DUPLICATE_CHECK,
    composite_keys,
    cross_part_duplicates,
    duplicate_column,
    shared_hashes,
)
from driftline.features.parts.records import PartResult, Plan, plan_key, read_json
from driftline.features.readers import UnreadableFileError, suffix_format
from driftline.features.schema import FeatureSet

NOT_FOUND = "not_found"
"""The refusal check of a plan whose upload version is gone (:func:`~driftline.features.parts.workflow.plan_step`)."""

__all__ = ["ROW_NUMBERING", "commit_parts", "first_rows", "record_workflow_failure"]

ROW_NUMBERING = (
    "row = 0-based index of the data row in the whole file (in a CSV file, line = row + 2), as for a file "
    "validated in one function: in check samples and in _row of quarantine rejected-part-NNNNN.parquet; rows "
    "rejected for sharing their key with another part (rejected-part-NNNNN-duplicates.parquet) are listed "
    "as curated rows; the parts are listed under 'parts' in file order with their first_row"
)
PARQUET_MEDIA = "application/vnd.apache.parquet"


def _result(obj: S3Object, fs: FeatureSet, upload_id: str) -> IngestResult:
    return IngestResult(
        "failed",
        obj.uri,
        feature_set=fs.name,
        feature_set_version=fs.version,
        upload_id=upload_id,
        version_id=obj.version_id,
        etag=(obj.etag or "").strip('"') or None,
        size_bytes=obj.size,
        event_time=obj.event_time,
        format=suffix_format(obj.key),
        mode="parts",
    )


def _fail(ingestor: Ingestor, obj: S3Object, fs: FeatureSet, result: IngestResult, why: str) -> IngestResult:
    result.status = "failed"
    result.reason = (
        f"{why}; nothing was committed and the upload is kept in incoming/; after the problem is fixed: "
        f"driftline features redrive --upload {result.upload_id}"
    )
    ingestor.failure_report(obj, fs, result)
    ingestor.finish(fs, result)
    return result


def record_workflow_failure(
    obj: S3Object, fs: FeatureSet, upload_id: str, ingestor: Ingestor, error: str
) -> IngestResult:
    """The ``failed`` record of an upload whose workflow failed in a step (the workflow's Catch).

    A commit that finished (``accepted``/``partial`` recorded) is left as it is: a step failing after it
    (publishing the event, say) must not call live data ``failed``. One that stopped half-way
    (``committing``) is recorded ``failed`` saying so: its curated files stay invisible behind the pending
    marker until a redrive finishes it."""
    result = _result(obj, fs, upload_id)
    current = ingestor.recorded(fs, result)
    if current is not None and current.status in COMMITTED:
        result.status = current.status  # type: ignore[assignment]
        result.reason = f"committed before the workflow failed ({error[:300]}); the commit stands"
        return result
    if current is not None and current.status == "committing":
        result.reason = (
            f"the ingest-parts workflow failed while committing: {error[:500]}; the upload's curated files "
            f"stay invisible (pending marker) until `driftline features redrive --upload {upload_id}` finishes it"
        )
        ingestor.failure_report(obj, fs, result)
        ingestor.finish(fs, result)
        return result
    return _fail(ingestor, obj, fs, result, f"the ingest-parts workflow failed: {error[:500]}")


def commit_parts(
    obj: S3Object, fs: FeatureSet, upload_id: str, ingestor: Ingestor, *, map_error: str | None = None
) -> IngestResult:
    """Check the parts of ``upload_id`` and commit it, or record why not; returns the final result."""
    s3, bucket = ingestor.s3, ingestor.targets.bucket
    result = _result(obj, fs, upload_id)
    doc = read_json(s3, bucket, plan_key(fs.name, upload_id))
    if doc is None:
        return _fail(ingestor, obj, fs, result, f"upload {upload_id} has no plan (the plan step did not finish)")
    plan = Plan.from_dict(doc)
    result.format, result.parts = plan.format, len(plan.parts)
    if plan.refused is not None and plan.refused.get("check") == NOT_FOUND:
        result.status, result.reason = "skipped", plan.refused["message"]
        ingestor.finish(fs, result)
        return result
    if plan.refused is not None:
        ingestor.quarantine_unreadable(obj, fs, result, UnreadableFileError(**plan.refused))
        ingestor.finish(fs, result)
        return result
    parts = _part_results(plan, s3, bucket)
    why = _missing_or_wrong(plan, parts, map_error)
    if why is not None:
        return _fail(ingestor, obj, fs, result, why)
    done = [p for p in parts if p is not None]
    bad = [p for p in done if p.status == "unreadable"]
    if bad:
        err = bad[0].error or {}
        more = (
            f" ({len(bad) - 1} more unreadable part(s): {', '.join(str(p.part) for p in bad[1:])})" if bad[1:] else ""
        )
        ingestor.quarantine_unreadable(
            obj,
            fs,
            result,
            UnreadableFileError(
                err.get("check", "unreadable"), err.get("message", bad[0].where) + more, err.get("hint", "")
            ),
        )
        ingestor.finish(fs, result)
        return result
    return _commit(obj, fs, plan, done, ingestor, result)


def _part_results(plan: Plan, s3: Any, bucket: str) -> list[PartResult | None]:
    def one(part: int) -> PartResult | None:
        doc = read_json(s3, bucket, plan.parts[part].key("results", ".json"))
        return None if doc is None else PartResult.from_dict(doc)

    with ThreadPoolExecutor(max_workers=min(16, max(1, len(plan.parts)))) as pool:
        return list(pool.map(one, range(len(plan.parts))))


def _missing_or_wrong(plan: Plan, parts: list[PartResult | None], map_error: str | None) -> str | None:
    """Why the parts cannot be committed: a part without a result, or counts that do not add up."""
    missing = [plan.parts[i] for i, p in enumerate(parts) if p is None]
    if missing:
        named = "; ".join(d.where() for d in missing[:5]) + (f"; and {len(missing) - 5} more" if missing[5:] else "")
        cause = f" (the workflow reported: {map_error[:300]})" if map_error else ""
        return (
            f"{len(missing)} of {len(plan.parts)} part(s) did not report a result: {named}; their validation "
            f"failed after the workflow's retries{cause}"
        )
    done = [p for p in parts if p is not None and p.status == "ok"]
    for p in done:
        if p.rows_accepted + p.rows_rejected != p.rows_total or p.rows_total != p.rows_expected:
            return (
                f"{p.where}: the parser read {p.rows_total} rows ({p.rows_accepted} accepted, {p.rows_rejected} "
                f"rejected) but the part holds {p.rows_expected} rows; refusing to commit counts that do not add up"
            )
    total = sum(p.rows_total for p in done)
    if plan.rows_in_file is not None and len(done) == len(parts) and total != plan.rows_in_file:
        return f"the parts hold {total} rows but the file's footer says {plan.rows_in_file}"
    return None


def first_rows(parts: list[PartResult]) -> dict[int, int]:
    """Each part's first data row in the whole file: the rows of the parts before it (parts in file order)."""
    out, n = {}, 0
    for p in sorted(parts, key=lambda q: q.part):
        out[p.part] = n
        n += p.rows_total
    return out


def _in_file(check: dict[str, Any], first_row: int) -> dict[str, Any]:
    """A part's check with its sample rows numbered in the whole file (a part counts its rows from 0)."""
    sample = check.get("sample")
    if not first_row or not isinstance(sample, list):
        return check
    rows = [{**r, "row": r["row"] + first_row} if isinstance(r.get("row"), int) else r for r in sample]
    return {**check, "sample": rows}


def _merged_checks(
    parts: list[PartResult], across: dict[str, Any] | None = None, sample_rows: int = 0
) -> list[dict[str, Any]]:
    """Each failed check once for the whole upload: rows summed over the parts, the first part's message,
    the first ``sample_rows`` failing rows of the file as the sample (numbered in the whole file, so the
    same as one function's); ``across`` (rows sharing their key with a row of another part) adds to the
    duplicate-key check."""
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    offsets = first_rows(parts)
    for p in parts:
        for c in (_in_file(c, offsets[p.part]) for c in p.checks):
            k = (str(c.get("check")), str(c.get("column")), str(c.get("severity")))
            if k not in merged:
                merged[k] = {
                    **c,
                    "failed_rows": c.get("failed_rows") or 0,
                    "parts": [p.part],
                    "message_of_part": p.part,
                }
            else:
                merged[k]["failed_rows"] += c.get("failed_rows") or 0
                merged[k]["parts"].append(p.part)
                more = c.get("sample") or []
                if more and len(merged[k].get("sample") or []) < sample_rows:
                    merged[k]["sample"] = [*(merged[k].get("sample") or []), *more][:sample_rows]
    if across is not None:
        k = (str(across["check"]), str(across["column"]), "error")
        if k in merged:
            merged[k]["failed_rows"] += across["failed_rows"]
            merged[k]["parts"] = sorted(set(merged[k]["parts"]) | set(across["parts"]))
            merged[k]["across_parts"] = across["failed_rows"]
        else:
            merged[k] = across
    return sorted(merged.values(), key=lambda c: (c.get("severity") != "error", c.get("check"), c.get("column") or ""))


def _reject_cross_part_duplicates(
    fs: FeatureSet, parts: list[PartResult], upload_id: str, s3: Any, bucket: str
) -> dict[str, Any] | None:
    """Reject the accepted rows whose entity key and timestamp also occur in another part, as validation
    rejects duplicates within one table; None when there are none, else the check entry they add.

    The affected parts' curated files and newest rows are derived again from their staged files (under
    ``staged/part-NNNNN/unique/``, so a retried commit writes the same), the rejected rows kept for the
    quarantine; the parts' counts are updated in place.
    """
    with_keys = [p for p in parts if p.keys_key]
    if len(with_keys) < 2:
        return None

    def read(p: PartResult, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(pa.BufferReader(_get(s3, bucket, str(p.keys_key))), columns=columns)

    # hashes first (8 bytes a row over the whole upload), then the keys of the candidate rows only
    candidates = pa.array(shared_hashes(read(p, ["h"]).column("h").to_numpy() for p in with_keys), pa.uint64())
    if len(candidates) == 0:
        return None
    tables = []
    for p in with_keys:
        keys = read(p)
        tables.append(keys.filter(pc.is_in(keys.column("h"), value_set=candidates)))
    dups = cross_part_duplicates(tables)
    if len(dups) == 0:
        return None
    flagged, touched = 0, []
    for p, keys in zip(with_keys, tables, strict=True):
        hit = pc.fill_null(pc.is_in(keys.column("key"), value_set=dups), False)
        if not pc.any(hit).as_py():
            continue
        flagged += pc.sum(pc.and_(hit, pc.invert(keys.column("dup")))).as_py() or 0
        touched.append(p.part)
        if pc.any(pc.and_(hit, keys.column("accepted"))).as_py():
            _refilter_part(fs, p, dups, upload_id, s3, bucket)
    keys_text = " + ".join([*fs.entity, fs.timestamp])
    return {
        "check": DUPLICATE_CHECK,
        "column": duplicate_column(fs),
        "severity": "error",
        "failed_rows": flagged,
        "message": (
            f"{flagged} row(s) share their {keys_text} with a row in another part of the file, so it is "
            f"unknowable which values are right; all of them were rejected"
        ),
        "hint": "keep exactly one row per entity and event timestamp",
        "parts": touched,
        "across_parts": flagged,
    }


def _refilter_part(fs: FeatureSet, p: PartResult, dups: pa.Array, upload_id: str, s3: Any, bucket: str) -> None:
    """Part ``p``'s staged curated rows without those keyed in ``dups``: new staged files and newest rows."""

    def staged(suffix: str) -> str:
        return ingest_part_key(fs.name, upload_id, "staged", p.part, f"/unique/{suffix}")

    curated, kept_all, removed = [], [], []
    for day, key in p.curated:
        table = pq.read_table(pa.BufferReader(_get(s3, bucket, key)))
        hit = pc.fill_null(pc.is_in(composite_keys(table, fs), value_set=dups), False)
        removed.append(table.filter(hit))
        kept = table.filter(pc.invert(hit))
        if kept.num_rows:
            ((_, body),) = curated_files(kept, fs.name, fs.timestamp, upload_id)
            s3.put_object(Bucket=bucket, Key=staged(f"date={day}.parquet"), Body=body)
            curated.append((day, staged(f"date={day}.parquet")))
            kept_all.append(kept)
    n = sum(t.num_rows for t in removed)
    p.curated, p.rows_accepted, p.rows_rejected = curated, p.rows_accepted - n, p.rows_rejected + n
    p.latest_key = None
    if kept_all:
        latest = [[r.entity, r.event_ts_us, dict(r.features)] for r in latest_rows(pa.concat_tables(kept_all), fs)]
        p.latest_key = staged("latest.json")
        s3.put_object(Bucket=bucket, Key=p.latest_key, Body=json.dumps(latest, default=str).encode())
    p.duplicates_key = staged("duplicates.parquet")
    s3.put_object(Bucket=bucket, Key=p.duplicates_key, Body=parquet_bytes(pa.concat_tables(removed)))


def _get(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _online_rows(parts: list[PartResult], s3: Any, bucket: str) -> list[OnlineRow]:
    """Per entity the newest row over every part (each part staged its own newest per entity)."""
    newest: dict[str, OnlineRow] = {}
    for p in parts:
        if p.latest_key is None:
            continue
        for entity, ts, values in json.loads(s3.get_object(Bucket=bucket, Key=p.latest_key)["Body"].read()):
            held = newest.get(entity)
            if held is None or int(ts) > held.event_ts_us:
                newest[entity] = OnlineRow(entity, int(ts), values)
    return list(newest.values())


def _commit(
    obj: S3Object, fs: FeatureSet, plan: Plan, parts: list[PartResult], ingestor: Ingestor, result: IngestResult
) -> IngestResult:
    s3, bucket = ingestor.s3, ingestor.targets.bucket
    across = _reject_cross_part_duplicates(fs, parts, result.upload_id or "", s3, bucket)
    failing = sum(p.rows_rejected for p in parts)
    reject_all = fs.ingest.on_partial_failure == "reject_file" and failing > 0
    result.rows_total = sum(p.rows_total for p in parts)
    result.rows_accepted = 0 if reject_all else sum(p.rows_accepted for p in parts)
    result.rows_rejected = result.rows_total - result.rows_accepted
    result.content_sha256 = hashlib.sha256(("parts:" + ",".join(p.sha256 for p in parts)).encode()).hexdigest()
    if fs.ingest.on_duplicate_content == "skip":
        earlier = ingestor.same_content(fs, result)
        if earlier is not None:
            result.status = "skipped"
            result.rows_accepted = result.rows_rejected = 0
            result.reason = (
                f"the same bytes (parts SHA-256 {result.content_sha256}) were already ingested from "
                f"{earlier.source or '?'} (upload {earlier.upload_id or '?'}); skipped so no row counts twice "
                f"(ingest.on_duplicate_content: accept to ingest it again)"
            )
            ingestor.finish(fs, result)
            return result
    n = result.rows_accepted
    result.status = "accepted" if n == result.rows_total else "rejected" if n == 0 else "partial"
    checks = _merged_checks(parts, across, fs.ingest.sample_rows_in_report)
    result.checks = [{k: c.get(k) for k in ("check", "column", "severity", "failed_rows")} for c in checks]
    result.has_labels = not reject_all and any(p.has_labels for p in parts)
    if result.status == "accepted":
        result.reason = f"all {result.rows_total} rows accepted ({len(parts)} parts)"
    else:
        result.reason = (
            f"{result.rows_accepted} of {result.rows_total} rows accepted ({len(parts)} parts); "
            f"{result.rows_rejected} rejected, see {{report}}"
        )
    copies = (
        []
        if reject_all
        else [
            (curated_part_key(fs.name, day, result.upload_id or "", p.part), staged)
            for p in parts
            for day, staged in p.curated
        ]
    )
    result.curated_keys = [k for k, _ in copies]
    if result.rows_rejected:
        _quarantine(obj, fs, plan, parts, checks, failing, ingestor, result)
    online = [] if reject_all else _online_rows(parts, s3, bucket)

    def write_curated() -> None:
        meta = ingestor.metadata(result)

        def copy(pair: tuple[str, str]) -> None:
            s3.copy_object(
                Bucket=bucket,
                Key=pair[0],
                CopySource={"Bucket": bucket, "Key": pair[1]},
                MetadataDirective="REPLACE",
                Metadata=meta,
                ContentType=PARQUET_MEDIA,
            )

        with ThreadPoolExecutor(max_workers=min(8, max(1, len(copies)))) as pool:
            list(pool.map(copy, copies))

    ingestor.commit(obj, fs, result, write_curated, online)
    ingestor.finish(fs, result)
    return result


def _quarantine(
    obj: S3Object,
    fs: FeatureSet,
    plan: Plan,
    parts: list[PartResult],
    checks: list[dict[str, Any]],
    failing: int,
    ingestor: Ingestor,
    result: IngestResult,
) -> None:
    """Rejected rows per part (or the whole original when no row is accepted) and the upload's report."""
    s3, bucket = ingestor.s3, ingestor.targets.bucket
    prefix = quarantine_prefix(fs.name, result.upload_id or "")
    policy = fs.ingest.on_partial_failure
    offsets = first_rows(parts)
    report: dict[str, Any] = {
        "feature_set": fs.name,
        "feature_set_version": fs.version,
        "feature_set_fingerprint": fs.fingerprint,
        **ingestor.report_context(obj, result),
        "mode": "parts",
        "status": result.status,
        "policy": policy,
        "rows_total": result.rows_total,
        "rows_accepted": result.rows_accepted,
        "rows_rejected": result.rows_rejected,
        "rows_failing_checks": failing,
        "row_numbering": ROW_NUMBERING,
        "checks": checks,
        "parts": [
            {
                "part": p.part,
                "where": p.where,
                "first_row": offsets[p.part],
                "rows_total": p.rows_total,
                "rows_failing_checks": p.rows_rejected,
            }
            for p in parts
        ],
        "original_kept_at": obj.uri,
    }
    if policy == "reject_file" and 0 < failing < result.rows_total:
        report["policy_note"] = (
            f"{failing} rows failed checks and the feature set's policy is reject_file, so no row was accepted; "
            f"fix the rows listed below and upload the whole file again"
        )
    if result.rows_accepted == 0:
        report["quarantined"] = ingestor.copy_original(obj, prefix, result)
    else:
        quarantined = []
        for p in parts:
            for source, name in ((p.rejected_key, ""), (p.duplicates_key, "-duplicates")):
                if source is None:
                    continue
                key = f"{prefix}rejected-part-{p.part:05d}{name}.parquet"
                if not name and offsets[p.part]:  # the part's rows, numbered in the whole file
                    s3.put_object(
                        Bucket=bucket,
                        Key=key,
                        Body=_renumbered(_get(s3, bucket, source), offsets[p.part]),
                        Metadata=ingestor.metadata(result),
                        ContentType=PARQUET_MEDIA,
                    )
                    quarantined.append(f"s3://{bucket}/{key}")
                    continue
                s3.copy_object(
                    Bucket=bucket,
                    Key=key,
                    CopySource={"Bucket": bucket, "Key": source},
                    MetadataDirective="REPLACE",
                    Metadata=ingestor.metadata(result),
                    ContentType=PARQUET_MEDIA,
                )
                quarantined.append(f"s3://{bucket}/{key}")
        report["quarantined"] = quarantined
    report["curated"] = [f"s3://{bucket}/{k}" for k in result.curated_keys]
    ingestor.write_report(fs, result, report)


def _renumbered(staged: bytes, first_row: int) -> bytes:
    """A part's rejected rows (``_row`` counted within the part) with ``_row`` counted in the whole file."""
    table = pq.read_table(pa.BufferReader(staged))
    i = table.schema.get_field_index("_row")
    if i < 0:
        return staged
    rows = pc.add(table.column(i), pa.scalar(first_row, table.schema.field(i).type))
    return parquet_bytes(table.set_column(i, table.schema.field(i), rows))
