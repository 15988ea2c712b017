"""The θ-free rules of hsam_core.select on grids whose right answer is known by construction,
and what they refuse."""

import math

import numpy as np
import pandas as pd
import pytest

from hsam_core import select

SEEDS = [0, 1, 2, 3, 4]


def grid(settings, val, extrap=None, norm=None, theta=None, error=None, jitter=0.0):
    """One row per (setting, seed); each score a list over settings (seed s adds jitter·s)."""
    rows = []
    for i, s in enumerate(settings):
        for seed in SEEDS:
            wiggle = 1 + jitter * (seed - 2)
            row = {"setting": s, "seed": seed, "val_mse": val[i] * wiggle}
            if extrap is not None:
                row["extrap_mse"] = extrap[i] * wiggle
            if norm is not None:
                row["nn_norm"] = norm[i]
            if theta is not None:
                row["theta_a"] = theta[i] * wiggle
            if error is not None:
                row["theta_rel_error"] = error[i]
            rows.append(row)
    return pd.DataFrame(rows)


RHOS = [0.03, 0.1, 0.3, 1.0]


def test_validation_and_extrapolation_pick_their_minimum():
    g = grid(RHOS, val=[1.0, 1.1, 1.5, 3.0], extrap=[9.0, 4.0, 2.0, 5.0])
    assert select.validation(g) == 0.03
    assert select.extrapolation(g) == 0.3


def test_within_spread_takes_the_strongest_setting_the_seeds_cannot_tell_apart():
    # the best (0.03) has an IQR of 0.1 (jitter 10 %): 0.1 at 1.05 is within it, 0.3 is not
    g = grid(RHOS, val=[1.0, 1.05, 1.5, 3.0], jitter=0.1)
    assert select.within_spread(g) == 0.1
    # the other direction (APHYNITY's λ₀): the smallest setting within the spread
    g = grid(RHOS, val=[3.0, 1.5, 1.05, 1.0], jitter=0.1)
    assert select.within_spread(g, stronger=-1) == 0.3


def test_discrepancy_takes_the_strongest_setting_within_the_noise_level():
    sigma = 0.1  # σ² = 0.01, τ²σ² = 0.0121
    g = grid(RHOS, val=[0.0100, 0.0110, 0.0119, 0.02])
    assert select.discrepancy(g, sigma) == 0.3
    assert select.discrepancy(g, sigma, stronger=-1) == 0.03
    # nothing within the noise level: the lowest validation MSE
    g = grid(RHOS, val=[0.05, 0.04, 0.06, 0.07])
    assert select.discrepancy(g, sigma) == 0.1


def test_l_curve_finds_the_corner():
    # the norm falls steeply until 0.3 while the error barely moves, then the error shoots up
    g = grid(RHOS, val=[1.0, 1.01, 1.05, 10.0], norm=[100.0, 10.0, 1.0, 0.9])
    assert select.l_curve(g) == 0.3


def test_theta_plateau_finds_where_theta_stops_moving():
    g = grid(RHOS, val=[1, 1, 1, 1], theta=[0.5, 0.9, 0.91, 0.95])
    assert select.theta_plateau(g) == 0.3
    # a θ̂ that is stable across settings but scattered over seeds at 0.3 loses there
    g = grid(RHOS, val=[1, 1, 1, 1], theta=[0.5, 0.9, 0.91, 0.95], jitter=0.0)
    g.loc[g.setting == 0.3, "theta_a"] *= 1 + 0.2 * (g.loc[g.setting == 0.3, "seed"] - 2)
    assert select.theta_plateau(g) != 0.3


def test_fixed_needs_its_value_on_the_grid():
    g = grid(RHOS, val=[1, 2, 3, 4])
    assert select.fixed(g, 1.0) == 1.0
    with pytest.raises(ValueError, match="not a setting"):
        select.fixed(g, 2.0)


