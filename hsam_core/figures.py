"""The figures of a settled comparison, drawn from the results store's rows.

Every chapter that runs the book's comparison on a task (chapter 5's pendulum, then each task of
Part II) shows the same four figures; they are drawn here once, from the rows of
:func:`hsam_core.report.results` and the picks of :func:`hsam_core.report.family_picks`:

* :func:`chosen` — the θ error per seed at each method's setting chosen without θ;
* :func:`against_rho` — θ error and validation MSE against ρ for the SAM variants, with the
  rule's pick marked: what the rule sees, and what it cannot;
* :func:`sharpness` — two sharpness measures at the final weights against the θ error;
* :func:`theta_paths` — θ̂ against epoch for ERM, the physics-only fit and each family's pick.

Each returns a :class:`matplotlib.figure.Figure`; a notebook calls ``plt.show()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import plotting, report

SAM_LIKE = ("SAM (nn)", "ASAM (nn)")


def chosen(results: pd.DataFrame, picks: pd.DataFrame, ylabel: str) -> Figure:
    """The θ error of every seed at each method's θ-free setting (a bar at the median; a
    hollow dot: a seed that did not settle), the setting under each family's name."""
    families = report.by_family(results)
    picked = families[families.selected == 1]
    setting = picked.groupby("method", sort=False).rho.first()
    fig, ax = plt.subplots(figsize=(11, 3.9))
    order = report.strip_plot(ax, picked, "theta_rel_error", settled=True)
    ticks = [m if m not in picks.index else f"{m}\n{setting[m]:g}" for m in order]
    ax.set_xticks(range(len(order)), ticks, rotation=25, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title("θ error per seed at each method's chosen setting (bar = median)")
    fig.tight_layout()
    return fig


def against_rho(
    results: pd.DataFrame,
    picks: pd.DataFrame,
    ylabel: str,
    val_label: str = "validation MSE (–)",
    methods: Sequence[str] = SAM_LIKE,
) -> Figure:
    """θ error (left) and validation MSE (right) against ρ, median over seeds, for each SAM
    variant of ``methods``; □ marks the rule's pick, the dashed line is ERM."""
    erm = results[results.method == "ERM"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for method in methods:
        rows = results[results.method == method]
        if not len(rows):
            continue
        med = rows.groupby("rho")[["theta_rel_error", "val_mse"]].median()
        pick = picks.at[method, "rule picks"] if method in picks.index else np.nan
        for ax, col in zip(axes, ["theta_rel_error", "val_mse"]):
            ax.plot(med.index, med[col], "o-", color=plotting.color(method), label=method)
            if pick in med.index:
                ax.plot(
                    pick, med.at[pick, col], "s", ms=12, mfc="none", color=plotting.color(method)
                )
    for ax, col, name in zip(axes, ["theta_rel_error", "val_mse"], [ylabel, val_label]):
        ax.axhline(erm[col].median(), color=plotting.color("ERM"), ls="--", label="ERM")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("ρ (radius in weight space, –)")
        ax.set_ylabel(name)
    axes[0].set_title("θ error against ρ")
    axes[1].set_title("validation MSE (□ = the rule's pick)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def sharpness(results: pd.DataFrame, ylabel: str) -> Figure:
    """Every seed of every configuration with a network: the loss rise after one normalised
    ascent step of radius 0.05 (left) and the top Hessian eigenvalue in the network's weights
    (right) at the final weights, against the θ error."""
    families = report.by_family(results)
    with_nn = families[families.theta_rel_error.notna() & families.sharpness.notna()]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for method, rows in with_nn.groupby("method", sort=False):
        for ax, col in zip(axes, ["sharpness", "hessian_top"]):
            ax.scatter(
                rows[col], rows.theta_rel_error, color=plotting.color(method), s=14, label=method
            )
    axes[0].set_xlabel("loss rise in the ρ = 0.05 ball (–)")
    axes[1].set_xlabel("top Hessian eigenvalue in the network's weights (–)")
    axes[0].set_ylabel(ylabel)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
    axes[0].set_title("sharpness against θ error")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def theta_paths(
    study,
    picks: pd.DataFrame,
    truth: Mapping[str, float],
    budget: int | None = None,
    labels: Mapping[str, str] | None = None,
) -> Figure:
    """θ̂ against epoch, median over seeds, one panel per parameter of ``truth`` (its true value
    dotted): ERM, the physics-only fit and each family's pick (the store keeps each path at 60
    epochs); ``budget``, the protocol's budget of epochs, as a grey line; ``labels``, each
    parameter's axis label."""
    paths = report.paths(study)
    shown = [("ERM", 0.0), ("physics only", 0.0)]
    shown += [(row.configuration, row["rule picks"]) for _, row in picks.iterrows()]
    labels = labels or {}
    fig, axes = plt.subplots(1, len(truth), figsize=(8 if len(truth) == 1 else 11, 3.8))
    axes = np.atleast_1d(axes)
    for ax, (name, true) in zip(axes, truth.items()):
        for label, value in shown:
            family = picks.index[picks.configuration == label]
            mine = paths[paths.method == label]
            if label in SAM_LIKE or label == "SAM (all)":
                mine = mine[np.isclose(mine.rho, value)]
            median = mine.groupby("epoch")[f"theta_{name}"].median()
            text = (
                label
                if label in ("ERM", "physics only") or "=" in label
                else f"{label} ρ={value:g}"
            )
            colour = plotting.color(family[0] if len(family) else label)
            ax.plot(median.index, median.values, color=colour, label=text)
        ax.axhline(true, color="k", ls=":", lw=1, label="truth")
        if budget is not None:
            ax.axvline(budget, color="tab:gray", ls=":", lw=1)
        ax.set_xlabel("epoch")
        ax.set_ylabel(labels.get(name, f"{name} estimate"))
    axes[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig
