"""The light tunnel of the Causal Chambers (Gamella, Peters & Bühlmann 2025; TASKS.md §6).

Chamber: an LED light source of brightness (R, G, B) ∈ [0, 255]³ shines through two linear
         polarisers at angles ψ₁, ψ₂ (degrees) onto a light sensor (the third, behind both
         polarisers); its visible-light photodiode reads the intensity ``vis_3``.
Truth:   the package's sensor simulator ``causalchamber.simulators.lt.Deterministic`` with the
         parameters fitted to the real chamber (its tutorial's values, :data:`SIM_PARAMETERS`):
         vis₃ = g · s · [diag(T_p − T_c) cos²(ψ₁ − ψ₂) + diag(T_c)] (d₁/d₃)² (R, G, B)ᵀ,
         s = S[1] the photodiode's response to red, green and blue, T_p and T_c *per colour*
         (the polarisers pass blue differently from red), g = 2^(diode + exposure). On top, two
         effects of a real sensor that the simulator lacks (our choice, stated in chapter 10):
         a dark reading (ambient light, :data:`DARK`) and a saturating response near the top
         of the sensor's range, y ↦ y_sat · tanh(y / y_sat) (:data:`SATURATION`).
Data:    (R, G, B) uniform on [0, 255]³ and ψ₁, ψ₂ uniform on [−90°, 90°), one seed per sample
         and split (train i, validation 10⁶ + i, test 2³¹ − 1 − i). Readings divided by
         :data:`Y_SCALE` and optionally noisy.
Extrapolation: (``task(extrapolation=True)``) the inputs cover the LED's whole range and the
         polarisers' whole period, so the second polariser's angle ψ₂ of the training,
         validation and test data is reduced to U[−90°, 30°) and the extrapolation split (n_val
         settings, seeds 2·10⁶ + i) has ψ₂ ~ U[30°, 90°), the rest as in training: a polariser
         turned where it never was, at angle differences ψ₁ − ψ₂ (mod 180°) and readings that
         training covered — Malus's law, a function of ψ₁ − ψ₂, predicts them; a network of
         (ψ₁, ψ₂) must extrapolate. (Not the brightness: with training R, G, B < 170 and the
         extrapolation's above, the sensor's saturation would grow from ≤ 14 % to ≤ 32 % below
         the linear response, a term the network must extrapolate whatever the physics.)
Noise:   ``noise`` (std, in units of :data:`Y_SCALE`) on the training, validation and
         extrapolation readings, seeded per split; the test readings are noise-free. The book's
         level is :data:`NOISE` = 0.0041, 1 % of the std of the noise-free training readings.
Physics: Malus's law (the package's model E1, ``causalchamber.models.model_e1``) with I₀ the
         sensor's linear response to the colour: y = c · (θ · (R, G, B)/255) ·
         [(T_p − T_c) cos²(ψ₁ − ψ₂) + T_c], with θ = (θ_r, θ_g, θ_b) and scalar T_p, T_c
         unknown, c the known distances and gain. (θ, T_p, T_c) and (λθ, T_p/λ, T_c/λ) predict
         the same readings, so θ is identifiable only up to scale: it is scored by the cosine
         similarity to s, and by the relative error of θ rescaled to the norm of s.
Network: MLP 5→64→64→1 with ReLU on (R/255, G/255, B/255, ψ₁/90°, ψ₂/90°), last layer
         zero-initialised. It must learn the colour dependence of T_p, T_c, the dark reading
         and the saturation.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from .. import chambers
from ..data import Pairs
from ..experiments import Task
from ..hybrid import PhysicsModel, StaticHybrid, mlp
from ..runtime import pick

# The simulator's parameters fitted to the real chamber (causalchamber 0.2.8's tutorial
# ``simulators/tutorials/test_scripts/tutorial_Deterministic.py``).
SIM_PARAMETERS = {
    "S": np.array([[4.34165202, 2.8594438, 1.91565691], [0.89410569, 1.58679242, 2.68477163]]),
    "d1": np.array(0.1),
    "d2": np.array(0.17),
    "d3": np.array(0.25),
    "Ts": np.array([0.42685688, 0.41231782, 0.46652526]),
    "Tp": np.array([0.2909342, 0.29624314, 0.30526271]),
    "Tc": np.array([0.00431032, 0.01447611, 0.02041075]),
    "Q": np.array([0.12834946, 0.12870338, 0.13078523]),
    "C0": np.array(58.13307318503893),
    "A": np.array(1.42261211),
    "a1": np.array(506.8049747171294),
    "a2": np.array(510.98343062774353),
}
RESPONSE = SIM_PARAMETERS["S"][1]  # the visible photodiode's response to (R, G, B): the true θ
NAMES = ("r", "g", "b")  # θ = (θ_r, θ_g, θ_b): columns theta_r, theta_g, theta_b
TRUTH = dict(zip(NAMES, map(float, RESPONSE)))
DIODE, EXPOSURE = 1, 1  # sensor settings of every reading: gain 2^(1 + 1) = 4
GAIN = 2.0 ** (DIODE + EXPOSURE)
Y_SCALE = 100.0  # readings are divided by this (the largest reading is ≈ 1.3 after scaling)
DARK = 0.05  # dark reading (ambient light), in units of Y_SCALE
SATURATION = 2.0  # y_sat of the sensor's saturating response, in units of Y_SCALE
# What the physics knows: the distances and the gain (c in the docstring), per unit of R/255.
KNOWN = GAIN * float(SIM_PARAMETERS["d1"] / SIM_PARAMETERS["d3"]) ** 2 * 255.0 / Y_SCALE
SPLIT_SEED = {"train": 0, "val": 10**6, "test": 2**31 - 1, "extrapolation": 2 * 10**6}
INPUTS = ("red", "green", "blue", "pol_1", "pol_2")
ANGLES = (-90.0, 90.0)  # the range of each polariser's angle (degrees): a whole period
# With the extrapolation split: the second polariser's angle ψ₂ in [−90°, ANGLE_CUT) in the
# training, validation and test data, in [ANGLE_CUT, 90°) in the extrapolation split.
ANGLE_CUT = 30.0
# The measurement noise of the retrained book: 1 % of the std of the noise-free training
# readings of the default task (500 settings: 0.409), to 2 significant digits: a property of the
# sensor, the same with the extrapolation split (whose training readings, ψ₂ reduced to
# [−90°, 30°), have std 0.412).
NOISE = 0.0041
OUTPUT = "vis_3"


class MalusLaw(PhysicsModel):
    """y = c (θ · rgb) [(T_p − T_c) cos²(ψ₁ − ψ₂) + T_c]: Malus's law (model E1) with the
    sensor's colour response θ unknown. Inputs (R/255, G/255, B/255, ψ₁/90°, ψ₂/90°)."""

    def __init__(
        self, theta: float | Sequence[float] = 1.0, tp: float = 0.5, tc: float = 0.05
    ) -> None:
        super().__init__()
        values = [theta] * len(NAMES) if isinstance(theta, (int, float)) else list(theta)
        for name, value in zip(NAMES, values, strict=True):
            self.add_theta(name, float(value), map="softplus")
        self.add_theta("Tp", tp, map="softplus")
        self.add_theta("Tc", tc, map="softplus")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        response = torch.stack([self.param(n) for n in NAMES], dim=-1)
        intensity = (x[..., :3] * response).sum(-1, keepdim=True)
        angle = (x[..., 3:4] - x[..., 4:5]) * (math.pi / 2)  # ψ₁ − ψ₂ in radians
        malus = (self.param("Tp") - self.param("Tc")) * torch.cos(angle) ** 2 + self.param("Tc")
        return KNOWN * intensity * malus


