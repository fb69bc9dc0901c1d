"""Model artifacts on S3, pinned by object version and verified by SHA-256 before use.

Every artifact a model version points at is recorded as an :class:`ArtifactRef` (URI, SHA-256,
S3 VersionId, size). Loaders call :func:`read_verified`, which fetches exactly the recorded object
version and refuses bytes whose hash differs, so an overwritten or tampered object is never loaded.
Standard library and boto3 only: the serving Lambda imports this module.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from driftline import aws


class ArtifactIntegrityError(RuntimeError):
    """Bytes read from S3 do not match the SHA-256 (or size) recorded at registration."""


class ArtifactNotFoundError(RuntimeError):
    """The recorded object (or object version) does not exist."""


@dataclass(frozen=True)
class ArtifactRef:
    uri: str
    sha256: str
    version_id: str | None
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "sha256": self.sha256, "version_id": self.version_id, "size": self.size}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactRef:
        try:
            return cls(
                uri=str(data["uri"]),
                sha256=str(data["sha256"]),
                version_id=data.get("version_id") or None,
                size=int(data["size"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(
                f"artifact reference {data!r} is malformed ({e}); expected keys uri, sha256, version_id, size"
            ) from None

    @property
    def bucket(self) -> str:
        return split_s3_uri(self.uri)[0]

    @property
    def key(self) -> str:
        return split_s3_uri(self.uri)[1]


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key), with a clear error for anything else."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an S3 URI; expected s3://<bucket>/<key>")
    bucket, _, key = uri[5:].partition("/")
    if not bucket or not key:
        raise ValueError(f"{uri!r} is not an S3 URI; expected s3://<bucket>/<key>")
    return bucket, key


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put_artifact(bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> ArtifactRef:
    """Upload ``data`` and return the reference that pins this exact object version."""
    digest = sha256_hex(data)
    resp = aws.client("s3").put_object(
        Bucket=bucket,
        Key=key,
        Body=data,
        ContentType=content_type,
        Metadata={"sha256": digest},
    )
    return ArtifactRef(uri=f"s3://{bucket}/{key}", sha256=digest, version_id=resp.get("VersionId"), size=len(data))


def read_verified(ref: ArtifactRef | dict[str, Any]) -> bytes:
    """Fetch the recorded object version and return its bytes only if the SHA-256 matches."""
    if isinstance(ref, dict):
        ref = ArtifactRef.from_dict(ref)
    bucket, key = split_s3_uri(ref.uri)
    s3 = aws.client("s3")
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if ref.version_id:
        kwargs["VersionId"] = ref.version_id
    try:
        body: bytes = s3.get_object(**kwargs)["Body"].read()
    except s3.exceptions.NoSuchKey:
        raise ArtifactNotFoundError(
            f"artifact {ref.uri} does not exist; it was deleted after registration (re-register the model version)"
        ) from None
    except Exception as e:  # botocore ClientError for a missing version id
        code = getattr(e, "response", {}).get("Error", {}).get("Code")
        if code in ("NoSuchVersion", "InvalidArgument", "NoSuchKey", "404"):
            raise ArtifactNotFoundError(
                f"artifact {ref.uri} version {ref.version_id} does not exist ({code}); re-register the model version"
            ) from None
        raise
    actual = sha256_hex(body)
    if actual != ref.sha256:
        raise ArtifactIntegrityError(
            f"artifact {ref.uri} (version {ref.version_id}) failed its integrity check: SHA-256 is {actual}, "
            f"but {ref.sha256} was recorded at registration; refusing to load it (the object was modified "
            f"or replaced; re-register the model version from a trusted training run)"
        )
    if len(body) != ref.size:  # unreachable unless a hash collision; kept as a cheap second guard
        raise ArtifactIntegrityError(f"artifact {ref.uri}: size {len(body)} != recorded {ref.size}")
    return body
