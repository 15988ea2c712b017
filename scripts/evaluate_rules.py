"""Every θ-free rule of hsam_core.select on the grids of the results store, against the oracle.

    python scripts/evaluate_rules.py            # the settled grids (protocol), every family
    python scripts/evaluate_rules.py --fixed    # the fixed-length SAM / ASAM grids of 7 tasks

Prints one row per (grid, rule) — the pick, its median θ error, the oracle's, their ratio and
the pick's stability over seed resamples — and per rule the median and worst ratio and how many
grids it gets within 2× of the oracle. A preliminary evaluation (issue 33): the rule of the
book is to be chosen on the settled grids of every task, with the criterion stated before.
"""

import sys

import pandas as pd

from hsam_core import report, select, settings, store, studies

settings.configure(quick=False)
DEFAULT = {"SAM (nn)": 0.1, "ASAM (nn)": 1.0, "L2": 1e-3, "APHYNITY": 1.0, "orthogonality": 1e-2}


def identified(rows: pd.DataFrame) -> list[str] | None:
    """θ̂'s columns for the plateau: the light tunnel's ratios (θ only up to scale)."""
    if rows.task.iloc[0] == "light_tunnel":
        return ["ratio_rb", "ratio_gb"]
    return None


# The studies trained by the settling protocol, one per task (issue 32), in the book's order.
SETTLED = (
    "pendulum_settled",
    "duffing_settled",
    "duffing_identifiable_settled",
    "wind_tunnel",
    "light_tunnel",
)


def settled_grids() -> tuple[dict, dict]:
    """Every method family's grid of the settled studies; a study, or a configuration of one,
    that the store lacks is named and left out of the table."""
    grids, noise = {}, {}
    for name in SETTLED:
        study = studies.get(name)
        rows = report.results(study, missing="skip")
        if rows.attrs["missing"]:
            print(f"{name}: not in the store: {sorted(set(rows.attrs['missing']))}")
        if not len(rows):
            continue
        rows = report.with_names(rows)
        noise[study.task] = study.build_task().noise
        rows = (
            rows.assign(ratio_rb=rows.theta_r / rows.theta_b, ratio_gb=rows.theta_g / rows.theta_b)
            if study.task == "light_tunnel"
            else rows
        )
        for family, g in rows[rows.kind != "erm"].groupby("trained_with", sort=False):
            if g.setting.nunique() >= 2:
                grids[f"{study.task} / {family}"] = g.dropna(axis=1, how="all")
    return grids, noise


def fixed_grids() -> dict:
    rows = pd.concat([store.read(t) for t in report.BOOK_TABLES], ignore_index=True)
    rows = report.with_names(rows[rows.decay_epoch.isna()])
    rows = rows[rows.model.isna() | (rows.model == "")]
    rows = rows.assign(ratio_rb=rows.theta_r / rows.theta_b, ratio_gb=rows.theta_g / rows.theta_b)
    grids = {}
    keys = ["task", "epochs", "trained_with"]
    for (task, epochs, family), g in rows[rows.kind == "sam"].groupby(keys, sort=False):
        if g.setting.nunique() >= 3 and g.groupby("setting").size().eq(5).all():
            grids[f"{task} {epochs} / {family}"] = g.dropna(axis=1, how="all")
    return grids


def main() -> None:
    fixed = "--fixed" in sys.argv
    grids, noise = (fixed_grids(), {}) if fixed else settled_grids()
    rules = {
        "validation": lambda g, f: select.validation(g),
        "within spread": lambda g, f: select.within_spread(g, select.direction(f)),
        "L-curve": lambda g, f: select.l_curve(g, select.direction(f)),
        "θ̂ plateau": lambda g, f: select.theta_plateau(g, identified(g)),
        "fixed default": lambda g, f: select.fixed(g, DEFAULT[f]),
    }
    if not fixed:  # the fixed-length grids have no extrapolation split and no noise
        rules["extrapolation"] = lambda g, f: select.extrapolation(g)
        rules["discrepancy"] = lambda g, f: select.discrepancy(
            g, noise[g.task.iloc[0]], select.direction(f)
        )
    table = select.evaluate(grids, rules, n_boot=200)
    with pd.option_context("display.width", 220, "display.max_rows", 500):
        print(table.to_string(float_format="{:.3g}".format))
        within = table.groupby("rule").ratio.agg(
            median="median", worst="max", within_2x=lambda r: int((r <= 2).sum()), grids="size"
        )
        print(within.to_string(float_format="{:.3g}".format))
        for family in ("SAM (nn)", "ASAM (nn)"):
            if table.grid.str.endswith(f" / {family}").any():
                ranked = select.criterion(table, family)
                print(f"\nthe pre-registered criterion for {family}: {ranked.index[0]}")
                print(ranked.to_string(float_format="{:.3g}".format))


if __name__ == "__main__":
    main()