def nominal_law() -> MalusLaw:
    """Malus's law at the true response s and the colour-averaged T_p, T_c: the physics part
    of the true split (what the law explains; the network should add the rest)."""
    return MalusLaw(
        RESPONSE, float(SIM_PARAMETERS["Tp"].mean()), float(SIM_PARAMETERS["Tc"].mean())
    )


def sample_inputs(split: str, n: int, pol_2: tuple[float, float] = ANGLES) -> pd.DataFrame:
    """``n`` chamber settings with the simulator's column names: R, G, B ~ U[0, 255),
    ψ₁ ~ U[−90°, 90°), ψ₂ ~ U[pol_2); sample i depends only on (split, i)."""
    rows = []
    for i in range(n):
        rng = np.random.default_rng(SPLIT_SEED[split] + (i if split != "test" else -i))
        r, g, b = rng.uniform(0, 255, 3)
        p1, p2 = rng.uniform([ANGLES[0], pol_2[0]], [ANGLES[1], pol_2[1]])
        rows.append((r, g, b, p1, p2))
    frame = pd.DataFrame(rows, columns=list(INPUTS))
    fixed = {f"diode_{k}_{j}": DIODE for k in ("ir", "vis") for j in (1, 2, 3)}
    fixed |= {f"t_{k}_{j}": EXPOSURE for k in ("ir", "vis") for j in (1, 2, 3)}
    fixed |= {"v_c": 5.0, "v_angle_1": 5.0, "v_angle_2": 5.0}
    return frame.assign(**fixed)


