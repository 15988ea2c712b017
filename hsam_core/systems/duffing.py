"""Unforced Duffing oscillator (our specification; TASKS.md §4).

Truth:   x'' + δ x' + α x + β x³ = 0, written as the first-order system
         x' = v,   v' = −α x − δ v − β x³,   α = 1, δ = 0.1, β = 1.
Data:    the initial states of the pendulum task (:func:`pendulum.initial_states`): a random
         direction of the (x, v) plane at a radius U[1.3, 2.3), with the same seeds — train i,
         validation 10⁶ + i, test 2³¹ − 1 − i — so the splits never overlap and initial state i
         depends only on (split, i) (a trajectory depends on the batch it is solved in only
         through dopri5's shared step sizes, at the 1e-10 level). Horizon 5, dt 0.1 (50 points), solved with dopri5 at
         rtol = atol = 1e-10 in float64. The position swings up to 0.85–2.05, where the cubic
         term matters or dominates (β x³ ≈ 0.6–8.6 against α x ≈ 0.85–2.05 at the turning
         points) and the half-period is ≈ 1.9–2.1 instead of the linear π; the light damping
         keeps every trajectory in that regime over the horizon. rk4 with the true vector field
         on the dt = 0.1 grid reproduces the 10-step training windows to an MSE of 2e-9 (signal
         mean square 1.7), so the training integrator adds no bias worth the name.
Extrapolation: (``task(extrapolation=True)``) n_val trajectories released from rest at
         x₀ = ±U[2.3, 2.6) (seeds 2·10⁶ + i): energy 9.6–14.8, above every state of the training
         ring (at most 9.6, at (±2.3, 0)), speeds up to 5.2 (training: ≤ 3.5) — over twice the
         validation horizon: 10, 100 points.
Noise:   ``noise`` (std, in the units of x and v) on the training, validation and extrapolation
         trajectories, seeded per split; the test data are noise-free. The book's level is
         :data:`NOISE` = 0.013, 1 % of the std of the noise-free training states.
Physics: the damped linear oscillator x' = v, v' = −α x − δ v with α and δ unknown (softplus,
         both initialised at 0.5); the complete model (α, δ, β) is a control that needs no NN.
Network: MLP 2→200→200→2 with ReLU, last layer zero-initialised. It must learn −β x³, and can
         trade any error of α against it (−β x³ − Δα x is just as easy to represent) — the
         failure case of chapter 2 again. θ error: mean relative error of (α, δ).
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torchdiffeq import odeint

from ..data import Trajectories, add_noise
from ..experiments import Task
from ..hybrid import HybridODE, PhysicsModel, mlp
from ..runtime import pick
from . import pendulum

ALPHA = 1.0
DELTA = 0.1
BETA = 1.0
TRUTH = {"alpha": ALPHA, "delta": DELTA}
HORIZON = 5.0
DT = 0.1
# The extrapolation split: released from rest at these positions, for twice the horizon.
EXTRAPOLATION_AMPLITUDES = (2.3, 2.6)
EXTRAPOLATION_HORIZON = 2 * HORIZON
# The measurement noise of the retrained book: 1 % of the std of the noise-free training states
# (full mode, 25 trajectories of 50 points, x and v pooled: 1.318), to 2 significant digits.
NOISE = 0.013


class DampedLinearOscillator(PhysicsModel):
    """f_phys(x, v) = (v, −α x − δ v): the incomplete physics (it lacks −β x³)."""

    def __init__(self, alpha: float = 0.5, delta: float = 0.5) -> None:
        super().__init__()
        self.add_theta("alpha", alpha, map="softplus")
        self.add_theta("delta", delta, map="softplus")

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        x, v = s[..., 0], s[..., 1]
        return torch.stack([v, -self.param("alpha") * x - self.param("delta") * v], dim=-1)


class DuffingPhysics(DampedLinearOscillator):
    """f_phys(x, v) = (v, −α x − δ v − β x³): the complete physics (a control)."""

    def __init__(self, alpha: float = 0.5, delta: float = 0.5, beta: float = 0.5) -> None:
        super().__init__(alpha, delta)
        self.add_theta("beta", beta, map="softplus")

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        linear = super().forward(s)
        cubic = self.param("beta") * s[..., 0] ** 3
        return linear - torch.stack([torch.zeros_like(cubic), cubic], dim=-1)


def true_vector_field(
    s: torch.Tensor, alpha: float = ALPHA, delta: float = DELTA, beta: float = BETA
) -> torch.Tensor:
    x, v = s[..., 0], s[..., 1]
    return torch.stack([v, -alpha * x - delta * v - beta * x**3], dim=-1)


def initial_states(split: str, n: int) -> torch.Tensor:
    """(n, 2) initial states: the pendulum task's ring, radius U[1.3, 2.3), same seeds; for
    ``"extrapolation"``, released from rest at ±:data:`EXTRAPOLATION_AMPLITUDES`."""
    if split == "extrapolation":
        return pendulum.released_states(split, n, EXTRAPOLATION_AMPLITUDES)
    return pendulum.initial_states(split, n)


def simulate(s0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Accurate trajectories (N, T, 2) of the true Duffing oscillator, computed in float64."""
    sol = odeint(
        lambda _t, s: true_vector_field(s),
        s0.double(),
        t.double(),
        method="dopri5",
        rtol=1e-10,
        atol=1e-10,
    )
    return sol.transpose(0, 1)


