"""Fixtures shared by the unit tests."""

import pytest
import torch

import hsam_core as hc


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one CPU thread; restore the thread count afterwards."""
    threads = torch.get_num_threads()
    hc.set_cpu_threads(1)
    yield
    torch.set_num_threads(threads)