def test_stability_is_one_for_a_clear_pick_and_lower_for_a_coin_flip():
    clear = grid(RHOS, val=[1.0, 2.0, 3.0, 4.0], jitter=0.05)
    assert select.stability(clear, select.validation, n_boot=100) == 1.0
    rng = np.random.default_rng(0)
    flip = grid(RHOS, val=[1.0, 1.0, 3.0, 4.0])
    flip["val_mse"] *= 1 + 0.1 * rng.standard_normal(len(flip))
    share = select.stability(flip, select.validation, n_boot=200)
    assert 0.2 < share < 0.95


def test_evaluate_scores_each_rule_against_the_oracle_and_names_what_it_refused():
    g = grid(RHOS, val=[1.0, 1.1, 1.5, 3.0], norm=[9, 3, 1, 0.5], error=[0.4, 0.2, 0.05, 0.3])
    rules = {
        "validation": lambda rows, context: select.validation(rows),
        "extrapolation": lambda rows, context: select.extrapolation(rows),
        "fixed ρ = 0.3": lambda rows, context: select.fixed(rows, 0.3),
    }
    table = select.evaluate({"toy / SAM (nn)": g}, rules=rules, n_boot=20).set_index("rule")
    assert table.loc["validation", "pick"] == 0.03
    assert table.loc["validation", "ratio"] == pytest.approx(0.4 / 0.05)
    assert table.loc["fixed ρ = 0.3", "ratio"] == pytest.approx(1.0)
    assert table.loc["fixed ρ = 0.3", "oracle"] == 0.3
    assert math.isnan(table.loc["extrapolation", "pick"])
    assert "extrap_mse" in table.loc["extrapolation", "refused"]
    # every rule of the book, each with what its context gives it, or refused by name
    known = select.evaluate({"toy / SAM (nn)": g}, n_boot=20).set_index("rule")
    assert list(known.index) == list(select.RULES)
    assert "noise level" in known.loc["discrepancy", "refused"]
    assert known.loc["fixed_default", "pick"] == select.DEFAULTS["SAM (nn)"]
    noisy = {"toy / SAM (nn)": select.Context.of("SAM (nn)", noise=1.0)}
    known = select.evaluate({"toy / SAM (nn)": g}, noisy, n_boot=20).set_index("rule")
    assert known.loc["discrepancy", "refused"] == ""


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda g: g[g.setting == 0.03], "at least two settings"),
        (lambda g: g[g.seed == 0], "at least two seeds"),
        (lambda g: g.drop(index=3), "exactly one row per seed"),
        (lambda g: pd.concat([g, g.iloc[:1]]), "exactly one row per seed"),
        (lambda g: g.assign(val_mse=g.val_mse.where(g.index != 2, np.nan)), "non-finite val_mse"),
        (lambda g: g.drop(columns="val_mse"), "lacks the column"),
    ],
)
def test_bad_grids_are_refused_with_what_is_wrong(mutate, match):
    g = grid(RHOS, val=[1, 2, 3, 4])
    with pytest.raises(ValueError, match=match):
        select.validation(mutate(g))


def test_bad_arguments_are_refused():
    g = grid(RHOS, val=[1, 2, 3, 4], norm=[1, 1, 1, 1])
    with pytest.raises(TypeError, match="DataFrame"):
        select.validation(g.to_dict())
    with pytest.raises(ValueError, match="noise"):
        select.discrepancy(g, 0.0)
    with pytest.raises(ValueError, match="three settings"):
        select.l_curve(g[g.setting.isin([0.03, 0.1])])
    with pytest.raises(ValueError, match="no θ̂ columns"):
        select.theta_plateau(g)


