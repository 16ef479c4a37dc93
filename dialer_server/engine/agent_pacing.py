"""How many calls to place for the agents who are free: pure logic, clock passed in.

- progressive: one call per free agent, never more;
- power: a fixed ratio of calls per free agent (answer rates below 1/ratio
  then keep agents busy, above it callers wait and some abandon);
- predictive: the ratio follows the measured answer rate (about 1 / answer
  rate calls per free agent, so that one of them is answered), trimmed by the
  abandon rate. An abandoned call is an answered call that reached no agent
  within the grace time (2 s) or hung up first. The rate is kept under a cap
  (default 3 % of answered calls) over a rolling 24 h *and* 30 days, steering
  for an internal target (2 %) below it, so that chance has a margin; when
  either window breaches the cap the ratio falls back to 1.0 (progressive)
  until it recovers.

The predictive ratio is a function of counts (``PacingStats``) that the
scheduler reads from the database, so a restarted daemon, or another one
taking the campaign over, paces from the same numbers.
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
    # Call results needed before the measured answer rate is trusted over start_ratio.
    min_sample: int = 20
    start_ratio: float = 1.2


@dataclasses.dataclass(frozen=True)
class PacingStats:
    """What a predictive campaign has done, as counted in the database.

    ``day_*`` and ``month_*``: answered calls (by a person: reached an agent or
    abandoned) and abandoned calls over the last 24 h and 30 days.
    ``recent_calls`` / ``recent_answered``: the latest call results (any
    outcome) and how many of them were answered by a person: the answer rate.
    ``ringing`` / ``free_agents``: calls in flight now that may still need an
    agent, and the agents free for them. ``busy_agents``, ``mean_talk_s`` (of
    the latest calls agents took; None before any) and ``grace_s`` (how long an
    answered caller waits for an agent): agents on a call free up while a
    caller waits, about busy x grace / mean talk of them.
    """

    day_answered: int = 0
    day_abandoned: int = 0
    month_answered: int = 0
    month_abandoned: int = 0
    recent_calls: int = 0
    recent_answered: int = 0
    ringing: int = 0
    free_agents: int = 0
    busy_agents: int = 0
    mean_talk_s: float | None = None
    grace_s: float = 2.0

    def day_rate(self) -> float:
        return _rate(self.day_abandoned, self.day_answered)

    def month_rate(self) -> float:
        return _rate(self.month_abandoned, self.month_answered)

    def answer_rate(self) -> float | None:
        """Of the latest calls, the share a person answered; None before any result."""
        return self.recent_answered / self.recent_calls if self.recent_calls else None

    def at_risk(self) -> int:
        """Calls in flight expected to be answered beyond the agents there will be for
        them (free now, or freeing up within the grace time), rounded up."""
        rate = self.answer_rate()
        expected = self.ringing * (1.0 if rate is None else rate)
        freeing = 0.0
        if self.mean_talk_s is not None and self.mean_talk_s > 0:
            freeing = self.busy_agents * min(1.0, self.grace_s / self.mean_talk_s)
        return max(0, math.ceil(expected - self.free_agents - freeing - 1e-9))


def _rate(abandoned: int, answered: int) -> float:
    return abandoned / answered if answered > 0 else 0.0


def calls_to_place(mode: Mode, *, free_agents: int, ringing: int, ratio: float = 1.0) -> int:
    """New calls to originate now, given free agents and calls already ringing for them."""
    if free_agents <= 0:
        return 0
    if mode is Mode.PROGRESSIVE:
        ratio = 1.0
    wanted = math.floor(free_agents * max(ratio, 1.0) + 1e-9)
    return max(0, wanted - ringing)


def breached(stats: PacingStats, cap: float) -> bool:
    """Whether either window's abandon rate is over the cap."""
    return stats.day_rate() > cap or stats.month_rate() > cap


def predictive_ratio(stats: PacingStats, settings: PredictiveSettings | None = None) -> float:
    """Calls per free agent for a predictive campaign; always within [min_ratio, max_ratio].

    The base is 1 / answer rate: the calls it takes for one answer. It is
    trimmed by the abandon rate the windows would have *if the next call were
    abandoned too*, and with it the calls in flight expected to be answered
    beyond the free agents (``at_risk``): the base stands up to as far below
    the target as the cap is above it (1 % for 2 % and 3 %), from the target
    on it is trimmed to min_ratio, linearly between; so the rate settles
    under the target, and the cap keeps a margin for chance. Counting
    the next abandon makes a young campaign (few answered calls, where one
    abandon is a big share) start like a progressive one and earn its ratio,
    and keeps the calls already out from crossing the cap. Over the cap in
    either window: min_ratio (1.0) until the rate is back under it.
    """
    s = settings or PredictiveSettings()
    if breached(stats, s.abandon_cap):
        return s.min_ratio
    if stats.recent_calls >= s.min_sample and stats.recent_answered > 0:
        base = stats.recent_calls / stats.recent_answered
    elif stats.recent_calls >= s.min_sample:
        base = s.max_ratio  # nobody answers: as many lines as allowed
    else:
        base = s.start_ratio
    pending = stats.at_risk() + 1
    worst = max(
        _rate(stats.day_abandoned + pending, stats.day_answered + 1),
        _rate(stats.month_abandoned + pending, stats.month_answered + 1),
    )
    low = max(0.0, 2 * s.abandon_target - s.abandon_cap)
    if worst >= s.abandon_target:
        trim = 0.0
    elif worst <= low:
        trim = 1.0
    else:
        trim = (s.abandon_target - worst) / (s.abandon_target - low)
    ratio = s.min_ratio + (base - s.min_ratio) * trim
    return min(s.max_ratio, max(s.min_ratio, ratio))


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
    """The predictive ratio of a campaign followed in memory (simulations, tests).

    The daemon reads the same counts from the database instead (scheduler.py);
    both go through ``predictive_ratio``.
    """

    def __init__(self, settings: PredictiveSettings | None = None, recent: int = 200) -> None:
        self.settings = settings or PredictiveSettings()
        self.day = AbandonWindow(DAY_S)
        self.month = AbandonWindow(MONTH_S)
        self._recent: deque[bool] = deque(maxlen=recent)

    def dialled(self, *, answered: bool) -> None:
        """A call's result: answered by a person or not (busy, no answer, machine...)."""
        self._recent.append(answered)

    def answered(self, now: float, *, abandoned: bool) -> None:
        """An answered call's fate: reached an agent in time, or abandoned."""
        self.day.add(now, abandoned=abandoned)
        self.month.add(now, abandoned=abandoned)

    def stats(self, now: float, ringing: int = 0, free_agents: int = 0) -> PacingStats:
        self.day.expire(now)
        self.month.expire(now)
        return PacingStats(
            day_answered=self.day.answered,
            day_abandoned=self.day.abandoned,
            month_answered=self.month.answered,
            month_abandoned=self.month.abandoned,
            recent_calls=len(self._recent),
            recent_answered=sum(self._recent),
            ringing=ringing,
            free_agents=free_agents,
        )

    def breached(self, now: float) -> bool:
        return breached(self.stats(now), self.settings.abandon_cap)

    def current_ratio(self, now: float, ringing: int = 0, free_agents: int = 0) -> float:
        return predictive_ratio(self.stats(now, ringing, free_agents), self.settings)
