"""The rate limit holds in every 1-second window, whatever the arrival pattern."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer_server.engine.pacing import RateLimiter, capacity


def simulate(cps: float, arrivals: list[float]) -> list[float]:
    """Start each wanted call as soon as the limiter lets it; the start times."""
    limiter = RateLimiter(cps)
    starts: list[float] = []
    for wanted in sorted(arrivals):
        now = max(wanted, starts[-1] if starts else 0.0)
        now += limiter.wait_s(now)
        assert limiter.allowance(now) >= 1
        limiter.record(now)
        starts.append(now)
    return starts


@given(
    cps=st.sampled_from([0.2, 0.5, 1, 2, 2.5, 5, 10, 30]),
    arrivals=st.lists(st.floats(min_value=0, max_value=20), max_size=200),
)
def test_no_one_second_window_holds_more_calls_than_the_rate(
    cps: float, arrivals: list[float]
) -> None:
    starts = simulate(cps, arrivals)
    limit = max(1, int(cps))
    for i, first in enumerate(starts):
        # 1 µs of slack for float rounding, far below any carrier's resolution.
        in_window = [t for t in starts[i:] if t < first + 1.0 - 1e-6]
        assert len(in_window) <= limit
        if cps < 1:
            later = starts[i + 1 : i + 2]
            assert not later or later[0] - first >= 1 / cps - 1e-6


def test_a_burst_is_spread_over_seconds() -> None:
    starts = simulate(5, [0.0] * 12)
    assert starts[:5] == [0.0] * 5
    assert starts[5:10] == [1.0] * 5
    assert starts[10:] == [2.0] * 2


def test_capacity_is_bounded_by_free_lines_and_rate() -> None:
    limiter = RateLimiter(3)
    assert capacity(max_concurrent=10, in_flight=0, limiter=limiter, now=0.0) == 3
    assert capacity(max_concurrent=10, in_flight=9, limiter=limiter, now=0.0) == 1
    assert capacity(max_concurrent=10, in_flight=12, limiter=limiter, now=0.0) == 0
    limiter.record(0.0)
    limiter.record(0.1)
    assert capacity(max_concurrent=10, in_flight=0, limiter=limiter, now=0.5) == 1
    assert capacity(max_concurrent=10, in_flight=0, limiter=limiter, now=1.05) == 2


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)
