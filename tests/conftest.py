"""Fixtures shared by the unit tests."""

import pytest
import torch

import hsam_core as hc
from hsam_core import settings


@pytest.fixture(autouse=True)
def scratch_store(tmp_path_factory):
    """Every test reads and writes a results store and a cache of its own, never the book's
    store (book/results/store) or the user's cache; the mode stays the environment's."""
    root = tmp_path_factory.mktemp("hsam")
    settings.reset()
    settings.configure(store=root / "store", cache=root / "cache")
    yield settings.get()
    settings.reset()


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one CPU thread; restore the thread count afterwards."""
    threads = torch.get_num_threads()
    hc.set_cpu_threads(1)
    yield
    torch.set_num_threads(threads)
