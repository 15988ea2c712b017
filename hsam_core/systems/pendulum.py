"""Damped pendulum, APHYNITY setup (Yin et al., 2021).

Truth:   q' = p,   p' = −ω₀² sin q − α p,   ω₀ = 2π/6 (ω₀² ≈ 1.0966), α = 0.2.
Data:    initial state in a random direction of the (q, p) plane at a radius U[1.3, 2.3);
         horizon 20, dt 0.5 (40 points), solved with dopri5 at rtol = atol = 1e-10 in float64.
         Trajectory i of a split is drawn from its own seed — train i, validation 10⁶ + i,
         test 2³¹ − 1 − i — so the splits never overlap and the data never depend on the order
         in which they are made.
Extrapolation: (``task(extrapolation=True)``) n_val trajectories released from rest at an angle
         ±U[2.7, 3.0) rad (seeds 2·10⁶ + i) — beyond the training ring (radius < 2.3) and
         beyond the largest angle any training, validation or test trajectory reaches (2.57,
         2.43, 2.69 rad), below the separatrix (energy < 2ω₀²), so that every one still
         oscillates — over twice the validation horizon: 40, 80 points. The physics knows
         sin q there; a network has never seen such angles.
Noise:   ``noise`` (std, in the units of the states q, p) on the training, validation and
         extrapolation trajectories, seeded per split; the test data are noise-free. The book's
         level is :data:`NOISE` = 0.0068, 1 % of the std of the noise-free training states.
Physics: the frictionless pendulum q' = p, p' = −ω₀² sin q, ω₀² unknown (softplus, init 0.5);
         the complete model (ω₀², α) serves as a control.
Network: MLP 2→200→200→2 with ReLU, last layer zero-initialised.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn
from torchdiffeq import odeint

from ..data import Trajectories, add_noise
from ..experiments import Task
from ..hybrid import HybridODE, PhysicsModel, mlp
from ..runtime import pick

OMEGA2 = (2 * math.pi / 6) ** 2
ALPHA = 0.2
TRUTH = {"omega2": OMEGA2}
SPLIT_SEED = {"train": 0, "val": 10**6, "test": 2**31 - 1, "extrapolation": 2 * 10**6}
HORIZON = 20.0  # of the training, validation and test trajectories
# The extrapolation split: released from rest at these angles (rad), for twice the horizon.
EXTRAPOLATION_ANGLES = (2.7, 3.0)
EXTRAPOLATION_HORIZON = 2 * HORIZON
# The measurement noise of the retrained book: 1 % of the std of the noise-free training states
# (full mode, 25 trajectories of 40 points, q and p pooled: 0.678), to 2 significant digits.
NOISE = 0.0068
# The task's version in run keys: bump it when the model or scoring change what a run computes
# (a change to the data needs no bump: the data hash follows it).
VERSION = 1


class FrictionlessPendulum(PhysicsModel):
    """f_phys(q, p) = (p, −ω₀² sin q): the incomplete physics."""

    def __init__(self, omega2: float = 0.5) -> None:
        super().__init__()
        self.add_theta("omega2", omega2, map="softplus")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, p = x[..., 0], x[..., 1]
        return torch.stack([p, -self.param("omega2") * torch.sin(q)], dim=-1)


class DampedPendulum(PhysicsModel):
    """f_phys(q, p) = (p, −ω₀² sin q − α p): the complete physics (a control: no NN needed)."""

    def __init__(self, omega2: float = 0.5, alpha: float = 0.5) -> None:
        super().__init__()
        self.add_theta("omega2", omega2, map="softplus")
        self.add_theta("alpha", alpha, map="softplus")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, p = x[..., 0], x[..., 1]
        dp = -self.param("omega2") * torch.sin(q) - self.param("alpha") * p
        return torch.stack([p, dp], dim=-1)


def true_vector_field(
    x: torch.Tensor, omega2: float = OMEGA2, alpha: float = ALPHA
) -> torch.Tensor:
    q, p = x[..., 0], x[..., 1]
    return torch.stack([p, -omega2 * torch.sin(q) - alpha * p], dim=-1)


def initial_states(split: str, n: int) -> torch.Tensor:
    """(n, 2) initial states; state i of a split depends only on (split, i)."""
    states = []
    for i in range(n):
        g = torch.Generator().manual_seed(SPLIT_SEED[split] + (i if split != "test" else -i))
        direction = torch.rand(2, generator=g, dtype=torch.float64) * 2 - 1
        radius = 1.3 + torch.rand(1, generator=g, dtype=torch.float64)
        states.append(direction / direction.norm() * radius)
    return torch.stack(states)


def released_states(split: str, n: int, amplitudes: tuple[float, float]) -> torch.Tensor:
    """(n, 2) states (±a, 0) at rest, a ~ U[amplitudes) with a random sign: a pendulum released
    from the angle ±a (or an oscillator from the position ±a); state i depends only on
    (split, i)."""
    lo, hi = amplitudes
    states = []
    for i in range(n):
        g = torch.Generator().manual_seed(SPLIT_SEED[split] + (i if split != "test" else -i))
        u = torch.rand(2, generator=g, dtype=torch.float64)
        position = (lo + (hi - lo) * u[0]) * (1.0 if u[1] < 0.5 else -1.0)
        states.append(torch.stack([position, torch.zeros_like(position)]))
    return torch.stack(states)


def split_states(split: str, n: int) -> torch.Tensor:
    """(n, 2) initial states of a split: the ring of :func:`initial_states` for ``"train"``,
    ``"val"`` and ``"test"``; released from rest at :data:`EXTRAPOLATION_ANGLES` for
    ``"extrapolation"``."""
    if split == "extrapolation":
        return released_states(split, n, EXTRAPOLATION_ANGLES)
    return initial_states(split, n)


def simulate(x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Accurate trajectories (N, T, 2) of the true pendulum, computed in float64."""
    sol = odeint(
        lambda _t, x: true_vector_field(x),
        x0.double(),
        t.double(),
        method="dopri5",
        rtol=1e-10,
        atol=1e-10,
    )
    return sol.transpose(0, 1)


