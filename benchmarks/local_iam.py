"""Local IAM enforcement overhead per call (issue 18): the p50 of S3 PutObject (1 KiB) and DynamoDB
PutItem over HTTP against the emulator (moto server app, in this process, hooks of
``driftline.local.iam_enforcement`` installed), signed with a function role's session (checked: signature,
the role's policy, the control-table key deny) vs. with the emulator's root credentials (not checked),
interleaved in rounds in one run so both see the same machine load.

    .venv/bin/python benchmarks/local_iam.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from typing import Any

from _common import print_table, write_json

ACCOUNT, REGION = "123456789012", "us-east-1"


def _serve(app: Any) -> tuple[Any, str]:
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            pass

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def bench(n: int, rounds: int) -> dict[str, float]:
    import boto3
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from driftline.config import PlatformConfig
    from driftline.local.iam_enforcement import LocalIam, enforced
    from driftline.platform import build_platform

    platform = build_platform(
        PlatformConfig.model_validate({"models": [{"name": "credit", "feature_set": "credit_default"}]})
    )
    server, endpoint = _serve(DomainDispatcherApplication(create_backend_app))
    root = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    bucket = platform.bucket_name("features", ACCOUNT, REGION)
    table = platform.name("online")
    iam = LocalIam(platform, ACCOUNT, REGION)
    times: dict[str, list[float]] = {}
    try:
        with enforced(iam):
            s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **root)
            ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION, **root)
            s3.create_bucket(Bucket=bucket)
            ddb.create_table(
                TableName=table,
                BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            )
            creds = iam.credentials("ingest")
            session = {
                "aws_access_key_id": creds["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": creds["AWS_SECRET_ACCESS_KEY"],
                "aws_session_token": creds["AWS_SESSION_TOKEN"],
            }
            clients = {
                "unchecked": (s3, ddb),
                "checked": (
                    boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **session),
                    boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION, **session),
                ),
            }
            body = os.urandom(1024)
            for _ in range(rounds):
                for label, (c3, cd) in clients.items():
                    for i in range(n):
                        t = time.perf_counter()
                        c3.put_object(Bucket=bucket, Key=f"incoming/{label}/{i}", Body=body)
                        times.setdefault(f"s3_put_{label}", []).append(time.perf_counter() - t)
                        t = time.perf_counter()
                        cd.put_item(TableName=table, Item={"pk": {"S": f"{label}#{i}"}})
                        times.setdefault(f"ddb_put_{label}", []).append(time.perf_counter() - t)
    finally:
        server.shutdown()
    out = {f"{k}_p50_ms": statistics.median(v) * 1000 for k, v in times.items()}
    for op in ("s3_put", "ddb_put"):
        out[f"{op}_overhead_p50_ms"] = out[f"{op}_checked_p50_ms"] - out[f"{op}_unchecked_p50_ms"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    n, rounds = (50, 2) if args.quick else (300, 4)
    results = bench(n, rounds)
    print_table(
        [
            {
                "call": op,
                "unchecked p50 ms": results[f"{op}_unchecked_p50_ms"],
                "checked p50 ms": results[f"{op}_checked_p50_ms"],
                "overhead p50 ms": results[f"{op}_overhead_p50_ms"],
            }
            for op in ("s3_put", "ddb_put")
        ],
        title=f"local IAM enforcement, {n * rounds} calls each, interleaved",
    )
    write_json(args.json, results)


if __name__ == "__main__":
    main()
