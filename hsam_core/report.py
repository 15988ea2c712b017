"""What a chapter calls to show a study: its rows from the results store, its θ paths, a fit.

A chapter reads; it never trains the book's grids and never writes the committed store. In
quick mode (CI) the store is a scratch folder, and :func:`results` trains what it lacks into it,
so that every chapter still exercises the training code; in full mode a run missing from the
store is an error that names the command that trains it::

    from hsam_core import report
    rows = report.results("pendulum")          # one row per run × seed
    paths = report.paths("pendulum")           # θ against epoch, per run × seed
    fit = report.fit("pendulum", "ASAM (nn)", rho=1.0)   # the trained ensemble and history
    model = report.model("wind_tunnel", "ERM")   # the trained ensemble, from the store's weights
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from . import experiments, plotting, select, settings, store, studies, sweep
from .ensemble import Ensemble
from .results import joined
from .runtime import default_device
from .studies import Study


def _study(study: Study | str) -> Study:
    return studies.get(study) if isinstance(study, str) else study


def results(study: Study | str, missing: str | None = None) -> pd.DataFrame:
    """The store's rows of every run of ``study`` (one per run × seed), in the order of its
    configurations, with ``selected = 0`` (the book's choice of ρ: :func:`hsam_core.select.mark`).

    ``missing`` says what to do with a run that is not in the store: ``"error"`` raises
    ``KeyError`` naming the runs and the command that trains them (the default in full mode);
    ``"train"`` trains them now into the store (the default in quick mode, whose store is a
    scratch folder), the radii of a method together (:func:`hsam_core.sweep.batches`);
    ``"skip"`` leaves them out and lists them in ``DataFrame.attrs["missing"]``, and the
    methods (as :func:`by_family` names them) whose grid they leave incomplete in
    ``DataFrame.attrs["incomplete"]``, which :func:`hsam_core.select.mark` then selects
    nowhere."""
    study = _study(study)
    if missing is None:
        missing = "train" if settings.get().quick else "error"
    if missing not in ("error", "train", "skip"):
        raise ValueError(f"missing must be 'error', 'train' or 'skip', got {missing!r}")
    keys = [study.key(c) for c in study.configs]
    stored = store.read(study.task)
    have = set(stored.key) if len(stored) else set()
    absent = [c for c, k in zip(study.configs, keys) if k not in have]
    if absent and missing == "train":
        # radii of one method (and ERM) as one stacked ensemble: the same numbers, sooner
        failures = sweep.sweep([study.only([c.label for c in absent])], together=True)
        if failures:
            raise RuntimeError(f"{len(failures)} runs of {study.name} failed: {failures[0].error}")
        return results(study, missing="error")
    if absent and missing == "error":
        labels = [f"{c.label} rho={c.method.rho:g}" for c in absent]
        raise KeyError(
            f"{len(absent)} of {len(keys)} runs of study {study.name!r} are not in the store "
            f"{store.folder()}: {labels}; train them with: python -m hsam_core sweep {study.name}"
        )
    present = [k for k in keys if k in have]
    rows = store.lookup(present, study.task) if present else stored.iloc[:0]
    rows = rows.assign(selected=0)
    rows.attrs["missing"] = [c.label for c in absent]
    lacking = pd.DataFrame([store.fields(study.spec(c)) for c in absent])
    rows.attrs["incomplete"] = sorted(set(by_family(lacking, mark=False).method)) if absent else []
    return rows


def paths(study: Study | str) -> pd.DataFrame:
    """θ against epoch of every run of ``study`` that the store has paths for (runs imported
    from the book's earlier tables have none): ``key``, ``method``, ``rho``, ``seed``,
    ``epoch``, ``theta_<name>``."""
    study = _study(study)
    rows = results(study, missing="skip")
    table = store.read_paths(study.task)
    if not len(table):
        return table
    labels = rows.drop_duplicates("key").set_index("key")[["method", "rho"]]
    table = table[table.key.isin(labels.index)]
    return table.join(labels, on="key")


def _path_of(paths: pd.DataFrame, label: str, rho: float) -> pd.DataFrame:
    mine = paths[(paths.method == label) & np.isclose(paths.rho, rho)] if len(paths) else paths
    if not len(mine):
        raise KeyError(f"the store has no θ paths of {label} ρ={rho:g}")
    return mine


def path_series(paths: pd.DataFrame, label: str, rho: float = 0.0) -> dict[str, torch.Tensor]:
    """The stored θ paths (:func:`paths`) of one configuration as a history's θ:
    ``{name: (epochs kept, seeds)}``, for :func:`hsam_core.experiments.theta_drift` and
    plots. A configuration without paths raises ``KeyError`` naming it."""
    mine = _path_of(paths, label, rho)
    names = [c.removeprefix("theta_") for c in mine.columns if c.startswith("theta_")]
    return {
        name: path_curve(paths, label, rho, f"theta_{name}")
        for name in names
        if mine[f"theta_{name}"].notna().all()
    }


def path_curve(paths: pd.DataFrame, label: str, rho: float, column: str) -> torch.Tensor:
    """One stored column of one configuration's paths (``theta_<name>``, or a training curve
    :data:`hsam_core.store.CURVES`: ``loss``, ``nn_norm``) as ``(epochs kept, seeds)``. A
    column the store does not keep for this run (one stored before it kept training curves)
    raises ``KeyError`` naming it."""
    mine = _path_of(paths, label, rho)
    if column not in mine or mine[column].isna().any():
        raise KeyError(f"the store keeps no {column} path of {label} ρ={rho:g}")
    return torch.tensor(mine.pivot(index="epoch", columns="seed", values=column).to_numpy())


def path_epochs(paths: pd.DataFrame, label: str, rho: float = 0.0) -> np.ndarray:
    """The epochs (from 1) at which the store keeps one configuration's paths: the x axis of
    :func:`path_series` and :func:`path_curve`."""
    return np.sort(_path_of(paths, label, rho).epoch.unique())


def config(study: Study | str, label: str, rho: float | None = None) -> experiments.Config:
    """The configuration of ``study`` labelled ``label`` (at ``rho`` when several are)."""
    study = _study(study)
    found = [c for c in study.configs if c.label == label and rho in (None, c.method.rho)]
    if len(found) != 1:
        have = [(c.label, c.method.rho) for c in study.configs]
        raise ValueError(f"{study.name}: {len(found)} configurations {label!r} rho={rho}: {have}")
    return found[0]


def retrain(study: Study | str, label: str, rho: float | None = None) -> bool:
    """Train one configuration of ``study`` afresh, in a scratch store, and print how its
    scores compare with the committed store's (:func:`hsam_core.reproduce.check`: each re-run
    median within the committed range over seeds); returns whether nothing moved. Full mode
    only (quick mode has no committed results to compare with). On a GPU the numbers are not
    bit-identical to the CPU's, only close."""
    import time

    from . import reproduce

    study = _study(study)
    c = config(study, label, rho)
    start = time.monotonic()
    same = reproduce.check([study.but(configs=(c,))])
    print(
        f"{label} ρ = {c.method.rho:g}: retrained in "
        f"{time.monotonic() - start:.0f} s on {default_device().type}"
    )
    return same


