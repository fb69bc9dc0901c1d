"""The local platform keeps its data: ``down`` + ``up`` on the same state dir, and a ``kill -9``, give
back every acknowledged object version and item; ``up --fresh`` and ``reset`` start empty."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from tests.e2e.conftest import (
    OVERRIDES,
    LocalPlatformHandle,
    free_port,
    run_cli,
    start_platform,
    stop_platform,
    wait_for,
)


def _item_key(handle: LocalPlatformHandle, table: str, value: str) -> dict[str, Any]:
    schema = handle.client("dynamodb").describe_table(TableName=table)["Table"]["KeySchema"]
    return {k["AttributeName"]: {"S": f"{value}-{k['KeyType'].lower()}"} for k in schema}


def _write(handle: LocalPlatformHandle, tag: str) -> dict[str, Any]:
    s3, ddb = handle.client("s3"), handle.client("dynamodb")
    bucket, table = handle.bucket("artifacts"), handle.name("registry")
    v1 = s3.put_object(Bucket=bucket, Key=f"persist/{tag}.bin", Body=b"first", Metadata={"tag": tag})["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key=f"persist/{tag}.bin", Body=b"second")["VersionId"]
    key = _item_key(handle, table, tag)
    ddb.put_item(TableName=table, Item={**key, "stage": {"S": "champion"}, "n": {"N": "7"}})
    return {"bucket": bucket, "table": table, "key": key, "v1": v1, "v2": v2, "tag": tag}


def _check(handle: LocalPlatformHandle, written: dict[str, Any]) -> None:
    s3, ddb = handle.client("s3"), handle.client("dynamodb")
    key = f"persist/{written['tag']}.bin"
    first = s3.get_object(Bucket=written["bucket"], Key=key, VersionId=written["v1"])
    assert first["Body"].read() == b"first" and first["Metadata"] == {"tag": written["tag"]}
    latest = s3.get_object(Bucket=written["bucket"], Key=key)
    assert latest["VersionId"] == written["v2"] and latest["Body"].read() == b"second"
    item = ddb.get_item(TableName=written["table"], Key=written["key"], ConsistentRead=True).get("Item")
    assert item == {**written["key"], "stage": {"S": "champion"}, "n": {"N": "7"}}


def test_down_and_up_return_the_same_platform(tmp_path: Path) -> None:
    handle = start_platform(tmp_path, OVERRIDES)
    try:
        written = _write(handle, "clean")
    finally:
        stop_platform(handle)
    assert (tmp_path / "data" / "state.json").exists()
    handle = start_platform(tmp_path, OVERRIDES)
    try:
        _check(handle, written)
        log = (tmp_path / "local.log").read_text()
        assert "[local] restored" in log
    finally:
        stop_platform(handle)


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    handle = start_platform(tmp_path, OVERRIDES)
    try:
        written = _write(handle, "killed")
        os.kill(handle.pid, signal.SIGKILL)
        wait_for(
            lambda: not Path(f"/proc/{handle.pid}").exists() or "Z" in _proc_state(handle.pid),
            what="the platform process to die",
        )
    finally:
        stop_platform(handle)  # ends the workers the killed platform left
    handle = start_platform(tmp_path, OVERRIDES)
    try:
        _check(handle, written)
    finally:
        stop_platform(handle)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def _has_object(handle: LocalPlatformHandle, written: dict[str, Any]) -> bool:
    s3 = handle.client("s3")
    listed = s3.list_object_versions(Bucket=written["bucket"], Prefix="persist/").get("Versions", [])
    return any(v["VersionId"] == written["v1"] for v in listed)


def test_fresh_and_reset_start_empty(tmp_path: Path) -> None:
    handle = start_platform(tmp_path, OVERRIDES)
    try:
        written = _write(handle, "wiped")
        refused = run_cli("reset", "--yes", state_dir=tmp_path)
        assert refused.returncode == 1 and "stop it first" in refused.stderr
    finally:
        stop_platform(handle)
    handle = start_platform(tmp_path, OVERRIDES, "--fresh")
    try:
        assert not _has_object(handle, written)
        written = _write(handle, "again")
    finally:
        stop_platform(handle)
    declined = run_cli("reset", state_dir=tmp_path, input="n\n")
    assert declined.returncode == 1 and "Nothing deleted" in declined.stderr
    assert run_cli("reset", "--yes", state_dir=tmp_path).returncode == 0
    handle = start_platform(tmp_path, OVERRIDES)
    try:
        assert not _has_object(handle, written)
    finally:
        stop_platform(handle)


def test_a_foreign_state_dir_is_refused_with_the_reason(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "state.json").write_text(
        '{"format": "driftline-local-state", "format_version": 1, "driftline": "0.0.1", '
        '"moto": "4.0.0", "generation": 1}'
    )
    result = run_cli("up", "--detach", "--port", str(free_port()), "--api-port", str(free_port()), state_dir=tmp_path)
    assert result.returncode != 0
    assert "moto 4.0.0 (this one: " in result.stderr + result.stdout
