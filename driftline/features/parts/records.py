"""What the steps of the parts path hand each other through S3: the plan, one descriptor per part, one
result per part.

Every document is small JSON under the upload's scratch prefix
(:func:`~driftline.contracts.ingest_parts_prefix`), written to keys derived from (upload id, part), so
a retried step overwrites its own document and never adds one. Parsing is strict: a document that
does not have the expected shape raises :class:`PartsError` with what is wrong, because the next step
would otherwise act on a guess.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from driftline.contracts import ingest_part_key, ingest_parts_prefix
from driftline.features.readers import FileFormat

__all__ = [
    "PartDescriptor",
    "PartResult",
    "PartsError",
    "Plan",
    "SourceObject",
    "plan_key",
    "read_json",
]

PartStatus = Literal["ok", "unreadable"]


class PartsError(Exception):
    """A document of the parts path is missing or malformed, or a step's input is: the message says which."""


@dataclass(frozen=True)
class SourceObject:
    """One object version a part reads: the upload (pinned) or a part the plan decompressed (pinned too)."""

    bucket: str
    key: str
    version_id: str | None
    size: int

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def get(self, s3: Any, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of this version (one ranged GET); empty for an empty range."""
        if end <= start:
            return b""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key, "Range": f"bytes={start}-{end - 1}"}
        if self.version_id:
            kwargs["VersionId"] = self.version_id
        data: bytes = s3.get_object(**kwargs)["Body"].read()
        return data


@dataclass(frozen=True)
class PartDescriptor:
    """One Distributed Map item: which bytes (CSV) or row groups (Parquet) of which object version to validate.

    CSV parts read the header ``[0, header_end)`` and the data ``[start, end)`` of ``source``; Parquet
    parts read row groups ``[row_group_start, row_group_end)``, whose column chunks span ``[start, end)``.
    """

    feature_set: str
    upload_id: str
    part: int
    parts: int
    format: FileFormat
    name: str
    """The upload's file name (messages, format detection)."""
    source: SourceObject
    start: int
    end: int
    header_end: int = 0
    row_group_start: int = 0
    row_group_end: int = 0
    rows_expected: int | None = None
    """Rows the part must hold: the footer's count for Parquet; None for CSV (the part counts its lines)."""

    def where(self) -> str:
        """The part as messages name it: its number and its byte range or row groups."""
        if self.format == "parquet":
            return (
                f"part {self.part} of {self.parts} (row groups {self.row_group_start}-{self.row_group_end - 1}, "
                f"bytes {self.start}-{self.end - 1} of {self.source.uri})"
            )
        return f"part {self.part} of {self.parts} (bytes {self.start}-{self.end - 1} of {self.source.uri})"

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_dict(cls, doc: Any) -> PartDescriptor:
        try:
            src = SourceObject(**doc["source"])
            out = cls(**{**doc, "source": src})
        except (TypeError, KeyError) as e:
            raise PartsError(f"malformed part descriptor ({e}): {str(doc)[:200]}") from None
        ints = (out.part, out.parts, out.start, out.end, out.header_end, out.source.size)
        if not all(isinstance(v, int) and v >= 0 for v in ints) or not 0 <= out.part < out.parts:
            raise PartsError(f"malformed part descriptor (offsets and part numbers): {str(doc)[:200]}")
        if out.format not in ("csv", "csv.gz", "parquet"):
            raise PartsError(f"malformed part descriptor (format {out.format!r})")
        texts = (out.feature_set, out.upload_id, out.name, out.source.bucket, out.source.key)
        if not all(isinstance(v, str) and v for v in texts) or not isinstance(out.source.version_id, str | None):
            raise PartsError(f"malformed part descriptor (names must be non-empty strings): {str(doc)[:200]}")
        return out

    def key(self, kind: str, suffix: str = "") -> str:
        return ingest_part_key(self.feature_set, self.upload_id, kind, self.part, suffix)


@dataclass
class PartResult:
    """What validating one part found and staged (``results/part-NNNNN.json``)."""

    part: int
    status: PartStatus
    where: str
    rows_total: int = 0
    rows_accepted: int = 0
    """Rows passing every error check (the feature set's partial-failure policy is applied by the commit)."""
    rows_rejected: int = 0
    rows_expected: int = 0
    """Rows the part must hold, counted independently of the parser (CSV lines; Parquet footer)."""
    sha256: str = ""
    has_labels: bool = False
    curated: list[tuple[str, str]] = field(default_factory=list)
    """(UTC day, staged key) of the part's curated Parquet per day."""
    latest_key: str | None = None
    rejected_key: str | None = None
    keys_key: str | None = None
    """The part's row keys (:func:`~driftline.features.parts.keys.part_keys`): the commit's cross-part check."""
    duplicates_key: str | None = None
    """Accepted rows the commit rejected for sharing their key with a row of another part (set by the commit)."""
    checks: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, str] | None = None
    """An unreadable part: check, message, hint."""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, default=str).encode()

    @classmethod
    def from_dict(cls, doc: Any) -> PartResult:
        try:
            out = cls(**doc)
        except TypeError as e:
            raise PartsError(f"malformed part result ({e})") from None
        out.curated = [(str(d), str(k)) for d, k in out.curated]
        return out


@dataclass
class Plan:
    """The plan of one upload (``plan.json``): its parts, or why it cannot be validated in parts."""

    feature_set: str
    upload_id: str
    source: SourceObject
    format: FileFormat | None
    parts: list[PartDescriptor] = field(default_factory=list)
    rows_in_file: int | None = None
    """Parquet: the footer's row count (the commit checks accepted + quarantined against it)."""
    refused: dict[str, str] | None = None
    """check, message, hint: the upload is not validated (too many parts, unreadable footer, …)."""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_dict(cls, doc: Any) -> Plan:
        try:
            parts = [PartDescriptor.from_dict(p) for p in doc["parts"]]
            return cls(**{**doc, "source": SourceObject(**doc["source"]), "parts": parts})
        except (TypeError, KeyError) as e:
            raise PartsError(f"malformed plan ({e})") from None


def plan_key(feature_set: str, upload_id: str) -> str:
    return f"{ingest_parts_prefix(feature_set, upload_id)}plan.json"


def read_json(s3: Any, bucket: str, key: str) -> Any | None:
    """The JSON document at ``key``, or None when there is none (a part that never reported)."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as e:
        if getattr(e, "response", {}).get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    try:
        return json.loads(body)
    except ValueError as e:
        raise PartsError(f"s3://{bucket}/{key} is not JSON ({e})") from None
