"""Placement: calls spread over the usable PBXs by free capacity, never over a limit."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dialer_server.engine.placement import PbxLoad, Placer


def _loads(specs: list[tuple[int, int | None, float]]) -> list[PbxLoad]:
    return [
        PbxLoad(f"pbx{i}", in_use, limit, share) for i, (in_use, limit, share) in enumerate(specs)
    ]


def test_calls_land_in_proportion_to_the_limits() -> None:
    placer = Placer(_loads([(0, 40, 40.0), (0, 20, 20.0)]))
    placed = [placer.take() for _ in range(60)]
    assert placed.count("pbx0") == 40
    assert placed.count("pbx1") == 20
    # Along the way too: after every third call, two went to the larger PBX.
    placer = Placer(_loads([(0, 40, 40.0), (0, 20, 20.0)]))
    for n in range(1, 31):
        placer.take()
        if n % 3 == 0:
            assert placer.placed() == {"pbx0": 2 * n // 3, "pbx1": n // 3}


def test_a_full_pbx_gets_nothing_and_its_share_goes_to_the_others() -> None:
    placer = Placer(_loads([(40, 40, 40.0), (5, 20, 20.0)]))
    assert placer.free == 15
    assert [placer.take() for _ in range(16)] == ["pbx1"] * 15 + [None]
    assert placer.free == 0


def test_calls_already_up_count_against_their_pbx() -> None:
    # pbx0 has 30 of its 40 lines in use, pbx1 none of its 20: pbx1 first.
    placer = Placer(_loads([(30, 40, 40.0), (0, 20, 20.0)]))
    assert [placer.take() for _ in range(15)].count("pbx1") == 15


def test_weights_override_the_limits_while_both_have_room() -> None:
    placer = Placer(_loads([(0, 100, 3.0), (0, 100, 1.0)]))
    placed = [placer.take() for _ in range(40)]
    assert (placed.count("pbx0"), placed.count("pbx1")) == (30, 10)


def test_only_one_pbx_may_be_asked_for() -> None:
    placer = Placer(_loads([(0, 10, 10.0), (0, 1, 1.0)]))
    assert placer.take(only="pbx1") == "pbx1"
    assert placer.take(only="pbx1") is None
    assert placer.take(only="pbx9") is None
    assert placer.take() == "pbx0"


def test_a_pbx_without_a_limit_is_never_full() -> None:
    placer = Placer(_loads([(500, None, 1.0)]))
    assert placer.free is None
    assert all(placer.take() == "pbx0" for _ in range(1000))


_PBX = st.tuples(
    st.integers(min_value=0, max_value=60),
    st.one_of(st.none(), st.integers(min_value=0, max_value=60)),
    st.sampled_from([0.5, 1.0, 2.0, 7.0, 20.0, 40.0]),
)


@given(st.lists(_PBX, min_size=1, max_size=5), st.integers(min_value=0, max_value=200))
def test_no_pbx_over_its_limit_and_every_call_to_the_least_loaded(
    specs: list[tuple[int, int | None, float]], calls: int
) -> None:
    loads = _loads(specs)
    placer = Placer(loads)
    free = placer.free
    taken = [placer.take() for _ in range(calls)]
    placed = [name for name in taken if name is not None]
    # As many calls as there was room for, then none.
    expected = calls if free is None else min(calls, free)
    assert len(placed) == expected
    assert taken[: len(placed)] == placed
    counts = placer.placed()
    for load in loads:
        used = load.in_use + counts.get(load.name, 0)
        if load.limit is not None:
            # Never over a limit; a PBX already over it (a limit lowered) gets nothing.
            assert counts.get(load.name, 0) == 0 or used <= load.limit
    # Greedy fairness: the last call a PBX got went to it when its load per share
    # was no higher than any PBX that still had room afterwards.
    for got in loads:
        n = counts.get(got.name, 0)
        if n == 0:
            continue
        before = (got.in_use + n - 1) / got.share
        for other in loads:
            used = other.in_use + counts.get(other.name, 0)
            if other.limit is None or used < other.limit:
                assert before <= used / other.share + 1e-9
