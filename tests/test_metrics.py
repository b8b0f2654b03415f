"""The run's loss history: bounded, and a function of the losses alone (``metrics.LossHistory``,
against ``helpers.loss_history``'s plain statement of it)."""

import numpy as np
import pytest

from fastrnn import metrics
from fastrnn.metrics import LossHistory
from tests.helpers import loss_history

CAP = 8


@pytest.fixture
def small_cap(monkeypatch):
    monkeypatch.setattr(metrics, "LOSS_ENTRIES", CAP)


def _fed(losses, rng, reload=0.0):
    """A history given ``losses`` in random pieces, reloaded from its entries now and then."""
    history, i = LossHistory(), 0
    while i < len(losses):
        k = int(rng.integers(1, 40))
        history.extend(losses[i:i + k])
        i += k
        if rng.random() < reload:  # (as a resume does, from a checkpoint)
            history = LossHistory(history.entries().copy(), history.iterations, history.stride)
    return history


def test_the_history_is_every_loss_up_to_the_cap_then_means_of_powers_of_two(small_cap):
    rng = np.random.default_rng(0)
    for n in [*range(0, 40), 63, 64, 65, 127, 128, 129, 200, 257, 1000, 1023]:
        losses = rng.random(n) * 100
        entries, stride, sizes = loss_history(losses.tolist(), CAP)
        for reload in (0.0, 0.5):  # the same bits however the losses came
            history = _fed(losses, rng, reload)
            assert history.iterations == n and history.stride == stride, n
            assert np.array_equal(history.entries(), entries), n
            assert len(entries) == LossHistory.count(n, stride) <= CAP + stride.bit_length()
            firsts, spans = history.spans()
            assert spans.tolist() == sizes and firsts.tolist() == np.cumsum([0] + sizes[:-1]
                                                                            ).tolist()[:len(sizes)]
        if n <= CAP:
            assert np.array_equal(entries, losses)  # one per iteration


def test_a_longer_history_than_the_cap_is_merged_as_if_it_had_come_one_by_one(small_cap,
                                                                              monkeypatch):
    losses = np.random.default_rng(1).random(100)
    history = LossHistory(losses, 100, 1)  # (an earlier checkpoint: one per iteration)
    entries, stride, _ = loss_history(losses.tolist(), CAP)
    assert history.stride == stride == 16 and np.array_equal(history.entries(), entries)
    assert history._entries.size <= CAP  # (the longer one's memory not kept)
    history.extend(losses[:17])  # 117 = 7 x 16 + 4 + 1
    assert np.array_equal(history.entries(), loss_history(np.r_[losses, losses[:17]].tolist(),
                                                          CAP)[0])
    monkeypatch.setattr(metrics, "LOSS_ENTRIES", 2)  # (one saved with more entries than now,
    entries, stride, _ = loss_history(np.r_[losses, losses[:17]].tolist(), 2)  # and a tail)
    again = LossHistory(history.entries(), 117, history.stride)
    assert again.stride == stride == 64 and np.array_equal(again.entries(), entries)


def test_the_sum_since_an_iteration_is_the_losses_where_entries_are_whole(small_cap):
    rng = np.random.default_rng(2)
    losses = rng.random(300)
    history = _fed(losses, rng)
    firsts, sizes = history.spans()
    means = history.entries()
    for start in range(0, 301):
        got = history.sum_since(start)
        if start in firsts or start == 300:  # (an entry's first iteration: the exact sum of
            np.testing.assert_allclose(got, losses[start:].sum(), rtol=1e-12)  # whole means)
        else:  # the entry it cuts counted by its share of iterations after ``start``
            k = np.searchsorted(firsts, start) - 1
            cut = means[k] * (firsts[k] + sizes[k] - start)
            np.testing.assert_allclose(got, cut + (means[k + 1:] * sizes[k + 1:]).sum(),
                                       rtol=1e-12)


def test_at_stride_one_the_history_and_its_sums_are_the_losses_bit_for_bit():
    rng = np.random.default_rng(3)
    losses = rng.random(5000) * 50
    history = _fed(losses, rng, reload=0.1)
    assert history.stride == 1 and np.array_equal(history.entries(), losses)
    for start in (0, 1, 17, 2500, 4999):
        assert history.sum_since(start) == float(losses[start:].sum())


@pytest.mark.parametrize("entries, iterations, stride", [
    (np.zeros(5), 4, 1), (np.zeros(3), 8, 4), (np.zeros(2), 9, 4), (np.zeros(3), 7, 2)])
def test_entries_that_do_not_fit_the_count_are_refused(entries, iterations, stride):
    with pytest.raises(ValueError, match=f"{len(entries)} loss entries for {iterations} "
                                         f"iterations"):
        LossHistory(entries, iterations, stride)


def test_loss_png_marks_a_curve_of_one_point():
    """A run's first record drew its training loss as a line of one point, which did not show
    (QA): a curve of one point is marked, as the validation's always are."""
    plt, why = metrics._pyplot()  # (off screen)
    if plt is None:
        pytest.skip(why)
    record = {"iteration": 10, "train_loss": 3.9, "val_loss": 3.7}
    for records, training in (([record], "o"), ([record, dict(record, iteration=20)], "None")):
        drawn = []
        assert metrics._draw(plt, records, lambda fig: drawn.extend(
            (line.get_label(), line.get_marker()) for line in fig.axes[0].lines)) is None
        assert drawn == [("training", training), ("validation", "o")]


def test_loss_png_counts_iterations_in_whole_numbers():
    """A curve of one point, or of a few iterations, was drawn on an axis of fractions of an
    iteration (-0.04 to 0.04: QA); its ticks are whole iterations."""
    plt, why = metrics._pyplot()
    if plt is None:
        pytest.skip(why)
    for iterations in ([0], [5], [1, 2], [0, 5000, 10000]):
        records = [{"iteration": i, "train_loss": None, "val_loss": 3.7} for i in iterations]
        ticks = []

        def save(fig):
            fig.canvas.draw()
            ticks.extend(fig.axes[0].get_xticks())
        assert metrics._draw(plt, records, save) is None
        assert ticks and all(t == round(t) for t in ticks), (iterations, ticks)
