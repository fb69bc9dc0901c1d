"""Traffic routing and capture sampling: sticky per request id, proportional, independent."""

from __future__ import annotations

from driftline.serving.traffic import bucket, canary_rows, sampled

IDS = [f"req-{i}:0" for i in range(20_000)]


def test_routing_is_sticky_and_deterministic() -> None:
    assert canary_rows(IDS[:500], 30) == canary_rows(IDS[:500], 30)
    assert [bucket(r) for r in IDS[:50]] == [bucket(r) for r in IDS[:50]]


def test_canary_share_matches_percent() -> None:
    for percent in (1, 10, 20, 50):
        share = sum(canary_rows(IDS, percent)) / len(IDS)
        assert abs(share - percent / 100) < 0.01, (percent, share)
    assert not any(canary_rows(IDS[:100], 0))
    assert all(canary_rows(IDS[:100], 100))


def test_a_larger_canary_keeps_the_rows_of_a_smaller_one() -> None:
    small, large = canary_rows(IDS, 10), canary_rows(IDS, 20)
    assert all(b for a, b in zip(small, large, strict=True) if a)


def test_sampling_share_and_independence_from_routing() -> None:
    keep = sampled(IDS, 0.25)
    assert abs(sum(keep) / len(IDS) - 0.25) < 0.01
    routed = canary_rows(IDS, 20)
    both = sum(1 for k, r in zip(keep, routed, strict=True) if k and r) / len(IDS)
    assert abs(both - 0.25 * 0.20) < 0.01  # independent decisions
    assert all(sampled(IDS[:10], 1.0)) and not any(sampled(IDS[:10], 0.0))
