"""The parts path's steps on moto (in-process): plan → validate each part → commit, called directly.

Checks what the workflow relies on: CSV cuts on line starts with the header in every part, Parquet
row groups, gzip inflated into parts; accepted + quarantined = rows in the file; a part that did not
report or cannot be read fails the upload naming it; a retried commit duplicates nothing; a part reads
its pinned version when the upload is overwritten; a small file gives the same curated data and report
counts through both paths.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import itertools
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from driftline import aws as aws_mod
from driftline.contracts import ingest_part_key
from driftline.datasets.credit_default import generate
from driftline.features.ingest import Ingestor, IngestResult, IngestTargets, S3Object, upload_id
from driftline.features.parts import (
    PartDescriptor,
    WorkflowInput,
    commit_parts,
    plan_step,
    validate_part,
)
from driftline.features.schema import FeatureSetCatalog

ROOT = Path(__file__).resolve().parents[2]
FS = "credit_default"
TIME = "2026-11-26T01:00:00.000Z"


@pytest.fixture
def catalog(aws: dict[str, str], tmp_path: Path) -> FeatureSetCatalog:
    """The example catalog with ``max_file_mb: 1`` for credit_default (parts of ~0.9 MB)."""
    text = (ROOT / "examples" / "feature_sets" / f"{FS}.yaml").read_text()
    (tmp_path / f"{FS}.yaml").write_text(text.replace("max_file_mb: 512", "max_file_mb: 1"))
    return FeatureSetCatalog(tmp_path)


def csv_bytes(t: pa.Table, crlf: bool = False) -> bytes:
    buf = io.BytesIO()
    pacsv.write_csv(t, buf)
    data = buf.getvalue()
    return data.replace(b"\n", b"\r\n") if crlf else data


def parquet_bytes(t: pa.Table, row_group_size: int = 5000) -> bytes:
    buf = io.BytesIO()
    pq.write_table(t, buf, row_group_size=row_group_size)
    return buf.getvalue()


def put(env: dict[str, str], name: str, body: bytes) -> S3Object:
    key = f"incoming/{FS}/{name}"
    resp = aws_mod.client("s3").put_object(Bucket=env["FEATURES_BUCKET"], Key=key, Body=body)
    return S3Object(env["FEATURES_BUCKET"], key, resp["VersionId"], resp["ETag"], len(body), TIME)


def run_parts(
    env: dict[str, str], catalog: FeatureSetCatalog, obj: S3Object, *, skip: frozenset[int] = frozenset(), **kw: Any
) -> tuple[IngestResult, list[PartDescriptor]]:
    """Plan, validate every part but ``skip``, commit: the workflow's steps in order."""
    s3 = aws_mod.client("s3")
    fs = catalog.get(FS)
    inp = WorkflowInput(obj, fs, upload_id(obj), env["FEATURES_BUCKET"])
    plan = plan_step(inp, s3, **kw)
    for d in plan.parts:
        if d.part not in skip:
            validate_part(d, fs, [], env["FEATURES_BUCKET"], s3)
    ingestor = Ingestor(catalog, IngestTargets.from_env())
    return commit_parts(obj, fs, inp.upload_id, ingestor), plan.parts


def keys(env: dict[str, str], prefix: str) -> list[str]:
    pages = aws_mod.client("s3").get_paginator("list_objects_v2").paginate(Bucket=env["FEATURES_BUCKET"], Prefix=prefix)
    return sorted(o["Key"] for p in pages for o in p.get("Contents", []))


def get(env: dict[str, str], key: str) -> bytes:
    return bytes(aws_mod.client("s3").get_object(Bucket=env["FEATURES_BUCKET"], Key=key)["Body"].read())


def curated(env: dict[str, str]) -> pa.Table:
    tables = [pq.read_table(pa.BufferReader(get(env, k))) for k in keys(env, f"curated/{FS}/date=")]
    return pa.concat_tables(tables).sort_by([("customer_id", "ascending"), ("event_timestamp", "ascending")])


def report(env: dict[str, str], result: IngestResult) -> dict[str, Any]:
    assert result.report_uri is not None
    return dict(json.loads(get(env, result.report_uri.split("/", 3)[3])))


