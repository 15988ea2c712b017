"""The Duffing twin's comparison trained four times longer: chapter 8b's grid at 1200 epochs.

Chapter 8b trains its grid for 300 epochs, and there no SAM or ASAM seed settles (ASAM's α still
rises towards the truth); it trains ERM and the configuration the rule picked four times longer,
and those still drift. Whether the rule's pick, and SAM's best radius, change with a longer
budget needs the whole grid at that budget: this module is chapter 8b's configurations that
train a network — ERM, SAM (nn) and ASAM (nn) over the book's ρ grids, then APHYNITY, L2 and
orthogonality — with its task, seeds, minibatches and learning rates, for 1200 epochs. ERM and
ASAM (nn) at ρ = 0.3 have the cache keys of chapter 8b's own four-times-longer runs.

A SAM configuration takes about 55 minutes of one core of the two-core machine at this length,
so the table accumulates over sessions, like :mod:`~hsam_core.systems.reaction_diffusion_rho`'s::

    python -m hsam_core.experiments duffing_identifiable_long    # train what is not cached
    python -m hsam_core.systems.duffing_identifiable_long        # cache -> book/results/

It writes two tables: the per-seed rows (``duffing_identifiable_long.csv``) and α̂, β̂ against
epoch (``duffing_identifiable_long_theta.csv``, every tenth epoch) for chapter 11's figure.
"""

from __future__ import annotations

from ..experiments import Config
from ..runtime import pick
from . import duffing_identifiable as twin
from .supplement import Supplement

SEEDS = twin.SEEDS
TRAINING = {**twin.TRAINING, "epochs": pick(4, 2) * twin.TRAINING["epochs"]}  # chapter 8b's
task = twin.task  # the same data, splits, model and true θ as chapter 8b
LABELS = ("ERM", "SAM (nn)", "ASAM (nn)", "APHYNITY", "L2", "orthogonality")


def grid() -> list[Config]:
    """The configurations of chapter 8b's grid (in the current mode) that train a network
    with one of :data:`LABELS`, in its order."""
    return [c for c in twin.grid() if c.label in LABELS and not c.model_label]


SUPPLEMENT = Supplement(
    "duffing_identifiable_long",
    "duffing_identifiable_long.csv",
    grid,
    paths="duffing_identifiable_long_theta.csv",  # α and β against epoch, for chapter 11's figure
)
# the supplement's table, as module functions (``reproduce`` calls ``write_tables(folder)``)
collect, write_tables, main = SUPPLEMENT.collect, SUPPLEMENT.write_tables, SUPPLEMENT.main


if __name__ == "__main__":
    main()
