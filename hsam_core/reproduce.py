"""Regenerate the book, or check that its stored numbers reproduce (see ``python -m hsam_core``).

* :func:`chapters` and :func:`execute` re-execute the chapter notebooks of ``_toc.yml`` in full
  mode from the results store (a chapter only reads the store: it renders in seconds once the
  store holds its studies);
* :func:`check` re-trains studies into a scratch store and compares every run with the
  committed one: the re-run's median over seeds must lie within the committed seeds' range
  (min to max, widened by 0.1 % of the median for float32 rounding), for the θ error and the
  test MSE; and the training time of both (a lever of the book's cost, such as
  ``together``, measured on a whole study).
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import time
from collections.abc import Sequence

import pandas as pd

from . import settings, store, sweep

CHECKED = ("theta_rel_error", "test_mse")  # the columns check compares
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


def cost(committed: pd.DataFrame, rerun: pd.DataFrame) -> str:
    """The CPU-hours of training of two tables of the same runs (the sum of ``seconds``, the
    wall time per seed of a one-thread fit), and their ratio; a table with untimed rows (runs
    trained elsewhere) is said to have none."""
    hours = []
    for table in (committed, rerun):
        timed = table.seconds.notna().all() and len(table)
        hours.append(table.seconds.sum() / 3600 if timed else float("nan"))
    ratio = hours[0] / hours[1] if hours[1] else float("nan")
    return (
        f"training: committed {hours[0]:.3g} CPU-hours, re-run {hours[1]:.3g} "
        f"(committed / re-run: {ratio:.2f}x)"
    )


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
            table.append({**row, "status": "not re-run"})
            continue
        if key not in old.groups:
            table.append({**row, "status": "not in the committed store"})
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
    scratch: pathlib.Path | None = None,
    together: bool = False,
) -> bool:
    """Re-train the studies ``names`` into a scratch store (a new temporary folder, or
    ``scratch``: what it holds already is reused, so an interrupted check resumes; with
    ``together`` as :func:`~hsam_core.sweep.sweep` stacks runs), print each study's comparison
    with the committed store (see :func:`compare`) and the CPU-hours both took (:func:`cost`),
    return whether nothing moved. Every run of the studies must be in the committed store."""
    committed = settings.get()
    if committed.quick:
        raise ValueError("check compares with the committed full-mode results: unset HSAM_QUICK")
    studies = sweep.resolve(names)
    todo, stored = sweep.plan(studies)
    keys = {job.key for job in stored}
    absent = [f"{j.study.name}: {j.label} rho={j.rho:g}" for j in todo]
    if absent:
        raise ValueError(f"not in the committed store {committed.store}: {absent}")
    scratch = scratch or pathlib.Path(tempfile.mkdtemp(prefix="hsam-check-"))
    print(f"re-running {', '.join(s.name for s in studies)} into {scratch}", flush=True)
    settings.configure(store=scratch / "store", cache=scratch / "cache")
    try:
        failures = sweep.sweep(studies, ray_address=ray_address, together=together)
        if failures:
            raise RuntimeError(f"{len(failures)} runs failed: {failures[0].error}")
        all_ok = True
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            for study in studies:
                old = store.read(study.task, committed.store)
                new = store.read(study.task)
                old, new = old[old.key.isin(keys)], new[new.key.isin(keys)]
                table = compare(old, new)
                all_ok &= bool((table.status != "MOVED").all())
                print(f"\n{study.name}:\n{table.to_string(index=False)}\n{cost(old, new)}")
    finally:
        settings.configure(store=committed.store, cache=committed.cache)
    print("\nreproduced: nothing moved" if all_ok else "\nsome configurations MOVED")
    return all_ok
