"""Supplements: configurations of a chapter's experiment that are trained apart from it.

Some runs do not fit in one working session beside their chapter — the radii of the book's ρ
grids that chapter 7 lacks (:mod:`~hsam_core.systems.reaction_diffusion_rho`), chapter 8b's grid
trained until θ settles (:mod:`~hsam_core.systems.duffing_identifiable_long`). Such a system
module defines ``task``, ``grid``, ``SEEDS`` and ``TRAINING`` like any other, so that a sweep
trains it (``python -m hsam_core.experiments NAME``), and a :class:`Supplement` that turns
its cached results into an accumulating table of ``book/results``::

    python -m hsam_core.systems.NAME      # cache -> book/results/<table>, committed rows kept

With ``paths``, a second table holds each configuration's θ against epoch (median and range
over seeds, every ``path_every`` epochs), for a figure of how θ travels: the training histories
themselves stay in the cache.

Rows have ``selected = 0``: a choice of ρ needs the whole grid, and
:func:`hsam_core.results.load_results` makes it when it reads the table. Their wall time per
seed is in ``seconds_measured`` and ``seconds`` is NaN: these runs need not share a machine
with the chapter's, so their times are not comparable with its ERM's (the cost ratios of
:func:`hsam_core.results.headline_table` read ``seconds``).
"""

from __future__ import annotations

import argparse
import pathlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from .. import experiments
from ..experiments import Config
from ..results import merge_rows
from ..runtime import quick_mode

KEYS = ["method", "rho"]


@dataclass(frozen=True)
class Supplement:
    """The table of system ``system`` (a module of :mod:`hsam_core.systems`), file ``table``,
    with one block of rows per configuration of ``grid()``, in its order. With ``device``
    (``"cpu"``, ``"cuda"``), the table holds only results trained on that kind of device. With
    ``paths``, the file of :meth:`collect_paths`' table, sampled every ``path_every`` epochs."""

    system: str
    table: str
    grid: Callable[[], list[Config]]
    device: str | None = None
    paths: str | None = None
    path_every: int = 10

    def _cached(self, cache: pathlib.Path | None) -> list[tuple[pd.DataFrame, dict]]:
        """(per-seed rows, θ history) of every cached full-mode result of the grid, in its
        order; a result from another device than ``device`` raises ``ValueError``."""
        if quick_mode():
            raise RuntimeError("a supplement's table holds full-mode results: unset HSAM_QUICK")
        import torch

        from .. import sweep  # its plan locates the cached results (imported late: a cycle)

        _, cached = sweep.plan([self.system], folder=cache)
        results = []
        for job in sorted(cached, key=lambda j: j.index):
            saved = torch.load(job.path, weights_only=False)
            rows = pd.DataFrame(saved["rows"])
            found = set(rows.device)
            if self.device is not None and found != {self.device}:
                raise ValueError(
                    f"{job.path}: trained on {sorted(found)}, but {self.table} holds "
                    f"{self.device} results only"
                )
            results.append((rows, saved["history"].theta))
        return results

    def collect(self, cache: pathlib.Path | None = None) -> pd.DataFrame:
        """The per-seed rows of every configuration of the system's grid whose full-mode result
        is in the results cache (``cache``, default :data:`~hsam_core.experiments.CACHE_DIR`),
        with ``converged`` (:func:`~hsam_core.experiments.settled` on θ's history), its
        ``theta_drift`` (:func:`~hsam_core.experiments.theta_drift`) and ``selected = 0``;
        nothing is trained. A result from another device than ``device``
        raises ``ValueError`` naming its file."""
        return self._rows(self._cached(cache))

    def collect_paths(self, cache: pathlib.Path | None = None) -> pd.DataFrame:
        """θ against epoch for every cached configuration: one row per (``method``, ``rho``,
        ``parameter``, ``epoch``) at epoch 1 and every ``path_every``-th epoch (the last
        included), with the ``median`` (for an even number of seeds, the lower middle value),
        ``low`` and ``high`` (minimum, maximum) over seeds."""
        return self._paths(self._cached(cache))

    @staticmethod
    def _rows(cached: list[tuple[pd.DataFrame, dict]]) -> pd.DataFrame:
        """:meth:`collect`'s table from loaded results."""
        frames = [
            rows.assign(
                selected=0,
                converged=experiments.settled(theta).float().numpy(),
                theta_drift=experiments.theta_drift(theta).numpy(),
                seconds=float("nan"),
                seconds_measured=rows.seconds,
            )
            for rows, theta in cached
        ]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=KEYS)

    def _paths(self, cached: list[tuple[pd.DataFrame, dict]]) -> pd.DataFrame:
        """:meth:`collect_paths`' table from loaded results."""
        frames = []
        for rows, theta in cached:
            for name, values in theta.items():  # (epochs, seeds)
                last = len(values)
                epochs = sorted({1, *range(self.path_every, last, self.path_every), last})
                sample = values[[e - 1 for e in epochs]]
                frames.append(
                    pd.DataFrame(
                        {
                            "method": rows.method.iloc[0],
                            "rho": rows.rho.iloc[0],
                            "parameter": name,
                            "epoch": epochs,
                            "median": sample.median(dim=1).values.numpy(),
                            "low": sample.amin(dim=1).numpy(),
                            "high": sample.amax(dim=1).numpy(),
                        }
                    )
                )
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=KEYS)

    def write_tables(self, folder: pathlib.Path, cache: pathlib.Path | None = None) -> pd.DataFrame:
        """:meth:`collect` (and :meth:`collect_paths`, with ``paths``) merged into ``folder``'s
        tables: the cached configurations replace their committed rows, the others keep theirs
        (:func:`~hsam_core.results.merge_rows`). Returns the merged rows of ``table``."""
        order = [(c.label, c.method.rho) for c in self.grid()]
        cached = self._cached(cache)  # each result file is read once for both tables
        tables = [(self.table, self._rows)] + ([(self.paths, self._paths)] if self.paths else [])
        merged = []
        for name, build in tables:
            file = pathlib.Path(folder) / name
            committed = pd.read_csv(file) if file.is_file() else pd.DataFrame(columns=KEYS)
            merged.append(merge_rows(committed, build(cached), order))
            merged[-1].to_csv(file, index=False)
        return merged[0]

    def main(self, argv: Sequence[str] | None = None) -> None:
        """Command line: write the cached results into ``book/results`` (run from the
        repository root) and say which configurations are not in the table yet."""
        parser = argparse.ArgumentParser(description=f"cached {self.system} -> {self.table}")
        parser.add_argument("--results", type=pathlib.Path, default=pathlib.Path("book/results"))
        parser.add_argument("--cache", type=pathlib.Path, help="the results cache to read")
        args = parser.parse_args(argv)
        if not args.results.is_dir():
            parser.error(f"{args.results} is not a folder: run from the repository root")
        if args.cache is not None and not args.cache.is_dir():
            parser.error(f"{args.cache} is not a folder")
        rows = self.write_tables(args.results, args.cache)
        have = set(zip(rows.method, rows.rho)) if len(rows) else set()
        configs = self.grid()
        missing = [
            f"{c.label} ρ={c.method.rho:g}" for c in configs if (c.label, c.method.rho) not in have
        ]
        print(
            f"{args.results / self.table}: {len(have)} of {len(configs)} configurations, {len(rows)} rows"
        )
        if missing:
            print("not run yet:", ", ".join(missing))