def simulate(inputs: pd.DataFrame) -> np.ndarray:
    """The reading ``vis_3`` of each setting: the package's simulator, then the dark reading
    and the saturation (in units of :data:`Y_SCALE`)."""
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints a banner on import
        import causalchamber.simulators.lt as lt  # offline numpy code

    outputs = lt.Deterministic(**SIM_PARAMETERS).simulate_from_inputs(inputs)
    linear = outputs[lt.Deterministic.outputs_names.index(OUTPUT)] / Y_SCALE
    return SATURATION * np.tanh((linear + DARK) / SATURATION)


def to_pairs(frame: pd.DataFrame, y: np.ndarray | None = None) -> Pairs:
    """Chamber columns → network inputs (R/255, G/255, B/255, ψ₁/90°, ψ₂/90°) and readings
    (``y``, or the frame's ``vis_3`` divided by :data:`Y_SCALE`)."""
    x = frame[list(INPUTS)].to_numpy(dtype=np.float64) / np.array([255, 255, 255, 90, 90])
    if y is None:
        y = frame[OUTPUT].to_numpy(dtype=np.float64) / Y_SCALE
    return Pairs(torch.tensor(x).float(), torch.tensor(y).float().reshape(-1, 1))


def make_data(split: str, n: int, noise: float = 0.0, pol_2: tuple[float, float] = ANGLES) -> Pairs:
    """``n`` simulated (setting, reading) pairs of a split (ψ₂ ~ U[pol_2)), with Gaussian noise
    of std ``noise`` (units of :data:`Y_SCALE`)."""
    inputs = sample_inputs(split, n, pol_2)
    y = simulate(inputs)
    if noise > 0:
        rng = np.random.default_rng(SPLIT_SEED[split] + 7)
        y = y + noise * rng.standard_normal(y.shape)
    return to_pairs(inputs, y)


def real_data(dataset: str = "lt_malus_v1", experiment: str | None = None) -> Pairs:
    """The real chamber's readings of a published dataset — one experiment, or all of them
    (``None``) — through :func:`chambers.load_real` (a network is needed the first time). Its
    sensor settings must match the gain the physics knows (:data:`KNOWN`)."""
    columns = [*INPUTS, OUTPUT, "diode_vis_3", "t_vis_3"]
    return pairs_from_frame(chambers.load_real(dataset, experiment, columns))


def pairs_from_frame(frame: pd.DataFrame) -> Pairs:
    """Checked chamber columns → :class:`Pairs`; refuses readings taken at another gain."""
    for column, value in (("diode_vis_3", DIODE), ("t_vis_3", EXPOSURE)):
        other = int((frame[column] != value).sum())
        if other:
            raise ValueError(
                f"{other} of {len(frame)} rows have {column} != {value}: the physics assumes "
                f"the gain 2^({DIODE} + {EXPOSURE})"
            )
    return to_pairs(frame)


