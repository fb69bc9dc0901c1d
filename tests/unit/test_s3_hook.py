"""The emulator's S3 hook (driftline.local.s3_hook) answers exactly as moto does, without reading whole
objects: every Range form and multipart completion are compared with moto's own answers on the same
requests, and the reads are checked to stay within the requested bytes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from driftline.local.s3_hook import ObjectBytes, install_s3

BUCKET = "hook-bucket"
MB = 1024 * 1024

RANGES = [
    "bytes=0-0",
    "bytes=0-99",
    "bytes=17-4242",
    "bytes=100-",
    "bytes=-1",
    "bytes=-300",
    "bytes=-99999999",  # longer than the object: the whole object as 206
    "bytes=0-99999999",  # end past the object: clipped
    "bytes=LAST-",  # the last byte (filled in per object)
    "bytes=END-",  # one past the last byte: InvalidRange
    "bytes=99999999-",  # start past the object: InvalidRange
    "bytes=-0",  # empty suffix: InvalidRange
    "bytes=9-3",  # inverted: moto answers with the whole object
    "bytes=0-1,5-6",  # multi-range: the whole object
    "bytes=a-b",  # unparsable: the whole object
    "bytes=-",  # neither end: the whole object
]


@pytest.fixture
def s3() -> Iterator[Any]:
    env = {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with mock_aws():
            client = boto3.client("s3", region_name="us-east-1")
            client.create_bucket(Bucket=BUCKET)
            yield client
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _payload(size: int, seed: int = 7) -> bytes:
    block = bytes((i * 31 + seed) % 251 for i in range(4096))
    return (block * (size // len(block) + 1))[:size]


def _answer(s3: Any, key: str, rng: str, **extra: Any) -> tuple[Any, ...]:
    try:
        r = s3.get_object(Bucket=BUCKET, Key=key, Range=rng, **extra)
    except ClientError as e:
        err = e.response["Error"]
        return ("error", e.response["ResponseMetadata"]["HTTPStatusCode"], err.get("Code"), err.get("Message"))
    meta = r["ResponseMetadata"]
    return (
        meta["HTTPStatusCode"],
        r.get("ContentRange"),
        r["ContentLength"],
        r["ETag"],
        r["Body"].read(),
        sorted(k for k in meta["HTTPHeaders"] if k.startswith("x-amz-checksum")),
    )


def _concrete(rng: str, size: int) -> str:
    return rng.replace("LAST", str(size - 1)).replace("END", str(size))


@pytest.mark.parametrize("size", [1, 1000, 6 * MB + 123])  # the last is past moto's in-memory buffer (on disk)
def test_every_range_form_answers_as_moto(s3: Any, size: int) -> None:
    s3.put_object(Bucket=BUCKET, Key="obj", Body=_payload(size), ChecksumAlgorithm="SHA256")
    ranges = [_concrete(r, size) for r in RANGES]
    theirs = [_answer(s3, "obj", r, ChecksumMode="ENABLED") for r in ranges]
    with install_s3():
        ours = [_answer(s3, "obj", r, ChecksumMode="ENABLED") for r in ranges]
    for rng, mine, moto_answer in zip(ranges, ours, theirs, strict=True):
        assert mine == moto_answer, rng
    assert theirs[ranges.index("bytes=-0")][:3] == ("error", 416, "InvalidRange")


def test_a_ranged_get_reads_only_its_bytes(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto reads the whole object (FakeKey.value) for every ranged GET; the hook must not."""
    from moto.s3.models import FakeKey

    data = _payload(8 * MB + 5)
    s3.put_object(Bucket=BUCKET, Key="big", Body=data)
    reads: list[int] = []
    whole = FakeKey.value

    def counting(key: Any) -> bytes:
        value: bytes = whole.fget(key)  # type: ignore[attr-defined]
        reads.append(len(value))
        return value

    monkeypatch.setattr(FakeKey, "value", property(counting, whole.fset))  # type: ignore[attr-defined]
    with install_s3():
        body = s3.get_object(Bucket=BUCKET, Key="big", Range="bytes=4194304-4195327")["Body"].read()
        assert body == data[4194304:4195328]
        assert reads == []
        # a Range moto answers with the whole object still gets the whole object
        assert s3.get_object(Bucket=BUCKET, Key="big", Range="bytes=0-1,4-5")["Body"].read() == data
        assert reads == [len(data)]
    reads.clear()
    s3.get_object(Bucket=BUCKET, Key="big", Range="bytes=0-9")["Body"].read()
    assert reads == [len(data)]  # moto without the hook: the whole object for 10 bytes


