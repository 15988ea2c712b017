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

import argparse
import pathlib
from collections.abc import Sequence

import pandas as pd

from .. import experiments
from ..experiments import ASAM_RHOS, SAM_RHOS, Config
from ..results import merge_rows
from ..runtime import quick_mode
from ..train import Method
from . import reaction_diffusion as rd

SEEDS = rd.SEEDS
TRAINING = rd.TRAINING
task = rd.task  # the same data, splits, model and true θ as chapter 7
TABLE = "reaction_diffusion_rho.csv"
KEYS = ["method", "rho"]


def grid() -> list[Config]:
    """SAM (nn) and ASAM (nn) at every radius of the book's grids that the chapter's grid
    (:func:`hsam_core.systems.reaction_diffusion.grid`, in the current mode) lacks."""
    ran = {(c.label, c.method.rho) for c in rd.grid()}
    methods = [*map(Method.sam, SAM_RHOS), *map(Method.asam, ASAM_RHOS)]
    return [Config(m) for m in methods if (m.label, m.rho) not in ran]


def collect() -> pd.DataFrame:
    """The per-seed rows of every configuration of :func:`grid` whose full-mode result is in the
    results cache, with ``converged`` (:func:`~hsam_core.experiments.settled` on θ's history,
    as chapter 7 computes it) and ``selected = 0``; nothing is trained. The wall time per seed
    is in ``seconds_measured`` and ``seconds`` is NaN: these runs need not share a machine with
    the chapter's, so their times are not comparable with its ERM's (the cost ratios of
    :func:`hsam_core.results.headline_table` read ``seconds``)."""
    if quick_mode():
        raise RuntimeError("the table holds full-mode results: unset HSAM_QUICK")
    import torch

    from .. import sweep  # the sweep's plan locates the cached results (imported late: a cycle)

    _, cached = sweep.plan(["reaction_diffusion_rho"])
    frames = []
    for job in sorted(cached, key=lambda j: j.index):
        saved = torch.load(job.path, weights_only=False)
        flags = experiments.settled(saved["history"].theta).float().numpy()
        rows = pd.DataFrame(saved["rows"])
        frames.append(
            rows.assign(
                selected=0,
                converged=flags,
                seconds=float("nan"),
                seconds_measured=rows.seconds,
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=KEYS)


def write_tables(folder: pathlib.Path) -> pd.DataFrame:
    """:func:`collect` merged into ``folder``'s table: the cached configurations replace their
    committed rows, the others keep theirs (:func:`hsam_core.results.merge_rows`); returns it."""
    file = folder / TABLE
    committed = pd.read_csv(file) if file.is_file() else pd.DataFrame(columns=KEYS)
    order = [(c.label, c.method.rho) for c in grid()]
    merged = merge_rows(committed, collect(), order)
    merged.to_csv(file, index=False)
    return merged


def main(argv: Sequence[str] | None = None) -> None:
    """Write the cached results of :func:`grid` into ``book/results`` (run from the repository
    root)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--results", type=pathlib.Path, default=pathlib.Path("book/results"))
    args = parser.parse_args(argv)
    if not args.results.is_dir():
        parser.error(f"{args.results} is not a folder: run from the repository root")
    rows = write_tables(args.results)
    have = set(zip(rows.method, rows.rho)) if len(rows) else set()
    missing = [
        f"{c.label} ρ={c.method.rho:g}" for c in grid() if (c.label, c.method.rho) not in have
    ]
    print(f"{args.results / TABLE}: {len(have)} of {len(grid())} configurations, {len(rows)} rows")
    if missing:
        print("not run yet:", ", ".join(missing))


if __name__ == "__main__":
    main()