def make_hybrid(
    hidden: int = 64, network: bool = True, physics: str = "incomplete"
) -> StaticHybrid:
    """Malus's law with unknown colour response (``physics="incomplete"``, or ``"none"``) +
    MLP 5→hidden→hidden→1 (or no network)."""
    laws = {"incomplete": MalusLaw, "none": lambda: None}
    if physics not in laws:
        raise ValueError(f"physics must be one of {sorted(laws)}, got {physics!r}")
    net = mlp([len(INPUTS), hidden, hidden, 1]) if network else None
    return StaticHybrid(laws[physics](), net, state_dim=len(INPUTS))


def theta_scores(theta: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """θ identifiable up to scale: cosine similarity to the true response, and the mean
    relative error of θ rescaled to the true norm."""
    est = torch.stack([theta[n] for n in NAMES], dim=-1)
    true = torch.tensor(RESPONSE, dtype=est.dtype)
    cosine = torch.nn.functional.cosine_similarity(est, true.expand_as(est), dim=-1)
    scaled = est / est.norm(dim=-1, keepdim=True) * true.norm()
    return {"theta_rel_error": ((scaled - true).abs() / true).mean(-1), "theta_cosine": cosine}


def ratios(theta: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What the data determine of θ (identifiable only up to scale): θ_r / θ_b and θ_g / θ_b,
    of θ's values or of their histories."""
    return {"r/b": theta["r"] / theta["b"], "g/b": theta["g"] / theta["b"]}


# The task's version in run keys: bump it when the model or scoring change what a run computes
# (a change to the data needs no bump: the data hash follows it).
VERSION = 1


def task(
    n_train: int | None = None,
    n_val: int = 200,
    n_test: int = 500,
    noise: float = 0.0,
    extrapolation: bool = False,
) -> Task:
    """The light-tunnel task: simulated readings, the hybrid of :func:`make_hybrid`.
    ``extrapolation`` reduces the second polariser's angle in the training, validation and test
    data to [−90°, :data:`ANGLE_CUT`) and adds n_val settings beyond it; ``noise`` is the std
    of the measurement noise (:data:`NOISE` in the book)."""
    n_train = n_train or pick(500, 200)
    hidden = pick(64, 32)
    spec = {
        "n_train": n_train,
        "n_val": n_val,
        "n_test": n_test,
        "noise": noise,
        "hidden": hidden,
        "dark": DARK,
        "saturation": SATURATION,
        "y_scale": Y_SCALE,
    }
    pol_2, extra = ANGLES, None
    if extrapolation:
        pol_2 = (ANGLES[0], ANGLE_CUT)
        extra = make_data("extrapolation", n_val, noise, (ANGLE_CUT, ANGLES[1]))
        spec["extrapolation"] = (
            f"{n_val} settings with the second polariser at pol_2 ~ U[{ANGLE_CUT:g}, "
            f"{ANGLES[1]:g}) deg, pol_1 ~ U[{ANGLES[0]:g}, {ANGLES[1]:g}) deg, R, G, B ~ "
            f"U[0, 255); training, validation and test pol_2 reduced to U[{ANGLES[0]:g}, "
            f"{ANGLE_CUT:g}) deg (default: U[{ANGLES[0]:g}, {ANGLES[1]:g}))"
        )
    return Task(
        name="light_tunnel",
        train=make_data("train", n_train, noise, pol_2),
        val=make_data("val", n_val, noise, pol_2),
        test=make_data("test", n_test, pol_2=pol_2),
        make_model=functools.partial(make_hybrid, hidden=hidden),
        truth=TRUTH,
        spec=spec,
        theta_scores=theta_scores,
        identified=ratios,
        version=VERSION,
        extrapolation=extra,
        noise=noise,
    )