def test_versioned_and_conditional_ranged_gets(s3: Any) -> None:
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=BUCKET, Key="v", Body=_payload(3000, 1))["VersionId"]
    s3.put_object(Bucket=BUCKET, Key="v", Body=_payload(3000, 2))
    etag = s3.head_object(Bucket=BUCKET, Key="v", VersionId=v1)["ETag"]
    cases: list[dict[str, Any]] = [
        {"VersionId": v1},
        {"VersionId": v1, "IfMatch": etag},
        {"IfMatch": etag},  # the newest version does not match: 412
        {"IfNoneMatch": etag, "VersionId": v1},  # 304
    ]
    theirs = [_answer(s3, "v", "bytes=10-20", **c) for c in cases]
    with install_s3():
        ours = [_answer(s3, "v", "bytes=10-20", **c) for c in cases]
    assert ours == theirs
    assert theirs[0][4] == _payload(3000, 1)[10:21]


def test_object_bytes_slices() -> None:
    class Key:
        def __init__(self, data: bytes) -> None:
            import io
            import threading

            self._value_buffer = io.BytesIO(data)
            self.size = len(data)
            self.lock = threading.Lock()
            self.value = data

    data = b"0123456789"
    view = ObjectBytes(Key(data))
    for s in [slice(0, 3), slice(3, None), slice(8, 100), slice(5, 2), slice(None, None), slice(-3, None)]:
        assert view[s] == data[s]
    assert len(view) == 10 and view and not ObjectBytes(Key(b""))
    with pytest.raises(TypeError, match="contiguous"):
        view[::2]


def _multipart(s3: Any, key: str, parts: list[bytes], **create: Any) -> tuple[str, list[dict[str, Any]]]:
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key, **create)["UploadId"]
    listed = []
    for n, body in enumerate(parts, start=1):
        extra = {"ChecksumAlgorithm": create["ChecksumAlgorithm"]} if "ChecksumAlgorithm" in create else {}
        r = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=n, Body=body, **extra)
        entry = {"PartNumber": n, "ETag": r["ETag"]}
        entry.update({k: v for k, v in r.items() if k.startswith("Checksum") and k != "ChecksumType"})
        listed.append(entry)
    return upload, listed


def _complete(s3: Any, key: str, parts: list[bytes], tamper: str = "", **create: Any) -> tuple[Any, ...]:
    upload, listed = _multipart(s3, key, parts, **create)
    if tamper == "etag":
        listed[0]["ETag"] = '"' + "0" * 32 + '"'
    try:
        done = s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload, MultipartUpload={"Parts": listed})
    except ClientError as e:
        return ("error", e.response["Error"]["Code"])
    head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    attrs = s3.get_object_attributes(Bucket=BUCKET, Key=key, ObjectAttributes=["Checksum", "ObjectSize", "ETag"])
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return (
        done["ETag"],
        head["ContentLength"],
        {k: v for k, v in head.items() if k.startswith("Checksum")},
        attrs.get("Checksum"),
        attrs["ObjectSize"],
        body == b"".join(parts),
    )


@pytest.mark.parametrize(
    "create",
    [{}, {"ChecksumAlgorithm": "SHA256"}, {"ChecksumAlgorithm": "CRC32"}, {"ChecksumAlgorithm": "SHA1"}],
    ids=["default", "sha256", "crc32", "sha1"],
)
def test_multipart_completion_answers_as_moto(s3: Any, create: dict[str, Any]) -> None:
    parts = [_payload(5 * MB, 1), _payload(5 * MB + 17, 2), _payload(1234, 3)]
    theirs = _complete(s3, "mp-moto", parts, **create)
    with install_s3():
        ours = _complete(s3, "mp-hook", parts, **create)
    assert ours == theirs
    assert theirs[-1] is True


