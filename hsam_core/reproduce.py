"""Regenerate the book, or check that its committed numbers reproduce.

Run from the repository root (where ``_toc.yml`` is)::

    python -m hsam_core.reproduce                   # every task's grid, then every chapter
    python -m hsam_core.reproduce --ray [ADDRESS]   # the same, the grids on Ray
    python -m hsam_core.reproduce --no-sweep --chapters 05_sam_for_hybrids
    python -m hsam_core.reproduce --check light_tunnel [--ray [ADDRESS]] [--scratch DIR]

The first form fills the results cache of every system in :mod:`hsam_core.systems` (see
:mod:`hsam_core.sweep`), then re-executes every chapter notebook of ``_toc.yml`` in order, in
full mode, saving its outputs in place; each chapter rewrites its ``book/results/*.csv`` (a
system with a ``write_tables(folder)`` — the architecture study — writes its tables from the
cache before the chapters run, and its chapter only reads them).

``--check`` re-trains the named systems' grids into a scratch cache and compares each
configuration with the committed CSV: the re-run's median over seeds must lie within the
committed seeds' range (min to max, widened by 0.1 % of the median for float32 rounding), for
the θ error and the test MSE. It prints a table of
what moved and exits with status 1 if anything did.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Sequence

import pandas as pd
import torch

from . import sweep
from .runtime import quick_mode

RESULTS = pathlib.Path("book") / "results"
# The committed CSV of each system, where it is not ``<system>.csv``.
RESULTS_CSV = {
    "pendulum_architectures": "architectures.csv",
    "pendulum_cost": "sam_cost.csv",
    "pendulum_greybox": "regularizers.csv",
}
CHECKED = ("theta_rel_error", "test_mse")  # the columns --check compares
# The committed range is widened by this fraction of the committed median: a configuration
# whose seeds agree (a fit without a network is deterministic) has a range of a point, and
# float32 rounding alone would move it.
RTOL = 1e-3


def toc_entries(toc: dict) -> list[str]:
    """Every ``file:`` of a Jupyter Book (jb-book) table of contents, root first, in reading
    order, as written there (no extension)."""
    entries = [toc["root"]]

    def walk(items: list | None) -> None:
        for item in items or []:
            if "file" in item:
                entries.append(item["file"])
            for key in ("parts", "chapters", "sections"):
                walk(item.get(key))

    for key in ("parts", "chapters"):
        walk(toc.get(key))
    return entries


def chapters(toc: pathlib.Path = pathlib.Path("_toc.yml")) -> list[pathlib.Path]:
    """The notebooks of a Jupyter Book table of contents, in reading order."""
    import yaml  # a dependency of jupyter-book

    if not toc.is_file():
        raise FileNotFoundError(f"{toc} not found: run from the repository root")
    entries = toc_entries(yaml.safe_load(toc.read_text(encoding="utf-8")))
    root = toc.parent
    return [root / f"{e}.ipynb" for e in entries if (root / f"{e}.ipynb").is_file()]


def execute(notebook: pathlib.Path) -> float:
    """Run ``notebook`` top to bottom in full mode, in its folder, and save its outputs in place
    (execution counts 1..N). Returns the seconds it took."""
    import nbformat
    from nbconvert.preprocessors import ExecutePreprocessor

    os.environ["HSAM_QUICK"] = "0"  # the kernel inherits it: full mode, whatever the shell says
    nb = nbformat.read(notebook, as_version=4)
    start = time.perf_counter()
    runner = ExecutePreprocessor(timeout=None, kernel_name="python3", record_timing=False)
    runner.preprocess(nb, {"metadata": {"path": str(notebook.parent)}})
    nbformat.write(nb, notebook)
    return time.perf_counter() - start


def results_csv(system: str, folder: pathlib.Path = RESULTS) -> pathlib.Path:
    return folder / RESULTS_CSV.get(system, f"{system}.csv")


def cached_rows(jobs: Sequence[sweep.Job]) -> pd.DataFrame:
    """The per-seed rows of the cached results of ``jobs``."""
    frames = [pd.DataFrame(torch.load(j.path, weights_only=False)["rows"]) for j in jobs]
    return pd.concat(frames, ignore_index=True)


def compare(committed: pd.DataFrame, rerun: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration (method, ρ) of either table: for each column of ``CHECKED``,
    the committed median and range over seeds and the re-run's median; ``status`` is ``ok``
    when every re-run median lies within the committed range (widened by ``RTOL`` of the
    committed median), ``MOVED`` when one does not, or says which table lacks the
    configuration; ``identical`` when every seed's values are equal."""
    missing = [c for c in ("method", "rho", *CHECKED) if c not in committed.columns]
    if missing:
        raise ValueError(f"the committed table has no column {missing}")
    keys = ["method", "rho"]
    old = committed.groupby(keys)[list(CHECKED)]
    new = rerun.groupby(keys)[list(CHECKED)]
    table = []
    for key in sorted(set(old.groups) | set(new.groups), key=str):
        row = {"method": key[0], "rho": key[1]}
        if key not in new.groups:
            table.append({**row, "status": "not re-run (not in grid())"})
            continue
        if key not in old.groups:
            table.append({**row, "status": "not in the committed CSV"})
            continue
        a, b = old.get_group(key), new.get_group(key)
        status = "ok"
        for col in CHECKED:
            lo, hi, median = a[col].min(), a[col].max(), b[col].median()
            row[f"{col} committed"] = f"{a[col].median():.3g} [{lo:.3g}, {hi:.3g}]"
            row[f"{col} re-run"] = f"{median:.3g}"
            tol = RTOL * abs(a[col].median())
            both_nan = pd.isna(median) and a[col].isna().all()
            if not both_nan and not (lo - tol <= median <= hi + tol):
                status = "MOVED"
        row["identical"] = bool(
            len(a) == len(b)
            and all(
                (a[c].to_numpy() == b[c].to_numpy()).all()
                or (a[c].isna().all() and b[c].isna().all())
                for c in CHECKED
            )
        )
        table.append({**row, "status": status})
    return pd.DataFrame(table)


