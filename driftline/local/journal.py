"""The on-disk form of the local platform's state: a header, a snapshot and an append-only journal.

Layout under ``<state dir>/data/``:

- ``state.json``: what wrote the directory (format name and version, Driftline and moto versions) and
  which generation of files is current. Replaced atomically (write, fsync, rename, fsync the folder), so
  a crash leaves either the old generation or the new one, never a mix.
- ``snapshot-<g>.dlj``: records of the whole state when generation ``g`` began (empty for the first).
- ``journal-<g>.dlj``: records appended since; each is written and fsynced before the request it
  records is answered.
- ``lock``: held (``flock``) by the platform using the directory, so a second one is refused.

A record is ``MAGIC | length | crc32 | payload`` with ``payload = meta length | meta JSON | blob``. A
record cut short at the very end of a journal (the machine went down mid-write) was never
acknowledged: it is dropped with a warning. Damage anywhere else refuses the whole directory: loading
part of a state would hand back a platform that silently lacks data.

Standard library only, and no pickle: every record is JSON plus raw bytes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Journal",
    "JournalWriteError",
    "Record",
    "StateDirError",
    "StateInUseError",
    "encode_record",
    "read_records",
    "wipe",
]

FORMAT = "driftline-local-state"
FORMAT_VERSION = 1
HEADER_FILE = "state.json"
LOCK_FILE = "lock"
MAGIC = b"DLR1"
_FRAME = struct.Struct(">4sII")
_META = struct.Struct(">I")


class StateDirError(RuntimeError):
    """The state directory cannot be used as it is (corrupt, foreign, another version); nothing was loaded."""


class StateInUseError(StateDirError):
    """Another running platform holds the state directory."""


class JournalWriteError(OSError):
    """A record could not be made durable (disk full, I/O error): the write it records is not acknowledged."""


@dataclass(frozen=True)
class Record:
    meta: dict[str, Any]
    blob: bytes = b""


def encode_record(meta: dict[str, Any], blob: bytes = b"") -> bytes:
    head = json.dumps(meta, separators=(",", ":")).encode()
    payload = _META.pack(len(head)) + head + blob
    return _FRAME.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def _decode_payload(payload: bytes) -> Record:
    (n,) = _META.unpack_from(payload)
    meta = json.loads(payload[_META.size : _META.size + n])
    if not isinstance(meta, dict):
        raise ValueError("record metadata is not an object")
    return Record(meta, payload[_META.size + n :])


def read_records(path: Path, warn: Callable[[str], None] | None = None) -> tuple[list[Record], int]:
    """Every record of ``path`` and the length of its valid part.

    A damaged last record (it runs past the end of the file, or it is the last thing in it and its
    checksum fails) is a write cut short: it is dropped, with a warning. Damage followed by more data
    raises :class:`StateDirError`.
    """
    data = path.read_bytes()
    records: list[Record] = []
    pos = 0
    while pos < len(data):
        end = len(data) + 1  # where the damaged record would end: past the file unless its header says
        problem = None
        if pos + _FRAME.size > len(data):
            problem = "a record header cut short"
        else:
            magic, length, crc = _FRAME.unpack_from(data, pos)
            end = pos + _FRAME.size + length
            payload = data[pos + _FRAME.size : end]
            if magic != MAGIC:
                problem, end = "a bad record marker", len(data) + 1 if pos + _FRAME.size >= len(data) else -1
            elif end > len(data):
                problem = "a record cut short"
            elif zlib.crc32(payload) != crc:
                problem = "a record whose checksum fails"
            else:
                try:
                    records.append(_decode_payload(payload))
                except ValueError as e:
                    problem = f"an unreadable record ({e})"
                else:
                    pos = end
                    continue
        if end >= len(data):  # the damage reaches the end of the file: the last write was cut short
            if warn is not None:
                warn(
                    f"warning: {path} ends with {problem} at byte {pos} (a write cut short by a crash, never "
                    f"acknowledged); ignoring its last {len(data) - pos} byte(s)"
                )
            return records, pos
        raise StateDirError(
            f"{path} is corrupt: {problem} at byte {pos} of {len(data)}, followed by more data. Nothing was "
            "loaded. Keep a copy of the directory if the data matters, then start empty with "
            "`driftline local up --fresh` (or `driftline local reset`)."
        )
    return records, pos


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


def wipe(directory: Path) -> int:
    """Delete the kept state in ``directory`` (refused while a platform holds it); returns the bytes freed."""
    if not directory.exists():
        return 0
    j = Journal(directory, {})
    j._lock()
    try:
        freed = 0
        for p in directory.iterdir():
            if p.name != LOCK_FILE and p.is_file():
                freed += p.stat().st_size
                p.unlink()
        return freed
    finally:
        j.close()


class Journal:
    """One state directory, locked for this process: read what it holds, append durably, compact.

    ``versions`` names what writes the state (``{"driftline": ..., "moto": ...}``); a directory written
    by other versions is refused, naming both.
    """

    def __init__(self, directory: Path, versions: dict[str, str], warn: Callable[[str], None] = print) -> None:
        self.directory = directory
        self.versions = dict(versions)
        self.warn = warn
        self.generation = 0
        self._lock_fd: int | None = None
        self._file: BinaryIO | None = None
        self._write_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._written = 0  # bytes written to the journal (valid part)
        self._synced = 0
        self.failed: str | None = None
        """Why the journal refuses writes (after a failed write); None while healthy."""

    # ---- opening ----
    def open(self, fresh: bool = False) -> None:
        """Lock the directory and check its header (creating it when there is none); ``fresh`` empties it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            if fresh:
                self._wipe()
            header = self._read_header()
            if header is None:
                self._refuse_foreign()
                self._start_generation(1, snapshot=[])
            else:
                self.generation = int(header["generation"])
                for name in (self.snapshot_path, self.journal_path):
                    if not name.exists():
                        raise StateDirError(
                            f"{self.directory} is incomplete: {name.name} is missing (header generation "
                            f"{self.generation}). Nothing was loaded; start empty with `driftline local up --fresh`."
                        )
        except BaseException:
            self.close()
            raise

    def _lock(self) -> None:
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip()
            os.close(fd)
            raise StateInUseError(
                f"the state in {self.directory} is in use by another running local platform"
                + (f" (pid {holder})" if holder else "")
                + "; stop it with `driftline local down`, or give this one another --state-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def _read_header(self) -> dict[str, Any] | None:
        path = self.directory / HEADER_FILE
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise StateDirError(f"{path} is not valid JSON ({e}); nothing was loaded") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise StateDirError(
                f"{path} was not written by the Driftline local platform (format "
                f"{doc.get('format') if isinstance(doc, dict) else None!r}); "
                "refusing to use the directory. Choose another --state-dir."
            )
        if doc.get("format_version") != FORMAT_VERSION:
            raise StateDirError(
                f"{self.directory} holds local state format {doc.get('format_version')} (written by Driftline "
                f"{doc.get('driftline')}); this Driftline {self.versions.get('driftline')} reads format "
                f"{FORMAT_VERSION} only and has no migration for it. Use the Driftline that wrote it, or start "
                "empty with `driftline local up --fresh`."
            )
        theirs = {k: doc.get(k) for k in self.versions}
        if theirs != self.versions:
            differ = ", ".join(
                f"{k} {theirs[k]} (this one: {self.versions[k]})"
                for k in self.versions
                if theirs[k] != self.versions[k]
            )
            raise StateDirError(
                f"{self.directory} was written by another version: {differ}. The state is the emulator's own "
                "records, which change between versions, so it is refused rather than half-loaded. Use the "
                "versions that wrote it, or start empty with `driftline local up --fresh`."
            )
        if not isinstance(doc.get("generation"), int):
            raise StateDirError(f"{path} names no generation; nothing was loaded")
        return doc

    def _refuse_foreign(self) -> None:
        ours = {LOCK_FILE}
        other = sorted(p.name for p in self.directory.iterdir() if p.name not in ours and not p.name.startswith("."))
        if other:
            raise StateDirError(
                f"{self.directory} holds files but no {HEADER_FILE} ({', '.join(other[:5])}): it is not a "
                "Driftline local state (or lost its header). Refusing to use it; choose another --state-dir."
            )

    def _wipe(self) -> None:
        for p in self.directory.iterdir():
            if p.name != LOCK_FILE and p.is_file():
                p.unlink()

    # ---- files ----
    @property
    def snapshot_path(self) -> Path:
        return self.directory / f"snapshot-{self.generation}.dlj"

    @property
    def journal_path(self) -> Path:
        return self.directory / f"journal-{self.generation}.dlj"

    def _start_generation(self, generation: int, snapshot: Iterator[bytes] | list[bytes]) -> None:
        """Write the snapshot and an empty journal of ``generation``, then switch the header to it."""
        old = (self.snapshot_path, self.journal_path) if self.generation else ()
        snap = self.directory / f"snapshot-{generation}.dlj"
        journal = self.directory / f"journal-{generation}.dlj"
        tmp = snap.with_name(f".{snap.name}.tmp")
        with open(tmp, "wb") as f:
            for chunk in snapshot:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(snap)
        with open(journal, "wb") as f:
            os.fsync(f.fileno())
        header = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **self.versions,
            "generation": generation,
            "written_at": time.time(),
        }
        _write_durably(self.directory / HEADER_FILE, json.dumps(header, indent=2).encode())
        self.generation = generation
        for p in old:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    # ---- reading ----
    def load(self) -> tuple[list[Record], list[Record]]:
        """(snapshot records, journal records). A torn journal tail is cut off the file before appending."""
        snapshot, snap_end = read_records(self.snapshot_path)
        if snap_end != self.snapshot_path.stat().st_size:
            raise StateDirError(f"{self.snapshot_path} is incomplete; nothing was loaded")
        journal, valid = read_records(self.journal_path, self.warn)
        if valid != self.journal_path.stat().st_size:
            with open(self.journal_path, "r+b") as f:
                f.truncate(valid)
                os.fsync(f.fileno())
        return snapshot, journal

    # ---- writing ----
    def start_appending(self) -> None:
        self._file = open(self.journal_path, "ab", buffering=0)  # noqa: SIM115 - held open until close()
        self._written = self._synced = self._file.tell()

    def append(self, meta: dict[str, Any], blob: bytes = b"") -> int:
        """Write one record (not yet durable); returns the offset :meth:`sync` must reach. Callers that
        need records in the order their effects happened call this under their own lock."""
        data = encode_record(meta, blob)
        with self._write_lock:
            if self.failed is not None:
                raise JournalWriteError(self.failed)
            if self._file is None:
                raise JournalWriteError("the journal is not open for writing")
            try:
                view = memoryview(data)
                while view:
                    n = self._file.write(view)
                    view = view[n or 0 :]
            except OSError as e:
                self._fail(e)
            self._written += len(data)
            return self._written

    def sync(self, upto: int) -> None:
        """Make everything up to ``upto`` durable; one fsync serves every writer waiting meanwhile."""
        if self._synced >= upto:
            return
        with self._sync_lock:
            if self._synced >= upto:
                return
            if self.failed is not None:  # the record may have been cut off with the failed one
                raise JournalWriteError(self.failed)
            target = self._written
            if self._file is None:
                raise JournalWriteError("the journal is closed")
            try:
                os.fdatasync(self._file.fileno())
            except OSError as e:
                with self._write_lock:
                    self._fail(e)
            self._synced = target

    def _fail(self, e: OSError) -> None:
        """Cut the journal back to its last whole record and refuse every later write: a record that
        might be half on disk must not be followed by others."""
        self.failed = (
            f"the local platform could not write its state to {self.journal_path} ({e.strerror or e}); "
            "the write was not acknowledged and later writes are refused. Free space, then restart the "
            "platform: everything acknowledged before is kept"
        )
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.truncate(self._synced)
            self._written = self._synced
        raise JournalWriteError(self.failed) from e

    def journal_size(self) -> int:
        return self._written

    def compact(self, snapshot: Iterator[bytes]) -> None:
        """Start a new generation from ``snapshot`` (encoded records of the whole state); the caller
        holds writers off meanwhile."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._start_generation(self.generation + 1, snapshot)
        self.start_appending()

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
