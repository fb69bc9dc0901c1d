"""Uploads of any size: a large CSV validated in parts (plan → one worker process per part → commit)
against the single-function path on the largest file it accepts (``ingest.max_file_mb``).

Everything runs against a moto server on this machine (S3, DynamoDB, EventBridge): the same code
the functions run, with each step in a fresh process, so "peak RSS" is one worker's high-water mark
(interpreter, imports, its part's bytes and tables), as one Lambda invocation would see it. Parts
run ``--workers`` at a time (the Distributed Map's concurrency on a machine with that many cores).
The data are credit_default rows with a bounded number of entities (the online store's writes are
per entity, and the emulator's DynamoDB is not what is measured here).

    python benchmarks/ingest_parts.py                # 1024 MB in parts vs 256 MB in one function
    python benchmarks/ingest_parts.py --quick        # 40 MB in parts vs 8 MB
    python benchmarks/ingest_parts.py --parts-mb 2048 --single-mb 512 --json out.json
    python benchmarks/ingest_parts.py --parts-mb 5120 --no-s3-hook   # moto's own S3 (whole object per GET)

The emulator runs in this process, so this process's peak RSS is the emulator's (plus the CSV
writer's one block). With the local platform's S3 hook (:mod:`driftline.local.s3_hook`, on unless
``--no-s3-hook``), a ranged GET reads only its bytes and a multipart upload is assembled on disk;
without it moto materialises the whole object for each ranged GET and the whole upload (several
copies) when the multipart upload completes. ``ranged_get_s`` is the mean of a few 1 MB ranged GETs
on the big upload, what each part's reads pay on top of their bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import print_table, write_json

ROOT = Path(__file__).resolve().parents[1]
FS = "credit_default"
MB = 1024 * 1024
ENTITIES = 2000
REGION = "us-east-1"


def _reset_peak() -> None:
    """Start this process's peak RSS afresh (Linux: a forked child inherits its parent's high-water mark)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_mb() -> float:
    """This process's peak RSS since :func:`_reset_peak` (``VmHWM``), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_csv(path: Path, megabytes: int, seed: int) -> int:
    """A CSV of at least ``megabytes`` MB: a generated block repeated with fresh timestamps; its row count.

    Written block by block (one 50k-row table in memory at a time), so the writer's memory does not
    grow with the file."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    from driftline.datasets.credit_default import generate

    block = generate(50_000, "2025-01-01", "2025-03-01", seed=seed)
    ts_type = block.schema.field("event_timestamp").type
    start = int(pc.min(block.column("event_timestamp")).as_py().timestamp() * 1_000_000)
    rows = 0
    with pacsv.CSVWriter(str(path), block.schema) as writer:
        while path.stat().st_size < megabytes * MB:
            n = block.num_rows
            ids = pa.array([f"C{(rows + i) % ENTITIES:07d}" for i in range(n)])
            ts = pa.array([start + (rows + i) * 1_000_000 for i in range(n)], pa.int64())
            chunk = block.set_column(0, "customer_id", ids)
            chunk = chunk.set_column(
                chunk.schema.get_field_index("event_timestamp"), "event_timestamp", ts.cast(ts_type)
            )
            writer.write_table(chunk)
            rows += n
    return rows


def _catalog(fs_dir: str) -> Any:
    from driftline.features.schema import FeatureSetCatalog

    return FeatureSetCatalog(fs_dir)


def run_single(obj: dict[str, Any], fs_dir: str) -> dict[str, Any]:
    """The single-function path on one upload, in this (fresh) process."""
    _reset_peak()
    from driftline.features.ingest import Ingestor, IngestTargets, S3Object

    t = time.perf_counter()
    result = Ingestor(_catalog(fs_dir), IngestTargets.from_env()).process(S3Object(**obj))
    return {"s": time.perf_counter() - t, "rows": result.rows_total, "status": result.status, "peak_mb": _peak_mb()}


def run_plan(obj: dict[str, Any], fs_dir: str, uid: str, bucket: str) -> dict[str, Any]:
    _reset_peak()
    from driftline import aws
    from driftline.features.ingest import S3Object
    from driftline.features.parts import WorkflowInput, plan_step

    t = time.perf_counter()
    inp = WorkflowInput(S3Object(**obj), _catalog(fs_dir).get(FS), uid, bucket)
    plan = plan_step(inp, aws.client("s3"))
    docs = [d.to_json().decode() for d in plan.parts]
    return {"s": time.perf_counter() - t, "parts": docs, "refused": plan.refused, "peak_mb": _peak_mb()}


