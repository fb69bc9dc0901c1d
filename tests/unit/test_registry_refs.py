"""Pure helpers of the registry: artifact references and principal matching."""

from __future__ import annotations

import pytest

from driftline.registry.artifacts import ArtifactRef, split_s3_uri
from driftline.registry.store import principal_matches

LEAD = "arn:aws:iam::111111111111:role/ml-lead"


def test_artifact_ref_round_trips_and_rejects_garbage() -> None:
    ref = ArtifactRef("s3://b/models/m/v1/model.onnx", "ab" * 32, "v-1", 12)
    assert ArtifactRef.from_dict(ref.to_dict()) == ref
    assert (ref.bucket, ref.key) == ("b", "models/m/v1/model.onnx")
    with pytest.raises(ValueError, match="malformed"):
        ArtifactRef.from_dict({"uri": "s3://b/k"})


@pytest.mark.parametrize("uri", ["b/k", "s3://b", "s3:///k", "https://b/k"])
def test_bad_s3_uris_are_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="not an S3 URI"):
        split_s3_uri(uri)


@pytest.mark.parametrize(
    ("principal", "ok"),
    [
        (LEAD, True),
        ("arn:aws:sts::111111111111:assumed-role/ml-lead/alice", True),
        ("arn:aws:sts::222222222222:assumed-role/ml-lead/alice", False),
        ("arn:aws:sts::111111111111:assumed-role/ml-lead-2/alice", False),
        ("arn:aws:iam::111111111111:user/ml-lead", False),
        ("alice", False),
    ],
)
def test_principal_matching(principal: str, ok: bool) -> None:
    assert principal_matches(principal, [LEAD]) is ok


def test_role_with_path_matches_its_session() -> None:
    assert principal_matches("arn:aws:sts::1:assumed-role/lead/s", ["arn:aws:iam::1:role/team/lead"])
