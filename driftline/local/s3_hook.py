"""The emulator's S3 keeps large objects on disk: a ranged GET reads only its bytes and a multipart
upload is assembled part by part, never in memory.

moto 5.2.5 stores each object in a spooled temporary file (on disk past a few MB) but reads the whole
file into memory for every GET, ranged or not (``FakeKey.value``), and slices the range out of that
copy; completing a multipart upload concatenates every part into a bytearray, copies it for the
checksum and again into ``bytes`` before writing it back to disk. For the parts path of large
uploads (one ranged GET per part, a few small ones per cut) that made each read cost the whole
object, and a multi-GB upload several times its size in memory. Guarded replacements, in the style
of :mod:`driftline.local.moto_hooks` (pinned moto, refuse to start when a hook point is gone):

- ``S3Response.get_object`` hands moto, for a request with a ``Range`` header, a view of the object
  whose length is the object's size and whose slices are read from the spooled file (seek + read);
  moto's own ``_handle_range_header`` then applies every rule (``a-b``, ``a-``, ``-n``, the forms it
  answers with the whole object, ``InvalidRange``), so the answers are moto's byte for byte;
- ``S3Response._handle_range_header`` turns that view into bytes when moto answers a Range request
  with the whole object (a multi-range or unparsable header, an inverted range);
- ``S3Backend.complete_multipart_upload`` checks the parts as moto does (``InvalidPart``,
  ``EntityTooSmall``, ``MalformedXML``), copies them into the new object's spooled file in blocks and
  computes moto's ETag and checksum incrementally; a full-object checksum moto would compute with an
  optional native library (awscrt, crc32c) it cannot reproduce block by block goes to moto's own code.

moto also keeps every object smaller than its spool size (``MOTO_S3_DEFAULT_KEY_BUFFER_SIZE``, 5 MB
less 1 KB by default) in memory, so many mid-sized files (a large upload's staged and curated Parquet
files, one per part and day) add up to gigabytes of emulator memory. While the hook is installed
the spool size is :data:`SPOOL_BYTES` unless the environment sets it.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "COPY_BLOCK_BYTES",
    "S3_HOOK_POINTS",
    "SPOOL_BYTES",
    "SPOOL_ENV",
    "ObjectBytes",
    "install_s3",
    "s3_hook_points",
]

SPOOL_ENV = "MOTO_S3_DEFAULT_KEY_BUFFER_SIZE"
"""moto's setting: the size past which an object's bytes move from memory to a temporary file."""
SPOOL_BYTES = 1024 * 1024
"""The emulator's spool size while the hook is installed: objects past it live on disk (the page cache
keeps recent ones fast), so its memory does not grow with the data stored. Each such object holds an
open temporary file, as moto's own spooled objects do, so it is not made smaller: a platform storing
many small files would run into the process's open-file limit."""

COPY_BLOCK_BYTES = 16 * 1024 * 1024
"""Bytes copied at a time from a part into the completed object (moto's own ETag reads in such blocks)."""

S3_HOOK_POINTS = (
    ("S3Response", "get_object"),
    ("S3Response", "_handle_range_header"),
    ("S3Response", "_get_key"),
    ("S3Backend", "complete_multipart_upload"),
    ("S3Backend", "put_object"),
    ("FakeKey", "_value_buffer"),
    ("FakeMultipart", "complete"),
    ("MultipartChecksumBuilder", "build"),
)
"""(owner, attribute) the hook replaces or relies on; ``_value_buffer`` is an instance attribute, so
its presence is checked on a key moto makes (see :func:`s3_hook_points`)."""


def _owners() -> dict[str, Any]:
    from moto.s3.models import FakeKey, FakeMultipart, MultipartChecksumBuilder, S3Backend
    from moto.s3.responses import S3Response

    return {
        "S3Response": S3Response,
        "S3Backend": S3Backend,
        "FakeKey": FakeKey("probe", b"", account_id="123456789012", region_name="us-east-1"),
        "FakeMultipart": FakeMultipart,
        "MultipartChecksumBuilder": MultipartChecksumBuilder,
    }


def s3_hook_points() -> list[tuple[Any, str]]:
    """(owner, attribute) of every moto member the hook replaces or reads, for ``check_moto``."""
    owners = _owners()
    points = [(owners[o], name) for o, name in S3_HOOK_POINTS]
    probe = owners["FakeKey"]
    points.append((probe, "lock"))
    probe.dispose()
    return points


