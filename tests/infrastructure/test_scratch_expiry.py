"""Scratch data expires: the scale-out check's shard files and summaries (``drift-scratch/`` in the captures
bucket) and Athena's query results (``athena-results/`` in the reports bucket) are deleted by S3 lifecycle
rules after ``SCRATCH_EXPIRE_DAYS``, their noncurrent versions a day later, instead of growing forever."""

from __future__ import annotations

from typing import Any

from driftline.contracts import (
    ATHENA_RESULTS_PREFIX,
    DRIFT_SCRATCH_PREFIX,
    INGEST_SCRATCH_PREFIX,
    SCRATCH_EXPIRE_DAYS,
    TRAINING_SCRATCH_PREFIX,
)
from tests.infrastructure.conftest import Synth

SCRATCH = {
    "captures": (f"{DRIFT_SCRATCH_PREFIX}/",),
    "reports": (f"{ATHENA_RESULTS_PREFIX}/",),
    # Athena training-set builds' label events and UNLOADs; uploads validated in parts
    "features": (f"{TRAINING_SCRATCH_PREFIX}/", f"{INGEST_SCRATCH_PREFIX}/"),
}
"""Bucket (logical name) -> its scratch prefixes."""


def _rules(synth: Synth, logical: str) -> list[dict[str, Any]]:
    name = logical.capitalize() + "Bucket"
    (bucket,) = [
        r for lid, r in synth.resources("AWS::S3::Bucket", "data").items() if lid.split("/")[1].startswith(name)
    ]
    return list(bucket["Properties"]["LifecycleConfiguration"]["Rules"])


def test_scratch_prefixes_expire_with_their_noncurrent_versions(synth: Synth) -> None:
    declared = {b.logical: dict(b.scratch_prefixes) for b in synth.platform.buckets}
    assert {b: declared[b] for b in SCRATCH} == {b: dict.fromkeys(ps, SCRATCH_EXPIRE_DAYS) for b, ps in SCRATCH.items()}
    for logical, prefix in ((b, p) for b, ps in SCRATCH.items() for p in ps):
        rules = [r for r in _rules(synth, logical) if r.get("Prefix") == prefix]
        assert len(rules) == 1, (logical, _rules(synth, logical))
        rule = rules[0]
        assert rule["Status"] == "Enabled"
        assert rule["ExpirationInDays"] == SCRATCH_EXPIRE_DAYS
        assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 1
