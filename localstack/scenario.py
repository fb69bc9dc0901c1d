"""The demo scenario against the real stacks deployed on LocalStack (``localstack/deploy.sh``).

Upload reference data → ingest curates it → a manual retrain request starts the workflow → the
workflow trains, gates and promotes v1 → the prediction API answers with it. Each step prints
what it waited for; any failure exits non-zero.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from driftline import config  # noqa: E402
from driftline.datasets.credit_default import generate  # noqa: E402
from driftline.platform import build_platform  # noqa: E402

ACCOUNT, REGION = "000000000000", "us-east-1"


def wait(what: str, probe: Any, timeout: float = 300.0) -> Any:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        result = probe()
        if result:
            print(f"  ok: {what} ({time.monotonic() - start:.1f} s)")
            return result
        time.sleep(2)
    sys.exit(f"timed out after {timeout:.0f} s waiting for: {what}")


def platform_feature_set(platform: Any, name: str) -> Any:
    from driftline.features.schema import FeatureSetCatalog

    return FeatureSetCatalog(ROOT / platform.config.feature_sets_dir).get(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--env", default="dev")
    args = ap.parse_args()
    platform = build_platform(config.load(ROOT / "cdk.json", args.env))
    model = platform.config.models[0]
    s3 = boto3.client("s3")
    bucket = platform.bucket_name("features", ACCOUNT, REGION)

    print("1. upload reference data")
    end = datetime.now(UTC)
    table = generate(5000, end - timedelta(days=60), end, seed=7)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    s3.put_object(Bucket=bucket, Key=f"incoming/{model.feature_set}/reference.parquet", Body=buf.getvalue())
    wait(
        "curated Parquet written",
        lambda: s3.list_objects_v2(Bucket=bucket, Prefix=f"curated/{model.feature_set}/").get("KeyCount", 0),
    )

    print("2. request retraining (manual trigger)")
    boto3.client("events").put_events(
        Entries=[
            {
                "Source": "driftline.cli",
                "DetailType": "RetrainRequested",
                "EventBusName": platform.event_bus,
                "Detail": json.dumps(
                    {"model": model.name, "requested_by": "localstack-scenario", "reason": "first model"}
                ),
            }
        ]
    )
    ddb = boto3.client("dynamodb")
    wait(
        "a champion in the registry",
        lambda: (
            ddb.get_item(
                TableName=platform.name("registry"),
                Key={"pk": {"S": f"MODEL#{model.name}"}, "sk": {"S": "ALIASES"}},
            )
            .get("Item", {})
            .get("champion")
        ),
        timeout=900,
    )

    print("3. call the prediction API")
    apis = boto3.client("apigateway").get_rest_apis()["items"]
    api_id = next(a["id"] for a in apis if a["name"] == platform.name("api"))
    url = f"http://localhost:4566/restapis/{api_id}/live/_user_request_"
    features = {f.name for f in platform_feature_set(platform, model.feature_set).features}
    row = {k: v for k, v in table.slice(0, 1).to_pylist()[0].items() if k in features}
    resp = requests.post(f"{url}/v1/models/{model.name}/predict", json={"records": [row]}, timeout=30)
    print(f"  {resp.status_code} {resp.text[:300]}")
    if resp.status_code != 200:
        sys.exit("prediction failed")
    print("LocalStack scenario passed")


if __name__ == "__main__":
    main()
