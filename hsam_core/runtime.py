"""Run-time switches shared by every chapter: quick mode, seeds, device, threads.

Quick mode (``HSAM_QUICK=1``, set by CI) shrinks epochs, data and ρ grids so the whole book runs
on two CPU cores in minutes; the default is the full mode whose outputs the book shows. Both are
read from :mod:`hsam_core.settings`, resolved once per process.
"""

from __future__ import annotations

import random
from typing import TypeVar

import numpy as np
import torch

from . import plotting, settings

T = TypeVar("T")


def quick_mode() -> bool:
    """True in quick mode (:func:`hsam_core.settings.get`; ``HSAM_QUICK=1``)."""
    return settings.get().quick


def pick(full: T, quick: T) -> T:
    """Return ``quick`` in quick mode, else ``full``: ``epochs = pick(700, 40)``."""
    return quick if quick_mode() else full


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def default_device() -> torch.device:
    """The device of :func:`hsam_core.settings.get`: ``HSAM_DEVICE``, else the first CUDA
    device when there is one, else the CPU."""
    return settings.get().torch_device()


def set_cpu_threads(n: int = 1) -> None:
    """Use ``n`` intra-op CPU threads.

    The models of this book are tiny (a 2→200→200→2 MLP, a 16-channel ConvNet): one thread is
    fastest, because thread start-up and synchronisation cost more than the matmuls they split,
    and two jobs with two threads each on a 2-core machine run ~10× slower than with one each.
    """
    torch.set_num_threads(n)


def setup_chapter(seed: int = 0) -> tuple[bool, torch.device]:
    """What every chapter runs first: one CPU thread (tiny models run fastest single-threaded;
    no effect on a GPU), the book's plot style, every generator seeded with ``seed``. Prints
    the mode and device and returns ``(quick mode, device)``."""
    set_cpu_threads(1)
    plotting.use_style()
    seed_everything(seed)
    quick, device = quick_mode(), default_device()
    print("quick mode:", quick, "| device:", device.type)
    return quick, device