class ObjectBytes:
    """A stored object as moto's range code sees it: ``len`` is its size, a slice reads only those bytes."""

    def __init__(self, key: Any) -> None:
        self.key = key

    def __len__(self) -> int:
        return int(self.key.size)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __getitem__(self, span: slice) -> bytes:
        if not isinstance(span, slice) or span.step not in (None, 1):
            raise TypeError("ObjectBytes supports contiguous slices only")
        start, stop, _ = span.indices(len(self))
        if stop <= start:
            return b""
        with self.key.lock:
            self.key._value_buffer.seek(start)
            return bytes(self.key._value_buffer.read(stop - start))

    def whole(self) -> bytes:
        """The object's bytes, as moto's ``FakeKey.value`` returns them."""
        return bytes(self.key.value)


class _RangedKey:
    """The stored key with ``value`` replaced by an :class:`ObjectBytes` view; everything else is the key's."""

    def __init__(self, key: Any) -> None:
        self._key = key

    @property
    def value(self) -> ObjectBytes:
        return ObjectBytes(self._key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._key, name)


def _ranged_request(response: Any) -> bool:
    """A GET moto will answer through ``_handle_range_header`` (a non-empty Range, not a part-number GET)."""
    headers = getattr(response, "headers", None) or {}
    rng = headers.get("range")
    return bool(rng) and not response.querystring.get("partNumber")


def _make_get_object(original: Callable[..., Any]) -> Callable[..., Any]:
    def get_object(response: Any) -> Any:
        if not _ranged_request(response):
            return original(response)
        get_key = response._get_key

        def ranged_get_key(*args: Any, **kwargs: Any) -> tuple[Any, bool]:
            key, not_modified = get_key(*args, **kwargs)
            return _RangedKey(key), not_modified

        response._get_key = ranged_get_key  # this request's response object only
        try:
            return original(response)
        finally:
            del response._get_key

    return get_object


def _make_handle_range(original: Callable[..., Any]) -> Callable[..., Any]:
    def _handle_range_header(response: Any, request: Any, headers: dict[str, Any], content: Any) -> Any:
        status, out_headers, out = original(response, request, headers, content)
        if isinstance(out, ObjectBytes):  # moto answers this Range with the whole object
            out = out.whole()
        return status, out_headers, out

    return _handle_range_header


# ---- multipart completion ----


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


class _FullObjectChecksum:
    """moto's ``compute_checksum`` over the concatenated parts, fed block by block."""

    def __init__(self, algorithm: str) -> None:
        self.crc: int | None = None
        self.digest: Any = None
        if algorithm == "SHA1":
            self.digest = hashlib.sha1(usedforsecurity=False)
        elif algorithm in ("CRC32", "CRC32C", "CRC64NVME"):
            self.crc = 0  # moto falls back to zlib's CRC32 without crc32c / awscrt (see incremental())
        else:
            self.digest = hashlib.sha256(usedforsecurity=False)

    @staticmethod
    def incremental(algorithm: str) -> bool:
        """Whether moto computes ``algorithm`` the way this class does (no optional native library)."""
        from moto.s3 import utils

        if algorithm == "CRC32C":
            return not _has_module("crc32c")
        if algorithm == "CRC64NVME":
            return not getattr(utils, "HAS_CRT", True)
        return True

    def update(self, block: bytes) -> None:
        if self.crc is not None:
            self.crc = binascii.crc32(block, self.crc)
        else:
            self.digest.update(block)

    def value(self) -> str:
        raw = self.crc.to_bytes(4, "big") if self.crc is not None else self.digest.digest()
        return base64.b64encode(raw).decode()


def _checked_parts(multipart: Any, body: Iterable[tuple[int, str]]) -> tuple[list[Any], str]:
    """The listed parts, checked exactly as ``FakeMultipart.complete`` checks them, and the upload's ETag."""
    from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
    from moto.settings import S3_UPLOAD_PART_MIN_SIZE

    decode_hex = codecs.getdecoder("hex_codec")
    md5s = bytearray()
    parts: list[Any] = []
    last = None
    for pn, listed in body:
        part = multipart.parts.get(pn)
        part_etag = etag = None
        if part is not None:
            part_etag = part.etag.replace('"', "")
            etag = listed.replace('"', "")
        if part is None or part_etag != etag:
            raise InvalidPart()
        if last is not None and last.contentsize < S3_UPLOAD_PART_MIN_SIZE:
            raise EntityTooSmall()
        md5s.extend(decode_hex(part_etag)[0])  # type: ignore[arg-type]
        parts.append(part)
        last = part
    if not parts:
        raise MalformedXML
    full = hashlib.md5(usedforsecurity=False)
    full.update(bytes(md5s))
    return parts, f"{full.hexdigest()}-{len(parts)}"