def check(
    names: Sequence[str],
    ray_address: str | None = None,
    folder: pathlib.Path = RESULTS,
    scratch: pathlib.Path | None = None,
) -> bool:
    """Re-train the grids of ``names`` into a scratch cache (a new temporary folder, or
    ``scratch``: what it holds already is reused, so an interrupted check resumes), print each
    system's comparison with its committed CSV (see :func:`compare`), return whether nothing
    moved."""
    if quick_mode():
        raise ValueError("check compares with the committed full-mode results: unset HSAM_QUICK")
    for name in names:
        if not results_csv(name, folder).is_file():
            raise ValueError(f"no committed results for {name!r}: {results_csv(name, folder)}")
    scratch = scratch or pathlib.Path(tempfile.mkdtemp(prefix="hsam-check-"))
    print(f"re-running {', '.join(names)} into {scratch}", flush=True)
    failures = sweep.sweep(names, ray_address=ray_address, folder=scratch)
    if failures:
        raise RuntimeError(f"{len(failures)} configurations failed: {failures[0].error}")
    all_ok = True
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        for name in names:
            _, jobs = sweep.plan([name], folder=scratch)
            table = compare(pd.read_csv(results_csv(name, folder)), cached_rows(jobs))
            all_ok &= bool((table.status != "MOVED").all())
            print(f"\n{name} vs {results_csv(name, folder)}:\n{table.to_string(index=False)}")
    print("\nreproduced: nothing moved" if all_ok else "\nsome configurations MOVED")
    return all_ok


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run the grids as Ray tasks: a local Ray, or the cluster at ADDRESS",
    )
    parser.add_argument("--check", nargs="+", metavar="SYSTEM", help="re-run and compare only")
    parser.add_argument(
        "--scratch", type=pathlib.Path, metavar="DIR", help="--check's cache (default: a new one)"
    )
    parser.add_argument("--no-sweep", action="store_true", help="re-execute the chapters only")
    parser.add_argument(
        "--chapters", nargs="+", metavar="NAME", help="only these chapters (names or paths)"
    )
    args = parser.parse_args(argv)
    if quick_mode():  # the systems' full-mode settings are read when they are imported
        parser.error("reproduce regenerates and checks full-mode results: unset HSAM_QUICK")
    try:
        if args.check:
            sys.exit(0 if check(args.check, args.ray, scratch=args.scratch) else 1)
        notebooks = chapters()
        if args.chapters:
            wanted = {pathlib.Path(n).stem for n in args.chapters}
            unknown = wanted - {nb.stem for nb in notebooks}
            if unknown:
                raise ValueError(f"not a chapter notebook in _toc.yml: {sorted(unknown)}")
            notebooks = [nb for nb in notebooks if nb.stem in wanted]
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    if not args.no_sweep:
        failures = sweep.sweep(sweep.available_systems(), ray_address=args.ray)
        if failures:
            sys.exit(f"{len(failures)} configurations failed; the chapters were not re-executed")
        # A study too large for one chapter run writes its tables from the cache itself (its
        # chapter only reads them): pendulum_architectures.write_tables.
        for name in sweep.available_systems():
            module = sweep.load_system(name)[0]
            if hasattr(module, "write_tables"):
                module.write_tables(RESULTS)
                print(f"=== {name}: tables written from the cache", flush=True)
    for notebook in notebooks:
        print(f"=== {notebook} (full mode)", flush=True)
        print(f"=== {notebook} done in {execute(notebook):.0f} s", flush=True)
    print("Now check and commit: python -m pytest tests/test_book.py && git add book")


if __name__ == "__main__":
    main()
