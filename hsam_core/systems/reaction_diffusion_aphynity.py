"""Reaction–diffusion with APHYNITY's own ConvNet: which of our choices breaks its 2.3 %?

APHYNITY (Yin et al., 2021) reports a 2.3 % error of (a, b) on this system with its regularizer
and 67.6 % without. Chapter 7's hybrid differs from the one in its authors' code
(``networks.py``, ``ConvNetEstimator``) in the network only; this module swaps it in:

    Conv 3×3 (2→16, no bias) → BatchNorm → ReLU → Conv 3×3 (16→16, no bias) → BatchNorm → ReLU
    → Conv 3×3 (16→2),

with **zero** padding (so it cannot represent the periodic Laplacian at the borders of the
square) and BatchNorm on the statistics of each batch (``track_running_stats=False``: the output
for one state depends on the other states it is evaluated with), PyTorch's default
initialisation (its output is not zero at the start). Data, physics, training and APHYNITY's
settings are those of :mod:`hsam_core.systems.reaction_diffusion`; the remaining differences —
one learning rate 10⁻³ for θ and network, minibatches of 64 whole trajectories, 1600 training
trajectories — are the training budget, not the model.

``grid()``, ``task()``, ``SEEDS`` and ``TRAINING`` follow the convention of
``python -m hsam_core.experiments reaction_diffusion_aphynity``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..experiments import Config, Model
from ..hybrid import HybridODE
from ..train import Method
from . import reaction_diffusion as rd

SEEDS = rd.SEEDS
TRAINING = rd.TRAINING
task = rd.task  # the same data, splits and true θ as chapter 7
LABEL = "APHYNITY's ConvNet"


class AphynityConvNet(nn.Module):
    """APHYNITY's ``ConvNetEstimator`` on flat states: zero padding, batch-statistics BatchNorm."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        conv = dict(kernel_size=3, padding=1)  # zero padding, as in its code
        self.layers = nn.Sequential(
            nn.Conv2d(2, hidden, bias=False, **conv),
            nn.BatchNorm2d(hidden, track_running_stats=False),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, bias=False, **conv),
            nn.BatchNorm2d(hidden, track_running_stats=False),
            nn.ReLU(),
            nn.Conv2d(hidden, 2, **conv),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        out = self.layers(rd.fields(x).reshape(-1, 2, rd.SIZE, rd.SIZE))
        return out.reshape(*lead, rd.STATE_DIM)


def make_hybrid(hidden: int = 16) -> HybridODE:
    """Diffusion (a, b unknown) + APHYNITY's ConvNet, rk4 on the 0.1 grid."""
    return HybridODE(rd.Diffusion(), AphynityConvNet(hidden), state_dim=rd.STATE_DIM)


def grid() -> list[Config]:
    """ERM and APHYNITY with APHYNITY's ConvNet in place of chapter 7's; APHYNITY's settings are
    those of ``reaction_diffusion.grid()`` (λ₀ = 1, τ₂ = 10⁻³ every step, ‖f_nn‖² averaged over
    the grid points), taken from it rather than repeated."""
    aphynity = next(c.method for c in rd.grid() if c.label == "APHYNITY")
    return [Config(m, Model(make_hybrid), f"{m.label} [{LABEL}]") for m in (Method.erm(), aphynity)]