def test_csv_parts_are_cut_on_line_starts_with_the_header_in_each(
    aws: dict[str, str], catalog: FeatureSetCatalog
) -> None:
    t = generate(4_000, "2025-01-01", "2025-03-01", seed=3)
    body = csv_bytes(t)
    result, parts = run_parts(aws, catalog, put(aws, "big.csv", body), part_bytes=50_000)
    assert result.status == "accepted", result.reason
    assert result.mode == "parts" and result.parts == len(parts) >= 10
    assert result.rows_total == result.rows_accepted == 4_000
    header_end = body.index(b"\n") + 1
    assert parts[0].start == header_end and parts[-1].end == len(body)
    for a, b in itertools.pairwise(parts):
        assert a.end == b.start and body[b.start - 1 : b.start] == b"\n"  # contiguous, cut after a line break
    got = curated(aws)
    assert got.num_rows == 4_000 and set(got.column("customer_id").to_pylist()) == set(
        t.column("customer_id").to_pylist()
    )
    assert keys(aws, f"curated/{FS}/_pending/") == []
    assert all(".part-" in k for k in keys(aws, f"curated/{FS}/date="))


def test_crlf_cuts_keep_each_line_whole(aws: dict[str, str], catalog: FeatureSetCatalog) -> None:
    t = generate(3_000, "2025-01-01", "2025-02-01", seed=4)
    body = csv_bytes(t, crlf=True)
    result, parts = run_parts(aws, catalog, put(aws, "crlf.csv", body), part_bytes=100_000)
    assert result.status == "accepted" and result.rows_accepted == 3_000, result.reason
    assert len(parts) >= 4 and all(body[d.start - 2 : d.start] == b"\r\n" for d in parts[1:])


def test_a_broken_quote_at_a_cut_fails_the_upload_naming_the_part(
    aws: dict[str, str], catalog: FeatureSetCatalog
) -> None:
    t = generate(3_000, "2025-01-01", "2025-02-01", seed=5)
    lines = csv_bytes(t).split(b"\n")
    lines[1200] = lines[1200].replace(b",", b',"', 1)  # an opening quote that is never closed
    body = b"\n".join(lines)
    result, parts = run_parts(aws, catalog, put(aws, "quote.csv", body), part_bytes=100_000)
    assert result.status == "unreadable", result.reason
    bad = next(d for d in parts if d.start <= body.index(lines[1200]) < d.end)
    assert f"part {bad.part} of {len(parts)} (bytes {bad.start}-{bad.end - 1}" in result.reason
    assert keys(aws, f"curated/{FS}/") == []  # nothing committed


def test_parquet_parts_are_row_groups_and_a_corrupt_one_is_named(
    aws: dict[str, str], catalog: FeatureSetCatalog
) -> None:
    t = generate(12_000, "2025-01-01", "2025-03-01", seed=6)
    body = parquet_bytes(t, row_group_size=1_200)
    result, parts = run_parts(aws, catalog, put(aws, "big.parquet", body), part_bytes=120_000)
    assert result.status == "accepted" and result.rows_accepted == 12_000, result.reason
    assert len(parts) >= 2 and parts[0].row_group_start == 0 and parts[-1].row_group_end == 10
    assert [d.row_group_start for d in parts[1:]] == [d.row_group_end for d in parts[:-1]]

    meta = pq.read_metadata(pa.BufferReader(body))
    col = meta.row_group(7).column(3)
    at = col.data_page_offset + 20
    broken = body[:at] + bytes(200) + body[at + 200 :]
    result, parts = run_parts(aws, catalog, put(aws, "corrupt.parquet", broken), part_bytes=120_000)
    assert result.status == "unreadable", result.reason
    bad = next(d for d in parts if d.row_group_start <= 7 < d.row_group_end)
    assert f"part {bad.part} of {len(parts)} (row groups {bad.row_group_start}-{bad.row_group_end - 1}" in result.reason