def make_data(
    split: str, n: int, horizon: float = HORIZON, dt: float = DT, noise: float = 0.0
) -> Trajectories:
    """``n`` trajectories of a split on the grid 0, dt, …, horizon − dt (float32), with Gaussian
    noise of std ``noise`` drawn from the split's seed."""
    t = torch.arange(0.0, horizon - dt / 2, dt, dtype=torch.float64)
    s = add_noise(simulate(initial_states(split, n), t), noise, pendulum.SPLIT_SEED[split] + 7)
    return Trajectories(t.float(), s.float())


def make_hybrid(hidden: int = 200, physics: str = "incomplete", network: bool = True) -> HybridODE:
    """Damped linear oscillator (or ``"complete"`` Duffing physics, or ``"none"``) + MLP."""
    phys = {
        "incomplete": DampedLinearOscillator,
        "complete": DuffingPhysics,
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
    """The Duffing task. Training uses every ``window``-step window of the training
    trajectories; validation and test integrate whole 50-point trajectories from their first
    state, so they also score extrapolation beyond the window. ``extrapolation`` adds the
    extrapolation split (n_val trajectories, see the module's docstring); ``noise`` is the std
    of the measurement noise (:data:`NOISE` in the book)."""
    n_train = n_train or pick(25, 10)
    hidden = hidden or pick(200, 32)
    spec = {
        "n_train": n_train,
        "n_val": n_val,
        "n_test": n_test,
        "window": window,
        "hidden": hidden,
        "noise": noise,
        "horizon": HORIZON,
        "dt": DT,
        "initial_states": "pendulum ring U[1.3, 2.3)",
    }
    extra = None
    if extrapolation:
        extra = make_data("extrapolation", n_val, EXTRAPOLATION_HORIZON, noise=noise)
        lo, hi = EXTRAPOLATION_AMPLITUDES
        spec["extrapolation"] = (
            f"{n_val} trajectories released from rest at x0 = +-U[{lo}, {hi}), v0 = 0 (energy "
            f"above every initial state of the training ring U[1.3, 2.3), whose largest is at "
            f"(+-2.3, 0)), {len(extra.t)} points, horizon {EXTRAPOLATION_HORIZON:g} (validation: "
            f"horizon {HORIZON:g})"
        )
    return Task(
        name="duffing",
        train=make_data("train", n_train, noise=noise).windows(window),
        val=make_data("val", n_val, noise=noise),
        test=make_data("test", n_test),
        make_model=functools.partial(make_hybrid, hidden=hidden),
        truth=TRUTH,
        spec=spec,
        normalized_norm=True,
        version=VERSION,
        extrapolation=extra,
        noise=noise,
    )
