"""Is SAM architecture-agnostic? Every method at its additive-pendulum setting on four networks.

The damped pendulum of :mod:`hsam_core.systems.pendulum` — same data, splits, physics, seeds and
training budget — with each network of :mod:`hsam_core.systems.pendulum_networks` (additive,
grey-box, deeper, SiLU). Every method keeps the setting chosen on the additive hybrid and is
never retuned:

    ERM;  L2 (λ = 10⁻³);  APHYNITY (λ₀ = 1, τ₂ = 1, every 5, state-normalised);
    orthogonality (10⁻²);  SAM (nn) ρ = 0.1;  ASAM (nn) ρ = 1.

For a method m and a network a, with e(m, a) its median θ error over seeds, the study reports
each method's worst-case ratio to the best method of each network,

    R(m) = max_a e(m, a) / min_m' e(m', a),

the number that says what a practitioner risks by trusting a setting tuned on another network.

For contrast, the study then retunes two methods per network with the book's θ-free rule
(:func:`~hsam_core.experiments.select_by_validation`: the lowest median validation MSE), each
over three values around its additive setting (``RETUNE``):

    L2 λ ∈ {10⁻⁴, 10⁻³, 10⁻²};  SAM (nn) ρ ∈ {0.03, 0.1, 0.3}.

:func:`retuned` applies the rule to a network once its whole grid is measured.

The untuned configurations on the additive network and its SAM ρ = 0.03 and 0.3 are those of
``pendulum.grid()``, and those of ERM, APHYNITY and L2 on the grey-box network those of
``pendulum_greybox.grid()``: they share their cached results (same factories, labels and
settings).

The study trains 40 configurations (24 untuned, 16 retuning) × 5 seeds × 700 epochs, more than
one session of a 2-core machine holds, so its tables accumulate: the sweep fills the results
cache, and

    python -m hsam_core.experiments pendulum_architectures --ray   # train what is not cached
    python -m hsam_core.systems.pendulum_architectures              # cache -> book/results/

writes every cached configuration into ``book/results/architectures.csv`` (one row per seed,
with ``architecture``, ``trained_with``, ``converged`` and ``theta_drift``) and its ω₀² path
into ``architectures_theta.csv``, keeping the committed rows of configurations that are not in
this machine's cache. Chapter 5c reads those two tables.
"""

from __future__ import annotations

import argparse
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import experiments
from ..experiments import Config
from ..regularizers import L2, Aphynity, Orthogonality
from ..results import merge_rows
from ..runtime import quick_mode
from ..train import Method
from . import pendulum, pendulum_greybox, pendulum_networks

SEEDS = pendulum.SEEDS
TRAINING = pendulum.TRAINING
task = pendulum.task  # the same data, splits and true θ as the additive pendulum
TABLE, PATHS = "architectures.csv", "architectures_theta.csv"
PATH_EVERY = 5  # the ω₀² paths keep every 5th epoch's median over seeds
KEYS = ["method", "rho"]  # a configuration in the tables, as in ``reproduce.compare``
ORDER = ("grey-box", "deeper", "additive", "SiLU")  # the untuned half, network by network
RETUNE_ORDER = ("grey-box", "additive", "deeper", "SiLU")  # the retuning half
L2_WEIGHT, SAM_RHO = 1e-3, 0.1  # the additive settings of the two methods the study retunes
# The grids of the retuning half: the additive setting (the middle value) and a decade or about
# half a decade either side — three values for each method.
RETUNE = {"L2": (1e-4, L2_WEIGHT, 1e-2), "SAM (nn)": (0.03, SAM_RHO, 0.3)}


def untuned_methods() -> list[Method]:
    """The six methods at the settings the book chose on the additive pendulum (chapters 3–5)."""
    return [
        Method.erm(),
        Method.regularized(L2(L2_WEIGHT)),
        Method.regularized(Aphynity(lambda0=1.0, tau2=1.0, every=5, normalized=True)),
        Method.regularized(Orthogonality(1e-2)),
        Method.sam(SAM_RHO),
        Method.asam(1.0),
    ]


