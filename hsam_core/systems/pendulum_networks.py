"""The damped pendulum's hybrid with four networks: what a practitioner might plausibly try.

Every variant keeps the data, the splits, the incomplete physics (frictionless pendulum, ω₀²
unknown, softplus, initialised at 0.5), the zero-initialised last layer (training starts from the
physics alone), the optimiser and the training budget of :mod:`hsam_core.systems.pendulum`; only
the network changes:

* ``additive`` — Part I's hybrid: dx/dt = f_phys(x; ω₀²) + f_nn(x), MLP 2→h→h→2, ReLU.
* ``grey-box`` — chapter 3's coupling: f_nn sees [x, ω₀², f_phys(x; ω₀²)], MLP 5→h→h→2, ReLU.
* ``deeper`` — one more hidden layer: MLP 2→h→h→h→2, ReLU (1.5× the weights' matrix work).
* ``SiLU`` — the additive MLP with a smooth activation, x·σ(x), instead of ReLU: vector fields
  are smooth, and a smooth network is a common first change in scientific ML.

Each can represent the true damping −α p, so none changes what is identifiable in principle;
they change how cheaply the network can absorb an error of ω₀², which is what a regularizer or
a flatness bias acts on.

The factories live in this module, apart from the study that uses them
(:mod:`hsam_core.systems.pendulum_architectures`): the results cache hashes the source file of
a configuration's model factory, so editing the study keeps the cached results.
"""

from __future__ import annotations

from torch import nn

from ..experiments import Model
from ..hybrid import HybridODE, mlp
from ..runtime import pick
from . import pendulum

ARCHITECTURES = ("additive", "grey-box", "deeper", "SiLU")


def make_hybrid(architecture: str, hidden: int = 200) -> HybridODE:
    """The pendulum's incomplete physics with the network named ``architecture`` (see the
    module's docstring), ``hidden`` units per hidden layer."""
    if architecture == "additive":
        return pendulum.make_hybrid(hidden=hidden)
    if architecture == "grey-box":
        return pendulum.make_hybrid(hidden=hidden, coupling="greybox")
    if architecture == "deeper":
        net = mlp([2, hidden, hidden, hidden, 2])
    elif architecture == "SiLU":
        net = mlp([2, hidden, hidden, 2], activation=nn.SiLU)
    else:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {ARCHITECTURES}")
    return HybridODE(pendulum.FrictionlessPendulum(), net, state_dim=2)


def model_factory(architecture: str, hidden: int | None = None) -> Model:
    """The network ``architecture`` as a :class:`~hsam_core.experiments.Model` for
    ``experiments.run(make_model=...)``; ``hidden`` defaults to the width of
    ``pendulum.task()``'s network (200 in full mode, 32 in quick mode)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {ARCHITECTURES}")
    return Model(make_hybrid, {"architecture": architecture, "hidden": hidden or pick(200, 32)})
