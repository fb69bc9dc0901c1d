"""The training step builds the per-segment reference the scheduled check needs (``drift.segments``)."""

from __future__ import annotations

from typing import Any

from driftline.config import DriftSettings, ModelConfig
from driftline.contracts import SEGMENT_OTHER
from driftline.drift import Profile
from driftline.training.core import train_model


def test_training_profiles_each_configured_segment(credit_fs: Any) -> None:
    from driftline.datasets.credit_default import generate

    table = generate(2000, "2026-01-01", "2026-04-01", seed=3)
    cfg = ModelConfig(
        name="credit-default",
        feature_set="credit_default",
        params={"max_iter": 20},
        retrain={"min_training_rows": 200},  # type: ignore[arg-type]
        drift=DriftSettings(segments=("region",), max_segments=3),
    )
    tm = train_model(table, credit_fs, cfg)
    profile = Profile.from_json(tm.profile_json(credit_fs, "credit-default", 1, 5000))
    seg = profile.segments["region"]
    assert len(seg.values) == 3 and set(seg.segments) == {*seg.values, SEGMENT_OTHER}
    north = seg.profiles[seg.values[0]]
    assert "region" not in north.columns and "prediction" not in north.columns
    assert 0 < north.n_rows < profile.n_rows
    unsegmented = ModelConfig(name="credit-default", feature_set="credit_default", params={"max_iter": 20})
    plain = train_model(table, credit_fs, unsegmented.model_copy(update={"retrain": cfg.retrain}))
    assert Profile.from_json(plain.profile_json(credit_fs, "credit-default", 1, 5000)).segments == {}
