"""The learning-rate schedule: char-rnn's step decay and the linear anneal to 0."""

import pytest

from fastrnn.schedule import PIECES, Schedule, anneal_start


def rates(schedule, last):
    return [schedule(i) for i in range(last)]


def test_without_decay_or_anneal_the_rate_is_constant():
    s = Schedule(0.1)
    assert rates(s, 50) == [0.1] * 50 and s.constant_until(7) is None


def test_step_decay_is_char_rnns():
    s = Schedule(0.08, (0.5, 10))
    assert rates(s, 25) == [0.08] * 10 + [0.04] * 10 + [0.02] * 5
    assert [s.constant_until(i) for i in (0, 9, 10, 19)] == [10, 10, 20, 20]


@pytest.mark.parametrize("start, end", [(0, 1), (3, 7), (20, 40), (100, 350), (1000, 5000),
                                        (7, 100_007)])
def test_the_anneal_is_a_staircase_down_the_line_to_zero(start, end):
    s = Schedule(2.0, anneal=(start, end))
    width = end - start
    steps = rates(s, end + 3)
    assert steps[:start] == [2.0] * start
    assert steps[end:] == [0.0] * 3
    window = steps[start:end]
    assert all(a >= b > 0 for a, b in zip(window, window[1:]))
    piece = -(-width // PIECES)  # iterations a step
    assert len(set(window)) == -(-width // piece) <= PIECES
    for i, rate in enumerate(window):  # within a step of the straight line to 0 at `end`
        assert abs(rate - 2.0 * (1 - (i + 0.5) / width)) <= 2.0 * piece / width
    if width % piece == 0:  # equal steps: their mean is the line's, 1.0
        assert sum(window) / width == pytest.approx(1.0)


@pytest.mark.parametrize("schedule", [Schedule(0.3, (0.9, 7)), Schedule(0.3, anneal=(10, 275)),
                                      Schedule(0.3, (0.5, 40), (30, 130))])
def test_the_rate_changes_only_where_constant_until_says(schedule):
    i = 0
    while i < 300:
        change = schedule.constant_until(i)
        if change is None:
            assert len(set(rates(schedule, 300)[i:])) == 1
            break
        assert change > i
        assert {schedule(k) for k in range(i, change)} == {schedule(i)}, (i, change)
        i = change


def test_decay_and_anneal_multiply():
    s = Schedule(1.0, (0.5, 10), (10, 20))  # the anneal's first step (of 10) is 0.95 of the rate
    assert s(9) == 1.0 and s(10) == pytest.approx(0.5 * 0.95) and s(19) == pytest.approx(0.5 * 0.05)


def test_where_the_anneal_starts():
    assert anneal_start(0.2, 1000) == 800
    assert anneal_start(1.0, 1000) == 0
    assert anneal_start(0.01, 10) == 9  # at least one iteration


def test_an_anneal_in_fewer_steps():
    s = Schedule(1.0, anneal=(10, 110, 4))  # four steps of 25 iterations
    assert sorted(set(rates(s, 110)[10:]), reverse=True) == [0.875, 0.625, 0.375, 0.125]
    assert [s.constant_until(i) for i in (9, 10, 34, 35, 109)] == [10, 35, 35, 60, 110]
