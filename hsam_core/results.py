"""The committed result tables, read and summarised: the data of the book's results chapter.

A task's table is one row per (method, ρ, seed) from the results store (the columns of
:func:`hsam_core.experiments.run`, with ``selected = 1`` on the ρ that the θ-free validation
rule picked for each method; :func:`joined` puts several tasks' tables together, and
:func:`hsam_core.report.book_results` reads them from the store). This module reduces them to
three tables:

* :func:`headline_table` — one row per task × method at the selected ρ: median and IQR over
  seeds of the θ score, median test MSE, and the wall time relative to ERM's;
* :func:`task_summary` — one row per task: ERM, the SAM variant chosen without θ, the best
  regularizer, the physics-only fit and the reference paper's number side by side;
* :func:`rho_sensitivity` — for each method run at several ρ, the median θ error per ρ with
  the rule's pick beside the oracle ρ (the best θ error in hindsight: an analysis for the
  reader, never a selection rule).

Nothing here names a task: a task added to the tables joins every table.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from .experiments import select_by_validation

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

# The reference paper's best entry per task (Takeishi 2026, arXiv 2602.06837), as collected from
# a public benchmark listing: {task: (column of our tables it compares with, value)}. Whether the
# paper's errors are absolute or relative, and its exact settings, are not public. The paper's
# Duffing setup is not public either; chapter 8's specification is ours, and its identifiable
# twin (duffing_identifiable) has no reference. The light tunnel's entry is a cosine similarity
# (θ identifiable up to scale; higher is better).
PAPER_REFERENCE: dict[str, tuple[str, float]] = {
    "pendulum": ("theta_rel_error", 3.4e-3),
    "pendulum_images": ("theta_rel_error", 5.04e-2),
    "reaction_diffusion": ("theta_rel_error", 2.79e-4),
    "duffing": ("theta_rel_error", 1.32e-4),
    "wind_tunnel": ("theta_rel_error", 1.9e-4),
    "light_tunnel": ("theta_cosine", 0.98),
}

ERM = "ERM"
# The two ends of every comparison, and controls such as "physics only [complete]": not
# hybrids trained with a bias, so never "the best regularizer".
_ENDS = ("physics only", "NN only")


def is_sam_variant(method: str) -> bool:
    """SAM, ASAM, LookSAM ... on any parameter subset: the method's name contains "SAM"."""
    return "SAM" in method.split(" [")[0]


def is_regularizer(method: str) -> bool:
    """A hybrid trained with a penalty (L2, APHYNITY, orthogonality ...): neither ERM, nor a
    SAM variant, nor one of the ends (physics only, NN only) or their controls."""
    return method != ERM and not is_sam_variant(method) and not method.startswith(_ENDS)


def joined(tables: Mapping[str, Sequence[pd.DataFrame]]) -> pd.DataFrame:
    """The rows of several tables in one, in the order given, with a ``file`` column naming
    each row's table: ``{table: [frames]}``, a task's table being the rows of one or more
    studies of it (a chapter's grid and the extra radii trained apart). Each table's frames are
    joined and the θ-free rule (:func:`~hsam_core.experiments.select_by_validation`) chooses
    each method's ρ over the whole joined grid. A frame without one of
    :data:`REQUIRED_COLUMNS` (``selected`` aside) raises ``ValueError`` naming the table and
    the columns; an empty mapping or table is an error too."""
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
        frames.append(select_by_validation(rows).assign(file=name))
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


def chosen_sam(headline: pd.DataFrame) -> pd.DataFrame:
    """Per task, the SAM variant chosen without θ: among the SAM variants at their selected
    ρ, the one with the lowest median validation MSE (a row of :func:`headline_table`)."""
    sam = headline[headline.method.map(is_sam_variant)]
    return sam.loc[sam.groupby("task", sort=False)["val_mse"].idxmin()].set_index("task")


def task_summary(headline: pd.DataFrame) -> pd.DataFrame:
    """One row per task (median θ errors of :func:`headline_table`): ``erm``; ``sam_method``,
    ``sam_rho``, ``sam`` (the variant of :func:`chosen_sam`) and ``erm_over_sam`` (how many
    times smaller SAM's error is than ERM's); ``best_reg_method``, ``best_reg`` (the regularizer
    with the lowest median θ error); ``physics_only``; ``paper_metric``, ``paper`` (from
    :data:`PAPER_REFERENCE`, NaN for a task it does not list) and ``sam_score`` (SAM's median in
    the paper's metric)."""
    sam = chosen_sam(headline)
    rows = []
    for task, group in headline.groupby("task", sort=False):
        by_method = group.set_index("method")
        regs = by_method[by_method.index.map(is_regularizer)]["theta_error"].dropna()
        metric, paper = PAPER_REFERENCE.get(task, ("theta_rel_error", math.nan))
        score_column = {"theta_rel_error": "theta_error", "theta_cosine": "cosine"}[metric]
        has_sam = task in sam.index
        erm = by_method["theta_error"].get(ERM, math.nan)
        rows.append(
            {
                "task": task,
                "erm": erm,
                "sam_method": sam.at[task, "method"] if has_sam else None,
                "sam_rho": sam.at[task, "rho"] if has_sam else math.nan,
                "sam": sam.at[task, "theta_error"] if has_sam else math.nan,
                "erm_over_sam": erm / sam.at[task, "theta_error"] if has_sam else math.nan,
                "best_reg_method": regs.idxmin() if len(regs) else None,
                "best_reg": regs.min() if len(regs) else math.nan,
                "physics_only": by_method["theta_error"].get("physics only", math.nan),
                "paper_metric": metric,
                "paper": paper,
                "sam_score": sam.at[task, score_column] if has_sam else math.nan,
            }
        )
    return pd.DataFrame(rows).set_index("task")


