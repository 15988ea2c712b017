"""The result tables of the store, joined and summarised: the data of the book's results chapter.

A task's table is one row per (method, ρ, seed) from the results store (the columns of
:func:`hsam_core.experiments.run`, with ``selected = 1`` on the setting that the book's θ-free
rule, :func:`hsam_core.select.mark`, picks for each method; :func:`joined` puts several tasks'
tables together, and :func:`hsam_core.report.book_results` reads them from the store and
marks them once, through :func:`hsam_core.report.by_family`).
:func:`headline_table` reduces them to one row per task × method at the selected setting:
median and IQR over seeds of the θ score, the share of seeds settled, median test MSE and the
wall time relative to ERM's. :func:`with_convergence` prints a score the way the book does.

Nothing here names a task: a task added to the tables joins every table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

# Columns every task table must carry. val_mse is what the θ-free rules select by.
REQUIRED_COLUMNS = (
    "task",
    "method",
    "rho",
    "seed",
    "selected",
    "val_mse",
    "test_mse",
    "seconds",
    "theta_rel_error",
)

ERM = "ERM"


def joined(tables: Mapping[str, Sequence[pd.DataFrame]]) -> pd.DataFrame:
    """The rows of several tables in one, in the order given, with a ``file`` column naming
    each row's table: ``{table: [frames]}``, a task's table being the rows of one or more
    studies of it (a chapter's grid and the extra radii trained apart). Nothing is selected
    here (``selected`` is 0 on every row): the book's θ-free rule chooses each method's
    setting over a whole joined table in one place, :func:`hsam_core.report.by_family`
    (regularizers as families over their strengths), or :func:`hsam_core.select.mark`. A frame
    without one of :data:`REQUIRED_COLUMNS` (``selected`` aside) raises ``ValueError`` naming
    the table and the columns; an empty mapping or table is an error too."""
    if not tables:
        raise ValueError("no result tables given")
    frames = []
    for name, parts in tables.items():
        parts = [part for part in parts if len(part)]
        if not parts:
            raise ValueError(f"table {name!r} has no rows")
        rows = pd.concat(parts, ignore_index=True, sort=False)
        required = [c for c in REQUIRED_COLUMNS if c != "selected"]
        missing = [c for c in required if c not in rows.columns]
        if missing:
            raise ValueError(f"table {name!r}: missing required column(s) {', '.join(missing)}")
        frames.append(rows.assign(selected=0, file=name))
    return pd.concat(frames, ignore_index=True, sort=False)


def selected(results: pd.DataFrame) -> pd.DataFrame:
    """The rows of each method's selected configuration (``selected == 1``)."""
    return results[results["selected"] == 1]


def with_convergence(value: float, settled: Iterable) -> str:
    """A θ score as the book prints it: ``value`` to three significant digits, followed by
    "(not converged: n/N seeds settled)" unless every seed's θ settled.

    ``settled`` holds one flag per seed — bools, 0/1 or a tensor of them, e.g. the
    ``converged`` column of a run's rows (:func:`hsam_core.experiments.run`) or the output of
    :func:`hsam_core.experiments.settled`. NaN flags (a model without θ) and an empty ``settled``
    leave the number unmarked; any other value raises ``ValueError``.
    """
    flags = [float(f) for f in settled]
    known = [f for f in flags if not math.isnan(f)]
    if any(f not in (0.0, 1.0) for f in known):
        raise ValueError(f"settled flags must be 0/1, True/False or NaN, got {flags}")
    text = f"{value:.3g}"
    n = int(sum(known))
    return text if n == len(known) else f"{text} (not converged: {n}/{len(known)} seeds settled)"


def _quartiles(values: pd.Series) -> tuple[float, float]:
    q = values.dropna().quantile([0.25, 0.5, 0.75])
    return float(q[0.5]), float(q[0.75] - q[0.25])


def headline_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, method) at the selected ρ, in the order of the files.

    Columns: ``rho``; ``seeds``; ``theta_error`` and ``theta_error_iqr`` (median and
    interquartile range over seeds of ``theta_rel_error``); ``cosine`` and ``cosine_iqr`` (the
    same for ``theta_cosine``, NaN where a task has none); ``test_mse`` (median); ``cost_vs_erm``
    (median seconds per seed over ERM's of the same task, NaN without ERM); ``settled`` (the
    fraction of seeds whose θ settled, where the table has a ``converged`` column, else NaN).
    """
    chosen = selected(results)
    rows = []
    for (task, method), group in chosen.groupby(["task", "method"], sort=False):
        if group["rho"].nunique() > 1:
            raise ValueError(f"{task}: {method} has several selected ρ {sorted(group.rho)}")
        error, error_iqr = _quartiles(group["theta_rel_error"])
        cosine, cosine_iqr = (
            _quartiles(group["theta_cosine"]) if "theta_cosine" in group else (math.nan,) * 2
        )
        has_flags = "converged" in group and group["converged"].notna().any()
        rows.append(
            {
                "task": task,
                "method": method,
                "rho": float(group["rho"].iloc[0]),
                "seeds": int(group["seed"].nunique()),
                "theta_error": error,
                "theta_error_iqr": error_iqr,
                "cosine": cosine,
                "cosine_iqr": cosine_iqr,
                "test_mse": float(group["test_mse"].median()),
                "val_mse": float(group["val_mse"].median()),
                "seconds": float(group["seconds"].median()),
                "settled": float(group["converged"].mean()) if has_flags else math.nan,
            }
        )
    table = pd.DataFrame(rows)
    erm_seconds = table[table.method == ERM].set_index("task")["seconds"]
    table["cost_vs_erm"] = table["seconds"] / table["task"].map(erm_seconds)
    return table