def test_the_criterion_ranks_by_worst_case_then_grids_within_2x_then_median():
    rows = []
    for grid, ratios in {
        "a / SAM (nn)": {"r1": 1.0, "r2": 1.0, "r3": 1.0, "r4": 1.0},
        "b / SAM (nn)": {"r1": 3.0, "r2": 3.2, "r3": 1.5, "r4": 1.2},
        "c / SAM (nn)": {"r1": 1.8, "r2": 1.1, "r3": 3.1, "r4": None},
        "c / L2": {"r1": 99.0, "r2": 99.0, "r3": 99.0, "r4": 99.0},
    }.items():
        for rule, ratio in ratios.items():
            refused = "no split" if ratio is None else ""
            rows.append({"grid": grid, "rule": rule, "ratio": ratio, "refused": refused})
    ranked = select.criterion(pd.DataFrame(rows), "SAM (nn)")
    # worst cases 3.0, 3.2, 3.1 tie within 10 %; r4 was refused on one grid (infinite worst)
    assert ranked.tied.tolist() == [True, True, True, False]
    # the tied have two grids within 2x each; then the median: r2 1.1, r3 1.5, r1 1.8
    assert ranked.index.tolist() == ["r2", "r3", "r1", "r4"]
    assert ranked.loc["r4", "worst"] == math.inf and ranked.loc["r1", "grids"] == 3
    with pytest.raises(ValueError, match="no grid of 'ASAM"):
        select.criterion(pd.DataFrame(rows), "ASAM (nn)")


def test_mark_applies_the_books_rule_per_method_of_a_chapter_table():
    """select.mark: the rule's pick per method of a results table (ρ as the setting); a
    method at one setting is selected as it is; a family without what the rule needs is
    refused by name."""
    g = grid(RHOS, val=[1.0, 1.1, 1.5, 3.0])
    sam = g.assign(method="SAM (nn)", rho=g.setting)
    erm = g[g.setting == 0.03].assign(method="ERM", rho=0.0)
    table = pd.concat([erm, sam], ignore_index=True)
    marked = select.mark(table)  # the book's rule: SAM's fixed default ρ = 0.1
    assert select.RULE == "fixed_default"
    assert set(marked[marked.selected == 1].rho) == {0.0, select.DEFAULTS["SAM (nn)"]}
    assert (marked[marked.method == "ERM"].selected == 1).all()
    by_val = select.mark(table, "validation")
    assert set(by_val[(by_val.selected == 1) & (by_val.method == "SAM (nn)")].rho) == {0.03}
    grey = table.assign(method=table.method.where(table.method == "ERM", "SAM (nn) [grey-box]"))
    assert set(select.mark(grey).query("selected == 1").rho) == {0.0, 0.1}
    with pytest.raises(ValueError, match="'LookSAM .* needs a default"):
        select.mark(table.assign(method=table.method.replace("SAM (nn)", "LookSAM (nn) k=5")))
    with pytest.raises(ValueError, match="repeated row labels"):
        select.mark(pd.concat([erm, sam]))
    with pytest.raises(ValueError, match="unknown rule"):
        select.mark(table, "median")


def test_mark_selects_nothing_of_a_grid_that_lacks_planned_settings():
    """select.mark(incomplete=...): a method whose grid lacks planned settings is selected
    nowhere, even where one setting alone would be "selected as it is" — the part of a grid
    never stands in for the rule's pick on the whole; attrs names it; a bare string is refused.
    Without the argument the same table selects the lone setting (the gap this closes)."""
    g = grid(RHOS, val=[1.0, 1.1, 1.5, 3.0])
    l2 = g[g.setting == 0.03].assign(method="L2", rho=1e-4)  # one of L2's three strengths
    sam = g.assign(method="SAM (nn)", rho=g.setting)
    table = pd.concat([l2, sam], ignore_index=True)
    assert (select.mark(table)[lambda t: t.method == "L2"].selected == 1).all()
    marked = select.mark(table, incomplete=["L2", "APHYNITY"])
    assert (marked[marked.method == "L2"].selected == 0).all()
    assert set(marked[marked.selected == 1].rho) == {select.DEFAULTS["SAM (nn)"]}
    assert marked.attrs["incomplete"] == ["L2"]  # APHYNITY has no rows here
    with pytest.raises(TypeError, match="collection of method names"):
        select.mark(table, incomplete="L2")