def run_part(doc: str, fs_dir: str, bucket: str) -> dict[str, Any]:
    _reset_peak()
    import json

    from driftline import aws
    from driftline.features.parts import PartDescriptor, validate_part

    t = time.perf_counter()
    d = PartDescriptor.from_dict(json.loads(doc))
    result = validate_part(d, _catalog(fs_dir).get(FS), [], bucket, aws.client("s3"))
    return {"s": time.perf_counter() - t, "rows": result.rows_total, "status": result.status, "peak_mb": _peak_mb()}


def run_commit(obj: dict[str, Any], fs_dir: str, uid: str) -> dict[str, Any]:
    _reset_peak()
    from driftline.features.ingest import Ingestor, IngestTargets, S3Object
    from driftline.features.parts import commit_parts

    t = time.perf_counter()
    catalog = _catalog(fs_dir)
    result = commit_parts(S3Object(**obj), catalog.get(FS), uid, Ingestor(catalog, IngestTargets.from_env()))
    return {"s": time.perf_counter() - t, "rows": result.rows_total, "status": result.status, "peak_mb": _peak_mb()}


def _in_child(ctx: Any, fn: Any, *args: Any) -> dict[str, Any]:
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        return dict(pool.apply(fn, args))


def _upload(s3: Any, bucket: str, path: Path, name: str) -> dict[str, Any]:
    from driftline import aws

    key = f"incoming/{FS}/{name}"
    aws.s3_upload_file(s3, str(path), bucket, key)
    head = s3.head_object(Bucket=bucket, Key=key)
    return {
        "bucket": bucket,
        "key": key,
        "version_id": head.get("VersionId"),
        "etag": head["ETag"],
        "size": head["ContentLength"],
        "event_time": "2026-11-26T01:00:00Z",
    }


