"""Seconds per epoch of the pendulum's SAM radii trained as one stacked ensemble versus one
ensemble per radius (the "configurations as one model" lever), one thread.

    python scripts/configurations_cost.py [--epochs 2] [--rounds 3] [--hidden 32]
                                          [--grid | --regularizers]

The task of study ``pendulum_settled`` (noise, extrapolation split, full mode), the five radii
of ``SAM_RHOS`` × the five seeds, minibatches of 150; with ``--grid`` the whole group that
``sweep --together`` stacks in a settled study: ERM, SAM's radii and ASAM's (``ASAM_RHOS``);
with ``--regularizers`` the settled study's regularizer grids (three strengths each of L2,
APHYNITY and orthogonality), each regularizer's strengths stacked as ``sweep --together`` does.
The two arms take turns round by round, so that a load on the machine hits them alike, and
each keeps its fastest round: one ``fit`` of all the members of a stack (25 without
``--grid``, 45 with it, 15 per regularizer) against one ``fit`` of 5 members per
configuration. Both train the same members on the same minibatches and give the same numbers
(tests/test_fit_configurations.py); only the wall time differs. Prints seconds per epoch of
both arms and their ratio.
"""

import argparse
import time

import torch

from hsam_core import settings
from hsam_core.ensemble import Ensemble
from hsam_core.experiments import ASAM_RHOS, SAM_RHOS
from hsam_core.studies import APHYNITY_SETTLED, SEEDS, regularizer_grid
from hsam_core.systems import pendulum
from hsam_core.train import Method, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs per arm and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=32)
    arms = parser.add_mutually_exclusive_group()
    arms.add_argument("--grid", action="store_true", help="ERM, SAM's and ASAM's radii")
    arms.add_argument("--regularizers", action="store_true", help="the regularizers' grids")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # as every result is trained (experiments.train_and_score)
    settings.configure(quick=False)
    task = pendulum.task(noise=pendulum.NOISE, extrapolation=True, hidden=args.hidden)
    methods = [Method.sam(rho) for rho in SAM_RHOS]
    if args.grid:
        methods = [Method.erm(), *methods, *(Method.asam(rho) for rho in ASAM_RHOS)]
    stacks = [methods]  # the methods trained as one ensemble each
    if args.regularizers:
        methods = [config.method for config in regularizer_grid(APHYNITY_SETTLED)]
        stacks = [
            [m for m in methods if m.regularizer.name == name]
            for name in ("L2", "APHYNITY", "orthogonality")
        ]
    seeds = list(SEEDS)

    def together() -> None:
        for stack in stacks:
            models = [Ensemble.from_seeds(task.make_model, seeds) for _ in stack]
            fit(models, task.train, stack, epochs=args.epochs, batch_size=150)

    def apart() -> None:
        for method in methods:
            model = Ensemble.from_seeds(task.make_model, seeds)
            fit(model, task.train, method, epochs=args.epochs, batch_size=150)

    arms = {"stacked": together, "apart": apart}
    best = dict.fromkeys(arms, float("inf"))
    for _ in range(args.rounds):
        for name, arm in arms.items():
            start = time.perf_counter()
            arm()
            best[name] = min(best[name], (time.perf_counter() - start) / args.epochs)
    k = len(seeds)
    print(
        f"pendulum, {args.hidden} wide, {len(task.train)} windows, batch 150, "
        f"{torch.get_num_threads()} thread; fastest of {args.rounds} rounds of "
        f"{args.epochs} epochs, arms interleaved"
    )
    sizes = " + ".join(str(len(stack) * k) for stack in stacks)
    print(
        f"  {len(methods)} configurations × {k} seeds as {len(stacks)} ensemble(s) of {sizes}: "
        f"{best['stacked']:.2f} s/epoch"
    )
    print(f"  {len(methods)} ensembles of {k}, one after another: {best['apart']:.2f} s/epoch")
    print(f"  ratio (apart / stacked): {best['apart'] / best['stacked']:.2f}x")


if __name__ == "__main__":
    main()
