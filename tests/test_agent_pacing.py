"""Agent pacing: calls per free agent by mode, and the predictive ratio under its cap."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dialer_server.agent_pacing import (
    DAY_S,
    Mode,
    PredictivePacer,
    PredictiveSettings,
    calls_to_place,
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


def test_predictive_ratio_rises_while_abandons_stay_under_target() -> None:
    pacer = PredictivePacer()
    for i in range(200):
        pacer.answered(float(i), abandoned=False)
    assert pacer.current_ratio(200.0) == pacer.settings.max_ratio


def test_a_breach_of_the_cap_falls_back_to_ratio_one() -> None:
    pacer = PredictivePacer(PredictiveSettings(min_sample=1))
    for i in range(50):
        pacer.answered(float(i), abandoned=False)
    assert pacer.current_ratio(50.0) > 1.0
    for i in range(3):
        pacer.answered(51.0 + i, abandoned=True)  # 3 of 53 > 3 %
    assert pacer.current_ratio(60.0) == 1.0


def test_a_bad_month_keeps_the_fallback_after_the_day_recovers() -> None:
    pacer = PredictivePacer(PredictiveSettings(min_sample=1))
    for i in range(10):
        pacer.answered(float(i), abandoned=True)
    later = 2 * DAY_S
    for i in range(100):
        pacer.answered(later + i, abandoned=False)
    # The day is clean (0 %), the month is 10/110 > 3 %.
    assert pacer.day.rate() == 0.0
    assert pacer.current_ratio(later + 200) == 1.0


@given(st.lists(st.booleans(), min_size=1, max_size=400))
def test_whenever_a_window_is_over_the_cap_the_ratio_is_one(outcomes: list[bool]) -> None:
    pacer = PredictivePacer()
    for i, abandoned in enumerate(outcomes):
        now = float(i * 60)
        pacer.answered(now, abandoned=abandoned)
        ratio = pacer.current_ratio(now)
        assert pacer.settings.min_ratio <= ratio <= pacer.settings.max_ratio
        if pacer.day.rate() > 0.03 or pacer.month.rate() > 0.03:
            assert ratio == 1.0