def make_data(
    split: str, n: int, horizon: float = HORIZON, dt: float = 0.5, noise: float = 0.0
) -> Trajectories:
    """``n`` trajectories of a split (:func:`split_states`) on the grid 0, dt, …, horizon − dt
    (float32), with Gaussian noise of std ``noise`` drawn from the split's seed."""
    t = torch.arange(0.0, horizon, dt, dtype=torch.float64)
    x = add_noise(simulate(split_states(split, n), t), noise, SPLIT_SEED[split] + 7)
    return Trajectories(t.float(), x.float())


# The networks a practitioner might plausibly try (section 5c). Each keeps the data, the
# incomplete physics, the zero-initialised last layer and the training; only the network changes:
#   additive — dx/dt = f_phys(x; ω₀²) + f_nn(x), MLP 2→h→h→2, ReLU (Part I's hybrid);
#   grey-box — f_nn sees [x, ω₀², f_phys(x; ω₀²)], MLP 5→h→h→2 (deep grey-box models, chapter 3);
#   deeper   — one more hidden layer, MLP 2→h→h→h→2;
#   SiLU     — the additive MLP with the smooth activation x·σ(x) instead of ReLU.
ARCHITECTURES = ("additive", "grey-box", "deeper", "SiLU")


def make_hybrid(
    hidden: int = 200,
    physics: str = "incomplete",
    network: bool = True,
    architecture: str = "additive",
    omega2_init: float = 0.5,
) -> HybridODE:
    """The pendulum hybrid: incomplete (or ``"complete"``, or ``"none"``) physics with ω₀²
    starting at ``omega2_init`` + the network ``architecture`` (one of :data:`ARCHITECTURES`)
    with ``hidden`` units per layer, or no network."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {ARCHITECTURES}")
    physics_of = {"incomplete": FrictionlessPendulum, "complete": DampedPendulum}
    if physics not in (*physics_of, "none"):
        raise ValueError(f"unknown physics {physics!r}; choose one of {[*physics_of, 'none']}")
    phys = physics_of[physics](omega2=omega2_init) if physics != "none" else None
    coupling = "greybox" if architecture == "grey-box" else "additive"
    n_in = 2 if coupling == "additive" else 2 + len(phys.theta()) + 2
    layers = (
        [n_in, hidden, hidden, hidden, 2] if architecture == "deeper" else [n_in, hidden, hidden, 2]
    )
    activation = {"activation": nn.SiLU} if architecture == "SiLU" else {}
    net: nn.Module | None = mlp(layers, **activation) if network else None
    return HybridODE(phys, net, state_dim=2, coupling=coupling)


def task(
    n_train: int | None = None,
    n_val: int = 10,
    n_test: int = 25,
    window: int = 10,
    hidden: int | None = None,
    noise: float = 0.0,
    extrapolation: bool = False,
) -> Task:
    """The pendulum task. Training uses every ``window``-step window of the training
    trajectories; validation and test integrate whole 40-point trajectories from their first
    state (APHYNITY's test metric), so they also score extrapolation beyond the window.
    ``extrapolation`` adds the extrapolation split (n_val trajectories, see the module's
    docstring); ``noise`` is the std of the measurement noise (:data:`NOISE` in the book)."""
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
        "dt": 0.5,
    }
    extra = None
    if extrapolation:
        extra = make_data("extrapolation", n_val, EXTRAPOLATION_HORIZON, noise=noise)
        spec["extrapolation"] = extrapolation_words(n_val, len(extra.t))
    return Task(
        name="pendulum",
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


def extrapolation_words(n: int, points: int) -> str:
    """The extrapolation split in words (``spec["extrapolation"]``), for this task and the
    images task, which renders the same trajectories."""
    lo, hi = EXTRAPOLATION_ANGLES
    return (
        f"{n} trajectories released from rest at q0 = +-U[{lo}, {hi}) rad, p0 = 0, below the "
        f"separatrix, so every one oscillates (training: initial states at radius U[1.3, 2.3) "
        f"in the (q, p) plane, trajectories reaching |q| <= 2.57 rad), {points} points, horizon "
        f"{EXTRAPOLATION_HORIZON:g} (validation: {round(HORIZON / 0.5)} points, horizon {HORIZON:g})"
    )