def rho_sensitivity(results: pd.DataFrame) -> pd.DataFrame:
    """For every (task, method) run at more than one ρ: one row per ρ with the median θ error
    (``theta_error``) and validation MSE over seeds, ``picked`` (the validation rule's choice,
    ``selected == 1``) and ``oracle`` (the ρ of the lowest median θ error — it looks at the true
    θ, so it measures what the rule loses; it is never a way to choose ρ)."""
    grouped = results.groupby(["task", "method", "rho"], sort=False).agg(
        theta_error=("theta_rel_error", "median"),
        val_mse=("val_mse", "median"),
        picked=("selected", "max"),
    )
    grouped = grouped.reset_index()
    n_rho = grouped.groupby(["task", "method"], sort=False)["rho"].transform("size")
    grid = grouped[n_rho > 1].copy()
    best = grid.groupby(["task", "method"], sort=False)["theta_error"].transform("min")
    grid["picked"] = grid["picked"].astype(bool)
    grid["oracle"] = grid["theta_error"] == best
    return grid.reset_index(drop=True)


def sam_rule_vs_oracle(results: pd.DataFrame) -> pd.DataFrame:
    """Per task, over every SAM-variant configuration (variant × ρ): the one the θ-free rules
    choose (``rule_method``, ``rule_rho``, ``rule``: :func:`chosen_sam`) beside the one with the
    lowest median θ error (``oracle_method``, ``oracle_rho``, ``oracle``), and ``rule_over_oracle``
    (how many times the oracle's error the rule's is; 1 when they agree)."""
    sam = results[results.method.map(is_sam_variant)]
    medians = sam.groupby(["task", "method", "rho"], sort=False)["theta_rel_error"].median()
    rule = chosen_sam(headline_table(sam))
    rows = []
    for task, errors in medians.groupby(level="task", sort=False):
        _, oracle_method, oracle_rho = errors.idxmin()
        rows.append(
            {
                "task": task,
                "rule_method": rule.at[task, "method"],
                "rule_rho": rule.at[task, "rho"],
                "rule": rule.at[task, "theta_error"],
                "oracle_method": oracle_method,
                "oracle_rho": oracle_rho,
                "oracle": errors.min(),
                "rule_over_oracle": rule.at[task, "theta_error"] / errors.min(),
            }
        )
    return pd.DataFrame(rows).set_index("task")


def pick_stability(results: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """How much the θ-free rule's choice of SAM configuration depends on the seeds, per task.

    The rule (:func:`chosen_sam` after :func:`~hsam_core.experiments.select_by_validation`)
    chooses, among every SAM-variant configuration c = (variant, ρ) of a task, the one with the
    lowest median validation MSE over the seeds S: ĉ = argmin_c median_{s∈S} v(c, s). Here the
    seeds are resampled with replacement ``n_boot`` times (a bootstrap over S, the same draw for
    every configuration, since all share the seeds' initialisations and minibatch orders) and
    the rule is applied to each resample (a random stream per task, seeded by ``seed`` and the
    task's name). Columns: ``rule_method``, ``rule_rho`` (ĉ on all
    seeds); ``agree`` (the fraction of resamples whose choice is ĉ); ``modal_method``,
    ``modal_rho``, ``modal_share`` (the most frequent choice); ``configs`` (how many
    configurations are ever chosen); ``theta_p10``, ``theta_p90`` (the 10th and 90th
    percentiles, over resamples, of the chosen configuration's median θ error: what the rule
    delivers, with the seeds' uncertainty). A task whose configurations lack some seed's row
    raises ``ValueError`` naming them.
    """
    import numpy as np

    sam = results[results.method.map(is_sam_variant)]
    rows = []
    for task, group in sam.groupby("task", sort=False):
        # one stream per task, so that a task's resamples do not depend on the other tasks
        rng = np.random.default_rng([seed, zlib.crc32(task.encode())])
        val = group.pivot_table(index=["method", "rho"], columns="seed", values="val_mse")
        err = group.pivot_table(index=["method", "rho"], columns="seed", values="theta_rel_error")
        err = err.reindex(index=val.index, columns=val.columns)
        gaps = val.index[val.isna().any(axis=1) | err.isna().any(axis=1)]
        if len(gaps):
            raise ValueError(f"{task}: configurations {list(gaps)} lack some seed's row")
        configs, v, e = list(val.index), val.to_numpy(), err.to_numpy()
        draws = rng.integers(0, v.shape[1], size=(n_boot, v.shape[1]))
        chosen = np.median(v[:, draws], axis=2).argmin(axis=0)  # (n_boot,)
        delivered = np.median(e[:, draws], axis=2)[chosen, np.arange(n_boot)]
        rule = int(np.median(v, axis=1).argmin())
        counts = np.bincount(chosen, minlength=len(configs))
        modal = int(counts.argmax())
        rows.append(
            {
                "task": task,
                "rule_method": configs[rule][0],
                "rule_rho": configs[rule][1],
                "agree": counts[rule] / n_boot,
                "modal_method": configs[modal][0],
                "modal_rho": configs[modal][1],
                "modal_share": counts[modal] / n_boot,
                "configs": int((counts > 0).sum()),
                "theta_p10": float(np.quantile(delivered, 0.1)),
                "theta_p90": float(np.quantile(delivered, 0.9)),
            }
        )
    return pd.DataFrame(rows).set_index("task")
