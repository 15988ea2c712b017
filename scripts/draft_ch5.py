"""Draft of chapter 5 on the settled grid (study pendulum_settled): writes
book/05_sam_for_hybrids.ipynb without outputs; execute it with
`python -m hsam_core reproduce --no-sweep --chapters 05_sam_for_hybrids` once the store holds
the study. The numbers of the text marked [..] are to be filled from the executed tables."""

import json
import pathlib

import nbformat

ROOT = pathlib.Path(__file__).resolve().parents[1]
OLD = json.loads((ROOT / "book" / "05_sam_for_hybrids.ipynb").read_text())
SETUP = "".join(OLD["cells"][2]["source"])  # the setup cell every chapter shares
METHOD = "".join(OLD["cells"][4]["source"]).split("We compare three SAM variants")[0].rstrip()

md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
cells = [
    md(
        """# SAM for hybrid models

Chapters 2 and 3 showed the failure case and its architecture-specific cures. This chapter
tests the method of {cite:t}`takeishi2026hybridsam` as we reconstruct it: train the hybrid
towards a **flat minimum** of the loss in the network's weights with sharpness-aware
minimization {cite:p}`foret2021sam`, leaving the physical parameters unperturbed. Does it make
the pendulum hybrid use its physics, once every run is trained until θ stops moving? Which
choices matter — the radius ρ, plain or adaptive SAM {cite:p}`kwon2021asam`, perturbing θ too?
And can the radius be chosen without knowing the true θ, by the same rule that chooses every
regularizer's strength?

This chapter also defines, once for the whole book, the comparison every later chapter runs:
the methods and their grids, the training protocol, and the rule that chooses each method's
setting."""
    ),
    md(
        """:::{admonition} Running this chapter
:class: note
Open it on Colab with the rocket button at the top of the page. The chapter reads its numbers
from the results store of the repository and trains nothing. `HSAM_QUICK=1` instead trains a
quick version (3 seeds, ERM, SAM at ρ = 0.1 and the physics-only fit, a budget of 100 epochs)
in a few minutes on a CPU; only the direction of the claims is checked there. The full grid
(21 configurations × 5 seeds, the settling protocol) takes the CPU time printed below;
`python -m hsam_core sweep pendulum_settled` fills the store ahead of the chapter.
:::"""
    ),
    code(SETUP),
    code(
        """import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from hsam_core import plotting, report, studies
from hsam_core.bench import step_seconds
from hsam_core.experiments import select_by_validation
from hsam_core.results import with_convergence
from hsam_core.systems import pendulum
from hsam_core.train import Settle"""
    ),
    md(METHOD),
    md(
        """## The comparison every chapter runs

**The task.** The pendulum of chapter 1: 25 training trajectories cut into every window of 10
steps; validation and test on whole 40-point trajectories (20 s) rolled out from their first
state, four times the training windows. Two things make it a test of identification rather than
of fitting. *Measurement noise*: every split but the test carries noise of 1 % of the standard
deviation of the noise-free training states. *An extrapolation split*: pendulums released
beyond the training range of amplitudes, where the law holds unchanged and a network must
extrapolate. The network is 2→32→32→2: a 32-wide network instead of the 200 of earlier
editions costs 3.3 times less per epoch, and SAM's and ASAM's gain over ERM survives the change
(study `pendulum_width`: ERM 42 % → 31 %, SAM at ρ = 0.1 1.3 % → 0.9 %, ASAM at ρ = 1
0.25 % → 1.1 %, 700 epochs each).

**The methods and their grids.** ERM; SAM with the network perturbed, **SAM (nn)**, at
ρ ∈ {0.03, 0.05, 0.1, 0.2, 0.3}; adaptive SAM, **ASAM (nn)** (η = 0.01), at ρ ∈ {0.3, 1, 2};
**SAM (all)**, θ perturbed too, at ρ = 0.1; the three regularizers of chapter 3, each at three
strengths a decade apart — L2 on the network's weights (λ ∈ {10⁻⁴, 10⁻³, 10⁻²}), APHYNITY's
state-normalised ‖f_nn‖² (λ₀ ∈ {0.1, 1, 10}, τ₂ = 1, every 5 steps) and orthogonality of f_phys
and f_nn (c ∈ {10⁻³, 10⁻², 10⁻¹}); and the two ends, physics only and NN only. Every method
uses one training loop (`hsam_core.fit`): Adam, learning rates 10⁻³ for the network and 10⁻²
for θ, minibatches of 150 windows, 5 seeds trained together as one batched model. Only the
optimizer or the objective changes.

**The protocol** (`hsam_core.train.Settle`). An unconverged run is not a result, so no run
stops at a fixed epoch. Constant rates until θ's *drift* — the relative change of its mean
between the two halves of a trailing window of 20 % of the epochs run — falls below 0.1 % for
every seed, or until a budget is spent; then the rates drop to a tenth and a hundredth over
10 % more epochs. A seed has **settled** when its drift was below 0.1 % where the decay began
and θ stayed within 0.1 % of its final value over the decay's last segment. The drift before
the decay is recorded beside every number, so that a decay cannot freeze a moving θ and call
it settled. NN only has no θ: its training loss is watched instead. The cell prints it all from
the study."""
    ),
    code(
        """study = studies.get("pendulum_settled")
task = study.build_task()
protocol = Settle.from_params(study.training["settle"])
spec = task.spec
print(
    f"{len(task.train)} training windows of {spec['window']} steps from {spec['n_train']} "
    f"trajectories; {len(task.val)} validation, {len(task.test)} test and "
    f"{len(task.extrapolation)} extrapolation trajectories; seeds {list(study.seeds)}"
)
print(
    f"network 2→{spec['hidden']}→{spec['hidden']}→2; measurement noise σ = {spec['noise']} "
    f"(1 % of the std of the noise-free training states, {task.train.x.std():.3g})"
)
print("extrapolation split:", spec["extrapolation"])
print(
    f"protocol: drift below {protocol.tol:.1%} checked every {protocol.check_every} epochs from "
    f"epoch {protocol.min_epochs}, budget {protocol.max_epochs} epochs, then the rates × "
    f"{', × '.join(f'{g:g}' for g in protocol.gammas)} over {protocol.decay_fraction:.0%} more"
)
grid = pd.DataFrame([{"method": c.label, "setting": c.method.rho} for c in study.configs])
assert (len(study.seeds), len(study.configs)) == ((3, 3) if QUICK else (5, 21))
assert spec["hidden"] == 32 and spec["noise"] == pendulum.NOISE"""
    ),
    md(
        """## What each method reaches

Every configuration of the grid, median and interquartile range over seeds: the relative error
of ω₀², the validation and test MSE (whole 20 s rollouts), the MSE on the extrapolation split,
how many seeds settled, the epochs run and the drift of θ when the decay began. **A
configuration with fewer settled seeds than seeds has not converged**: its θ error is where the
budget stopped it, not where it was going."""
    ),
    code(
        """results = report.results(study)  # the store's rows: one per run × seed
picks = report.family_picks(results)
print(
    f"{len(results)} rows ({results.key.nunique()} runs × {len(study.seeds)} seeds), "
    f"{results.seconds.sum() / 3600:.1f} CPU-hours of training (seconds per seed, summed)"
)
columns = ["theta_rel_error", "val_mse", "test_mse", "extrap_mse"]
table = report.table(results, columns).drop(columns="selected")
table.style.format("{:.3g}", na_rep="–").format(
    "{:.0f}", subset=["seeds", "converged seeds", "epochs"], na_rep="–"
).format("{:.2%}", subset=["drift before decay"]).format_index("{:g}", level=1)"""
    ),
    md(
        """## One rule for every method's setting

Every method but ERM has a setting, and a setting chosen by looking at θ would make the
comparison worthless: the true θ is what a user does not have. The book's rule
(`hsam_core.experiments.select_by_validation`) picks, per method, the setting with the lowest
median **validation MSE** over seeds — whole 20 s rollouts, which reward a model that
extrapolates in time, which is what correct physics buys. The same rule chooses SAM's ρ,
ASAM's ρ, L2's λ, APHYNITY's λ₀ and orthogonality's c (`report.family_picks`). Beside each
pick: the setting that would have been best had we known θ (*best in hindsight*), and the
setting that the lowest median MSE on the extrapolation split would pick instead."""
    ),
    code(
        """picks["pick / best"] = picks["theta_rel_error median"] / picks["best theta_rel_error median"]
picks.drop(columns=["grid", "seeds"]).style.format(
    {
        "rule picks": "{:g}",
        "theta_rel_error median": "{:.3g}",
        "settled seeds": "{:.0f}",
        "best in hindsight": "{:g}",
        "best theta_rel_error median": "{:.3g}",
        "extrapolation MSE picks": "{:g}",
        "pick / best": "{:.2f}",
    }
)"""
    ),
    md(
        """The θ error per seed at each method's chosen setting (hollow: a seed that did not
settle):"""
    ),
    code(
        """families = select_by_validation(report.by_family(results))
chosen = families[families.selected == 1]
setting = chosen.groupby("method", sort=False).rho.first()
fig, ax = plt.subplots(figsize=(11, 3.9))
order = report.strip_plot(ax, chosen, "theta_rel_error", settled=True)
ticks = [m if m not in picks.index else f"{m}\\n{setting[m]:g}" for m in order]
ax.set_xticks(range(len(order)), ticks, rotation=25, fontsize=8)
ax.set_yscale("log")
ax.set_ylabel("relative error of ω₀² (–)")
ax.set_title("θ error per seed at each method's chosen setting (bar = median)")
plt.tight_layout()
plt.show()"""
    ),
    md(
        """## What the rule sees, and what it cannot

θ error and validation MSE against ρ for the SAM variants, median over seeds (□: the rule's
pick):"""
    ),
    code(
        """sam_like = ["SAM (nn)", "ASAM (nn)"]
erm = results[results.method == "ERM"]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for method in sam_like:
    rows = results[results.method == method]
    med = rows.groupby("rho")[["theta_rel_error", "val_mse"]].median()
    for ax, col in zip(axes, ["theta_rel_error", "val_mse"]):
        ax.plot(med.index, med[col], "o-", color=plotting.color(method), label=method)
        pick = picks.at[method, "rule picks"] if method in picks.index else np.nan
        if pick in med.index:
            ax.plot(pick, med.at[pick, col], "s", ms=12, mfc="none", color=plotting.color(method))
for ax, col, name in zip(
    axes,
    ["theta_rel_error", "val_mse"],
    ["relative error of ω₀² (–)", "validation MSE, 20 s rollouts (–)"],
):
    ax.axhline(erm[col].median(), color=plotting.color("ERM"), ls="--", label="ERM")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ρ (radius in weight space, –)")
    ax.set_ylabel(name)
axes[0].set_title("θ error against ρ")
axes[1].set_title("what the rule sees (□ = its pick)")
axes[0].legend(fontsize=8)
plt.tight_layout()
plt.show()"""
    ),
    md(
        """## Is the SAM solution flatter?

Two sharpness measures at each run's final weights (network weights only, physics fixed): the
loss rise after one normalised ascent step of radius 0.05 — SAM's own estimate of the worst
case in the ball — and the top eigenvalue of the Hessian in the network's weights (power
iteration with Hessian–vector products), against the θ error, every seed of every
configuration with a network:"""
    ),
    code(
        """with_nn = families[families.theta_rel_error.notna() & families.sharpness.notna()]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
for method, rows in with_nn.groupby("method", sort=False):
    for ax, col in zip(axes, ["sharpness", "hessian_top"]):
        ax.scatter(rows[col], rows.theta_rel_error, color=plotting.color(method), s=14, label=method)
axes[0].set_xlabel("loss rise in the ρ = 0.05 ball (–)")
axes[1].set_xlabel("top Hessian eigenvalue in the network's weights (–)")
axes[0].set_ylabel("relative error of ω₀² (–)")
for ax in axes:
    ax.set_xscale("log")
    ax.set_yscale("log")
axes[0].set_title("sharpness against θ error")
axes[1].legend(fontsize=7)
plt.tight_layout()
plt.show()"""
    ),
    md(
        """## How θ moves, and when it settles

ω₀² during training, median over seeds, for ERM, the physics-only fit and each family's pick
(the store keeps each path at 60 epochs; the dotted line is the budget):"""
    ),
    code(
        """paths = report.paths(study)
shown = [("ERM", 0.0), ("physics only", 0.0)]
shown += [(row.configuration, row["rule picks"]) for _, row in picks.iterrows()]
fig, ax = plt.subplots(figsize=(8, 3.8))
for label, value in shown:
    family = picks.index[picks.configuration == label]
    mine = paths[paths.method == label]
    if label in sam_like or label == "SAM (all)":
        mine = mine[np.isclose(mine.rho, value)]
    median = mine.groupby("epoch").theta_omega2.median()
    text = label if label in ("ERM", "physics only") or "=" in label else f"{label} ρ={value:g}"
    colour = plotting.color(family[0] if len(family) else label)
    ax.plot(median.index, median.values, color=colour, label=text)
ax.axhline(pendulum.OMEGA2, color="k", ls=":", lw=1, label="true ω₀²")
ax.axvline(protocol.max_epochs, color="tab:gray", ls=":", lw=1)
ax.set_xlabel("epoch")
ax.set_ylabel("ω₀² estimate (s⁻²)")
ax.legend(fontsize=7, ncol=2)
plt.tight_layout()
plt.show()"""
    ),
    md(
        """How each configuration's training ended: the epochs run, the epoch where the decay
began (the budget, where θ never slowed down enough), the drift when it began (median and
largest over seeds) and the verdict:"""
    ),
    code(
        """settling = report.settling(results, protocol.max_epochs)
settling.style.format(
    {
        "epochs": "{:.0f}",
        "decay epoch": "{:.0f}",
        "drift before decay median": "{:.2%}",
        "drift before decay max": "{:.2%}",
        "settled seeds": "{:.0f}",
    },
    na_rep="–",
).format_index("{:g}", level=1)"""
    ),
    md(
        """## What it costs

A SAM step evaluates the loss and its gradient twice, so its floor is twice an Adam step.
Measured here on one minibatch of 150 windows (median of repeated steps, this machine):"""
    ),
    code(
        """data = task.train.to(DEVICE)
repeats = hc.pick(20, 5)
cost = {
    m.label: step_seconds(m, data, DEVICE, repeats)
    for m in [
        hc.Method.erm(),
        hc.Method.sam(0.1),
        hc.Method.asam(1.0),
        hc.Method.regularized(hc.Aphynity(normalized=True)),
    ]
}
base = cost["ERM"]
pd.DataFrame(
    {
        "ms per step": {k: 1e3 * v for k, v in cost.items()},
        "relative to Adam (ERM)": {k: v / base for k, v in cost.items()},
    }
).round(2)"""
    ),
    md(
        """## The claims, checked

The numbers of this chapter's text, computed from the tables; every θ error whose seeds have not
all settled carries the mark "(not converged: …)"."""
    ),
    code(
        """by_config = results.groupby(["method", "rho"], sort=False)
error = by_config.theta_rel_error.median()
flags = by_config.converged.apply(list)


def at(label: str, rho: float = 0.0) -> tuple[str, float]:
    \"\"\"The table's index of a configuration (SAM's and ASAM's rows by their ρ).\"\"\"
    return (label, float(rho))


def flagged(key: tuple[str, float]) -> str:
    return with_convergence(error[key], flags[key])


best, best_rho = report.chosen_sam(families, [m for m in sam_like if m in picks.index])
erm_key, physics_key, sam_key = at("ERM"), at("physics only"), at(best, best_rho)
print(f"the SAM variant chosen without θ: {best}, ρ = {best_rho:g}")
print(f"ERM {flagged(erm_key)}; physics only {flagged(physics_key)}; {best} {flagged(sam_key)}")
# the SAM variant chosen without θ beats ERM (quick mode: the direction only)
assert error[sam_key] < hc.pick(error[erm_key] / 3, error[erm_key])
# the physics-only fit settles
assert all(f == 1 for f in flags[physics_key])"""
    ),
    md(
        """## Takeaway

[To be written from the executed tables: ERM's error and verdict; the chosen SAM variant's
radius and error, settled or not; the best in hindsight; the best regularizer at its own
θ-free setting; what settled; the cost per step.]"""
    ),
]
nb = nbformat.v4.new_notebook(cells=cells, metadata=OLD["metadata"])
(ROOT / "book" / "05_sam_for_hybrids.ipynb").write_text(nbformat.writes(nb) + "\n")
print("written", len(cells), "cells")