def fit(study: Study | str, label: str, rho: float | None = None) -> experiments.Result:
    """The trained ensemble, history and rows of one configuration of ``study``: loaded from
    the local cache of weights, or trained again when the cache lacks them (minutes to an hour
    in full mode; a figure that shows a trained network needs its weights)."""
    study = _study(study)
    c = config(study, label, rho)
    return experiments.run(
        study.build_task(),
        c.method,
        study.seeds,
        model=c.model,
        model_label=c.model_label,
        **study.training,
    )


def model(study: Study | str, label: str, rho: float | None = None) -> Ensemble:
    """The trained ensemble of one configuration of ``study``, from the weights the results
    store keeps (no training); where it keeps none, from :func:`fit` (the local cache, or
    training)."""
    study = _study(study)
    c = config(study, label, rho)
    state = store.read_weights(study.key(c))
    if state is None:
        return fit(study, label, rho).model
    return experiments.load_ensemble(study.build_task(), c.model, study.seeds, state)


def method_name(row: pd.Series | dict) -> str:
    """The name of a store row's method, whatever its setting and network — ``ERM``, ``L2``,
    ``APHYNITY``, ``orthogonality``, ``SAM (nn)``, ``ASAM (nn)``, ``SAM (all)`` … — read from its
    structured fields (``kind``, ``regularizer``, ``adaptive``, ``perturb``, ``every``), never
    from its label."""
    if row["kind"] == "erm":
        return "ERM"
    if row["kind"] == "regularized":
        return str(row["regularizer"])
    name = ("ASAM" if row["adaptive"] else "SAM") + f" ({row['perturb']})"
    return name if int(row["every"]) == 1 else f"Look{name} k={int(row['every'])}"


