"""Artifacts on S3 are pinned by version and verified by SHA-256 (moto, versioned buckets)."""

from __future__ import annotations

import hashlib

import pytest

from driftline import aws as aws_mod
from driftline.registry.artifacts import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactRef,
    put_artifact,
    read_verified,
)


def test_round_trip_records_hash_size_and_version(aws: dict[str, str]) -> None:
    bucket = aws["ARTIFACTS_BUCKET"]
    ref = put_artifact(bucket, "models/m/v1/model.onnx", b"onnx-bytes")
    assert ref.uri == f"s3://{bucket}/models/m/v1/model.onnx"
    assert ref.sha256 == hashlib.sha256(b"onnx-bytes").hexdigest()
    assert ref.size == 10 and ref.version_id
    assert read_verified(ref) == b"onnx-bytes"
    assert read_verified(ref.to_dict()) == b"onnx-bytes"


def test_overwriting_the_key_does_not_change_what_loads(aws: dict[str, str]) -> None:
    bucket = aws["ARTIFACTS_BUCKET"]
    ref = put_artifact(bucket, "models/m/v1/model.onnx", b"trusted")
    aws_mod.client("s3").put_object(Bucket=bucket, Key="models/m/v1/model.onnx", Body=b"evil")
    assert read_verified(ref) == b"trusted"


def test_tampered_bytes_are_refused(aws: dict[str, str]) -> None:
    bucket = aws["ARTIFACTS_BUCKET"]
    ref = put_artifact(bucket, "models/m/v1/model.onnx", b"trusted")
    aws_mod.client("s3").put_object(Bucket=bucket, Key="models/m/v1/model.onnx", Body=b"evil!!!")
    unpinned = ArtifactRef(uri=ref.uri, sha256=ref.sha256, version_id=None, size=ref.size)
    with pytest.raises(ArtifactIntegrityError, match="failed its integrity check") as e:
        read_verified(unpinned)
    assert ref.sha256 in str(e.value) and "refusing to load" in str(e.value)


def test_missing_object_or_version_is_a_clear_error(aws: dict[str, str]) -> None:
    bucket = aws["ARTIFACTS_BUCKET"]
    with pytest.raises(ArtifactNotFoundError, match="does not exist"):
        read_verified(ArtifactRef(f"s3://{bucket}/models/none.onnx", "00" * 32, None, 1))
    ref = put_artifact(bucket, "models/m/v2/model.onnx", b"x")
    aws_mod.client("s3").delete_object(Bucket=bucket, Key="models/m/v2/model.onnx", VersionId=ref.version_id)
    with pytest.raises(ArtifactNotFoundError):
        read_verified(ref)
