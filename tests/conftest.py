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
    rng = np.random.default_rng(0)
    words = ["the", "king", "and", "queen", "shall", "speak", "of", "love", "death", "my", "lord",
             "thou", "art", "what", "is", "this", "night", "to", "be", "or", "not"]
    return " ".join(rng.choice(words, 40_000)).capitalize() + ".\n"


SIMULATOR_TEST = "test_cuda_simulator.py::test_cuda_backend_in_the_simulator"


@pytest.hookimpl(trylast=True)  # after -k/-m have deselected what they deselect
def pytest_collection_modifyitems(config, items):
    """The CUDA simulator suite runs in a process of its own: when it is selected, move its test
    to the end and start the process now, so that it uses the second core while the rest of
    the suite runs (most of which is single-threaded kernel compilation)."""
    for item in items:
        if item.nodeid.endswith(SIMULATOR_TEST):
            items.remove(item)
            items.append(item)
            if item.module.have_numba_cuda():
                item.module.start()
            config.stash[_SIMULATOR] = item.module
            break


def pytest_sessionfinish(session):
    module = session.config.stash.get(_SIMULATOR, None)
    if module is not None:
        module.stop()


_SIMULATOR = pytest.StashKey()
