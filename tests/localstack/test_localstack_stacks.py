"""Checks against the real stacks deployed on LocalStack (localstack/deploy.sh). Skipped, with the
reason, when no LocalStack answers on 127.0.0.1:4566 — LocalStack needs Docker and an account."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENDPOINT = "http://127.0.0.1:4566"


def _localstack_running() -> bool:
    try:
        with urllib.request.urlopen(f"{ENDPOINT}/_localstack/health", timeout=1) as r:
            return "services" in json.loads(r.read())
    except (OSError, ValueError):
        return False


pytestmark = [
    pytest.mark.localstack,
    pytest.mark.skipif(
        not _localstack_running(),
        reason="LocalStack is not reachable on 127.0.0.1:4566 (it needs Docker and "
        "LOCALSTACK_AUTH_TOKEN; see localstack/deploy.sh). The moto-based local platform "
        "covers the same flows in tests/e2e.",
    ),
]


def test_deployed_buckets_and_tables_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    from driftline import config
    from driftline.platform import build_platform

    monkeypatch.setenv("AWS_ENDPOINT_URL", ENDPOINT)
    platform = build_platform(config.load(ROOT / "cdk.json", "dev"))
    names = {b["Name"] for b in boto3.client("s3", region_name="us-east-1").list_buckets()["Buckets"]}
    for b in platform.buckets:
        assert platform.bucket_name(b.logical, "000000000000", "us-east-1") in names
    tables = set(boto3.client("dynamodb", region_name="us-east-1").list_tables()["TableNames"])
    assert {platform.name(t.logical) for t in platform.tables} <= tables
