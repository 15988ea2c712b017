"""The Causal Chambers wind tunnel: downwind pressure from the fan speeds (our specification;
TASKS.md §5, chapter 9).

Truth:   the package's simulator ``causalchamber.simulators.wt.SimA1C3`` (causalchamber 0.2.8):
         steady-state fan speeds (model A1, ω = max(L, L_min) ω_max) and the downwind pressure
         of model C3, whose fans work against an impedance set by the hatch,
         r(H) = r₀ + β H / 45°, plus the barometer's offset and Gaussian noise. For the linear
         PQ-characteristic of C2/C3 the fan's static pressure is S_max (1 − r) (ω/ω_max)², so
         P_dw − P_amb = S_max (1 − r(H)) (u_in² − u_out²) + p₀ + ε,   u = ω / ω_max.
         Parameters (ours; L_min and ω_max from the package's tutorial): L_min = 0.1,
         ω_max = 3000 rpm, S_max = 25 Pa, Q_max = 0.05 m³/s, r₀ = 0.5, β = 0.4,
         barometer offset p₀ = 1.5 Pa, precision 0.2 Pa.
Data:    static pairs (x, y) of a balanced design: n/4 settings with the loads of both fans
         ~ U[0, 1) and the hatch ~ U[0°, 45°), independent, each also run with the fans swapped
         and with the hatch mirrored about H₀ = 22.5° (so the design is exactly orthogonal); x = (rpm_in / ω_max, rpm_out / ω_max, hatch / 45°) — the measured fan
         speeds, as the real chamber records them — and y = (P_dw − P_amb) / 10 Pa. Each split
         draws its inputs and the barometer noise from its own seed (train 0, validation 10⁶,
         test 2³¹ − 1), so the splits never overlap.
Extrapolation: (``task(extrapolation=True)``) the loads cover the fans' whole range, so the
         training, validation and test loads are reduced to [0, 0.7) and the extrapolation
         split (n_val settings, seed 2·10⁶, the same balanced design) has one fan's load in
         [0.7, 1) and the other's in [0, 0.7): a fan driven harder than in any training sample,
         where the fan law still holds but the network must extrapolate the hatch's effect.
Noise:   the barometer's own 0.2 Pa (0.02 in units of y) on every split, the test included, and
         optionally ``noise`` (std, in units of y) on the training, validation and extrapolation
         readings, seeded per split; ``Task.noise`` is the total, √(0.02² + noise²). The book's
         level is :data:`NOISE` = 0.0033, 1 % of the std of the noise-free training readings —
         a sixth of the barometer's noise.
Physics: model C1 (the open-loop law, no impedance) at the nominal hatch position H₀ = 22.5°
         with its offset: P_dw − P_amb = S (u_in² − u_out²) + p₀, S and p₀ unknown (S softplus,
         initialised at 3.75 Pa; p₀ identity, initialised at 0 Pa). True values from the
         simulator's parameters: S* = S_max (1 − r(H₀)) = 7.5 Pa, p₀* = 1.5 Pa.
Network: MLP 3→64→64→1 with ReLU, last layer zero-initialised. It must learn the hatch's
         effect −S_max β (H − H₀)/45° · (u_in² − u_out²), which the C1 law lacks; it can as well
         learn (S* − S)(u_in² − u_out²) + (p₀* − p₀) and leave any θ to the physics.
         θ error: mean relative error of (S, p₀).

Why static: the pressure follows the fan speeds within a sample, and the chamber measures the
speeds, so no ODE is needed (the fan dynamics A2 only shape the speeds, which are inputs here).
Why this reference hatch and design: with the fans swapped and the hatch mirrored about H₀,
the missing term is exactly orthogonal (in the data) to u_in² − u_out² and to a constant, so the
truth is also the least-squares and the minimum-‖f_nn‖ point: a method that keeps the network
small is not biased away from θ* (chapter 8 shows what happens otherwise).

Real data: :func:`real_data` reads a published experiment (e.g. ``wt_intake_impulse_v1``)
through :func:`hsam_core.chambers.load_real` and converts it with :func:`to_pairs`.
``causalchamber.datasets`` is never imported by this module.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import torch

from .. import chambers
from ..data import Pairs, add_noise
from ..experiments import Task
from ..hybrid import PhysicsModel, StaticHybrid, mlp

# Simulator parameters (SimA1C3).
L_MIN = 0.1
OMEGA_MAX = 3000.0  # rpm
S_MAX = 25.0  # Pa
Q_MAX = 0.05  # m³/s
R_0 = 0.5
BETA = 0.4
BAROMETER_ERROR = 1.5  # Pa, the offset
BAROMETER_PRECISION = 0.2  # Pa, the noise's standard deviation
P_AMBIENT = 96_000.0  # Pa
HATCH_MAX = 45.0  # degrees
HATCH_REF = 22.5  # degrees: where the physics' law is taken
P_SCALE = 10.0  # Pa: y = (P_dw − P_amb) / P_SCALE

S_TRUE = S_MAX * (1 - (R_0 + BETA * HATCH_REF / HATCH_MAX))  # 7.5 Pa
TRUTH = {"S": S_TRUE, "p0": BAROMETER_ERROR}
SPLIT_SEED = {"train": 0, "val": 10**6, "test": 2**31 - 1, "extrapolation": 2 * 10**6}
COLUMNS = ["rpm_in", "rpm_out", "hatch", "pressure_downwind", "pressure_ambient"]
LOADS = (0.0, 1.0)  # the range of each fan's load: the fans' whole range
# With the extrapolation split: training, validation and test loads in [0, LOAD_CUT); the
# extrapolation split has one fan's load in [LOAD_CUT, 1) and the other's in [0, LOAD_CUT).
LOAD_CUT = 0.7
# The measurement noise of the retrained book, added to the barometer's: 1 % of the std of the
# noise-free training readings y of the default task (400 settings: 0.330), to 2 significant
# digits: a property of the sensor, the same with the extrapolation split (whose training loads,
# reduced to [0, 0.7), give readings of std 0.161).
NOISE = 0.0033


class FanPressureLaw(PhysicsModel):
    """g_phys(x) = [S (u_in² − u_out²) + p₀] / P_SCALE: model C1 at the nominal hatch with the
    barometer's offset (it lacks the hatch's effect)."""

    def __init__(self, S: float = S_TRUE / 2, p0: float = 0.0) -> None:
        super().__init__()
        self.add_theta("S", S, map="softplus")
        self.add_theta("p0", p0, map="identity")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        drive = x[..., 0:1] ** 2 - x[..., 1:2] ** 2
        return (self.param("S") * drive + self.param("p0")) / P_SCALE


def simulator(random_state: int = 42):
    """The package's ``SimA1C3`` with this task's parameters."""
    from causalchamber.simulators.wt import SimA1C3

    return SimA1C3(
        L_min=L_MIN,
        omega_max=OMEGA_MAX,
        S_max=S_MAX,
        Q_max=Q_MAX,
        r_0=R_0,
        beta=BETA,
        barometer_error=BAROMETER_ERROR,
        barometer_precision=BAROMETER_PRECISION,
        random_state=random_state,
    )


def simulate_frame(
    split: str,
    n: int,
    loads: tuple[tuple[float, float], tuple[float, float]] = (LOADS, LOADS),
) -> pd.DataFrame:
    """``n`` steady-state samples of a split in the chamber's column format (``n`` a multiple
    of 4): a balanced design of n/4 random settings (L_in, L_out, H), each also run with the
    fans swapped and with the hatch mirrored about H₀ (L_out, L_in, H), (L_in, L_out, 2H₀ − H),
    (L_out, L_in, 2H₀ − H). L_in ~ U[loads[0]), L_out ~ U[loads[1]), H ~ U[0°, 45°)."""
    if n % 4:
        raise ValueError(f"the balanced design needs a multiple of 4 samples, got {n}")
    seed = SPLIT_SEED[split]
    rng = np.random.default_rng(seed + 1)
    a, b = rng.uniform(*loads[0], n // 4), rng.uniform(*loads[1], n // 4)
    h = rng.uniform(0.0, HATCH_MAX, n // 4)
    inputs = pd.DataFrame(
        {
            "load_in": np.concatenate([a, b, a, b]),
            "load_out": np.concatenate([b, a, b, a]),
            "hatch": np.concatenate([h, h, 2 * HATCH_REF - h, 2 * HATCH_REF - h]),
            "pressure_ambient": np.full(n, P_AMBIENT),
        }
    )
    pressure, rpm_in, rpm_out = simulator(seed).simulate_from_inputs(inputs)
    return inputs.assign(pressure_downwind=pressure, rpm_in=rpm_in, rpm_out=rpm_out)


def to_pairs(frame: pd.DataFrame, source: str = "wind-tunnel data") -> Pairs:
    """Pairs (x, y) from a frame with the chamber's columns (checked: see
    :func:`chambers.check_columns`)."""
    f = chambers.check_columns(frame, COLUMNS, source)
    x = np.stack([f.rpm_in / OMEGA_MAX, f.rpm_out / OMEGA_MAX, f.hatch / HATCH_MAX], axis=-1)
    y = ((f.pressure_downwind - f.pressure_ambient) / P_SCALE).to_numpy()[:, None]
    return Pairs(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))


def make_data(
    split: str,
    n: int,
    noise: float = 0.0,
    loads: tuple[tuple[float, float], tuple[float, float]] = (LOADS, LOADS),
) -> Pairs:
    """``n`` simulated pairs of a split (loads as in :func:`simulate_frame`), with Gaussian
    noise of std ``noise`` (units of y) drawn from the split's seed on top of the barometer's."""
    pairs = to_pairs(simulate_frame(split, n, loads), f"simulated {split} split")
    if not noise:
        return pairs
    y = add_noise(pairs.y.double(), noise, SPLIT_SEED[split] + 7)
    return Pairs(pairs.x, y.float())


def real_data(experiment: str, dataset: str = "wt_intake_impulse_v1", root=None) -> Pairs:
    """Pairs from a published wind-tunnel experiment (downloaded once, md5-verified, cached;
    offline: the ``ConnectionError`` of :func:`chambers.load_real`)."""
    frame = chambers.load_real(dataset, experiment, COLUMNS, root=root)
    return to_pairs(frame, f"{dataset}/{experiment}")


def hatch_term(x: torch.Tensor) -> torch.Tensor:
    """What the law misses, in units of P_SCALE: −S_max β (H − H₀)/45° · (u_in² − u_out²)."""
    drive = x[..., 0:1] ** 2 - x[..., 1:2] ** 2
    dev = x[..., 2:3] - HATCH_REF / HATCH_MAX
    return -S_MAX * BETA * dev * drive / P_SCALE


def make_hybrid(
    hidden: int = 64, physics: str = "incomplete", network: bool = True
) -> StaticHybrid:
    """The C1 law with unknown (S, p₀) (``physics="incomplete"``, or ``"none"``) + MLP
    3→hidden→hidden→1 (or no network)."""
    laws = {"incomplete": FanPressureLaw, "none": lambda: None}
    if physics not in laws:
        raise ValueError(f"physics must be one of {sorted(laws)}, got {physics!r}")
    net = mlp([3, hidden, hidden, 1]) if network else None
    return StaticHybrid(laws[physics](), net, state_dim=3)


# The task's version in run keys: bump it when the model or scoring change what a run computes
# (a change to the data needs no bump: the data hash follows it).
VERSION = 1


def task(
    n_train: int = 400,
    n_val: int = 200,
    n_test: int = 400,
    hidden: int = 64,
    noise: float = 0.0,
    extrapolation: bool = False,
) -> Task:
    """The wind-tunnel task: simulated steady-state pairs, the hybrid of :func:`make_hybrid`.
    ``extrapolation`` reduces the loads of the training, validation and test data to
    [0, :data:`LOAD_CUT`) and adds n_val settings with one fan above it; ``noise`` is the std
    of measurement noise added to the barometer's (:data:`NOISE` in the book)."""
    spec = {
        "n_train": n_train,
        "n_val": n_val,
        "n_test": n_test,
        "hidden": hidden,
        "simulator": "SimA1C3",
        "params": [L_MIN, OMEGA_MAX, S_MAX, Q_MAX, R_0, BETA],
        "barometer": [BAROMETER_ERROR, BAROMETER_PRECISION],
        "hatch_ref": HATCH_REF,
    }
    if noise:  # absent when 0: the spec of the noise-free task stays as it was
        spec["noise"] = noise
    loads, extra = (LOADS, LOADS), None
    if extrapolation:
        low, high = (LOADS[0], LOAD_CUT), (LOAD_CUT, LOADS[1])
        loads = (low, low)
        extra = make_data("extrapolation", n_val, noise, (high, low))
        spec["extrapolation"] = (
            f"{n_val} settings with one fan's load in [{LOAD_CUT:g}, {LOADS[1]:g}) and the "
            f"other's in [{LOADS[0]:g}, {LOAD_CUT:g}), hatch U[0, {HATCH_MAX:g}) deg, the "
            f"balanced design (fans swapped, hatch mirrored); training, validation and test "
            f"loads reduced to [{LOADS[0]:g}, {LOAD_CUT:g}) (default: [{LOADS[0]:g}, "
            f"{LOADS[1]:g}))"
        )
    return Task(
        name="wind_tunnel",
        train=make_data("train", n_train, noise, loads),
        val=make_data("val", n_val, noise, loads),
        test=make_data("test", n_test, loads=loads),
        make_model=functools.partial(make_hybrid, hidden=hidden),
        truth=TRUTH,
        spec=spec,
        version=VERSION,
        extrapolation=extra,
        # the barometer's noise is on every split, the added noise on all but the test
        noise=float(np.hypot(BAROMETER_PRECISION / P_SCALE, noise)),
    )
