"""How fast a campaign may dial: pure logic, the clock is passed in.

A campaign has two limits: calls in flight (``max_concurrent_calls``) and calls
started per second (``max_calls_per_second``). The rate limit holds in *every*
1-second window, not on average: carriers count bursts. A rate below 1 is a
minimum spacing instead (0.5 -> one call every 2 s); a fractional rate above 1
is rounded down (2.5 -> 2 per second), since half a call cannot be started.
"""

from __future__ import annotations

import math
from collections import deque

# Float slack, so that waiting exactly wait_s() always frees a slot.
_EPSILON_S = 1e-9


class RateLimiter:
    """Start times of recent calls, and how many more may start now."""

    def __init__(self, calls_per_second: float) -> None:
        if calls_per_second <= 0:
            raise ValueError("calls_per_second must be > 0")
        if calls_per_second >= 1:
            self.burst = math.floor(calls_per_second)
            self.window_s = 1.0
        else:
            self.burst = 1
            self.window_s = 1.0 / calls_per_second
        self._starts: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._starts and self._starts[0] <= now - self.window_s + _EPSILON_S:
            self._starts.popleft()

    def allowance(self, now: float) -> int:
        """How many calls may start at ``now`` without breaking the limit."""
        self._expire(now)
        return self.burst - len(self._starts)

    def wait_s(self, now: float) -> float:
        """Seconds until one more call may start (0 if it may start now)."""
        self._expire(now)
        if len(self._starts) < self.burst:
            return 0.0
        return max(0.0, self._starts[0] + self.window_s - now)

    def record(self, now: float) -> None:
        """A call started at ``now`` (monotonic seconds)."""
        self._expire(now)
        self._starts.append(now)


def capacity(*, max_concurrent: int, in_flight: int, limiter: RateLimiter, now: float) -> int:
    """How many contacts to claim now: free lines, bounded by the rate."""
    return max(0, min(max_concurrent - in_flight, limiter.allowance(now)))
