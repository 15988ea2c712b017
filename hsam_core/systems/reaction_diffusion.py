"""Reaction–diffusion: FitzHugh–Nagumo on a periodic square, APHYNITY setup (Yin et al., 2021).

Truth:   u_t = a Δu + u − u³ − v − k,   v_t = b Δv + u − v,   a = 1e-3, b = 5e-3, k = 5e-3,
         on a 32×32 periodic grid over [−1, 1]² (mesh step 2/32), Δ the five-point Laplacian.
Data:    u and v drawn U(0, 1) independently in every cell; classical RK4 with an internal step
         of 1e-3 in float64, all trajectories of a split in one batched state (N, 2, 32, 32),
         saved every 0.1 on t = 0, 0.1, …, 3 (31 frames). Trajectory i of a split starts from
         its own seed — train i, validation 10⁶ + i, test 2³¹ − 1 − i (the pendulum's
         convention) — so the splits never overlap and the data never depend on N.
         The data are cached on disk (``HSAM_CACHE``/data, or the quick-mode scratch folder)
         under a hash of the generation settings and of the source of the generating functions,
         so a re-run loads them instead of integrating again.
Sizes:   APHYNITY used 1600 training and 320 test trajectories, batches of 64 whole
         30-frame trajectories and a GPU. The full mode here is sized for two CPU cores: 32
         training, 8 validation and 16 test trajectories up to t = 3. Training fits every
         2-step window (0.2 time units; 29 windows per trajectory, 928 samples), minibatches of
         2 windows, 18 epochs (8352 Adam steps), every learning rate divided by 10 after 9
         epochs, again after 12 and again after 14 (``lr_milestones``), so that θ settles. Why
         windows: 60 % of a step's CPU time is the ConvNet's convolutions and their backward
         pass (torch's profiler, one thread, a 5-seed ensemble), a cost that grows with the
         number of rk4 steps times the minibatch — 0.5–0.7 s per step on a whole 30-step
         trajectory, 35 ms per window on 2-step windows — so short windows buy about 8 times
         more optimizer steps per minute, while larger minibatches buy little (chapter 7
         measures it). Validation and
         test still integrate whole 30-step trajectories, so they score extrapolation beyond the
         window. Generation ≈ 0.27 s per trajectory up to t = 3.
         Quick mode: 6/3/3 trajectories up to t = 0.5, 2 seeds, 6 epochs.
         rk4 on the 0.1 grid reproduces the data (true θ, complete physics) to an MSE of
         9e-8, as much as a 0.35 % error of (a, b) would cost; ``make_hybrid(step_size=0.05)``
         brings it to 1e-10 (below the reference θ error 2.8e-4) at twice the cost.
Extrapolation: (``task(extrapolation=True)``) n_val trajectories from new initial fields (the
         same law, seeds 2·10⁶ + i) over twice the horizon (t ≤ 6; quick mode t ≤ 1): the
         fields after t = 3 have left the training range (v down to −0.46; training: ≥ −0.29).
         Simulating them costs about as much as the validation and test data together.
Noise:   ``noise`` (std, in the units of u and v) on the training, validation and
         extrapolation fields, seeded per split, not cached; the test data are noise-free. The
         book's level is :data:`NOISE` = 0.0022, 1 % of the std of the noise-free training fields.
Layout:  a state is stored flat, (..., 2·32·32) = (u field, v field) in C order, so that
         :class:`~hsam_core.data.Trajectories` (N, T, d), :class:`~hsam_core.hybrid.HybridODE`'s
         input check (``state_dim`` = 2048) and every metric work unchanged; the physics and the
         network view it as (..., 2, 32, 32).
Physics: diffusion only, f_phys = (a Δu, b Δv), a and b unknown, kept in (0, 1e-2) by
         a = 1e-2 · σ(raw) (APHYNITY's parametrisation), both initialised at 2.5e-3 (our
         choice: between the two true values, equal to neither).
Network: 3-layer ConvNet 2→16→16→2 channels, 3×3 kernels, circular (periodic) padding, ReLU,
         no normalisation (an Ensemble refuses buffers), last layer zero-initialised. Its 3×3
         kernels can represent the five-point Laplacian, so it can absorb any error of (a, b)
         — the failure case. θ error: mean relative error of (a, b).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import textwrap
import time

import torch
from torch import nn

from .. import settings as hsam_settings
from ..data import Trajectories, add_noise
from ..experiments import Task
from ..hybrid import HybridODE, PhysicsModel
from ..runtime import pick

A = 1e-3
B = 5e-3
K = 5e-3
TRUTH = {"a": A, "b": B}
SIZE = 32
MESH = 2.0 / SIZE  # [−1, 1]² periodic: SIZE cells of width 2 / SIZE
STATE_DIM = 2 * SIZE * SIZE
DT_SAVE = 0.1
DT_INTERNAL = 1e-3
SPLIT_SEED = {"train": 0, "val": 10**6, "test": 2**31 - 1, "extrapolation": 2 * 10**6}
# The measurement noise of the retrained book: 1 % of the std of the noise-free training fields
# (full mode, 32 trajectories of 31 frames, u and v pooled: 0.2247), to 2 significant digits.
NOISE = 0.0022


def sizes() -> dict:
    """The task's default sizes in the current mode: 32 training, 8 validation and 16 test
    trajectories of 3 time units (quick mode: 6, 3, 3 of 0.5)."""
    n_train, n_val, n_test = pick((32, 8, 16), (6, 3, 3))
    return {"n_train": n_train, "n_val": n_val, "n_test": n_test, "horizon": pick(3.0, 0.5)}


THETA_SCALE = 1e-2  # a, b ∈ (0, 1e-2): also keeps rk4 at dt = 0.1 stable (b·8/mesh² · dt ≤ 2.1)


def laplacian(f: torch.Tensor) -> torch.Tensor:
    """Periodic five-point Laplacian of fields (..., H, W) on the mesh step :data:`MESH`."""
    neighbours = (
        torch.roll(f, 1, -1) + torch.roll(f, -1, -1) + torch.roll(f, 1, -2) + torch.roll(f, -1, -2)
    )
    return (neighbours - 4 * f) / MESH**2


def true_vector_field(
    state: torch.Tensor, a: float = A, b: float = B, k: float = K
) -> torch.Tensor:
    """FitzHugh–Nagumo on fields (..., 2, H, W): (u_t, v_t)."""
    u, v = state[..., 0, :, :], state[..., 1, :, :]
    du = a * laplacian(u) + u - u**3 - v - k
    dv = b * laplacian(v) + u - v
    return torch.stack([du, dv], dim=-3)


def initial_states(split: str, n: int) -> torch.Tensor:
    """(n, 2, 32, 32) initial fields, u, v ~ U(0, 1) per cell; state i depends only on (split, i)."""
    states = []
    for i in range(n):
        g = torch.Generator().manual_seed(SPLIT_SEED[split] + (i if split != "test" else -i))
        states.append(torch.rand(2, SIZE, SIZE, generator=g, dtype=torch.float64))
    return torch.stack(states)


@torch.no_grad()
def simulate(
    x0: torch.Tensor, horizon: float, dt_save: float = DT_SAVE, dt_internal: float = DT_INTERNAL
) -> torch.Tensor:
    """Trajectories (N, T, 2, 32, 32) in float64 from fields ``x0`` (N, 2, 32, 32): classical
    RK4 with step ``dt_internal``, all trajectories at once, saved every ``dt_save`` on
    0, dt_save, …, horizon."""
    substeps = round(dt_save / dt_internal)
    saves = round(horizon / dt_save)
    h = dt_internal
    x = x0.double()
    frames = [x]
    for _ in range(saves):
        for _ in range(substeps):
            k1 = true_vector_field(x)
            k2 = true_vector_field(x + h / 2 * k1)
            k3 = true_vector_field(x + h / 2 * k2)
            k4 = true_vector_field(x + h * k3)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        frames.append(x)
    return torch.stack(frames, dim=1)


# The functions whose code determines the data (bound here, so the hash follows their code).
GENERATORS = (laplacian, true_vector_field, initial_states, simulate)


def _generator_hash(settings: dict) -> str:
    """Hash of the generation settings and of the syntax trees of the generating functions
    (comments and formatting do not count; a change in the numerics does).

    It names the file of the local data cache only (a run's key holds the content hash of the
    data themselves, :attr:`hsam_core.experiments.Task.data_hash`). Plain ``ast.dump``, whose
    form differs between Python versions: under another Python the data are simulated again,
    to the same numbers."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for fn in GENERATORS:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        digest.update(ast.dump(tree).encode())
    return digest.hexdigest()[:20]


