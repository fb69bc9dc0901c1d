"""Drift engine: build a reference profile once, check current windows against it.

    from driftline.drift import build_profile, check_drift
    profile = build_profile(train_df, numerical=["age", "income"], categorical=["region"])
    profile.save("profile.json")
    result = check_drift(profile, current_df)
    result.to_dict()["share_drifted"]

Defaults follow Evidently's ``DataDriftPreset`` (see :mod:`driftline.drift.methods`). Large
windows can be summarized in shards (:func:`summarize`), merged (:meth:`Summary.merge`) and
checked with :func:`check_summary`. Multivariate drift (a change in how features relate, which
per-column tests miss) is fitted with the profile and reported as ``result.multivariate``
(:mod:`driftline.drift.multivariate`). ``build_profile(..., segments=["region"])`` keeps a reference per
most frequent value of a categorical column and ``check_drift(..., segments=["region"])`` judges each
segment of a window against it (``result.segments``), so a shift confined to one region is seen.
numpy and pyarrow only; pandas is used when you pass it.
"""

from driftline.drift.engine import (
    ColumnResult,
    DriftResult,
    SegmentColumnResult,
    SegmentResult,
    check_drift,
    check_summary,
    verify_metadata,
)
from driftline.drift.errors import DriftInputError, ProfileFormatError, ProfileMismatchError
from driftline.drift.feature_set import build_profile_for_feature_set, feature_set_metadata
from driftline.drift.multivariate import MultivariateModel, MultivariateResult
from driftline.drift.profile import Profile, SegmentSet, build_profile
from driftline.drift.summary import Summary, summarize

__all__ = [
    "ColumnResult",
    "DriftInputError",
    "DriftResult",
    "MultivariateModel",
    "MultivariateResult",
    "Profile",
    "ProfileFormatError",
    "ProfileMismatchError",
    "SegmentColumnResult",
    "SegmentResult",
    "SegmentSet",
    "Summary",
    "build_profile",
    "build_profile_for_feature_set",
    "check_drift",
    "check_summary",
    "feature_set_metadata",
    "summarize",
    "verify_metadata",
]