def probe_ranged_get(s3: Any, obj: dict[str, Any], n: int = 5, length: int = MB) -> float:
    """Mean seconds of ``n`` ranged GETs of ``length`` bytes spread over the object (what a part's reads cost)."""
    step = max(1, (obj["size"] - length) // max(1, n - 1))
    t = time.perf_counter()
    for i in range(n):
        start = min(i * step, max(0, obj["size"] - length))
        body = s3.get_object(Bucket=obj["bucket"], Key=obj["key"], Range=f"bytes={start}-{start + length - 1}")
        body["Body"].read()
    return (time.perf_counter() - t) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (40 MB in parts, 8 MB single)")
    ap.add_argument("--parts-mb", type=int, default=1024, help="size of the CSV validated in parts")
    ap.add_argument("--single-mb", type=int, default=256, help="max_file_mb: the single path's largest file")
    ap.add_argument("--workers", type=int, default=2, help="parts validated at a time")
    ap.add_argument("--json", default=None, help="write the results as flat JSON")
    ap.add_argument(
        "--no-s3-hook",
        action="store_true",
        help="moto's own S3 (ranged GETs read the whole object; multipart completion concatenates in memory)",
    )
    args = ap.parse_args()
    if args.quick:
        args.parts_mb, args.single_mb = 40, 8

    import boto3
    from moto.server import ThreadedMotoServer

    from driftline import aws, config
    from driftline.features.ingest import S3Object, upload_id
    from driftline.local.provision import provision_data
    from driftline.platform import build_platform

    hook: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if not args.no_s3_hook:
        from driftline.local.s3_hook import install_s3

        hook = install_s3()
    stack = contextlib.ExitStack()
    stack.enter_context(hook)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION=REGION,
        POWERTOOLS_TRACE_DISABLED="1",
    )
    session = boto3.session.Session(region_name=REGION)

    def clients(service: str) -> Any:
        return session.client(service)

    platform = build_platform(config.load(ROOT / "cdk.json", env="dev"))
    names = provision_data(platform, clients, REGION)
    env = names.env(platform)
    env.pop("INGEST_PARTS_STATE_MACHINE_ARN", None)
    os.environ.update(env)
    aws.reset_clients()
    bucket = env["FEATURES_BUCKET"]
    ctx = mp.get_context("spawn")
    rows_out: list[dict[str, Any]] = []
    results: dict[str, Any] = {
        "parts_mb": args.parts_mb,
        "single_mb": args.single_mb,
        "workers": args.workers,
        "s3_hook": not args.no_s3_hook,
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            text = (ROOT / "examples" / "feature_sets" / f"{FS}.yaml").read_text()
            (Path(tmp) / f"{FS}.yaml").write_text(text.replace("max_file_mb: 512", f"max_file_mb: {args.single_mb}"))
            s3 = clients("s3")

            single_csv = Path(tmp) / "single.csv"
            single_rows = write_csv(single_csv, int(args.single_mb * 0.97), seed=1)
            single = _in_child(ctx, run_single, _upload(s3, bucket, single_csv, "single.csv"), tmp)
            single_csv.unlink()
            assert single["status"] == "accepted" and single["rows"] == single_rows, single
            rows_out.append(
                {
                    "path": "single function",
                    "file_mb": args.single_mb,
                    "rows": single_rows,
                    "wall_s": single["s"],
                    "rows_per_s": single_rows / single["s"],
                    "peak_rss_mb_per_worker": single["peak_mb"],
                }
            )

            big_csv = Path(tmp) / "big.csv"
            t = time.perf_counter()
            big_rows = write_csv(big_csv, args.parts_mb, seed=2)
            results["generate_s"] = time.perf_counter() - t
            t = time.perf_counter()
            obj = _upload(s3, bucket, big_csv, "big.csv")
            results["upload_s"] = time.perf_counter() - t
            results["emulator_peak_rss_mb_after_upload"] = _peak_mb()
            big_csv.unlink()
            results["ranged_get_s"] = probe_ranged_get(s3, obj)
            uid = upload_id(S3Object(**obj))
            t0 = time.perf_counter()
            plan = _in_child(ctx, run_plan, obj, tmp, uid, bucket)
            assert plan["refused"] is None, plan["refused"]
            with ctx.Pool(args.workers, maxtasksperchild=1) as pool:
                parts = pool.starmap(run_part, [(doc, tmp, bucket) for doc in plan["parts"]])
            t_parts = time.perf_counter()
            commit = _in_child(ctx, run_commit, obj, tmp, uid)
            wall = time.perf_counter() - t0
            assert commit["status"] == "accepted" and commit["rows"] == big_rows, commit
            peak = max(p["peak_mb"] for p in parts)
            rows_out.append(
                {
                    "path": f"parts ({len(parts)} parts, {args.workers} at a time)",
                    "file_mb": args.parts_mb,
                    "rows": big_rows,
                    "wall_s": wall,
                    "rows_per_s": big_rows / wall,
                    "peak_rss_mb_per_worker": max(peak, plan["peak_mb"], commit["peak_mb"]),
                }
            )
            results.update(
                single_rows=single_rows,
                single_s=single["s"],
                single_rows_per_s=single_rows / single["s"],
                single_peak_rss_mb=single["peak_mb"],
                parts=len(parts),
                parts_rows=big_rows,
                parts_wall_s=wall,
                parts_rows_per_s=big_rows / wall,
                parts_plan_s=plan["s"],
                parts_validate_s=t_parts - t0 - plan["s"],
                parts_commit_s=commit["s"],
                parts_part_s_max=max(p["s"] for p in parts),
                parts_peak_rss_mb_part_max=peak,
                parts_peak_rss_mb_plan=plan["peak_mb"],
                parts_peak_rss_mb_commit=commit["peak_mb"],
            )
    finally:
        server.stop()
        stack.close()
    results["emulator_peak_rss_mb"] = _peak_mb()
    print_table(
        rows_out,
        ["path", "file_mb", "rows", "wall_s", "rows_per_s", "peak_rss_mb_per_worker"],
        title="ingest: single function vs parts (moto server, one process per step)",
    )
    print(
        f"parts: plan {results['parts_plan_s']:.1f} s, validation {results['parts_validate_s']:.1f} s "
        f"(slowest part {results['parts_part_s_max']:.1f} s), commit {results['parts_commit_s']:.1f} s; peak RSS "
        f"plan {results['parts_peak_rss_mb_plan']:.0f} MB, part {results['parts_peak_rss_mb_part_max']:.0f} MB, "
        f"commit {results['parts_peak_rss_mb_commit']:.0f} MB"
    )
    print(
        f"emulator (this process): peak RSS {results['emulator_peak_rss_mb']:.0f} MB "
        f"({results['emulator_peak_rss_mb_after_upload']:.0f} MB after the upload of {args.parts_mb} MB in "
        f"{results['upload_s']:.1f} s); a 1 MB ranged GET on it {results['ranged_get_s'] * 1000:.0f} ms; "
        f"S3 hook {'on' if results['s3_hook'] else 'off'}"
    )
    write_json(args.json, results)


if __name__ == "__main__":
    main()