def cache_path(split: str, n: int, horizon: float, folder=None):
    """Where :func:`make_data` keeps the trajectories of (split, n, horizon)."""
    settings = {
        "split": split,
        "n": n,
        "horizon": horizon,
        "dt_save": DT_SAVE,
        "dt_internal": DT_INTERNAL,
        "a": A,
        "b": B,
        "k": K,
        "size": SIZE,
        "seed": SPLIT_SEED[split],
    }
    folder = folder if folder is not None else hsam_settings.get().cache
    return folder / "data" / f"reaction_diffusion-{split}-{n}-{_generator_hash(settings)}.pt"


def make_data(
    split: str,
    n: int,
    horizon: float | None = None,
    cache_dir=None,
    verbose: bool = False,
    noise: float = 0.0,
) -> Trajectories:
    """``n`` trajectories of a split, flat states (n, T, 2048) in float32, T = horizon/0.1 + 1,
    with Gaussian noise of std ``noise`` drawn from the split's seed.

    The noise-free trajectories are loaded from the cache when present (``cache_dir``
    overrides the default folder), else simulated and saved there.
    """
    horizon = sizes()["horizon"] if horizon is None else horizon
    path = cache_path(split, n, horizon, cache_dir)
    if path.exists():
        saved = torch.load(path, weights_only=True)
        t, x = saved["t"], saved["x"]
    else:
        start = time.perf_counter()
        x = simulate(initial_states(split, n), horizon).flatten(2).float()
        t = torch.arange(x.shape[1], dtype=torch.float64).mul(DT_SAVE).float()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{id(x)}")
        torch.save({"t": t, "x": x}, tmp)
        tmp.replace(path)  # atomic: a parallel run never reads a half-written file
        if verbose:
            seconds = time.perf_counter() - start
            print(f"reaction_diffusion: simulated {split} ({n}) in {seconds:.1f} s")
    if noise:
        x = add_noise(x.double(), noise, SPLIT_SEED[split] + 7).float()
    return Trajectories(t, x)