def retune_methods() -> list[Method]:
    """The grid points of ``RETUNE`` that are not an untuned setting (see :func:`setting`)."""
    return [Method.regularized(L2(w)) for w in RETUNE["L2"] if w != L2_WEIGHT] + [
        Method.sam(rho) for rho in RETUNE["SAM (nn)"] if rho != SAM_RHO
    ]


def setting(method: Method) -> float:
    """The value a ``RETUNE`` grid varies: L2's λ, SAM's ρ; NaN for the other methods."""
    if method.label == "L2":
        return method.regularizer.weight
    return method.rho if method.label in RETUNE else float("nan")


@dataclass
class Entry:
    """One configuration of the study: a method on a network; ``untuned`` if at the setting
    chosen on the additive network (else a point of a ``RETUNE`` grid only)."""

    architecture: str
    config: Config
    untuned: bool = True

    @property
    def method(self) -> str:
        """The method's name, the same on every network and setting (the label is not)."""
        return self.config.method.label


def config(architecture: str, method: Method) -> Config:
    """``method`` on the network ``architecture``, sharing the cache of the chapters that ran it
    already: the additive network is the task's own model (chapter 5's configurations), the
    grey-box one chapter 3's factory and label. An L2 weight other than the untuned 10⁻³ is
    named in the label (``"L2 λ=0.01 [deeper]"``): the tables key a configuration by label and
    ρ, and L2's ρ is always 0."""
    name = method.label
    if name == "L2" and method.regularizer.weight != L2_WEIGHT:
        name = f"L2 λ={method.regularizer.weight:g}"
    if architecture == "additive":
        return Config(method, None, "" if name == method.label else name)
    if architecture == "grey-box":
        return Config(
            method, pendulum_greybox.model_factory(), f"{name} [{pendulum_greybox.LABEL}]"
        )
    return Config(method, pendulum_networks.model_factory(architecture), f"{name} [{architecture}]")


def study() -> list[Entry]:
    """Every untuned method on every network, network by network: a sweep cut short leaves
    whole networks unmeasured rather than cells scattered over all of them (the worst-case
    ratio needs every method on a network). The grey-box network comes first (half of it ran
    in chapter 3), the additive one — chapter 5's configurations — after the deeper one. Then
    the retuning half: the other points of the ``RETUNE`` grids, network by network."""
    untuned = [Entry(a, config(a, m)) for a in ORDER for m in untuned_methods()]
    grids = [Entry(a, config(a, m), False) for a in RETUNE_ORDER for m in retune_methods()]
    return untuned + grids


def grid() -> list[Config]:
    """The configurations of :func:`study`, for ``python -m hsam_core.experiments``."""
    return [entry.config for entry in study()]


def collect() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows and ω₀² paths of every configuration of :func:`study` whose full-mode result is
    in the results cache; nothing is trained. Each row gets the network (``architecture``), the
    method's name (``trained_with``), whether θ settled (``converged``, see
    :func:`~hsam_core.experiments.settled`) and its last-fifth drift (``theta_drift``); a path
    row is the median ω₀² over seeds at every ``PATH_EVERY``-th epoch. ``setting`` is the value a
    ``RETUNE`` grid varies (NaN for the other methods) and ``untuned`` marks the configurations at
    the additive network's settings."""
    if quick_mode():
        raise RuntimeError("the study's tables hold full-mode results: unset HSAM_QUICK")
    import torch

    from .. import sweep  # the sweep's plan locates the cached results (imported late: a cycle)

    entries = study()
    _, cached = sweep.plan(["pendulum_architectures"])
    rows, paths = [], []
    for job in sorted(cached, key=lambda j: j.index):
        entry, c = entries[job.index], entries[job.index].config
        saved = torch.load(job.path, weights_only=False)
        theta = saved["history"].theta
        names = {
            "architecture": entry.architecture,
            "trained_with": entry.method,
            "setting": setting(c.method),
            "untuned": int(entry.untuned),
        }
        rows.append(
            pd.DataFrame(saved["rows"]).assign(
                **names,
                converged=experiments.settled(theta).numpy().astype(int),
                theta_drift=experiments.theta_drift(theta).numpy(),
                selected=int(entry.untuned),  # the untuned half; see retuned() for the rule
            )
        )
        omega2 = theta["omega2"].median(dim=1).values
        epochs = list(range(PATH_EVERY, len(omega2) + 1, PATH_EVERY))
        paths.append(
            pd.DataFrame(
                {
                    "method": c.label,
                    "rho": c.method.rho,
                    **names,
                    "epoch": epochs,
                    "omega2_median": omega2[[e - 1 for e in epochs]].numpy(),
                }
            )
        )
    empty = pd.DataFrame(columns=KEYS)
    return (
        pd.concat(rows, ignore_index=True) if rows else empty,
        pd.concat(paths, ignore_index=True) if paths else empty,
    )


