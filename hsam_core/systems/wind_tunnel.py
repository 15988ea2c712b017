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
from ..data import Pairs
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
SPLIT_SEED = {"train": 0, "val": 10**6, "test": 2**31 - 1}
COLUMNS = ["rpm_in", "rpm_out", "hatch", "pressure_downwind", "pressure_ambient"]


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


def simulate_frame(split: str, n: int) -> pd.DataFrame:
    """``n`` steady-state samples of a split in the chamber's column format (``n`` a multiple
    of 4): a balanced design of n/4 random settings (L_in, L_out, H), each also run with the
    fans swapped and with the hatch mirrored about H₀ (L_out, L_in, H), (L_in, L_out, 2H₀ − H),
    (L_out, L_in, 2H₀ − H)."""
    if n % 4:
        raise ValueError(f"the balanced design needs a multiple of 4 samples, got {n}")
    seed = SPLIT_SEED[split]
    rng = np.random.default_rng(seed + 1)
    a, b = rng.uniform(0.0, 1.0, n // 4), rng.uniform(0.0, 1.0, n // 4)
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


def make_data(split: str, n: int) -> Pairs:
    """``n`` simulated pairs of a split."""
    return to_pairs(simulate_frame(split, n), f"simulated {split} split")


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


def task(n_train: int = 400, n_val: int = 200, n_test: int = 400, hidden: int = 64) -> Task:
    """The wind-tunnel task: simulated steady-state pairs, the hybrid of :func:`make_hybrid`."""
    return Task(
        name="wind_tunnel",
        train=make_data("train", n_train),
        val=make_data("val", n_val),
        test=make_data("test", n_test),
        make_model=functools.partial(make_hybrid, hidden=hidden),
        truth=TRUTH,
        spec={
            "n_train": n_train,
            "n_val": n_val,
            "n_test": n_test,
            "hidden": hidden,
            "simulator": "SimA1C3",
            "params": [L_MIN, OMEGA_MAX, S_MAX, Q_MAX, R_0, BETA],
            "barometer": [BAROMETER_ERROR, BAROMETER_PRECISION],
            "hatch_ref": HATCH_REF,
        },
        version=VERSION,
    )
