"""The local Athena's memory bounds: a query beyond DuckDB's memory limit spills inside its own sandbox
directory (never into the emulator's working directory), and JSON objects copied out of S3 in several
reads arrive whole."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from driftline.athena_tables import Column, TableSpec
from driftline.local import athena
from driftline.local.athena import AthenaEngine, EngineOptions, InMemoryCatalog

BUCKET, DB = "bkt", "db"
BIG_SORT = (
    "SELECT count(*) FROM (SELECT i, ROW_NUMBER() OVER (PARTITION BY i % 1000 ORDER BY i DESC) AS r, "
    "repeat('x', 64) || CAST(i AS varchar) AS s FROM UNNEST(sequence(1, 1500000)) AS t(i) ORDER BY s) WHERE r = 1"
)


def test_a_query_beyond_the_memory_limit_spills_inside_its_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # DuckDB's default spill folder is ./.tmp of the process
    e = AthenaEngine(InMemoryCatalog({DB: {}}), pafs.LocalFileSystem(), EngineOptions(memory_limit="24MB"))
    try:
        where = e.wait(e.start("SELECT current_setting('temp_directory')", database=DB), timeout_s=60)
        assert where.state == "SUCCEEDED", where.reason
        spill = Path(str(where.rows[0][0]))
        assert spill.name == "spill" and spill.parent.name.startswith("driftline-athena-")
        assert not spill.parent.exists()  # the query's folder (and its spill files) went with the query
        big = e.wait(e.start(BIG_SORT, database=DB), timeout_s=120)
        assert big.state == "SUCCEEDED", big.reason
        assert big.rows == [["1000"]]
        assert list(tmp_path.iterdir()) == []
    finally:
        e.shutdown()


def test_json_objects_copied_in_many_reads_arrive_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(athena, "COPY_CHUNK_BYTES", 7)  # many reads per object, a line split across reads
    folder = tmp_path / BUCKET / "reqs"
    folder.mkdir(parents=True)
    (folder / "a.jsonl").write_text("".join(json.dumps({"id": f"r{i}", "x": i / 2}) + "\n" for i in range(50)))
    spec = TableSpec(DB, "reqs", "b", "reqs/", (Column("id", "string"), Column("x", "double")), "json-lines")
    fs = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    e = AthenaEngine(InMemoryCatalog({DB: {"reqs": spec.table_input(BUCKET)}}), fs)
    try:
        ex = e.wait(e.start("SELECT count(*), sum(x), max(id) FROM reqs", database=DB), timeout_s=60)
        assert ex.state == "SUCCEEDED", ex.reason
        assert ex.rows == [["50", "612.5", "r9"]]
    finally:
        e.shutdown()