def test_gzip_csv_is_inflated_into_parts(aws: dict[str, str], catalog: FeatureSetCatalog) -> None:
    t = generate(5_000, "2025-01-01", "2025-02-01", seed=7)
    body = gzip.compress(csv_bytes(t))
    result, parts = run_parts(aws, catalog, put(aws, "big.csv.gz", body), part_bytes=150_000)
    assert result.status == "accepted" and result.rows_accepted == 5_000, result.reason
    assert len(parts) >= 4 and all("/data/part-" in d.source.key for d in parts)
    assert result.format == "csv.gz"


def test_bad_rows_are_quarantined_and_counts_add_up(aws: dict[str, str], catalog: FeatureSetCatalog) -> None:
    t = generate(3_000, "2025-01-01", "2025-02-01", seed=8)
    ages = t.column("age").to_pylist()
    for i in (10, 1500, 2999):
        ages[i] = 7  # below min 18
    t = t.set_column(t.schema.get_field_index("age"), "age", pa.array(ages, t.schema.field("age").type))
    result, parts = run_parts(aws, catalog, put(aws, "bad.csv", csv_bytes(t)), part_bytes=100_000)
    assert result.status == "partial" and (result.rows_accepted, result.rows_rejected) == (2_997, 3)
    assert result.rows_accepted + result.rows_rejected == 3_000 == curated(aws).num_rows + 3
    doc = report(aws, result)
    assert doc["rows_total"] == 3_000 and doc["mode"] == "parts" and len(doc["parts"]) == len(parts)
    (check,) = [c for c in doc["checks"] if c["severity"] == "error"]
    assert check["failed_rows"] == 3 and len(check["parts"]) >= 2
    quarantined = [pq.read_table(pa.BufferReader(get(aws, u.split("/", 3)[3]))) for u in doc["quarantined"]]
    assert sum(q.num_rows for q in quarantined) == 3


def test_a_part_that_did_not_report_fails_the_upload_naming_it(aws: dict[str, str], catalog: FeatureSetCatalog) -> None:
    t = generate(3_000, "2025-01-01", "2025-02-01", seed=9)
    result, parts = run_parts(aws, catalog, put(aws, "lost.csv", csv_bytes(t)), skip=frozenset({2}), part_bytes=100_000)
    assert result.status == "failed" and parts[2].where() in result.reason, result.reason
    assert keys(aws, f"curated/{FS}/") == [] and result.rows_accepted == 0


def test_a_retried_commit_duplicates_nothing(aws: dict[str, str], catalog: FeatureSetCatalog) -> None:
    t = generate(3_000, "2025-01-01", "2025-02-01", seed=10)
    obj = put(aws, "twice.csv", csv_bytes(t))
    first, _ = run_parts(aws, catalog, obj, part_bytes=100_000)
    before = {k: get(aws, k) for k in keys(aws, f"curated/{FS}/")}
    ingestor = Ingestor(catalog, IngestTargets.from_env())
    again = commit_parts(obj, catalog.get(FS), str(first.upload_id), ingestor)
    assert again.status == first.status == "accepted" and again.rows_accepted == 3_000
    assert {k: get(aws, k) for k in keys(aws, f"curated/{FS}/")} == before
    assert curated(aws).num_rows == 3_000


def test_a_workflow_failure_after_the_commit_leaves_the_committed_upload_as_it_is(
    aws: dict[str, str], catalog: FeatureSetCatalog
) -> None:
    """A step failing after the commit finished (the workflow's Catch) must not record live data as
    ``failed``; before the commit it records ``failed`` as before."""
    from driftline.control_store import ControlStore
    from driftline.features.parts import record_workflow_failure

    t = generate(3_000, "2025-01-01", "2025-02-01", seed=12)
    obj = put(aws, "late-failure.csv", csv_bytes(t))
    first, _ = run_parts(aws, catalog, obj, part_bytes=100_000)
    ingestor = Ingestor(catalog, IngestTargets.from_env())
    out = record_workflow_failure(obj, catalog.get(FS), str(first.upload_id), ingestor, "States.Timeout")
    assert out.status == "accepted" and "commit stands" in str(out.reason)
    stored = ControlStore(IngestTargets.from_env().control_table, aws_mod.client("dynamodb")).ingest_records(FS)
    assert [r.status for r in stored if r.upload_id == first.upload_id] == ["accepted"]
    assert curated(aws).num_rows == 3_000

    other = put(aws, "early-failure.csv", csv_bytes(generate(500, "2025-03-01", "2025-03-05", seed=13)))
    failed = record_workflow_failure(other, catalog.get(FS), upload_id(other), ingestor, "plan died")
    assert failed.status == "failed" and "nothing was committed" in str(failed.reason)


