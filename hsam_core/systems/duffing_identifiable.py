"""The Duffing oscillator of :mod:`hsam_core.systems.duffing`, with the other term left out.

Truth:   the same oscillator, x' = v,  v' = −α x − δ v − β x³,  α = 1, δ = 0.1, β = 1, and
         the same data: :func:`duffing.make_data`'s trajectories (25 training, 10 validation,
         25 test; 50 points, dt 0.1; initial states on the pendulum task's ring), training on
         every 10-step window (1000 windows), validation and test on whole trajectories.
Physics: the *conservative* Duffing oscillator x' = v,  v' = −α x − β x³ with the stiffnesses
         α and β unknown (softplus, both initialised at 0.5). The complete model (α, δ, β) of
         chapter 8 is the control that needs no network.
Network: MLP 2→200→200→2 with ReLU, last layer zero-initialised; it must learn the damping
         −δ v — the structure of the pendulum task, on a hardening spring. θ error: mean
         relative error of (α, β).
Extrapolation: :mod:`duffing`'s (``task(extrapolation=True)``): n_val trajectories released from
         rest at x₀ = ±U[2.3, 2.6), above every training energy, 100 points (horizon 10).
Noise:   :mod:`duffing`'s: :data:`NOISE` = 0.013, 1 % of the std of the noise-free training
         states (the same data).

Chapter 8's specification leaves −β x³ to the network, a term strongly correlated with the
physics' α x on these orbits, so its minimum-norm reference (:mod:`hsam_core.identifiability`)
is far from the truth (α ≈ 2.67). Here the network's term, −δ v, is nearly uncorrelated with
what the physics can represent (x and x³), so the minimum-norm reference lies close to the true
(α, β): the same data and methods, a different division of labour.

Quick mode: 10 training trajectories, a 32-wide network, as in :mod:`duffing`.
Its studies (chapter 8b's grid, four times longer, on a GPU) are in :mod:`hsam_core.studies`:
``python -m hsam_core sweep duffing_identifiable`` trains what the results store lacks.
"""

from __future__ import annotations

import dataclasses
import functools

import torch
from torch import nn

from ..experiments import Task
from ..hybrid import HybridODE, PhysicsModel, mlp
from . import duffing

ALPHA, DELTA, BETA = duffing.ALPHA, duffing.DELTA, duffing.BETA
TRUTH = {"alpha": ALPHA, "beta": BETA}
NOISE = duffing.NOISE  # the same data, the same measurement noise


class ConservativeDuffing(PhysicsModel):
    """f_phys(x, v) = (v, −α x − β x³): the incomplete physics (it lacks the damping −δ v)."""

    def __init__(self, alpha: float = 0.5, beta: float = 0.5) -> None:
        super().__init__()
        self.add_theta("alpha", alpha, map="softplus")
        self.add_theta("beta", beta, map="softplus")

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        x, v = s[..., 0], s[..., 1]
        return torch.stack([v, -self.param("alpha") * x - self.param("beta") * x**3], dim=-1)


def make_hybrid(hidden: int = 200, physics: str = "incomplete", network: bool = True) -> HybridODE:
    """Conservative Duffing physics (or ``"complete"`` Duffing physics, or ``"none"``) + MLP."""
    phys = {
        "incomplete": ConservativeDuffing,
        "complete": duffing.DuffingPhysics,
        "none": lambda: None,
    }[physics]()
    net: nn.Module | None = mlp([2, hidden, hidden, 2]) if network else None
    return HybridODE(phys, net, state_dim=2)


# The task's version in run keys: bump it when the model or scoring change what a run computes
# (a change to the data needs no bump: the data hash follows it).
VERSION = 1


def task(
    n_train: int | None = None,
    n_val: int = 10,
    n_test: int = 25,
    window: int = 10,
    hidden: int | None = None,
    noise: float = 0.0,
    extrapolation: bool = False,
) -> Task:
    """Chapter 8's task (:func:`duffing.task`: the same data, splits and windows, the same
    extrapolation split and noise) with the conservative physics and the truth (α, β)."""
    base = duffing.task(n_train, n_val, n_test, window, hidden, noise, extrapolation)
    width = base.spec["hidden"]
    return dataclasses.replace(
        base,
        name="duffing_identifiable",
        make_model=functools.partial(make_hybrid, hidden=width),
        truth=TRUTH,
        spec={**base.spec, "physics": "conservative Duffing (alpha, beta); NN learns -delta v"},
        version=VERSION,
    )
