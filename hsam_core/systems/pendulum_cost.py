"""The accuracy–cost grid of the damped pendulum: SAM, ASAM and their amortised LookSAM variants.

Same task, data, network and training budget as :mod:`hsam_core.systems.pendulum` (Part I): the
configurations differ only in the optimizer, so θ error and wall time per epoch compare at equal
epochs. ERM, SAM (nn) ρ = 0.1 and ASAM (nn) ρ = 1 are chapter 5's configurations (they share its
results cache); LookSAM (Liu et al., 2022) takes the full SAM (or ASAM) gradient every k-th step
and reuses its sharpness direction in between:

* LookSAM (nn) k = 5 and k = 10, α = 0.7 (the paper's α): ≈ 1.2× and 1.1× an Adam step;
* LookSAM (nn) k = 5, α = 0: SAM every fifth step and plain steps in between — the ablation that
  tells whether the reuse, or only the occasional SAM step, carries the effect;
* LookASAM (nn) ρ = 1, k = 5: the same amortisation of ASAM, chapter 5's chosen SAM variant.

``python -m hsam_core.experiments pendulum_cost`` fills the cache ahead of the chapter.
"""

from __future__ import annotations

from ..experiments import Config
from ..runtime import pick
from ..train import Method
from . import pendulum

SEEDS = pendulum.SEEDS
TRAINING = pendulum.TRAINING
task = pendulum.task
EVERY = pick(full=[5, 10], quick=[5])


def grid() -> list[Config]:
    """ERM, SAM, ASAM and LookSAM; most informative first (a sweep cut short still compares)."""
    return [
        Config(Method.erm()),
        Config(Method.sam(0.1)),
        Config(Method.looksam(0.1, every=5)),
        Config(Method.asam(1.0)),
        Config(Method.looksam(1.0, every=5, adaptive=True)),
        *[Config(Method.looksam(0.1, every=k)) for k in EVERY if k != 5],
        *pick([Config(Method.looksam(0.1, every=5, alpha=0.0))], []),
    ]