def test_an_overwritten_upload_is_validated_as_the_version_it_was(
    aws: dict[str, str], catalog: FeatureSetCatalog
) -> None:
    old = generate(3_000, "2025-01-01", "2025-02-01", seed=11)
    obj = put(aws, "moving.csv", csv_bytes(old))
    s3, fs = aws_mod.client("s3"), catalog.get(FS)
    inp = WorkflowInput(obj, fs, upload_id(obj), aws["FEATURES_BUCKET"])
    plan = plan_step(inp, s3, part_bytes=100_000)
    newer = put(aws, "moving.csv", csv_bytes(generate(100, "2025-06-01", "2025-06-02", seed=12)))
    for d in plan.parts:
        validate_part(d, fs, [], aws["FEATURES_BUCKET"], s3)
    result = commit_parts(obj, fs, inp.upload_id, Ingestor(catalog, IngestTargets.from_env()))
    assert result.status == "accepted" and result.rows_accepted == 3_000
    assert not result.original_deleted  # the newer version is the current object: it stays for its own ingest
    head = s3.head_object(Bucket=newer.bucket, Key=newer.key)
    assert head["VersionId"] == newer.version_id


def _files(env: dict[str, str], uid: str | None) -> dict[str, bytes]:
    """Curated files of one upload by day (``date=...`` -> bytes of its only or concatenated parts)."""
    out: dict[str, bytes] = {}
    for k in keys(env, f"curated/{FS}/date="):
        if uid and k.rsplit("/", 1)[-1].startswith(uid):
            out[k.rsplit("/", 2)[-2]] = out.get(k.rsplit("/", 2)[-2], b"") + get(env, k)
    return out


def _rows(env: dict[str, str], uid: str | None) -> pa.Table:
    tables = [
        pq.read_table(pa.BufferReader(get(env, k)))
        for k in keys(env, f"curated/{FS}/date=")
        if uid and k.rsplit("/", 1)[-1].startswith(uid)
    ]
    return pa.concat_tables(tables).sort_by([("customer_id", "ascending"), ("event_timestamp", "ascending")])


@pytest.mark.parametrize("part_bytes", [None, 200_000], ids=["one part", "several parts"])
def test_a_small_file_gives_the_same_result_through_both_paths(
    aws: dict[str, str], catalog: FeatureSetCatalog, part_bytes: int | None
) -> None:
    t = generate(3_000, "2025-01-01", "2025-01-20", seed=13)
    ages = t.column("age").to_pylist()
    ages[5] = 3
    t = t.set_column(t.schema.get_field_index("age"), "age", pa.array(ages, t.schema.field("age").type))
    # rows sharing entity and timestamp far apart (in different parts when there are several): row 2900
    # repeats the key of row 10, row 2950 that of row 5 (rejected for its age as well)
    for name in ("customer_id", "event_timestamp"):
        values = t.column(name).to_pylist()
        values[2900], values[2950] = values[10], values[5]
        t = t.set_column(t.schema.get_field_index(name), name, pa.array(values, t.schema.field(name).type))
    body = csv_bytes(t)
    single = Ingestor(catalog, IngestTargets.from_env()).process(put(aws, "small.csv", body))
    parts, planned = run_parts(aws, catalog, put(aws, "small-again.csv", body), part_bytes=part_bytes)
    assert single.mode == "single" and parts.mode == "parts"
    assert (len(planned) == 1) == (part_bytes is None)
    assert single.rows_rejected == 4  # the age, and both rows of each shared key
    for field in ("status", "rows_total", "rows_accepted", "rows_rejected", "has_labels", "checks"):
        assert getattr(parts, field) == getattr(single, field), field
    assert _rows(aws, parts.upload_id).equals(_rows(aws, single.upload_id))
    if part_bytes is None:  # one part: the very same files
        assert _files(aws, parts.upload_id) == _files(aws, single.upload_id)
    a, b = report(aws, single), report(aws, parts)
    (dup,) = [c for c in b["checks"] if c["check"] == "duplicate_key"]
    assert dup["failed_rows"] == 4 and dup.get("across_parts", 0) == (4 if part_bytes else 0)
    assert [(c["check"], c["column"], c["failed_rows"]) for c in a["checks"]] == [
        (c["check"], c["column"], c["failed_rows"]) for c in b["checks"]
    ]