@pytest.mark.parametrize("tamper", ["etag", "small"])
def test_multipart_errors_are_moto_errors(s3: Any, tamper: str) -> None:
    parts = [_payload(1000, 1), _payload(1000, 2)] if tamper == "small" else [_payload(5 * MB, 1), _payload(10, 2)]
    theirs = _complete(s3, "bad-moto", parts, tamper=tamper)
    with install_s3():
        ours = _complete(s3, "bad-hook", parts, tamper=tamper)
    assert ours == theirs and ours[0] == "error"
    assert ours[1] == ("InvalidPart" if tamper == "etag" else "EntityTooSmall")


def test_multipart_completion_never_holds_the_whole_upload(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto concatenates every part in memory (several copies); the hook copies block by block."""
    from moto.s3.models import FakeKey

    parts = [_payload(5 * MB, 1), _payload(5 * MB, 2), _payload(100, 3)]
    upload, listed = _multipart(s3, "streamed", parts)
    whole = FakeKey.value
    reads: list[int] = []

    def counting(key: Any) -> bytes:
        value: bytes = whole.fget(key)  # type: ignore[attr-defined]
        reads.append(len(value))
        return value

    monkeypatch.setattr(FakeKey, "value", property(counting, whole.fset))  # type: ignore[attr-defined]
    with install_s3():
        s3.complete_multipart_upload(Bucket=BUCKET, Key="streamed", UploadId=upload, MultipartUpload={"Parts": listed})
        assert reads == []
        got = s3.get_object(Bucket=BUCKET, Key="streamed", Range="bytes=5242870-5242889")["Body"].read()
    assert got == b"".join(parts)[5242870:5242890]


def test_check_moto_refuses_without_the_s3_hook_points(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.s3.responses import S3Response

    from driftline.local.moto_hooks import UnsupportedMotoError, check_moto

    monkeypatch.delattr(S3Response, "_handle_range_header")
    with pytest.raises(UnsupportedMotoError, match=r"S3Response\._handle_range_header"):
        check_moto()
    with pytest.raises(UnsupportedMotoError), install_s3():
        pass


def test_install_restores_moto() -> None:
    from moto.s3.models import S3Backend
    from moto.s3.responses import S3Response

    before = (S3Response.get_object, S3Response._handle_range_header, S3Backend.complete_multipart_upload)
    with install_s3():
        assert S3Response.get_object is not before[0]
    assert (S3Response.get_object, S3Response._handle_range_header, S3Backend.complete_multipart_upload) == before


def test_mid_sized_objects_are_kept_on_disk_while_installed(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto keeps objects under 5 MB in memory; many staged files of a large upload added up to gigabytes."""
    from moto.s3.models import s3_backends

    from driftline.local.s3_hook import SPOOL_BYTES, SPOOL_ENV

    monkeypatch.delenv(SPOOL_ENV, raising=False)

    def rolled(key: str) -> bool:
        obj: Any = s3_backends["123456789012"]["aws"].get_object(BUCKET, key)
        return bool(obj._value_buffer._rolled)

    s3.put_object(Bucket=BUCKET, Key="before", Body=_payload(2 * MB))
    with install_s3():
        s3.put_object(Bucket=BUCKET, Key="during", Body=_payload(2 * MB))
        s3.put_object(Bucket=BUCKET, Key="small", Body=_payload(SPOOL_BYTES // 2))
        assert s3.get_object(Bucket=BUCKET, Key="during")["Body"].read() == _payload(2 * MB)
    assert not rolled("before") and rolled("during") and not rolled("small")
    assert SPOOL_ENV not in os.environ
    monkeypatch.setenv(SPOOL_ENV, str(8 * MB))  # an explicit setting is the user's
    with install_s3():
        s3.put_object(Bucket=BUCKET, Key="explicit", Body=_payload(2 * MB))
    assert not rolled("explicit") and os.environ[SPOOL_ENV] == str(8 * MB)
