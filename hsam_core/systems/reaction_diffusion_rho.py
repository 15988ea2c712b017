"""Reaction–diffusion's SAM and ASAM at the radii of the book's grids that chapter 7 does not run.

Chapter 7 runs plain SAM at ρ ∈ {0.03, 0.1, 0.3} and ASAM at ρ = 1
(:func:`hsam_core.systems.reaction_diffusion.grid`): a SAM configuration takes 20 to 36 minutes
on one core of a two-core machine, so the full grids (SAM at
:data:`~hsam_core.experiments.SAM_RHOS`, ASAM at :data:`~hsam_core.experiments.ASAM_RHOS`) with
every other method do not fit in one working session beside the chapter. This module is the
rest of the grids, with the chapter's task, model, seeds and training — the same cache key as a
configuration of the chapter's own grid would have, so a result here is the one the chapter
would compute (SAM at ρ = 0.03 and ASAM at ρ = 1, run this way, reproduced the chapter's θ
errors bit for bit).

Its table accumulates instead of being written by a chapter, like the architecture study's::

    python -m hsam_core.experiments reaction_diffusion_rho     # train what is not cached
    python -m hsam_core.systems.reaction_diffusion_rho         # cache -> book/results/

The second command writes every cached configuration into ``reaction_diffusion_rho.csv`` and
keeps the committed rows of the others. Its rows have ``selected = 0``: a choice of ρ needs the
whole grid, and :func:`hsam_core.results.load_results` makes it when it joins these rows to
chapter 7's table (``supplements``).
"""

from __future__ import annotations

from ..experiments import ASAM_RHOS, SAM_RHOS, Config
from ..train import Method
from . import reaction_diffusion as rd
from .supplement import Supplement

SEEDS = rd.SEEDS
TRAINING = rd.TRAINING
task = rd.task  # the same data, splits, model and true θ as chapter 7
TABLE = "reaction_diffusion_rho.csv"


def grid() -> list[Config]:
    """SAM (nn) and ASAM (nn) at every radius of the book's grids that the chapter's grid
    (:func:`hsam_core.systems.reaction_diffusion.grid`, in the current mode) lacks."""
    ran = {(c.label, c.method.rho) for c in rd.grid()}
    methods = [*map(Method.sam, SAM_RHOS), *map(Method.asam, ASAM_RHOS)]
    return [Config(m) for m in methods if (m.label, m.rho) not in ran]


SUPPLEMENT = Supplement("reaction_diffusion_rho", TABLE, grid)
# the supplement's table, as module functions (``reproduce`` calls ``write_tables(folder)``)
collect, write_tables, main = SUPPLEMENT.collect, SUPPLEMENT.write_tables, SUPPLEMENT.main


if __name__ == "__main__":
    main()