def test_an_upload_over_the_limit_is_handed_to_the_workflow_once(
    aws: dict[str, str], catalog: FeatureSetCatalog
) -> None:
    from driftline.features.parts import WorkflowStarter

    sfn = aws_mod.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="parts",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    starter = WorkflowStarter(arn, aws["FEATURES_BUCKET"], sfn)
    ingestor = Ingestor(catalog, IngestTargets.from_env(), start_parts=starter)
    obj = put(aws, "large.csv", csv_bytes(generate(12_000, "2025-01-01", "2025-02-01", seed=14)))
    assert (obj.size or 0) > 1024 * 1024
    first, again = ingestor.process(obj), ingestor.process(obj)
    assert first.status == again.status == "processing" and first.mode == "parts", first.reason
    # the same name and input: Step Functions answers the running execution (moto too), or
    # ExecutionAlreadyExists for another input, which the starter reports as already started
    assert f"ingest-{first.upload_id}" in first.reason and f"ingest-{first.upload_id}" in again.reason
    other_input = starter(dataclasses.replace(obj, size=1), catalog.get(FS), first)
    assert other_input == f"workflow execution ingest-{first.upload_id} was already started"
    (execution,) = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert execution["name"] == f"ingest-{first.upload_id}"
    doc = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert doc["upload"]["version_id"] == obj.version_id and doc["items_prefix"].endswith(f"{first.upload_id}/items/")
    # without the workflow (a deployment that has none) the upload is refused as before
    refused = Ingestor(catalog, IngestTargets.from_env()).process(obj)
    assert refused.status == "too_large" and refused.mode == "single"


def _quarantined_rows(env: dict[str, str], doc: dict[str, Any]) -> list[int]:
    rows: list[int] = []
    uris = doc["quarantined"] if isinstance(doc["quarantined"], list) else [doc["quarantined"]]
    for uri in uris:
        table = pq.read_table(pa.BufferReader(get(env, uri.split("/", 3)[3])))
        if "_row" in table.column_names:
            rows += table.column("_row").to_pylist()
    return sorted(rows)


def test_rejected_rows_are_numbered_in_the_whole_file_as_in_one_function(
    aws: dict[str, str], catalog: FeatureSetCatalog
) -> None:
    """A part counts its rows from 0; the report and the quarantine number them in the whole file."""
    t = generate(3_000, "2025-01-01", "2025-02-01", seed=21)
    ages = t.column("age").to_pylist()
    bad = [10, 1500, 1501, 2200, 2600, 2610, 2999]
    for i in bad:
        ages[i] = 7  # below min 18
    t = t.set_column(t.schema.get_field_index("age"), "age", pa.array(ages, t.schema.field("age").type))
    body = csv_bytes(t)
    single = Ingestor(catalog, IngestTargets.from_env()).process(put(aws, "numbered.csv", body))
    parts, planned = run_parts(aws, catalog, put(aws, "numbered-again.csv", body), part_bytes=100_000)
    assert len(planned) >= 4 and parts.status == single.status == "partial"
    a, b = report(aws, single), report(aws, parts)
    assert _quarantined_rows(aws, a) == _quarantined_rows(aws, b) == bad
    (sa,) = [c for c in a["checks"] if c["severity"] == "error"]
    (sb,) = [c for c in b["checks"] if c["severity"] == "error"]
    assert [r["row"] for r in sb["sample"]] == [r["row"] for r in sa["sample"]] == bad[:5]
    assert sb["sample"] == sa["sample"]
    firsts = [p["first_row"] for p in b["parts"]]
    assert firsts[0] == 0 and all(
        nxt == p["first_row"] + p["rows_total"] for p, nxt in zip(b["parts"], firsts[1:], strict=False)
    )


