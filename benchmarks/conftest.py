"""Shared set-up for the benchmark suites.

``pytest --benchmark-only`` times them; a plain ``pytest`` run executes each once with timing
off (a correctness check, so the benchmarks never rot). At the end of a timed run a table gives
each case's median and its speed relative to the NumPy reference measured in the same run, and
the corpus the cases read (tinyshakespeare from ../shared, or synthetic text where it is missing).
"""

import numpy as np
import pytest

from benchmarks.describe import SHARED_TEXT
from fastrnn import Vocab

SYNTHETIC_SIZE = 1_115_394  # characters, as many as tinyshakespeare's
CORPORA = {  # the fixture's ``source``: what the summary says of it
    "tinyshakespeare": f"tinyshakespeare ({SHARED_TEXT})",
    "synthetic": f"synthetic ({SYNTHETIC_SIZE:,} characters drawn uniformly from 65, seed 0; "
                 f"{SHARED_TEXT} was not found)",
}


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if not (config.getoption("benchmark_only", False)
            or config.getoption("benchmark_enable", False)):
        config.option.benchmark_disable = True


@pytest.fixture(scope="session")
def corpus():
    """(vocab, ids, source): tinyshakespeare when ../shared has it, else synthetic text."""
    if SHARED_TEXT.exists():
        text, source = SHARED_TEXT.read_text(encoding="utf-8"), "tinyshakespeare"
    else:
        rng = np.random.default_rng(0)
        letters = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?'-\n&$3")
        text, source = "".join(rng.choice(letters, SYNTHETIC_SIZE)), "synthetic"
    vocab = Vocab.from_text(text)
    return vocab, vocab.encode(text), source


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled or not session.benchmarks:
        return
    rows = {}
    for bench in session.benchmarks:
        info = bench.extra_info
        if "case" in info:
            rows.setdefault(info["case"], {})[info["backend"]] = (bench.stats.median, info)
    if not rows:
        return
    tr = terminalreporter
    tr.section("fastrnn: speed relative to the NumPy reference (same run)")
    sources = sorted({info.get("corpus", "not recorded") for r in rows.values()
                      for _, info in r.values()})
    tr.write_line("corpus: " + "; ".join(CORPORA.get(s, s) for s in sources))
    tr.write_line(f"{'case':<46}{'backend':<9}{'median':>12}{'chars/s':>12}{'GFLOP/s':>9}"
                  f"{'x numpy':>9}{'% peak':>8}")
    for case, by_backend in rows.items():
        base = by_backend.get("numpy")
        for backend, (median, info) in by_backend.items():
            ratio = f"{base[0] / median:.2f}" if base else "-"
            cps = info.get("chars_per_call", 0) / median
            flops = cps * info.get("flops_per_char", 0) / 1e9
            peak = f"{100 * flops / info['peak_gflops']:.0f}" if info.get("peak_gflops") else ""
            speed = f"{cps:>12,.0f}{flops:>9.2f}" if cps else " " * 21  # (no characters read)
            tr.write_line(f"{case:<46}{backend:<9}{median * 1e6:>10.1f}us{speed}"
                          f"{ratio:>9}{peak:>8}")
    peaks = {round(info["peak_gflops"]) for r in rows.values() for _, info in r.values()
             if info.get("peak_gflops")}
    if peaks:
        tr.write_line(f"machine peak (float32 2048^3 np.matmul, all cores, this run): "
                      f"{', '.join(map(str, sorted(peaks)))} GFLOP/s")
