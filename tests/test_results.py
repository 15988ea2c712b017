"""hsam_core.results: reading the committed result tables and summarising them."""

import math

import pandas as pd
import pytest
import torch

from hsam_core import results as R
from hsam_core.experiments import select_by_validation


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
    """The toy task's table as the results chapter reads it (the rule applied, a file column)."""
    return R.joined({"toy": [toy_task("toy")]})


def test_joined_keeps_every_table_with_its_name_in_order():
    loaded = R.joined({"toy": [toy_task("toy")], "new": [toy_task("new")]})
    assert list(dict.fromkeys(loaded.file)) == ["toy", "new"] and len(loaded) == 80
    # a task added to the tables joins every table without an edit
    assert set(R.headline_table(loaded).task) == {"new", "toy"}
    assert set(R.task_summary(R.headline_table(loaded)).index) == {"new", "toy"}


def test_joined_names_the_table_and_the_missing_column():
    broken = toy_task().drop(columns=["seconds"])
    with pytest.raises(ValueError, match=r"table 'study': missing required column\(s\) seconds"):
        R.joined({"toy": [toy_task()], "study": [broken]})
    with pytest.raises(ValueError, match="no result tables"):
        R.joined({})
    with pytest.raises(ValueError, match="'toy' has no rows"):
        R.joined({"toy": [toy_task().iloc[:0]]})


def test_extra_radii_join_their_task_and_the_rule_reselects_over_the_whole_grid():
    # more radii of the toy experiment, trained apart: SAM at 0.05 fits better than the
    # chapter's pick 0.1, so the joined grid's pick moves there; other methods keep theirs
    extra = pd.DataFrame(
        rows("toy", "SAM (nn)", 0.05, [0.3] * 5, 1.5e-3, selected=0)
        + rows("toy", "ASAM (nn)", 2.0, [0.02] * 5, 8e-3, selected=0)
    )
    loaded = R.joined({"toy": [toy_task("toy"), extra], "zeta": [toy_task("zeta")]})
    assert list(dict.fromkeys(loaded.file)) == ["toy", "zeta"] and len(loaded) == 90
    toy = loaded[loaded.file == "toy"]
    picked = toy[toy.selected == 1].groupby("method").rho.unique().map(list).to_dict()
    assert picked["SAM (nn)"] == [0.05] and picked["ASAM (nn)"] == [1.0]
    assert picked["ERM"] == [0.0] and len(toy[toy.selected == 1]) == 35  # 7 methods
    # the other task keeps its own picks
    pd.testing.assert_frame_equal(
        loaded[loaded.file == "zeta"].drop(columns="file").reset_index(drop=True),
        toy_task("zeta"),
        check_dtype=False,
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


def test_task_summary(loaded):
    summary = R.task_summary(R.headline_table(loaded)).loc["toy"]
    # the SAM variant with the lowest validation MSE at its chosen ρ: SAM (nn), not ASAM
    assert (summary.sam_method, summary.sam_rho) == ("SAM (nn)", 0.1)
    assert summary.sam == pytest.approx(0.3) and summary.erm == pytest.approx(0.6)
    assert summary.erm_over_sam == pytest.approx(2.0)
    # physics only is an end, not a regularizer
    assert (summary.best_reg_method, summary.best_reg) == ("L2", 0.01)
    assert summary.physics_only == pytest.approx(0.001)
    assert math.isnan(summary.paper)  # a task the reference paper does not list


def test_paper_reference_is_attached_by_task():
    data = toy_task("light_tunnel")
    data["theta_cosine"] = 0.95
    summary = R.task_summary(R.headline_table(data)).loc["light_tunnel"]
    assert (summary.paper_metric, summary.paper) == ("theta_cosine", 0.98)
    assert summary.sam_score == pytest.approx(0.95)
    assert set(R.PAPER_REFERENCE) >= {"pendulum", "reaction_diffusion", "wind_tunnel"}


def test_rho_sensitivity_rule_and_oracle(loaded):
    grid = R.rho_sensitivity(loaded)
    assert set(grid.method) == {"SAM (nn)"}  # the only method with several ρ
    by_rho = grid.set_index("rho")
    assert by_rho.loc[0.1, "picked"] and not by_rho.loc[0.1, "oracle"]
    assert by_rho.loc[0.3, "oracle"] and not by_rho.loc[0.3, "picked"]
    assert by_rho.loc[0.3, "theta_error"] == pytest.approx(0.05)


def test_sam_rule_vs_oracle(loaded):
    row = R.sam_rule_vs_oracle(loaded).loc["toy"]
    assert (row.rule_method, row.rule_rho, row.rule) == ("SAM (nn)", 0.1, pytest.approx(0.3))
    assert (row.oracle_method, row.oracle_rho) == ("SAM (nn)", 0.3)
    assert row.rule_over_oracle == pytest.approx(6.0)


def test_method_kinds():
    assert R.is_sam_variant("LookSAM (nn) k=5") and R.is_sam_variant("ASAM (all)")
    assert not R.is_sam_variant("ERM") and not R.is_regularizer("physics only [complete]")
    assert R.is_regularizer("APHYNITY") and not R.is_regularizer("SAM (nn)")


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
    assert picked(select_by_validation(table)) == {"ERM": [0.0], "SAM (nn)": [0.03]}
    assert picked(select_by_validation(table, within_spread=True)) == {
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


def test_pick_stability_resamples_seeds_and_finds_firm_and_fragile_picks():
    """A task whose best configuration wins on every seed keeps its pick in every resample;
    one where two radii trade places seed by seed does not, and the θ error the rule delivers
    then spans both radii's errors."""
    firm = pd.DataFrame(
        rows("firm", "SAM (nn)", 0.1, [0.1] * 5, 0, val_mse=[1e-3, 2e-3, 3e-3, 4e-3, 5e-3])
        + rows("firm", "SAM (nn)", 0.3, [0.5] * 5, 9e-3, selected=0)
        + rows("firm", "ERM", 0.0, [0.9] * 5, 1e-4)  # not a SAM variant: never chosen
    )
    fragile = pd.DataFrame(
        rows("fragile", "SAM (nn)", 0.1, [0.2] * 5, 0, val_mse=[1, 1, 1, 3, 3])
        + rows("fragile", "ASAM (nn)", 1.0, [0.02] * 5, 0, val_mse=[2, 2, 2, 0.5, 0.5])
    )
    out = R.pick_stability(pd.concat([firm, fragile], ignore_index=True), n_boot=500)
    assert out.loc["firm", ["rule_method", "rule_rho", "agree", "configs"]].tolist() == [
        "SAM (nn)",
        0.1,
        1.0,
        1,
    ]
    assert out.at["firm", "theta_p10"] == out.at["firm", "theta_p90"] == 0.1
    # all seeds: median val 1 (SAM) < 2 (ASAM); resamples with >= 3 of the last two seeds flip it
    assert out.loc["fragile", ["rule_method", "rule_rho"]].tolist() == ["SAM (nn)", 0.1]
    assert 0.5 < out.at["fragile", "agree"] < 0.95 and out.at["fragile", "configs"] == 2
    assert out.at["fragile", "theta_p10"] == 0.02 and out.at["fragile", "theta_p90"] == 0.2
    # the same draws give the same answer
    again = R.pick_stability(pd.concat([firm, fragile], ignore_index=True), n_boot=500)
    pd.testing.assert_frame_equal(out, again)
    with pytest.raises(ValueError, match="lack some seed"):
        R.pick_stability(fragile.drop(index=0), n_boot=10)