def test_a_gzip_bomb_is_refused_once_it_inflates_past_the_cap(aws: dict[str, str], tmp_path: Path) -> None:
    """The plan inflates a gzip CSV into parts in scratch storage; past ingest.max_parts_uncompressed_mb
    it stops and the upload is refused with the cap named, instead of writing parts up to the parts limit."""
    text = (ROOT / "examples" / "feature_sets" / f"{FS}.yaml").read_text()
    (tmp_path / f"{FS}.yaml").write_text(
        text.replace("max_file_mb: 512", "max_file_mb: 1\n  max_parts_uncompressed_mb: 3")
    )
    catalog = FeatureSetCatalog(tmp_path)
    assert catalog.get(FS).ingest.max_parts_uncompressed_mb == 3
    lines = csv_bytes(generate(2, "2025-01-01", "2025-01-02", seed=22)).split(b"\n")
    inflated = lines[0] + b"\n" + (lines[1] + b"\n") * 200_000  # one row repeated: ~30 MB from ~0.1 MB
    body = gzip.compress(inflated)
    assert len(body) < 1024 * 1024 < 3 * 1024 * 1024 < len(inflated)
    result, parts = run_parts(aws, catalog, put(aws, "bomb.csv.gz", body), part_bytes=500_000)
    assert result.status == "too_large" and parts == [], result.reason
    assert "inflates past 3 MB" in result.reason and "ingest.max_parts_uncompressed_mb" in result.reason
    written = keys(aws, ingest_part_key(FS, str(result.upload_id), "data"))
    assert 0 < len(written) <= 3 * 1024 * 1024 // 500_000 + 1  # stopped at the cap, not at the parts limit


def test_redrive_waits_for_a_running_parts_workflow_and_then_goes_through_it(
    aws: dict[str, str], catalog: FeatureSetCatalog
) -> None:
    """A parts upload stays 'processing' while its workflow runs (longer than the ingest function's
    timeout): redrive must not start a second validation beside it, and once no execution runs (the
    workflow died) or the upload failed in parts, redrive hands it to the parts workflow again."""
    from datetime import timedelta

    from driftline.features.ingest import parse_s3_event
    from driftline.features.parts import WorkflowStarter
    from driftline.features.redrive import redrive, running_parts_executions, unfinished_uploads

    sfn = aws_mod.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="parts-redrive",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    ingestor = Ingestor(
        catalog, IngestTargets.from_env(), start_parts=WorkflowStarter(arn, aws["FEATURES_BUCKET"], sfn)
    )
    obj = put(aws, "redrive.csv", csv_bytes(generate(12_000, "2025-01-01", "2025-02-01", seed=23)))
    first = ingestor.process(obj)  # moto's executions stay RUNNING (the interpreter is off here)
    assert first.status == "processing" and first.mode == "parts"

    def unfinished(**kw: Any) -> list[Any]:
        running = running_parts_executions(sfn, arn)
        return unfinished_uploads(
            aws["CONTROL_TABLE"],
            [FS],
            stalled_after=timedelta(0),
            client=aws_mod.client("dynamodb"),
            running_executions=running,
            **kw,
        )

    assert unfinished() == [] and unfinished(upload_ids=[str(first.upload_id)]) == []
    unknown = "arn:aws:states:us-east-1:123456789012:stateMachine:not-deployed"
    assert running_parts_executions(sfn, unknown) == frozenset()

    (execution,) = sfn.list_executions(stateMachineArn=arn)["executions"]
    sfn.stop_execution(executionArn=execution["executionArn"])  # the workflow died without a record
    (stalled,) = unfinished()
    assert stalled.upload_id == first.upload_id and stalled.status == "processing"

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        return {"results": [ingestor.process(o).to_dict() for o in parse_s3_event(event)]}

    (outcome,) = redrive([stalled], invoke, delete_message=lambda _: None, marker="m1")
    assert outcome.status == "processing" and f"ingest-{first.upload_id}-m1 started" in outcome.detail
    assert unfinished() == []  # the redriven execution runs: nothing to redrive
    names = {e["name"] for e in sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]}
    assert names == {f"ingest-{first.upload_id}-m1"}
