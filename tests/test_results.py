"""hsam_core.results: reading the committed result tables and summarising them."""

import math

import pandas as pd
import pytest
import torch

from hsam_core import results as R
from hsam_core import select


def rows(task, method, rho, errors, val, selected=1, seconds=10.0, **extra):
    """One configuration, one row per seed (θ error of seed i = errors[i])."""
    return [
        {
            "task": task,
            "method": method,
            "rho": rho,
            "seed": seed,
            "theta_rel_error": err,
            "val_mse": val,
            "test_mse": 10 * val,
            "seconds": seconds,
            "selected": selected,
            "mode": "full",
            **{k: v[seed] if isinstance(v, list) else v for k, v in extra.items()},
        }
        for seed, err in enumerate(errors)
    ]


def toy_task(task="toy"):
    """ERM, SAM (nn) at two ρ (the rule picks 0.1, θ prefers 0.3), ASAM at one ρ, L2, APHYNITY,
    physics only and NN only."""
    return pd.DataFrame(
        rows(task, "ERM", 0.0, [0.4, 0.5, 0.6, 0.7, 0.8], 1e-3, seconds=10.0)
        + rows(task, "SAM (nn)", 0.1, [0.1, 0.2, 0.3, 0.4, 0.5], 2e-3, seconds=20.0)
        + rows(task, "SAM (nn)", 0.3, [0.05] * 5, 9e-3, selected=0, seconds=21.0)
        + rows(task, "ASAM (nn)", 1.0, [0.15] * 5, 3e-3, seconds=25.0)
        + rows(task, "L2", 0.0, [0.01] * 5, 5e-3, seconds=8.0)
        + rows(task, "APHYNITY", 0.0, [0.02] * 5, 5e-3)
        + rows(task, "physics only", 0.0, [0.001] * 5, 1.0, seconds=1.0)
        + rows(task, "NN only", 0.0, [math.nan] * 5, 1e-3)
    )


@pytest.fixture
def loaded():
    """The toy task's table as the results chapter reads it (a file column, the rule applied)."""
    return select.mark(R.joined({"toy": [toy_task("toy")]}))


def test_joined_keeps_every_table_with_its_name_in_order_and_selects_nothing():
    loaded = R.joined({"toy": [toy_task("toy")], "new": [toy_task("new")]})
    assert list(dict.fromkeys(loaded.file)) == ["toy", "new"] and len(loaded) == 80
    # the rule is applied once, elsewhere (report.by_family): the join marks nothing, even
    # where its frames came marked
    assert (loaded.selected == 0).all()
    # a task added to the tables joins every table without an edit
    marked = pd.concat([select.mark(t) for _, t in loaded.groupby("file", sort=False)])
    assert set(R.headline_table(marked).task) == {"new", "toy"}


def test_joined_names_the_table_and_the_missing_column():
    broken = toy_task().drop(columns=["seconds"])
    with pytest.raises(ValueError, match=r"table 'study': missing required column\(s\) seconds"):
        R.joined({"toy": [toy_task()], "study": [broken]})
    with pytest.raises(ValueError, match="no result tables"):
        R.joined({})
    with pytest.raises(ValueError, match="'toy' has no rows"):
        R.joined({"toy": [toy_task().iloc[:0]]})


def test_extra_radii_join_their_task_and_the_rule_reselects_over_the_whole_grid():
    # more radii of the toy experiment, trained apart: SAM at 0.05 fits better than 0.1; the
    # book's rule (each family's default) keeps SAM at 0.1 and ASAM at 1 over the joined grid,
    # the validation rule moves SAM's pick to 0.05
    extra = pd.DataFrame(
        rows("toy", "SAM (nn)", 0.05, [0.3] * 5, 1.5e-3, selected=0)
        + rows("toy", "ASAM (nn)", 2.0, [0.02] * 5, 8e-3, selected=0)
    )
    loaded = R.joined({"toy": [toy_task("toy"), extra], "zeta": [toy_task("zeta")]})
    assert list(dict.fromkeys(loaded.file)) == ["toy", "zeta"] and len(loaded) == 90
    toy = select.mark(loaded[loaded.file == "toy"])
    picked = toy[toy.selected == 1].groupby("method").rho.unique().map(list).to_dict()
    assert picked["SAM (nn)"] == [0.1] and picked["ASAM (nn)"] == [1.0]
    assert picked["ERM"] == [0.0] and len(toy[toy.selected == 1]) == 35  # 7 methods
    by_val = select.mark(toy.drop(columns="selected"), "validation")
    assert set(by_val[(by_val.selected == 1) & (by_val.method == "SAM (nn)")].rho) == {0.05}
    # the other task keeps its own picks
    zeta = select.mark(loaded[loaded.file == "zeta"])
    pd.testing.assert_frame_equal(
        zeta.drop(columns="file").reset_index(drop=True), toy_task("zeta"), check_dtype=False
    )


