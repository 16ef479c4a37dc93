"""How many calls to place for the agents who are free: pure logic, clock passed in.

- progressive: one call per free agent, never more;
- power: a fixed ratio of calls per free agent (answer rates below 1/ratio
  then keep agents busy, above it callers wait and some abandon);
- predictive: the ratio adapts to the measured abandon rate. An abandoned
  call is an answered call that reached no agent within the grace time (2 s)
  or hung up first. The rate is kept under a cap (default 3 % of answered
  calls) over a rolling 24 h *and* 30 days, steering for an internal target
  (2 %); when either window breaches the cap the ratio falls back to 1.0
  (progressive) until it recovers.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from enum import StrEnum


class Mode(StrEnum):
    PROGRESSIVE = "progressive"
    POWER = "power"
    PREDICTIVE = "predictive"


DAY_S = 86400.0
MONTH_S = 30 * DAY_S


@dataclasses.dataclass(frozen=True)
class PredictiveSettings:
    abandon_cap: float = 0.03
    abandon_target: float = 0.02
    min_ratio: float = 1.0
    max_ratio: float = 3.0
    # How far one adjustment moves the ratio.
    step: float = 0.05
    # Answered calls needed before the measured rate is trusted over the start ratio.
    min_sample: int = 20
    start_ratio: float = 1.2


def calls_to_place(mode: Mode, *, free_agents: int, ringing: int, ratio: float = 1.0) -> int:
    """New calls to originate now, given free agents and calls already ringing for them."""
    if free_agents <= 0:
        return 0
    if mode is Mode.PROGRESSIVE:
        ratio = 1.0
    wanted = math.floor(free_agents * max(ratio, 1.0) + 1e-9)
    return max(0, wanted - ringing)


class AbandonWindow:
    """Answered and abandoned calls over a rolling window (times in seconds)."""

    def __init__(self, span_s: float) -> None:
        self.span_s = span_s
        self._events: deque[tuple[float, bool]] = deque()
        self.answered = 0
        self.abandoned = 0

    def add(self, now: float, *, abandoned: bool) -> None:
        self._events.append((now, abandoned))
        self.answered += 1
        self.abandoned += int(abandoned)

    def expire(self, now: float) -> None:
        while self._events and self._events[0][0] <= now - self.span_s:
            _, abandoned = self._events.popleft()
            self.answered -= 1
            self.abandoned -= int(abandoned)

    def rate(self) -> float:
        return self.abandoned / self.answered if self.answered else 0.0


class PredictivePacer:
    """The adaptive ratio of a predictive campaign."""

    def __init__(self, settings: PredictiveSettings | None = None) -> None:
        self.settings = settings or PredictiveSettings()
        self.ratio = self.settings.start_ratio
        self.day = AbandonWindow(DAY_S)
        self.month = AbandonWindow(MONTH_S)

    def answered(self, now: float, *, abandoned: bool) -> None:
        """An answered call's fate: reached an agent in time, or abandoned."""
        self.day.add(now, abandoned=abandoned)
        self.month.add(now, abandoned=abandoned)
        self._adjust(now)

    def breached(self, now: float) -> bool:
        self.day.expire(now)
        self.month.expire(now)
        cap = self.settings.abandon_cap
        return self.day.rate() > cap or self.month.rate() > cap

    def current_ratio(self, now: float) -> float:
        return self.settings.min_ratio if self.breached(now) else self.ratio

    def _adjust(self, now: float) -> None:
        s = self.settings
        if self.breached(now):
            self.ratio = s.min_ratio
            return
        if self.day.answered < s.min_sample:
            return
        # Steer on the worse of the two windows, so a good day cannot hide a bad month.
        rate = max(self.day.rate(), self.month.rate())
        if rate < s.abandon_target:
            self.ratio = min(s.max_ratio, self.ratio + s.step)
        elif rate > s.abandon_target:
            self.ratio = max(s.min_ratio, self.ratio - 2 * s.step)
