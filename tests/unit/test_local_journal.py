"""The state directory's journal: durable appends, a torn tail dropped with a warning, anything else
damaged or foreign refused whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from driftline.local import journal as jr
from driftline.local.journal import Journal, JournalWriteError, StateDirError, StateInUseError

VERSIONS = {"driftline": "0.1.0", "moto": "5.2.5"}


def _open(directory: Path, versions: dict[str, str] | None = None, warnings: list[str] | None = None) -> Journal:
    j = Journal(directory, versions or VERSIONS, warn=(warnings.append if warnings is not None else print))
    j.open()
    return j


def _write(directory: Path, n: int) -> None:
    j = _open(directory)
    j.load()
    j.start_appending()
    for i in range(n):
        j.sync(j.append({"t": "x", "i": i}, bytes([i]) * i))
    j.close()


def test_appends_come_back_in_order_with_their_bytes(tmp_path: Path) -> None:
    _write(tmp_path, 5)
    j = _open(tmp_path)
    snapshot, records = j.load()
    assert snapshot == []
    assert [(r.meta["i"], r.blob) for r in records] == [(i, bytes([i]) * i) for i in range(5)]
    j.close()


def test_each_sync_reaches_the_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    j = _open(tmp_path)
    j.load()
    j.start_appending()
    end = j.append({"t": "x"})
    assert not synced
    j.sync(end)
    j.sync(end)  # already durable: no second fsync
    assert len(synced) == 1
    j.close()


def test_a_torn_last_record_is_dropped_with_a_warning(tmp_path: Path) -> None:
    _write(tmp_path, 3)
    path = tmp_path / "journal-1.dlj"
    whole = path.read_bytes()
    path.write_bytes(whole + jr.encode_record({"t": "x", "i": 99}, b"abcdef")[:-3])  # cut mid-record
    warnings: list[str] = []
    j = _open(tmp_path, warnings=warnings)
    _, records = j.load()
    assert [r.meta["i"] for r in records] == [0, 1, 2]
    assert warnings and "cut short" in warnings[0]
    assert path.read_bytes() == whole  # the torn bytes are cut off before appending resumes
    j.close()


def test_a_last_record_with_a_bad_checksum_is_a_torn_write(tmp_path: Path) -> None:
    _write(tmp_path, 2)
    path = tmp_path / "journal-1.dlj"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    warnings: list[str] = []
    j = _open(tmp_path, warnings=warnings)
    assert [r.meta["i"] for r in j.load()[1]] == [0]
    assert "checksum" in warnings[0]
    j.close()


def test_damage_before_the_end_refuses_the_whole_directory(tmp_path: Path) -> None:
    _write(tmp_path, 3)
    path = tmp_path / "journal-1.dlj"
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF  # inside the first record, two whole records follow
    path.write_bytes(bytes(data))
    j = _open(tmp_path)
    with pytest.raises(StateDirError, match=r"corrupt.*followed by more data.*Nothing was loaded"):
        j.load()
    j.close()


def test_another_version_is_refused_naming_both(tmp_path: Path) -> None:
    _write(tmp_path, 1)
    with pytest.raises(StateDirError, match=r"moto 5\.2\.5 \(this one: 5\.3\.0\)"):
        _open(tmp_path, {"driftline": "0.1.0", "moto": "5.3.0"})
    with pytest.raises(StateDirError, match=r"driftline 0\.1\.0 \(this one: 0\.2\.0\)"):
        _open(tmp_path, {"driftline": "0.2.0", "moto": "5.2.5"})


def test_another_format_version_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, 1)
    header = json.loads((tmp_path / "state.json").read_text())
    header["format_version"] = 7
    (tmp_path / "state.json").write_text(json.dumps(header))
    with pytest.raises(StateDirError, match=r"format 7.*reads format 1 only"):
        _open(tmp_path)


@pytest.mark.parametrize("text", ["{not json", '{"format": "something-else"}', "[]"])
def test_a_corrupt_or_foreign_header_is_refused(tmp_path: Path, text: str) -> None:
    (tmp_path / "state.json").write_text(text)
    with pytest.raises(StateDirError):
        _open(tmp_path)


def test_a_folder_of_other_files_is_not_taken_over(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(StateDirError, match="not a Driftline local state"):
        _open(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_missing_generation_file_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, 1)
    (tmp_path / "journal-1.dlj").unlink()
    with pytest.raises(StateDirError, match="incomplete"):
        _open(tmp_path)


def test_the_directory_is_locked_while_open(tmp_path: Path) -> None:
    j = _open(tmp_path)
    with pytest.raises(StateInUseError, match=f"pid {os.getpid()}"):
        _open(tmp_path)
    j.close()
    _open(tmp_path).close()


def test_fresh_empties_the_state(tmp_path: Path) -> None:
    _write(tmp_path, 3)
    j = Journal(tmp_path, VERSIONS)
    j.open(fresh=True)
    assert j.load() == ([], [])
    j.close()


def test_compaction_switches_generation_atomically(tmp_path: Path) -> None:
    _write(tmp_path, 3)
    j = _open(tmp_path)
    j.load()
    j.start_appending()
    j.compact(iter([jr.encode_record({"t": "snap"})]))
    j.sync(j.append({"t": "after"}))
    j.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".dlj") == ["journal-2.dlj", "snapshot-2.dlj"]
    j = _open(tmp_path)
    snapshot, records = j.load()
    assert [r.meta["t"] for r in snapshot] == ["snap"] and [r.meta["t"] for r in records] == ["after"]
    j.close()


def test_a_failed_write_is_loud_and_stops_later_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = _open(tmp_path)
    j.load()
    j.start_appending()
    j.sync(j.append({"t": "kept"}))

    def full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", full)
    end = j.append({"t": "lost"})
    with pytest.raises(JournalWriteError, match=r"No space left on device.*not acknowledged"):
        j.sync(end)
    with pytest.raises(JournalWriteError):
        j.append({"t": "later"})
    monkeypatch.undo()
    j.close()
    j = _open(tmp_path)
    assert [r.meta["t"] for r in j.load()[1]] == ["kept"]  # the unacknowledged record was cut off
    j.close()