def fields(x: torch.Tensor) -> torch.Tensor:
    """Flat states (..., 2048) viewed as fields (..., 2, 32, 32)."""
    return x.unflatten(-1, (2, SIZE, SIZE))


class Diffusion(PhysicsModel):
    """f_phys(u, v) = (a Δu, b Δv): the incomplete physics (it lacks the reaction)."""

    def __init__(self, a: float = 2.5e-3, b: float = 2.5e-3) -> None:
        super().__init__()
        self.add_theta("a", a, map="sigmoid", scale=THETA_SCALE)
        self.add_theta("b", b, map="sigmoid", scale=THETA_SCALE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = fields(x)
        du = self.param("a") * laplacian(f[..., 0, :, :])
        dv = self.param("b") * laplacian(f[..., 1, :, :])
        return torch.stack([du, dv], dim=-3).flatten(-3)


class FitzHughNagumo(Diffusion):
    """The complete physics (a, b, k) — a control that needs no network."""

    def __init__(self, a: float = 2.5e-3, b: float = 2.5e-3, k: float = 2.5e-3) -> None:
        super().__init__(a, b)
        self.add_theta("k", k, map="sigmoid", scale=THETA_SCALE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = fields(x)
        u, v = f[..., 0, :, :], f[..., 1, :, :]
        reaction = torch.stack([u - u**3 - v - self.param("k"), u - v], dim=-3)
        return super().forward(x) + reaction.flatten(-3)


class ConvNet(nn.Module):
    """3-layer ConvNet on flat states: 2→h→h→2 channels, 3×3 kernels, periodic padding."""

    def __init__(self, hidden: int = 16, zero_last: bool = True) -> None:
        super().__init__()
        conv = dict(kernel_size=3, padding=1, padding_mode="circular")
        self.layers = nn.Sequential(
            nn.Conv2d(2, hidden, **conv),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, **conv),
            nn.ReLU(),
            nn.Conv2d(hidden, 2, **conv),
        )
        if zero_last:  # training starts from the physics alone, as hybrid.mlp does
            nn.init.zeros_(self.layers[-1].weight)
            nn.init.zeros_(self.layers[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        out = self.layers(fields(x).reshape(-1, 2, SIZE, SIZE))
        return out.reshape(*lead, STATE_DIM)


class AphynityConvNet(nn.Module):
    """APHYNITY's ``ConvNetEstimator`` (its authors' ``networks.py``) on flat states:

    Conv 3×3 (2→h, no bias) → BatchNorm → ReLU → Conv 3×3 (h→h, no bias) → BatchNorm → ReLU
    → Conv 3×3 (h→2),

    with **zero** padding (it cannot represent the periodic Laplacian at the borders) and
    BatchNorm on the statistics of each batch (``track_running_stats=False``), PyTorch's default
    initialisation (its output is not zero at the start). Chapter 7 swaps it in to ask which of
    our choices breaks APHYNITY's reported 2.3 %."""

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
        out = self.layers(fields(x).reshape(-1, 2, SIZE, SIZE))
        return out.reshape(*lead, STATE_DIM)


def make_hybrid(
    hidden: int = 16,
    physics: str = "incomplete",
    network: bool = True,
    step_size=None,
    convnet: str = "book",
) -> HybridODE:
    """Diffusion (or ``"complete"`` FitzHugh–Nagumo, or ``"none"``) + ConvNet — the book's
    (``convnet="book"``, :class:`ConvNet`) or APHYNITY's (``"aphynity"``,
    :class:`AphynityConvNet`); rk4 on the 0.1 grid unless ``step_size`` is given."""
    nets = {"book": ConvNet, "aphynity": AphynityConvNet}
    if convnet not in nets:
        raise ValueError(f"convnet must be one of {sorted(nets)}, got {convnet!r}")
    phys = {"incomplete": Diffusion, "complete": FitzHughNagumo, "none": lambda: None}[physics]()
    net = nets[convnet](hidden) if network else None
    # state_dim is the flat size 2·32·32: HybridModel checks the last dimension only.
    return HybridODE(phys, net, state_dim=STATE_DIM, step_size=step_size)


# The task's version in run keys: bump it when the model or scoring change what a run computes
# (a change to the data needs no bump: the data hash follows it).
VERSION = 1

# Every 2-step window (0.2 time units) of the training trajectories, 2 windows per minibatch:
# 464 steps per epoch in full mode (quick: 12). Learning rates / 10 after 9 epochs, / 100 after
# 12 and / 1000 for the last 4: minibatches of 2 windows leave θ jittering by ~0.5 % at a tenth
# of the rate and by 0.1–0.2 % at a hundredth (measured), more than the settled criterion allows.
WINDOW = 2
# Sharpness and Hessian on the first 4 training windows (power iteration is ~20 passes).
CURVATURE_SAMPLES = 4


def task(
    n_train: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    window: int | None = None,
    horizon: float | None = None,
    cache_dir=None,
    noise: float = 0.0,
    extrapolation: bool = False,
) -> Task:
    """The reaction–diffusion task. Training integrates every ``window``-step window (default
    :data:`WINDOW`; ``0`` keeps whole trajectories) from its first state; validation and test
    integrate whole trajectories. ``extrapolation`` adds the extrapolation split (n_val
    trajectories over twice the horizon); ``noise`` is the std of the measurement noise
    (:data:`NOISE` in the book)."""
    default = sizes()
    n_train = n_train or default["n_train"]
    n_val = n_val or default["n_val"]
    n_test = n_test or default["n_test"]
    horizon = horizon or default["horizon"]
    window = WINDOW if window is None else (window or None)
    spec = {
        "n_train": n_train,
        "n_val": n_val,
        "n_test": n_test,
        "window": window,
        "horizon": horizon,
        "dt": DT_SAVE,
        "dt_internal": DT_INTERNAL,
    }
    if noise:  # absent when 0: the spec of the noise-free task stays as it was
        spec["noise"] = noise
    extra = None
    if extrapolation:
        extra = make_data("extrapolation", n_val, 2 * horizon, cache_dir, noise=noise)
        spec["extrapolation"] = (
            f"{n_val} trajectories from new initial fields (u, v ~ U(0, 1) per cell, seeds "
            f"2*10^6 + i), {len(extra.t)} frames up to t = {2 * horizon:g} (training, "
            f"validation and test: up to t = {horizon:g})"
        )
    return Task(
        name="reaction_diffusion",
        train=make_data("train", n_train, horizon, cache_dir, noise=noise).windows(window),
        val=make_data("val", n_val, horizon, cache_dir, noise=noise),
        test=make_data("test", n_test, horizon, cache_dir),
        make_model=make_hybrid,
        truth=TRUTH,
        spec=spec,
        curvature_samples=CURVATURE_SAMPLES,
        version=VERSION,
        extrapolation=extra,
        noise=noise,
    )