def architecture(row: pd.Series | dict) -> str:
    """The pendulum network of a store row (section 5c): its model's ``architecture``, or
    ``additive`` (the task's own model)."""
    model = row["model"]
    if not isinstance(model, str) or not model:
        return "additive"
    return json.loads(model).get("architecture", "additive")


def with_names(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with ``trained_with`` (:func:`method_name`), ``architecture``
    (:func:`architecture`) and ``setting`` (the value a retuning grid varies: the
    regularizer's strength, else ρ; NaN for ERM)."""
    rows = rows.copy()
    rows["trained_with"] = [method_name(r) for _, r in rows.iterrows()]
    rows["architecture"] = [architecture(r) for _, r in rows.iterrows()]
    setting = rows["strength"].where(rows["kind"] == "regularized", rows["rho"])
    rows["setting"] = setting.where(rows["kind"] != "erm")
    return rows


def by_family(rows: pd.DataFrame, mark: bool = True) -> pd.DataFrame:
    """``rows`` with each regularizer's strength grid as one method, so that the θ-free rule
    that chooses SAM's ρ chooses a regularizer's strength the same way: on a regularized row
    ``method`` becomes its family (:func:`method_name`: ``"L2"`` for every λ, a network suffix
    such as ``" [grey-box]"`` of the label kept) and ``rho`` its strength (``setting`` of
    :func:`with_names`); ``configuration`` keeps every row's own label (``"L2 λ=0.001"``, or
    ``"L2"`` where a table has one strength). Other rows keep their method and ρ. With
    ``mark`` the book's rule (:func:`hsam_core.select.mark`) is applied afresh per table
    (``file``, else ``task``, else the whole table): a family run at one strength is selected
    as it is, a family run over a grid gets the setting the rule picks, and a method named in
    ``rows.attrs["incomplete"]`` (a dict per table from :func:`book_results`, or one list from
    :func:`results`) is selected nowhere; the result's ``attrs["incomplete"]`` names, per
    table, those that have rows."""
    if "configuration" in rows:
        raise ValueError(
            "these rows are families already (by_family, or book_results, was applied): "
            "marking them again would name every regularizer strength by its family twice"
        )
    named = with_names(rows)
    out = rows.copy()
    out["configuration"] = rows["method"]
    out["rho"] = rows["rho"].astype(float)
    regularized = (rows["kind"] == "regularized").to_numpy()
    suffix = rows["method"].astype(str).str.extract(r"( \[.*\])$")[0].fillna("")
    out.loc[regularized, "method"] = (named["trained_with"] + suffix)[regularized]
    out.loc[regularized, "rho"] = named["setting"][regularized].astype(float)
    if not mark or not len(out):
        return out
    incomplete = rows.attrs.get("incomplete", [])

    def lacking(name) -> Sequence[str]:  # per table (book_results), or one list (results)
        return incomplete.get(name, ()) if isinstance(incomplete, dict) else incomplete

    table = "file" if "file" in out else "task" if "task" in out else None
    if table is None:  # one table
        return select.mark(out, incomplete=lacking(None))
    groups = list(out.groupby(table, sort=False))
    chosen = [select.mark(g, incomplete=lacking(name)) for name, g in groups]
    marked = pd.concat(chosen).loc[out.index]
    # per table, the methods present but selected nowhere (absent ones: attrs["missing"])
    marked.attrs["incomplete"] = {
        name: m.attrs["incomplete"] for (name, _), m in zip(groups, chosen) if m.attrs["incomplete"]
    }
    return marked


def retuned(rows: pd.DataFrame, grids: dict, rule: str = select.RULE) -> pd.DataFrame:
    """The rows, per network and retuned method, of the grid value that ``rule`` (a name of
    :data:`hsam_core.select.RULES`, default the book's rule; it never sees θ) picks, for every
    network whose grid — ``grids[method]``, the values of ``setting`` — the rows hold whole; a
    network with a missing grid value has no row. ``rows`` needs ``architecture``,
    ``trained_with``, ``setting``, the scores the rule reads and one row per seed."""
    picked = []
    retunable = rows[rows.trained_with.isin(list(grids))]
    for (_, name), group in retunable.groupby(["architecture", "trained_with"], sort=False):
        values = sorted(group.setting.unique())
        if len(values) != len(grids[name]) or not np.allclose(values, sorted(grids[name])):
            continue
        ruled = select.mark(group.assign(method=name, rho=group.setting), rule)
        picked.append(group[ruled.selected == 1])
    return pd.concat(picked) if picked else rows.iloc[:0]


def table(
    results: pd.DataFrame, columns: Sequence[str] = ("theta_rel_error", "test_mse")
) -> pd.DataFrame:
    """The results table every chapter shows: per configuration (method, ρ), the seeds, median
    and IQR over seeds of ``columns`` (:func:`~hsam_core.experiments.summarize`), how many seeds
    settled (``converged seeds``, NaN where a run has no θ or no record of it) and whether the
    rule selected it (``selected``); the seeds, the settled count, the first column's score and
    the drift come first. Runs trained by the protocol
    (:class:`~hsam_core.train.Settle`) add the median epochs run and the median drift of θ
    before the decay (``drift before decay``): a configuration whose seeds did not all settle
    shows how far θ was still moving when the budget ran out."""
    summary = experiments.summarize(results, columns)
    group = results.groupby(["method", "rho"], sort=False)
    if "converged" in results:
        summary["converged seeds"] = group.converged.sum(min_count=1)
    if "drift_before_decay" in results and results.drift_before_decay.notna().any():
        summary["epochs"] = group.epochs.median()
        summary["drift before decay"] = group.drift_before_decay.median()
    if "selected" in results:
        summary["selected"] = group.selected.max()
    # what decides how to read a number first: the seeds, how many settled, the first score
    # and the drift, then the other scores (a wide table is cut at the page's right edge)
    first = ["seeds", "converged seeds", f"{columns[0]} median", f"{columns[0]} IQR"]
    first += ["drift before decay", "epochs"]
    first = [c for c in first if c in summary]
    return summary[first + [c for c in summary.columns if c not in first]]


COUNTS = ("seeds", "converged seeds", "settled seeds", "epochs", "decay epoch", "selected")


def styled(table: pd.DataFrame):
    """``table`` (e.g. :func:`table`) as a reader reads it: scores to three significant
    digits, counts and epochs as integers, drifts as percentages, ρ in the index as ``0.3``
    (not ``0.300000``), and an en dash for what does not apply."""
    numbers = list(table.select_dtypes("number").columns)
    counts = [c for c in numbers if c in COUNTS]
    drifts = [c for c in numbers if str(c).startswith("drift")]
    style = table.style.format("{:.3g}", subset=numbers, na_rep="–")
    style = style.format("{:.0f}", subset=counts, na_rep="–")
    style = style.format("{:.2%}", subset=drifts, na_rep="–")
    for level, name in enumerate(table.index.names):
        if name == "rho":
            style = style.format_index("{:g}", level=level)
    return style


def chosen_sam(results: pd.DataFrame, variants: Sequence[str] | None = None) -> tuple[str, float]:
    """The SAM variant chosen without θ: among the selected rows (``selected == 1``) of the SAM
    variants (``variants``, default every SAM-like method of the table), the one with the lowest
    median validation MSE; returns its (method, ρ)."""
    chosen = results[results.selected == 1]
    if variants is None:
        sam = chosen[chosen.kind == "sam"] if "kind" in chosen else chosen.iloc[:0]
    else:
        sam = chosen[chosen.method.isin(variants)]
    if sam.empty:
        raise ValueError("no selected SAM-variant rows in the table")
    best = sam.groupby("method", sort=False).val_mse.median().idxmin()
    return best, float(sam[sam.method == best].rho.iloc[0])


def settling(results: pd.DataFrame, budget: int | None = None) -> pd.DataFrame:
    """How each configuration trained by the protocol (:class:`~hsam_core.train.Settle`) ended,
    one row per (method, ρ) in the table's order: ``seeds``; the median ``epochs`` run; the
    median ``decay epoch`` (where the constant rates ended); the ``drift before decay``, median
    and largest over seeds; ``settled seeds`` (NaN for a model without θ, e.g. NN only, whose
    loss the protocol watches instead); and a ``verdict`` in words: ``"settled"`` (every seed),
    ``"k of n settled"``, ``"not settled"`` (no seed), or ``"no θ"``. With ``budget`` (the protocol's ``max_epochs``), a
    decay that began at the budget — the drift never fell below the tolerance — adds
    ``"(budget spent)"`` to the verdict. ``results`` needs the store's ``converged``,
    ``epochs``, ``decay_epoch`` and ``drift_before_decay`` columns, one row per seed."""
    missing = [
        c for c in ("converged", "epochs", "decay_epoch", "drift_before_decay") if c not in results
    ]
    if missing:
        raise ValueError(
            f"settling: the rows lack {missing} (runs trained by the protocol have them)"
        )
    group = results.groupby(["method", "rho"], sort=False)
    summary = pd.DataFrame({"seeds": group.size()})
    summary["epochs"] = group.epochs.median()
    summary["decay epoch"] = group.decay_epoch.median()
    summary["drift before decay median"] = group.drift_before_decay.median()
    summary["drift before decay max"] = group.drift_before_decay.max()
    summary["settled seeds"] = group.converged.sum(min_count=1)
    first_decay = group.decay_epoch.min()
    verdicts = []
    for key, row in summary.iterrows():
        if np.isnan(row["settled seeds"]):
            verdict = "no θ"
        elif row["settled seeds"] == row["seeds"]:
            verdict = "settled"
        elif row["settled seeds"] == 0:
            verdict = "not settled"
        else:
            verdict = f"{int(row['settled seeds'])} of {int(row['seeds'])} settled"
        if budget is not None and first_decay[key] >= budget:
            verdict += " (budget spent)"
        verdicts.append(verdict)
    summary["verdict"] = verdicts
    return summary


def family_picks(results: pd.DataFrame, column: str = "theta_rel_error") -> pd.DataFrame:
    """Every method family's θ-free pick over its grid, beside the best setting in hindsight.

    The families are those of :func:`with_names` that vary a setting: SAM's and ASAM's ρ, each
    regularizer's strength (ERM and the two ends vary none and are left out). One rule for all,
    the book's (:func:`hsam_core.select.mark` on ``method = trained_with`` and
    ``rho = setting``); it never sees θ.

    One row per family (index ``family``), in the order of ``results``: ``grid`` (the family's
    settings, ascending), ``rule picks`` (the rule's setting), ``configuration`` (its label,
    the ``method`` of its rows), ``<column> median`` there, ``seeds`` and ``settled seeds``
    there (NaN without a ``converged`` column); ``best in hindsight`` (the setting with the
    lowest median ``column``, which the rule may not look at) and ``best <column> median``;
    and what the lowest median validation MSE and extrapolation MSE would pick instead
    (``validation MSE picks``, ``extrapolation MSE picks``: :func:`hsam_core.select.mark` with
    those rules; NaN where no run has an extrapolation score, refused where only some have).
    A non-finite ``val_mse`` is refused, naming the family. ``results`` holds the store's rows,
    one per run × seed."""
    rows = with_names(results) if "trained_with" not in results else results
    rows = rows[rows.setting.notna()]
    picks = []
    for family, group in rows.groupby("trained_with", sort=False):
        if not np.isfinite(group.val_mse.to_numpy(dtype=float)).all():
            raise ValueError(f"family_picks: non-finite validation MSE in {family!r}")
        as_method = group.assign(method=family, rho=group.setting)
        chosen = group[select.mark(as_method).selected == 1]
        by_val = group[select.mark(as_method, "validation").selected == 1]
        hindsight = group.groupby("setting")[column].median()
        by_extrap = np.nan  # a task without an extrapolation split
        if "extrap_mse" in group and group.extrap_mse.notna().any():
            by_extrap = group[select.mark(as_method, "extrapolation").selected == 1].setting.iloc[0]
        picks.append(
            {
                "family": family,
                "grid": tuple(sorted(group.setting.unique())),
                "rule picks": chosen.setting.iloc[0],
                "configuration": chosen.method.iloc[0],
                f"{column} median": chosen[column].median(),
                "seeds": len(chosen),
                "settled seeds": chosen.converged.sum(min_count=1)
                if "converged" in chosen
                else np.nan,
                "best in hindsight": hindsight.idxmin() if hindsight.notna().any() else np.nan,
                f"best {column} median": hindsight.min(),
                "validation MSE picks": by_val.setting.iloc[0],
                "extrapolation MSE picks": by_extrap,
            }
        )
    if not picks:
        raise ValueError(
            "family_picks: no rows of a method family with a setting (SAM, ASAM, a regularizer)"
        )
    return pd.DataFrame(picks).set_index("family")


def strip_plot(
    ax,
    rows: pd.DataFrame,
    column: str = "theta_rel_error",
    order: Sequence[str] | None = None,
    settled: bool = False,
    seed: int = 0,
) -> list[str]:
    """One column of dots per method (one dot per seed, jittered) with a bar at the median, in
    ``order`` (default: the table's); with ``settled``, seeds whose θ has not settled
    (``converged == 0``) are drawn hollow. Returns the methods drawn (those with a value)."""
    order = list(order if order is not None else dict.fromkeys(rows.method))
    order = [m for m in order if rows.loc[rows.method == m, column].notna().any()]
    rng = np.random.default_rng(seed)
    for i, method in enumerate(order):
        mine = rows[(rows.method == method) & rows[column].notna()]
        x = i + rng.uniform(-0.12, 0.12, len(mine))
        color = plotting.color(method)
        done = (
            mine.converged.to_numpy() == 1
            if settled and "converged" in mine
            else np.ones(len(mine), bool)
        )
        ax.scatter(x[done], mine[column][done], color=color, s=22)
        ax.scatter(x[~done], mine[column][~done], facecolors="none", edgecolors=color, s=22)
        ax.hlines(mine[column].median(), i - 0.25, i + 0.25, color=color)
    ax.set_xticks(range(len(order)), order, rotation=20)
    return order


# The task tables of the book's results chapter: each task's settled grid (reaction–diffusion's
# chapter study joined with the radii trained apart); the pendulum images, not yet retrained,
# by their fixed-length grid.
BOOK_TABLES = {
    "pendulum": ("pendulum_settled",),
    "pendulum_images": ("pendulum_images",),
    "reaction_diffusion": ("reaction_diffusion", "reaction_diffusion_rho"),
    "duffing": ("duffing_settled",),
    "duffing_identifiable": ("duffing_identifiable_settled",),
    "wind_tunnel": ("wind_tunnel",),
    "light_tunnel": ("light_tunnel",),
}


def book_results(
    tables: dict[str, Sequence[str]] | None = None, missing: str | None = None
) -> pd.DataFrame:
    """Every task's table from the store (default :data:`BOOK_TABLES`): the rows of its
    studies joined (:func:`hsam_core.results.joined`, a ``file`` column naming the table), each
    regularizer as one family over its strengths and every method's setting chosen by the
    book's rule over the joined grid — :func:`by_family`, the one place where rows are
    marked. ``missing`` as in :func:`results`; with ``"skip"`` the runs left out are listed,
    per study, in ``DataFrame.attrs["missing"]``, and the methods whose grid they leave
    incomplete, per table, in ``DataFrame.attrs["incomplete"]`` (selected nowhere)."""
    tables = BOOK_TABLES if tables is None else tables
    frames, lacking, incomplete = {}, {}, {}
    for name, names in tables.items():
        frames[name] = [results(s, missing) for s in names]
        for study, rows in zip(names, frames[name]):
            if rows.attrs.get("missing"):
                lacking[study] = sorted(set(rows.attrs["missing"]))
                incomplete.setdefault(name, set()).update(rows.attrs["incomplete"])
    rows = joined(frames)
    rows.attrs["incomplete"] = {name: sorted(methods) for name, methods in incomplete.items()}
    families = by_family(rows)
    families.attrs["missing"] = lacking
    return families


def profile(tasks: Sequence[str] | None = None) -> pd.DataFrame:
    """Where the book's training time goes, from the store (every stored run, whatever study):
    per task and method family (:func:`method_name`; the two ends as ``physics only`` and
    ``NN only``), the runs, the CPU-hours of training (``seconds`` is the wall time per seed of
    a one-thread ensemble fit, so a run costs ``seconds`` × seeds), the median epochs run, how
    many of them were in the constant-rate phase of the protocol (``decay_epoch``; NaN for a
    fixed-length run) and the share of seeds settled. Scoring (sharpness, Hessian) is not
    included: the store does not time it."""
    names = list(BOOK_TABLES) if tasks is None else list(tasks)
    frames = []
    for task in names:
        rows = store.read(task)
        if not len(rows):
            continue
        rows = rows.assign(
            family=[
                _end(r) if r["kind"] == "erm" and _end(r) else method_name(r)
                for _, r in rows.iterrows()
            ],
            protocol=rows.decay_epoch.notna().map({True: "settle", False: "fixed"}),
        )
        group = rows.groupby(["task", "protocol", "family"], sort=False)
        frames.append(
            pd.DataFrame(
                {
                    "runs": group.key.nunique(),
                    "cpu_hours": group.seconds.sum() / 3600,
                    "epochs": group.epochs.median(),
                    "decay_epoch": group.decay_epoch.median(),
                    "settled": group.converged.mean(),
                }
            )
        )
    return pd.concat(frames) if frames else pd.DataFrame()


def _end(row: pd.Series) -> str:
    """``physics only`` / ``NN only`` for the two ends of a comparison (by their model), else
    ``""``."""
    model = json.loads(row["model"]) if isinstance(row["model"], str) and row["model"] else {}
    if model.get("network") is False:
        return "physics only"
    if model.get("physics") == "none":
        return "NN only"
    return ""


def identified_columns(rows: pd.DataFrame, task: experiments.Task) -> tuple[pd.DataFrame, tuple]:
    """``rows`` with θ̂ as far as the data determine it: where the task's θ is identifiable only
    up to scale (its ``identified``, e.g. the light tunnel's ratios), one column
    ``theta_<name>`` per identified quantity replaces θ's own; returns the rows and the names
    of θ̂'s columns (None: every ``theta_<name>`` column)."""
    if task.identified is None:
        return rows, None
    theta = {
        c.removeprefix("theta_"): torch.tensor(rows[c].to_numpy(dtype=float))
        for c in rows.columns
        if c.startswith("theta_") and c not in select.THETA_SCORES
    }
    named = {
        f"theta_{name}".replace("/", "_per_"): v.numpy()
        for name, v in task.identified(theta).items()
    }
    return rows.drop(columns=[f"theta_{n}" for n in theta]).assign(**named), tuple(named)


def rule_grids(names: Sequence[str]) -> tuple[dict, dict, dict]:
    """Every method family's grid of the studies ``names`` (two settings or more; one per
    network, named as :func:`by_family` names it: ``L2``, ``L2 [grey-box]``), as the rules
    of :mod:`hsam_core.select` read them: ``{"<task> / <family>": rows}``, each grid's
    :class:`~hsam_core.select.Context` (the family's direction and default, the task's noise
    level, θ̂'s identified columns), and per study the configurations the store lacks (left
    out, never silently: the caller prints them); a family whose grid they leave incomplete is
    left out whole (its trained part never stands in for the grid). Studies of one task add
    their settings to one grid per family (a setting trained twice is refused by the rules)."""
    parts, contexts, missing = {}, {}, {}
    for name in names:
        study = _study(name)
        rows = results(study, missing="skip")
        incomplete = rows.attrs["incomplete"]
        if rows.attrs["missing"]:
            missing[study.name] = sorted(set(rows.attrs["missing"]))
        if not len(rows):
            continue
        task = study.build_task()
        noise = task.noise or None  # noise-free data: no level for the discrepancy principle
        rows, theta = identified_columns(with_names(rows), task)
        # a family per method and network, named as by_family names it ("L2 [grey-box]")
        rows["family"] = by_family(rows, mark=False).method
        for family, grid in rows[rows.kind != "erm"].groupby("family", sort=False):
            if family in incomplete:
                continue
            key = f"{study.task} / {family}"
            parts.setdefault(key, []).append(grid)
            method = grid.trained_with.iloc[0]
            contexts[key] = select.Context.of(method, noise=noise, theta=theta)
    grids = {}
    for key, grid in parts.items():
        grid = pd.concat(grid, ignore_index=True)
        if grid.setting.nunique() >= 2:
            grids[key] = grid.dropna(axis=1, how="all")
    return grids, {k: contexts[k] for k in grids}, missing
