"""The damped pendulum of :mod:`hsam_core.systems.pendulum` with the grey-box coupling.

Same data, same incomplete physics (frictionless pendulum, unknown ω₀²), same network size; only
what the network sees changes. The additive hybrid (APHYNITY, Yin et al., 2021) is

    dx/dt = f_phys(x; ω₀²) + f_nn(x),                      network 2→h→h→2,

the grey-box coupling (deep grey-box models, Takeishi & Kalousis, 2023) feeds the network the
physics parameter and the physics' own output as well:

    dx/dt = f_phys(x; ω₀²) + f_nn([x, ω₀², f_phys(x; ω₀²)]),  network 5→h→h→2.

Both can represent the same vector fields; they differ in how *cheaply* the network can absorb
an error of ω₀²: the grey-box network receives −ω₀² sin q as an input, so compensating a wrong
ω₀² is a linear function of one of its inputs. Chapter 3 uses this to show how the regularizer
baselines depend on the architecture.

``grid()``, ``task()``, ``SEEDS`` and ``TRAINING`` follow the convention of
``python -m hsam_core.experiments pendulum_greybox``, which fills the results cache of these
configurations ahead of the chapter.
"""

from __future__ import annotations

from ..experiments import Config, Model
from ..hybrid import HybridODE
from ..regularizers import Aphynity
from ..runtime import pick
from ..train import Method
from . import pendulum

SEEDS = pendulum.SEEDS
TRAINING = pendulum.TRAINING
task = pendulum.task  # the same data, splits and true θ as the additive pendulum
LABEL = "grey-box"


def make_hybrid(hidden: int = 200) -> HybridODE:
    """Frictionless pendulum (ω₀² unknown) + MLP 5→h→h→2 on [q, p, ω₀², f_phys(q, p)]."""
    return pendulum.make_hybrid(hidden=hidden, coupling="greybox")


def model_factory(hidden: int | None = None) -> Model:
    """The grey-box hybrid as a :class:`~hsam_core.experiments.Model` for
    ``experiments.run(make_model=...)``; ``hidden`` defaults to the width of
    ``pendulum.task()``'s network (200 in full mode, 32 in quick mode)."""
    return Model(make_hybrid, {"hidden": hidden or pick(200, 32)})


def grid() -> list[Config]:
    """ERM, APHYNITY and L2 with the grey-box coupling, at exactly the settings of
    ``pendulum.grid()``: APHYNITY penalises the network's *output* (λ₀ = 1, τ₂ = 1, every 5
    steps, state-normalised ‖f_nn‖²), L2 its *weights* (λ = 10⁻³)."""
    from ..regularizers import L2  # imported here: grid() is not part of the cache key

    make = model_factory()
    methods = [
        Method.erm(),
        Method.regularized(Aphynity(lambda0=1.0, tau2=1.0, every=5, normalized=True)),
        Method.regularized(L2(1e-3)),
    ]
    return [Config(m, make, f"{m.label} [{LABEL}]") for m in methods]
