"""Agent pacing: calls per free agent by mode, and the predictive ratio under its cap."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from dialer_server.engine.agent_pacing import (
    DAY_S,
    Mode,
    PacingStats,
    PredictivePacer,
    PredictiveSettings,
    breached,
    calls_to_place,
    predictive_ratio,
)


def test_progressive_places_one_call_per_free_agent() -> None:
    assert calls_to_place(Mode.PROGRESSIVE, free_agents=3, ringing=0, ratio=2.5) == 3
    assert calls_to_place(Mode.PROGRESSIVE, free_agents=3, ringing=2) == 1
    assert calls_to_place(Mode.PROGRESSIVE, free_agents=0, ringing=0) == 0


def test_power_places_a_fixed_ratio_less_what_already_rings() -> None:
    assert calls_to_place(Mode.POWER, free_agents=4, ringing=0, ratio=1.5) == 6
    assert calls_to_place(Mode.POWER, free_agents=4, ringing=5, ratio=1.5) == 1
    assert calls_to_place(Mode.POWER, free_agents=4, ringing=9, ratio=1.5) == 0


@given(
    mode=st.sampled_from(list(Mode)),
    free=st.integers(-2, 50),
    ringing=st.integers(0, 200),
    ratio=st.floats(0.1, 5.0),
)
def test_never_negative_and_never_more_than_ratio_allows(
    mode: Mode, free: int, ringing: int, ratio: float
) -> None:
    n = calls_to_place(mode, free_agents=free, ringing=ringing, ratio=ratio)
    assert n >= 0
    effective = 1.0 if mode is Mode.PROGRESSIVE else max(ratio, 1.0)
    assert n + ringing <= max(ringing, max(free, 0) * effective + 1e-6)


# A campaign with a long clean history: the abandon trim does not bite.
CLEAN = PacingStats(day_answered=2000, month_answered=20000)


def test_predictive_dials_one_over_the_answer_rate_with_a_clean_history() -> None:
    stats = PacingStats(**{**vars(CLEAN), "recent_calls": 100, "recent_answered": 40})
    assert predictive_ratio(stats) == 2.5


def test_the_ratio_is_capped_by_max_ratio() -> None:
    stats = PacingStats(**{**vars(CLEAN), "recent_calls": 100, "recent_answered": 10})
    assert predictive_ratio(stats) == 3.0
    assert predictive_ratio(stats, PredictiveSettings(max_ratio=4.5)) == 4.5


def test_a_young_campaign_starts_progressive_and_earns_its_ratio() -> None:
    young = PacingStats(day_answered=5, month_answered=5, recent_calls=50, recent_answered=25)
    assert predictive_ratio(young) == 1.0
    # 60 answered, none abandoned: one more abandon would be 1/61 = 1.6 %: part of the way.
    learning = PacingStats(day_answered=60, month_answered=60, recent_calls=50, recent_answered=25)
    assert 1.0 < predictive_ratio(learning) < 2.0
    # 150: one more would be 1/151 = 0.7 %, under 1 %: the full ratio.
    seasoned = PacingStats(
        day_answered=150, month_answered=150, recent_calls=50, recent_answered=25
    )
    assert predictive_ratio(seasoned) == 2.0


def test_calls_in_flight_beyond_the_free_agents_count_as_at_risk() -> None:
    # 10 calls out at a 40 % answer rate: 4 answers expected for 1 free agent.
    stats = PacingStats(recent_calls=100, recent_answered=40, ringing=10, free_agents=1)
    assert stats.at_risk() == 3
    assert PacingStats(ringing=2, free_agents=5).at_risk() == 0
    # No result yet: every call in flight may be answered.
    assert PacingStats(ringing=4, free_agents=1).at_risk() == 3
    # With 120 answered and none abandoned, 1 + 3 more abandons would be 3.3 %: no over-dial.
    crowded = PacingStats(**{**vars(stats), "day_answered": 120, "month_answered": 120})
    assert predictive_ratio(crowded) == 1.0
    calm = PacingStats(**{**vars(crowded), "ringing": 2})
    assert predictive_ratio(calm) == 2.5
    # 18 agents on calls of 12 s on average: 3 free up within a 2 s grace time.
    freeing = PacingStats(
        **{**vars(crowded), "busy_agents": 18, "mean_talk_s": 12.0, "grace_s": 2.0}
    )
    assert freeing.at_risk() == 0 and predictive_ratio(freeing) == 2.5


def test_between_the_margin_and_the_target_the_ratio_is_trimmed() -> None:
    # Next abandon: 15/1001 = 1.5 %: half way from 1 % (2 x target - cap) to the 2 % target.
    stats = PacingStats(
        day_answered=1000,
        day_abandoned=14,
        month_answered=1000,
        month_abandoned=14,
        recent_calls=100,
        recent_answered=50,
    )
    assert abs(predictive_ratio(stats) - (1.0 + 1.0 * (0.02 - 15 / 1001) / 0.01)) < 1e-9
    # At the target and above, no over-dialling, though the cap is not reached.
    at_target = PacingStats(**{**vars(stats), "day_abandoned": 20, "month_abandoned": 20})
    assert predictive_ratio(at_target) == 1.0


def test_a_breach_of_the_cap_falls_back_to_ratio_one() -> None:
    stats = PacingStats(
        day_answered=100,
        day_abandoned=4,
        month_answered=5000,
        month_abandoned=4,
        recent_calls=100,
        recent_answered=30,
    )
    assert breached(stats, 0.03)
    assert predictive_ratio(stats) == 1.0


def test_a_bad_month_keeps_the_fallback_after_the_day_recovers() -> None:
    pacer = PredictivePacer(PredictiveSettings(min_sample=1))
    for i in range(10):
        pacer.answered(float(i), abandoned=True)
    later = 2 * DAY_S
    for i in range(100):
        pacer.dialled(answered=True)
        pacer.answered(later + i, abandoned=False)
    assert pacer.current_ratio(later + 200) == 1.0
    # The day is clean (0 %), the month is 10/110 > 3 %.
    assert pacer.day.rate() == 0.0 and pacer.month.rate() > 0.03


def test_the_pacer_follows_the_answer_rate_once_it_has_history() -> None:
    pacer = PredictivePacer()
    for i in range(200):
        pacer.dialled(answered=i % 2 == 0)
        if i % 2 == 0:
            pacer.answered(float(i), abandoned=False)
    assert pacer.current_ratio(200.0) == 2.0


_counts = st.integers(0, 5000)


@st.composite
def pacing_stats(draw: st.DrawFn) -> PacingStats:
    day_answered = draw(_counts)
    day_abandoned = draw(st.integers(0, day_answered))
    month_answered = day_answered + draw(_counts)
    month_abandoned = day_abandoned + draw(st.integers(0, month_answered - day_answered))
    recent_calls = draw(st.integers(0, 500))
    return PacingStats(
        day_answered=day_answered,
        day_abandoned=day_abandoned,
        month_answered=month_answered,
        month_abandoned=month_abandoned,
        recent_calls=recent_calls,
        recent_answered=draw(st.integers(0, recent_calls)),
        ringing=draw(st.integers(0, 100)),
        free_agents=draw(st.integers(0, 50)),
        busy_agents=draw(st.integers(0, 50)),
        mean_talk_s=draw(st.none() | st.floats(0.0, 600.0)),
        grace_s=draw(st.floats(1.0, 60.0)),
    )


@st.composite
def predictive_settings(draw: st.DrawFn) -> PredictiveSettings:
    cap = draw(st.floats(0.001, 0.5))
    return PredictiveSettings(
        abandon_cap=cap,
        abandon_target=draw(st.floats(0.0005, cap)),
        max_ratio=draw(st.floats(1.0, 5.0)),
        start_ratio=draw(st.floats(1.0, 5.0)),
    )


@given(pacing_stats(), predictive_settings())
def test_the_ratio_stays_in_bounds_and_is_one_on_a_breach(
    stats: PacingStats, settings: PredictiveSettings
) -> None:
    ratio = predictive_ratio(stats, settings)
    assert 1.0 <= ratio <= settings.max_ratio
    if stats.day_rate() > settings.abandon_cap or stats.month_rate() > settings.abandon_cap:
        assert ratio == 1.0


@given(pacing_stats(), predictive_settings())
def test_over_dialling_never_risks_crossing_the_target(
    stats: PacingStats, settings: PredictiveSettings
) -> None:
    """Above ratio 1, even if the calls at risk and the next one were all abandoned,
    both windows would still be under the target (and so the cap)."""
    if predictive_ratio(stats, settings) > 1.0:
        pending = stats.at_risk() + 1
        day = (stats.day_abandoned + pending) / (stats.day_answered + 1)
        month = (stats.month_abandoned + pending) / (stats.month_answered + 1)
        assert day < settings.abandon_target and month < settings.abandon_target


@given(pacing_stats(), st.integers(1, 20))
def test_more_abandons_never_raise_the_ratio(stats: PacingStats, more: int) -> None:
    worse = PacingStats(
        **{
            **vars(stats),
            "day_abandoned": min(stats.day_answered, stats.day_abandoned + more),
            "month_abandoned": stats.month_abandoned
            + min(stats.day_answered, stats.day_abandoned + more)
            - stats.day_abandoned,
        }
    )
    assert predictive_ratio(worse) <= predictive_ratio(stats) + 1e-12


@given(st.lists(st.booleans(), min_size=1, max_size=400))
def test_whenever_a_window_is_over_the_cap_the_ratio_is_one(outcomes: list[bool]) -> None:
    pacer = PredictivePacer()
    for i, abandoned in enumerate(outcomes):
        now = float(i * 60)
        pacer.dialled(answered=True)
        pacer.answered(now, abandoned=abandoned)
        ratio = pacer.current_ratio(now)
        assert pacer.settings.min_ratio <= ratio <= pacer.settings.max_ratio
        if pacer.day.rate() > 0.03 or pacer.month.rate() > 0.03:
            assert ratio == 1.0


def test_a_simulated_predictive_campaign_stays_under_the_cap() -> None:
    """A crude queue: 20 agents, 40 % answer; abandons happen when answers outnumber
    free agents. The pacer's own rate never ends above the cap."""
    rng = random.Random(7)
    pacer = PredictivePacer()
    busy_until = [0.0] * 20
    for step in range(20_000):
        now = float(step)
        free = [i for i, t in enumerate(busy_until) if t <= now]
        n = calls_to_place(
            Mode.PREDICTIVE,
            free_agents=len(free),
            ringing=0,
            ratio=pacer.current_ratio(now, free_agents=len(free)),
        )
        for _ in range(n):
            answered = rng.random() < 0.4
            pacer.dialled(answered=answered)
            if not answered:
                continue
            if free:
                busy_until[free.pop()] = now + rng.uniform(20, 60)
                pacer.answered(now, abandoned=False)
            else:
                pacer.answered(now, abandoned=True)
    assert pacer.day.answered > 1000
    assert pacer.day.rate() <= 0.03
