"""The command line of hsam_core: train studies into the results store, read, check, reproduce.

    python -m hsam_core studies                       # every study of the book
    python -m hsam_core sweep pendulum duffing        # train what the store lacks, here
    python -m hsam_core sweep pendulum --ray          # ... as Ray tasks (one per core)
    python -m hsam_core sweep pendulum --together     # ... the radii of a method as one model
    python -m hsam_core tables pendulum               # a study's table, from the store
    python -m hsam_core check                         # is the store sound?
    python -m hsam_core merge /other/store            # add another machine's runs
    python -m hsam_core weights wind_tunnel           # keep cached weights in the store
    python -m hsam_core profile                       # where the training time goes
    python -m hsam_core reproduce                     # sweep every study, re-execute the chapters
    python -m hsam_core reproduce --check light_tunnel   # re-train a study, compare with the store

Run it from the repository root (``reproduce`` reads ``_toc.yml``). Full mode by default;
``HSAM_QUICK=1`` works on a scratch store.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Sequence

import pandas as pd

from . import report, reproduce, settings, store, studies, sweep
from .report import results


def _sweep(args: argparse.Namespace) -> int:
    failures = sweep.sweep(
        args.studies, args.only, args.epochs, args.ray, args.gpu_fraction, args.together
    )
    for failure in failures:
        print(f"\nFAILED {failure.job.study.name} {failure.job.label}:\n{failure.details}")
    return 1 if failures else 0


def _tables(args: argparse.Namespace) -> int:
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        for study in sweep.resolve(args.studies):
            rows = results(study, missing="skip")
            print(
                f"== {study.name}: {study.task}, seeds {list(study.seeds)}, {dict(study.training)}"
            )
            if len(rows):
                columns = ("theta_rel_error", "val_mse", "test_mse", "extrap_mse")
                table = report.table(rows, [c for c in columns if rows[c].notna().any()])
                print(table.to_string(float_format="{:.3g}".format))
            if rows.attrs["missing"]:
                print("not in the store:", ", ".join(rows.attrs["missing"]))
    return 0


def _check(args: argparse.Namespace) -> int:
    problems = store.check()
    for line in problems:
        print(line)
    specs = store.read_specs()
    print(f"{settings.get().store}: {len(specs)} runs, {len(problems)} problems")
    return 1 if problems else 0


def _weights(args: argparse.Namespace) -> int:
    copied, lacking, differing = sweep.keep_weights(args.studies, replace=args.replace)
    print(
        f"weights of {copied} runs copied from the cache into the store; {lacking} runs lack them"
    )
    for key in differing:
        print(f"{key}: the cached run is another training than the stored rows: not copied")
    if differing:
        print("--replace replaces those runs' rows, θ paths and weights by the cached runs'")
    return 0


def _profile(args: argparse.Namespace) -> int:
    table = report.profile(args.tasks or None)
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(table.to_string(float_format="{:.3g}".format))
    total = table.groupby(level="protocol").cpu_hours.sum()
    print("CPU-hours of training in the store:", total.round(2).to_dict())
    return 0


def _merge(args: argparse.Namespace) -> int:
    for source in args.sources:
        added, same = store.merge(pathlib.Path(source))
        print(f"{source}: {added} runs added to {settings.get().store}, {same} there already")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    if settings.get().quick:
        raise ValueError("reproduce regenerates and checks full-mode results: unset HSAM_QUICK")
    if args.check:
        return 0 if reproduce.check(args.check, args.ray, args.scratch, args.together) else 1
    notebooks = reproduce.chapters()
    if args.chapters:
        wanted = {pathlib.Path(n).stem for n in args.chapters}
        unknown = wanted - {nb.stem for nb in notebooks}
        if unknown:
            raise ValueError(f"not a chapter notebook in _toc.yml: {sorted(unknown)}")
        notebooks = [nb for nb in notebooks if nb.stem in wanted]
    if not args.no_sweep:
        failures = sweep.sweep(studies.names(), ray_address=args.ray)
        if failures:
            print(f"{len(failures)} runs failed; the chapters were not re-executed")
            return 1
    for notebook in notebooks:
        print(f"=== {notebook} (full mode)", flush=True)
        print(f"=== {notebook} done in {reproduce.execute(notebook):.0f} s", flush=True)
    print("Now check and commit: python -m pytest tests/test_book.py && git add book")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m hsam_core", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("studies", help="list every study of the book")
    ray = dict(nargs="?", const="local", metavar="ADDRESS", help="a local Ray, or a cluster")

    run = commands.add_parser("sweep", help="train the runs of studies the store lacks")
    run.add_argument("studies", nargs="+", metavar="STUDY", help="study names, or 'all'")
    run.add_argument("--ray", **ray)
    run.add_argument("--gpu-fraction", type=float, metavar="F", help="GPUs per run on Ray")
    run.add_argument("--only", nargs="+", metavar="LABEL", help="only these configurations")
    run.add_argument("--epochs", type=int, help="this many epochs instead of the study's")
    run.add_argument(
        "--together",
        action="store_true",
        help="train the runs that differ only in rho and SAM/ASAM, or in a regularizer's "
        "strength, as one stacked ensemble (same numbers)",
    )

    tables = commands.add_parser("tables", help="print studies' tables from the store")
    tables.add_argument("studies", nargs="+", metavar="STUDY")

    commands.add_parser("check", help="check the results store (schema, keys, specs)")

    keep = commands.add_parser(
        "weights", help="copy cached weights (and θ paths) of stored runs into the store"
    )
    keep.add_argument("studies", nargs="+", metavar="STUDY", help="study names, or 'all'")
    keep.add_argument(
        "--replace",
        action="store_true",
        help="where the cached run differs from the stored rows, replace them by it",
    )

    cost = commands.add_parser("profile", help="CPU-hours of the stored runs, per task")
    cost.add_argument("tasks", nargs="*", metavar="TASK", help="default: every book task")

    merge = commands.add_parser("merge", help="add the runs of other stores to this one")
    merge.add_argument("sources", nargs="+", metavar="FOLDER", help="stores to merge in")

    again = commands.add_parser("reproduce", help="sweep every study, re-execute the chapters")
    again.add_argument("--ray", **ray)
    again.add_argument("--check", nargs="+", metavar="STUDY", help="re-train, compare, only")
    again.add_argument("--scratch", type=pathlib.Path, metavar="DIR", help="--check's folder")
    again.add_argument(
        "--together", action="store_true", help="--check: train as sweep --together does"
    )
    again.add_argument("--no-sweep", action="store_true", help="re-execute the chapters only")
    again.add_argument("--chapters", nargs="+", metavar="NAME", help="only these chapters")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    if args.command == "studies":
        for name in studies.names():
            study = studies.get(name)
            print(f"{name:<28} {study.task:<20} {len(study.configs):>3} configurations")
        return 0
    handler = {
        "sweep": _sweep,
        "tables": _tables,
        "check": _check,
        "merge": _merge,
        "weights": _weights,
        "profile": _profile,
        "reproduce": _reproduce,
    }
    try:
        return handler[args.command](args)
    except (ValueError, KeyError, FileNotFoundError) as err:
        cli.error(str(err))


if __name__ == "__main__":
    sys.exit(main())
