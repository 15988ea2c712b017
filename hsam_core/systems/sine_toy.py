"""A static toy in which the hybrid decomposition is visibly non-unique (chapter 2).

Truth:   y = θ* sin x + 0.3 x,   θ* = 1.0.
Data:    x ~ U[−π, π); y noise-free unless ``noise`` > 0. Sample i of a split is drawn from its own
         seed — train i, validation 10⁶ + i, test 2³¹ − 1 − i — so the splits never overlap.
Extrapolation: (``task(extrapolation=True)``) n_val pairs with |x| ~ U[π, 1.5π) and a random
         sign (seeds 2·10⁶ + i), outside the training interval [−π, π).
Noise:   ``noise`` (std, in units of y) on the training, validation and extrapolation pairs;
         the test pairs are noise-free. The book's level is :data:`NOISE` = 0.012, 1 % of the
         std of the noise-free training targets.
Physics: g_phys(x; θ) = θ sin x, θ > 0 unknown (softplus, init 0.5), an amplitude. It lacks
         the term 0.3 x.
Network: MLP 1→64→64→1 with ReLU, last layer zero-initialised.

Every θ is as good as θ* for the hybrid y = θ sin x + g_nn(x): the network only has to learn
(θ* − θ) sin x + 0.3 x instead of 0.3 x. Fitted alone, the physics prefers
θ_LS = θ* + 0.3 E[x sin x] / E[sin² x] = θ* + 0.6 = 1.6 on U[−π, π) (see :data:`THETA_LS`).
"""

from __future__ import annotations

import math

import torch

from ..data import Pairs
from ..experiments import Task
from ..hybrid import PhysicsModel, StaticHybrid, mlp

THETA = 1.0
SLOPE = 0.3  # the term the physics misses: SLOPE · x
TRUTH = {"theta": THETA}
# Least-squares θ of the physics alone on x ~ U[−π, π): E[x sin x] = 1, E[sin² x] = 1/2.
THETA_LS = THETA + SLOPE * 1.0 / 0.5
SPLIT_SEED = {"train": 0, "val": 10**6, "test": 2**31 - 1, "extrapolation": 2 * 10**6}
# The extrapolation split: |x| in [π, 1.5π), in units of π.
EXTRAPOLATION_RANGE = (1.0, 1.5)
# The measurement noise of the retrained book: 1 % of the std of the noise-free training
# targets (the 200 training pairs: 1.161), to 2 significant digits.
NOISE = 0.012


class SinePhysics(PhysicsModel):
    """g_phys(x) = θ sin x: the incomplete law (it lacks the linear term)."""

    def __init__(self, theta: float = 0.5) -> None:
        super().__init__()
        self.add_theta("theta", theta, map="softplus")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.param("theta") * torch.sin(x)


def true_law(x: torch.Tensor) -> torch.Tensor:
    """y = θ* sin x + 0.3 x."""
    return THETA * torch.sin(x) + SLOPE * x


def make_data(split: str, n: int, noise: float = 0.0) -> Pairs:
    """``n`` pairs (x, y) of a split; pair i depends only on (split, i). x ~ U[−π, π), but
    |x| ~ U[π, 1.5π) with a random sign in the ``"extrapolation"`` split."""
    xs, ys = [], []
    for i in range(n):
        g = torch.Generator().manual_seed(SPLIT_SEED[split] + (i if split != "test" else -i))
        if split == "extrapolation":
            lo, hi = EXTRAPOLATION_RANGE
            u = torch.rand(2, generator=g, dtype=torch.float64)
            x = (lo + (hi - lo) * u[:1]) * math.pi * (1.0 if u[1] < 0.5 else -1.0)
        else:
            x = (torch.rand(1, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
        y = true_law(x) + noise * torch.randn(1, generator=g, dtype=torch.float64)
        xs.append(x)
        ys.append(y)
    return Pairs(torch.stack(xs).float(), torch.stack(ys).float())


def make_hybrid(theta: float = 0.5, hidden: int = 64, network: bool = True) -> StaticHybrid:
    """θ sin x (θ initialised at ``theta``) + MLP 1→hidden→hidden→1 (or no network)."""
    net = mlp([1, hidden, hidden, 1]) if network else None
    return StaticHybrid(SinePhysics(theta), net, state_dim=1)


# The task's version in run keys: bump it when the model or scoring change what a run computes
# (a change to the data needs no bump: the data hash follows it).
VERSION = 1


def task(
    n_train: int = 200,
    n_val: int = 100,
    n_test: int = 200,
    noise: float = 0.0,
    extrapolation: bool = False,
) -> Task:
    """The sine toy: pairs on x ∈ [−π, π) (noisy if ``noise`` > 0), the hybrid of
    :func:`make_hybrid`; ``extrapolation`` adds n_val pairs with π ≤ |x| < 1.5π."""
    spec = {"n_train": n_train, "n_val": n_val, "n_test": n_test, "noise": noise}
    extra = None
    if extrapolation:
        extra = make_data("extrapolation", n_val, noise)
        lo, hi = EXTRAPOLATION_RANGE
        spec["extrapolation"] = (
            f"{n_val} pairs with |x| ~ U[{lo}*pi, {hi}*pi) and a random sign "
            "(training: x ~ U[-pi, pi))"
        )
    return Task(
        name="sine_toy",
        train=make_data("train", n_train, noise),
        val=make_data("val", n_val, noise),
        test=make_data("test", n_test),
        make_model=make_hybrid,
        truth=TRUTH,
        spec=spec,
        version=VERSION,
        extrapolation=extra,
        noise=noise,
    )
