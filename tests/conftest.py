import pathlib

import numpy as np
import pytest

SHARED_TEXT = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


@pytest.fixture(autouse=True)
def _in_a_temporary_directory(tmp_path, monkeypatch):
    """Every test runs in its own temporary directory, so that a default output path (the
    commands' ./out) never meets what a user, or the README's own train command, left in the
    checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def text():
    """Real English text: tinyshakespeare from ../shared when present, else a generated stand-in."""
    if SHARED_TEXT.exists():
        return SHARED_TEXT.read_text(encoding="utf-8")[:200_000]
    # lines of sentences over every lowercase letter, capitals, punctuation and newlines
    # throughout (as in any slice of real text: tests cut the first 20,000 characters)
    rng = np.random.default_rng(0)
    words = ["the", "king", "and", "queen", "shall", "speak", "of", "love", "death", "my", "lord",
             "thou", "art", "what", "is", "this", "night", "to", "be", "or", "not", "quick",
             "brown", "fox", "jumps", "over", "lazy", "dog", "wizard", "vex", "yet", "o'er"]
    lines = [" ".join(rng.choice(words, rng.integers(3, 12))).capitalize()
             + str(rng.choice([".", ",", ";", ":", "!", "?", " -"])) for _ in range(5_000)]
    return "\n".join(lines)[:200_000] + "\n"


def _simulator_tests(session):
    return [item for item in getattr(session, "items", ())
            if item.name == "test_cuda_backend_in_the_simulator"]


def pytest_collection_finish(session):
    """Start the CUDA simulator's tests, in their own process, as soon as they are selected,
    so that they run beside the others (tests/test_cuda_simulator.py). Not when nothing will
    run, nor beside benchmarks (``--benchmark-only`` skips the test, and a second busy core
    would change the timings)."""
    options = session.config.option
    if options.collectonly or getattr(options, "benchmark_only", False):
        return
    for item in _simulator_tests(session):
        item.module.start()


def pytest_sessionfinish(session):
    """End the simulator's process if the session stopped before its test waited for it."""
    for item in _simulator_tests(session):
        item.module.stop()