def test_headline_table_values(loaded):
    table = R.headline_table(loaded).set_index("method")
    assert "SAM (nn)" in table.index and len(table) == 7  # one row per method: the selected ρ
    sam = table.loc["SAM (nn)"]
    assert sam.rho == 0.1 and sam.seeds == 5
    assert sam.theta_error == pytest.approx(0.3)
    assert sam.theta_error_iqr == pytest.approx(0.4 - 0.2)
    assert sam.test_mse == pytest.approx(2e-2)
    assert sam.cost_vs_erm == pytest.approx(2.0)
    assert table.loc["ERM", "cost_vs_erm"] == 1.0
    assert math.isnan(table.loc["NN only", "theta_error"])
    assert math.isnan(sam.cosine) and math.isnan(sam.settled)  # no such columns


def test_headline_table_cosine_and_settled():
    data = toy_task()
    data["theta_cosine"] = 0.9
    data["converged"] = [1.0, 0.0, 0.0, 0.0, 0.0] * 8
    table = R.headline_table(data.assign(file="toy")).set_index("method")
    assert table.loc["ERM", "cosine"] == pytest.approx(0.9)
    assert table.loc["ERM", "cosine_iqr"] == pytest.approx(0.0)
    assert table.loc["ERM", "settled"] == pytest.approx(0.2)


def test_the_validation_rule_picks_the_best_median_or_the_largest_rho_within_its_spread():
    """Default: the ρ with the lowest median validation MSE. within_spread: the largest ρ whose
    median is at most the best median plus the best ρ's IQR over seeds. A method with one
    configuration is selected as it is, and θ is never read (its error favours ρ = 0.3 here)."""
    val = {0.03: [1.0, 2.0, 3.0, 4.0, 5.0], 0.1: [3.0, 4.0, 4.5, 5.0, 6.0], 0.3: [9.0] * 5}
    error = {0.03: 0.5, 0.1: 0.2, 0.3: 0.01}
    table = pd.DataFrame(
        [
            {
                "method": "SAM (nn)",
                "rho": rho,
                "seed": seed,
                "val_mse": v,
                "theta_rel_error": error[rho],
            }
            for rho, values in val.items()
            for seed, v in enumerate(values)
        ]
        + [
            {"method": "ERM", "rho": 0.0, "seed": s, "val_mse": 50.0, "theta_rel_error": 1.0}
            for s in range(5)
        ]
    )

    def picked(selected):
        return selected[selected.selected == 1].groupby("method").rho.unique().map(list).to_dict()

    # medians 3, 4.5, 9: the best is 0.03, its IQR (2 to 4) admits 0.1 (4.5 <= 3 + 2), not 0.3
    assert picked(select.mark(table, "validation")) == {"ERM": [0.0], "SAM (nn)": [0.03]}
    assert picked(select.mark(table, "within_spread")) == {
        "ERM": [0.0],
        "SAM (nn)": [0.1],
    }


def test_with_convergence_marks_a_score_unless_every_seed_settled():
    assert R.with_convergence(0.01234, [True, True, True]) == "0.0123"
    assert R.with_convergence(0.5, torch.tensor([True, False, True])) == (
        "0.5 (not converged: 2/3 seeds settled)"
    )
    assert (
        R.with_convergence(0.5, pd.Series([1.0, 0.0])) == "0.5 (not converged: 1/2 seeds settled)"
    )
    # a model without θ (NaN flags) or no flags at all: the number alone
    assert R.with_convergence(0.5, [math.nan, math.nan]) == "0.5"
    assert R.with_convergence(0.5, []) == "0.5"
    with pytest.raises(ValueError, match="0/1"):
        R.with_convergence(0.5, [0.5])
