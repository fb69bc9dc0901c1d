"""Hostile input to the ingest-parts steps' handlers (moto in-process): each answers a precise
``status: error`` (or records the upload as failed) instead of raising, and never acts on a bucket,
key or upload id the function does not own.

Found by attacking the session's new entry points: a non-string version id failed deep in botocore, a
non-string etag crashed the commit, a state naming another bucket made the plan write there, an
upload id with ``/`` moved scratch and curated keys under another prefix, a malformed plan document
raised from the commit, and a descriptor's non-string name or foreign source bucket reached the reader.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from driftline import aws as aws_mod
from driftline.features.parts.records import plan_key

FS = "credit_default"
KEY = f"incoming/{FS}/x.csv"


class _Context:
    function_name = "dev-driftline-ingest-plan"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:dev-driftline-ingest-plan"
    aws_request_id = "req-s25"

    def get_remaining_time_in_millis(self) -> int:
        return 600_000


CTX: Any = _Context()
"""What the handlers read of a Lambda context (typed Any: it is not a LambdaContext)."""


@pytest.fixture
def state(aws: dict[str, str]) -> dict[str, Any]:
    """A well-formed workflow state for a small upload (the handlers' caches cleared for this moto)."""
    from lambdas import ingest_commit, ingest_part, ingest_plan

    for m in (ingest_plan, ingest_part, ingest_commit):
        m._catalog.cache_clear()
    bucket = aws["FEATURES_BUCKET"]
    resp = aws_mod.client("s3").put_object(Bucket=bucket, Key=KEY, Body=b"a,b\n1,2\n")
    upload = {"bucket": bucket, "key": KEY, "version_id": resp["VersionId"]}
    return {"upload": upload, "feature_set": FS, "upload_id": "20261203T000000Z-0123456789ab", "bucket": bucket}


def _with_upload(state: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**state, "upload": {**state["upload"], **fields}}


HOSTILE: dict[str, tuple[Any, str]] = {
    "version_id_int": (lambda s: _with_upload(s, version_id=5), "version_id must be a string"),
    "version_id_list": (lambda s: _with_upload(s, version_id=["a"]), "version_id must be a string"),
    "etag_int": (lambda s: _with_upload(s, etag=5), "etag must be a string"),
    "redrive_int": (lambda s: _with_upload(s, redrive=5), "redrive must be a string"),
    "size_negative": (lambda s: _with_upload(s, size=-5), "size must be a non-negative integer"),
    "size_bool": (lambda s: _with_upload(s, size=True), "size must be a non-negative integer"),
    "scratch_bucket_foreign": (lambda s: {**s, "bucket": "someone-else"}, "is not the features bucket"),
    "upload_bucket_foreign": (lambda s: _with_upload(s, bucket="someone-else"), "is not the features bucket"),
    "upload_key_outside_incoming": (
        lambda s: _with_upload(s, key=f"curated/{FS}/date=2026-01-01/x.parquet"),
        "is not under incoming/",
    ),
    "upload_id_traversal": (lambda s: {**s, "upload_id": "../../curated/x"}, "upload_id"),
    "upload_id_slash": (lambda s: {**s, "upload_id": "a/b"}, "upload_id"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_plan_and_commit_answer_hostile_state_with_a_precise_error(state: dict[str, Any], case: str) -> None:
    from lambdas import ingest_commit, ingest_plan

    build, expected = HOSTILE[case]
    event = build(state)
    for handler in (ingest_plan.handler, ingest_commit.handler):
        out = handler(event, CTX)
        assert out["status"] == "error", (case, out)
        assert expected in out["message"], (case, out)


def test_a_foreign_bucket_in_the_state_writes_nothing_there(aws: dict[str, str], state: dict[str, Any]) -> None:
    """The plan must not write its scratch to a bucket named by the state (here one that exists)."""
    from lambdas import ingest_plan

    s3 = aws_mod.client("s3")
    s3.create_bucket(Bucket="someone-else")
    out = ingest_plan.handler({**state, "bucket": "someone-else"}, CTX)
    assert out["status"] == "error"
    assert s3.list_objects_v2(Bucket="someone-else").get("KeyCount", 0) == 0


@pytest.mark.parametrize("body", [b"not json", b'{"parts": 5}', b"[]"])
def test_a_malformed_plan_is_recorded_as_failed_not_raised(
    aws: dict[str, str], state: dict[str, Any], body: bytes
) -> None:
    from lambdas import ingest_commit

    s3 = aws_mod.client("s3")
    s3.put_object(Bucket=aws["FEATURES_BUCKET"], Key=plan_key(FS, state["upload_id"]), Body=body)
    out = ingest_commit.handler(state, CTX)
    assert out["status"] == "failed"
    assert "plan" in out["reason"] and "nothing was committed" in out["reason"]


def _descriptor(bucket: str, **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "feature_set": FS,
        "upload_id": "u",
        "part": 0,
        "parts": 1,
        "format": "csv",
        "name": "x.csv",
        "source": {"bucket": bucket, "key": KEY, "version_id": None, "size": 8},
        "start": 4,
        "end": 8,
        "header_end": 4,
    }
    return {**doc, **over}


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"name": 5}, "names must be non-empty strings"),
        ({"feature_set": ["x"]}, "names must be non-empty strings"),
        ({"upload_id": 7}, "names must be non-empty strings"),
        ({"source": {"bucket": "other-bucket", "key": KEY, "version_id": None, "size": 8}}, "source bucket"),
        ({"source": {"bucket": "B", "key": KEY, "version_id": 3, "size": 8}}, "names must be non-empty strings"),
    ],
)
def test_part_answers_a_malformed_descriptor_with_a_precise_error(
    aws: dict[str, str], state: dict[str, Any], over: dict[str, Any], expected: str
) -> None:
    from lambdas import ingest_part

    bucket = aws["FEATURES_BUCKET"]
    doc = _descriptor(bucket, **over)
    if doc["source"]["bucket"] == "B":
        doc["source"]["bucket"] = bucket
    key = f"ingest-scratch/{FS}/u/items/part-00000.json"
    aws_mod.client("s3").put_object(Bucket=bucket, Key=key, Body=json.dumps(doc).encode())
    out = ingest_part.handler({"bucket": bucket, "key": key}, CTX)
    assert out["status"] == "error", out
    assert expected in out["message"], out