def retuned(rows: pd.DataFrame, within_spread: bool = False) -> pd.DataFrame:
    """The rows, per network and retuned method, of the ``RETUNE`` grid value that the book's
    rule picks (:func:`~hsam_core.experiments.select_by_validation`, which never sees θ;
    ``within_spread`` as there), for every network whose grid ``rows`` holds whole; a network
    with a missing grid value has no row (its retuning is not measured yet). ``rows`` needs
    ``architecture``, ``trained_with``, ``setting``, ``val_mse`` and one row per seed."""
    picked = []
    retunable = rows[rows.trained_with.isin(list(RETUNE))]
    for (_, name), group in retunable.groupby(["architecture", "trained_with"], sort=False):
        values = sorted(group.setting.unique())
        if len(values) != len(RETUNE[name]) or not np.allclose(values, RETUNE[name]):
            continue
        rule = experiments.select_by_validation(
            group.assign(method=name, rho=group.setting), within_spread
        )
        picked.append(group[rule.selected == 1])
    return pd.concat(picked) if picked else rows.iloc[:0]


def merge(committed: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """``new`` plus the rows of ``committed`` whose configuration (``KEYS``) ``new`` lacks, in
    the order of :func:`study` (:func:`hsam_core.results.merge_rows`): a machine that has some
    of the results replaces those and keeps the others. A configuration the study no longer has
    is an error (its rows would be stale)."""
    order = [(e.config.label, e.config.method.rho) for e in study()]
    return merge_rows(committed, new, order)


def write_tables(folder: pathlib.Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`collect` merged into the tables of ``folder`` (see :func:`merge`); returns them."""
    new_rows, new_paths = collect()
    tables = []
    for name, new in ((TABLE, new_rows), (PATHS, new_paths)):
        file = folder / name
        committed = pd.read_csv(file) if file.is_file() else pd.DataFrame(columns=KEYS)
        merged = merge(committed, new)
        merged.to_csv(file, index=False)
        tables.append(merged)
    return tables[0], tables[1]


def main(argv: Sequence[str] | None = None) -> None:
    """Write the study's cached results into ``book/results`` (run from the repository root)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--results", type=pathlib.Path, default=pathlib.Path("book/results"))
    args = parser.parse_args(argv)
    if not args.results.is_dir():
        parser.error(f"{args.results} is not a folder: run from the repository root")
    rows, _ = write_tables(args.results)
    have = set(zip(rows.method, rows.rho)) if len(rows) else set()
    missing = [
        e.config.label + (f" ρ={e.config.method.rho:g}" if e.config.method.rho else "")
        for e in study()
        if (e.config.label, e.config.method.rho) not in have
    ]
    print(f"{args.results / TABLE}: {len(have)} of {len(study())} configurations, {len(rows)} rows")
    if missing:
        print("not run yet:", ", ".join(missing))


if __name__ == "__main__":
    main()