def _part_blocks(part: Any) -> Iterator[bytes]:
    offset = 0
    while True:
        with part.lock:
            part._value_buffer.seek(offset)
            block = part._value_buffer.read(COPY_BLOCK_BYTES)
        if not block:
            return
        offset += len(block)
        yield block


def _assemble(parts: list[Any], builder: Any) -> tuple[Any, int, tuple[str, str, int]]:
    """The parts copied into one spooled file, its size and moto's checksum details for them.

    A full-object checksum is fed block by block; a composite one is moto's own per-part checksum
    (``addPart`` on one part's bytes at a time, never the whole upload)."""
    from moto.settings import get_s3_default_key_buffer_size

    full = None if builder.checksum_type == "COMPOSITE" else _FullObjectChecksum(builder.checksum_algorithm)
    out = tempfile.SpooledTemporaryFile(get_s3_default_key_buffer_size())  # noqa: SIM115 - the new key owns it
    size = 0
    for part in parts:
        for block in _part_blocks(part):
            out.write(block)
            size += len(block)
            if full is not None:
                full.update(block)
        if full is None:
            builder.addPart(part.value)
    if full is not None:
        return out, size, (builder.checksum_type, full.value(), 1)
    details: tuple[str, str, int] = builder.build()
    return out, size, details


def _make_complete(original: Callable[..., Any]) -> Callable[..., Any]:
    def complete_multipart_upload(backend: Any, bucket_name: str, multipart_id: str, body: Any) -> Any:
        from moto.s3 import models, notifications

        bucket = backend.get_bucket(bucket_name)
        multipart = bucket.multiparts[multipart_id]
        builder = models.MultipartChecksumBuilder(
            multipart.metadata.get("x-amz-checksum-algorithm"), multipart.metadata.get("x-amz-checksum-type")
        )
        if builder.checksum_type != "COMPOSITE" and not _FullObjectChecksum.incremental(builder.checksum_algorithm):
            return original(backend, bucket_name, multipart_id, body)
        parts, etag = _checked_parts(multipart, body)
        buffer, size, checksum_details = _assemble(parts, builder)
        del bucket.multiparts[multipart_id]
        key = backend.put_object(
            bucket_name,
            multipart.key_name,
            b"",
            storage=multipart.storage,
            etag=etag,
            multipart=multipart,
            encryption=multipart.sse_encryption,
            kms_key_id=multipart.kms_key_id,
            disable_notification=True,
        )
        with key.lock:
            key._value_buffer.close()
            key._value_buffer = buffer
            key.contentsize = size
        # what put_object would have sent, now that the object has its bytes
        notifications.send_event(
            backend.account_id, notifications.S3NotificationEvent.OBJECT_CREATED_PUT_EVENT, bucket, key
        )
        key.set_metadata(multipart.metadata)
        key.checksum_algorithm = multipart.metadata.get("x-amz-checksum-algorithm")
        key.checksum_type, key.checksum_value, key.checksum_parts = checksum_details
        backend.put_object_tagging(key, multipart.tags)
        backend.put_object_acl(bucket_name=bucket_name, key_name=key.name, acl=multipart.acl, disable_notification=True)
        notifications.send_event(
            backend.account_id,
            notifications.S3NotificationEvent.OBJECT_CREATED_COMPLETE_MULTIPART_UPLOAD_EVENT,
            bucket,
            bucket.keys.get(multipart.key_name),
        )
        return key

    return complete_multipart_upload


@contextmanager
def install_s3() -> Iterator[None]:
    """Serve ranged GETs from disk and assemble multipart uploads on disk while the context is open."""
    from moto.s3.models import S3Backend
    from moto.s3.responses import S3Response

    from driftline.local.moto_hooks import check_moto

    check_moto()
    spool_env = os.environ.get(SPOOL_ENV)
    if spool_env is None:
        os.environ[SPOOL_ENV] = str(SPOOL_BYTES)
    saved: dict[tuple[Any, str], Any] = {
        (S3Response, "get_object"): S3Response.get_object,
        (S3Response, "_handle_range_header"): S3Response._handle_range_header,
        (S3Backend, "complete_multipart_upload"): S3Backend.complete_multipart_upload,
    }
    S3Response.get_object = _make_get_object(saved[(S3Response, "get_object")])  # type: ignore[method-assign]
    S3Response._handle_range_header = _make_handle_range(  # type: ignore[method-assign]
        saved[(S3Response, "_handle_range_header")]
    )
    S3Backend.complete_multipart_upload = _make_complete(  # type: ignore[method-assign]
        saved[(S3Backend, "complete_multipart_upload")]
    )
    try:
        yield
    finally:
        for (owner, name), fn in saved.items():
            setattr(owner, name, fn)
        if spool_env is None:
            os.environ.pop(SPOOL_ENV, None)
