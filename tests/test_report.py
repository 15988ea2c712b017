"""report.settling and report.family_picks: what the chambers' chapters show of a protocol run."""

import math

import numpy as np
import pandas as pd
import pytest

from hsam_core import report, select


def rows(label, kind, errors, val, extrap=1.0, rho=0.0, regularizer="", strength=np.nan, **extra):
    """One configuration, one store-like row per seed (θ error of seed i = errors[i])."""
    return [
        {
            "method": label,
            "kind": kind,
            "rho": rho,
            "adaptive": kind == "asam",
            "perturb": "nn",
            "every": 1,
            "regularizer": regularizer,
            "strength": strength,
            "model": "",
            "seed": seed,
            "theta_rel_error": err,
            "val_mse": val,
            "extrap_mse": extrap,
            **{k: v[seed] if isinstance(v, list) else v for k, v in extra.items()},
        }
        for seed, err in enumerate(errors)
    ]


def sam(rho, errors, val, extrap=1.0, **extra):
    return rows("SAM (nn)", "sam", errors, val, extrap, rho=rho, **extra)


def l2(weight, errors, val, extrap=1.0, **extra):
    return rows(f"L2 λ={weight:g}", "regularized", errors, val, extrap, 0.0, "L2", weight, **extra)


def grid():
    """ERM and physics only (no setting), SAM over three ρ (the validation MSE picks 0.03, the
    default is 0.1, θ prefers 0.3, the extrapolation MSE 0.1), L2 over two λ (the default 1e-3;
    validation and hindsight agree on 0.01)."""
    return pd.DataFrame(
        rows("ERM", "erm", [0.5, 0.6, 0.7], 1e-3)
        + rows("physics only", "erm", [0.01] * 3, 1e-1)
        + sam(0.03, [0.3, 0.4, 0.5], 1e-3, 2.0, converged=[0, 0, 1])
        + sam(0.1, [0.2] * 3, 2e-3, 0.5, converged=1)
        + sam(0.3, [0.1] * 3, 3e-3, 3.0, converged=0)
        + l2(1e-3, [0.4] * 3, 4e-3, converged=1)
        + l2(1e-2, [0.05] * 3, 2e-3, converged=1)
    )


def test_family_picks_applies_one_rule_to_every_family_and_shows_hindsight_beside_it():
    picks = report.family_picks(grid())
    assert list(picks.index) == ["SAM (nn)", "L2"]  # ERM and the two ends vary nothing
    sam_pick, l2_pick = picks.loc["SAM (nn)"], picks.loc["L2"]
    assert sam_pick["grid"] == (0.03, 0.1, 0.3)
    # the book's rule: each family's fixed default (SAM ρ = 0.1, L2 λ = 1e-3)
    assert sam_pick["rule picks"] == 0.1 and sam_pick["configuration"] == "SAM (nn)"
    assert sam_pick["theta_rel_error median"] == pytest.approx(0.2)
    assert sam_pick["seeds"] == 3 and sam_pick["settled seeds"] == 3
    assert sam_pick["best in hindsight"] == 0.3
    assert sam_pick["best theta_rel_error median"] == pytest.approx(0.1)
    assert sam_pick["validation MSE picks"] == 0.03
    assert sam_pick["extrapolation MSE picks"] == 0.1
    assert l2_pick["rule picks"] == 0.001 and l2_pick["configuration"] == "L2 λ=0.001"
    assert l2_pick["validation MSE picks"] == 0.01
    assert l2_pick["best in hindsight"] == 0.01 and l2_pick["settled seeds"] == 3


def test_family_picks_other_column_and_refusals():
    picks = report.family_picks(grid().assign(other=lambda t: -t.theta_rel_error), "other")
    assert picks.loc["SAM (nn)", "best in hindsight"] == 0.03
    assert "best other median" in picks
    broken = grid()
    broken.loc[broken.method == "SAM (nn)", "val_mse"] = np.nan
    with pytest.raises(ValueError, match="non-finite validation MSE in 'SAM \\(nn\\)'"):
        report.family_picks(broken)
    with pytest.raises(ValueError, match="no rows of a method family"):
        report.family_picks(grid()[grid().kind == "erm"])
    # no extrapolation split: the column is there, empty
    assert math.isnan(report.family_picks(grid().drop(columns="extrap_mse")).iloc[0, -1])


def test_settling_says_per_configuration_how_the_protocol_ended():
    table = pd.DataFrame(
        sam(0.1, [0.2] * 3, 1e-3, converged=1, epochs=1100, decay_epoch=1000,
            drift_before_decay=[1e-4, 5e-4, 2e-4])
        + sam(0.3, [0.2] * 3, 1e-3, converged=[0, 1, 0], epochs=22000, decay_epoch=20000,
              drift_before_decay=[0.01, 0.0005, 0.03])
        + rows("NN only", "erm", [np.nan] * 3, 1e-3, converged=np.nan, epochs=1200,
               decay_epoch=1100, drift_before_decay=0.002)
        + sam(0.2, [0.2] * 3, 1e-3, converged=0, epochs=22000, decay_epoch=20000,
              drift_before_decay=0.05)
    )  # fmt: skip
    out = report.settling(table, budget=20000)
    assert list(out.verdict) == [
        "settled",
        "1 of 3 settled (budget spent)",
        "no θ",
        "not settled (budget spent)",
    ]
    first = out.iloc[0]
    assert first["epochs"] == 1100 and first["decay epoch"] == 1000 and first.seeds == 3
    assert first["drift before decay median"] == pytest.approx(2e-4)
    assert first["drift before decay max"] == pytest.approx(5e-4)
    assert out.iloc[1]["settled seeds"] == 1 and math.isnan(out.iloc[2]["settled seeds"])
    # without the budget the verdict only counts seeds
    assert report.settling(table).verdict.iloc[1] == "1 of 3 settled"
    with pytest.raises(ValueError, match="decay_epoch"):
        report.settling(table.drop(columns="decay_epoch"))


def test_by_family_lets_the_rule_pick_every_familys_setting_alike():
    table = report.by_family(grid())
    assert list(dict.fromkeys(table.method)) == ["ERM", "physics only", "SAM (nn)", "L2"]
    assert sorted(table[table.method == "L2"].rho.unique()) == [1e-3, 1e-2]
    assert set(table[table.method == "L2"].configuration) == {"L2 λ=0.001", "L2 λ=0.01"}
    ruled = select.mark(table)
    chosen = ruled[ruled.selected == 1].drop_duplicates("method").set_index("method").rho
    picks = report.family_picks(grid())
    for family in picks.index:
        assert chosen[family] == picks.loc[family, "rule picks"]
    assert chosen["ERM"] == 0 and chosen["physics only"] == 0


def test_identified_columns_replace_theta_by_what_the_data_determine():
    """The light tunnel's θ is identifiable only up to scale: the rules read its ratios."""
    from types import SimpleNamespace

    from hsam_core.systems import light_tunnel

    rows = pd.DataFrame(
        {
            "theta_r": [2.0, 4.0],
            "theta_g": [1.0, 3.0],
            "theta_b": [0.5, 2.0],
            "theta_rel_error": 0.1,
        }
    )
    out, names = report.identified_columns(rows, SimpleNamespace(identified=light_tunnel.ratios))
    assert names == ("theta_r_per_b", "theta_g_per_b")
    assert out.theta_r_per_b.tolist() == [4.0, 2.0] and out.theta_g_per_b.tolist() == [2.0, 1.5]
    assert "theta_r" not in out and "theta_rel_error" in out
    same, none = report.identified_columns(rows, SimpleNamespace(identified=None))
    assert none is None and same is rows


def test_rule_grids_name_what_the_store_lacks():
    """Each settled study's family grids with their contexts (read from the book's store, in
    full mode); a configuration the store lacks is named."""
    from hsam_core import settings, studies

    settings.configure(quick=False, store=settings.BOOK_STORE)
    grids, contexts, missing = report.rule_grids(["pendulum_settled"])
    assert set(grids) == {
        f"pendulum / {f}" for f in ("SAM (nn)", "ASAM (nn)", "L2", "APHYNITY", "orthogonality")
    }
    assert contexts["pendulum / APHYNITY"].stronger == -1
    assert contexts["pendulum / SAM (nn)"].noise == pytest.approx(0.0068)
    assert missing == {}
    # reaction–diffusion's two studies make one grid per family; its data are noise-free
    grids, contexts, _ = report.rule_grids(["reaction_diffusion", "reaction_diffusion_rho"])
    assert sorted(grids["reaction_diffusion / SAM (nn)"].setting.unique()) == pytest.approx(
        [0.03, 0.05, 0.1, 0.2, 0.3]
    )
    assert contexts["reaction_diffusion / ASAM (nn)"].noise is None
    settings.configure(store=settings.BOOK_STORE.parent / "no-store-here")
    grids, _, missing = report.rule_grids(["pendulum_settled"])
    labels = {c.label for c in studies.get("pendulum_settled").configs}
    assert grids == {} and set(missing["pendulum_settled"]) == labels


def test_styled_tables_print_numbers_a_reader_reads():
    index = pd.MultiIndex.from_tuples([("ERM", 0.0), ("SAM (nn)", 0.3)], names=["method", "rho"])
    table = pd.DataFrame(
        {
            "seeds": [5.0, 5.0],
            "theta_rel_error median": [0.240203, 0.0047181],
            "converged seeds": [0.0, np.nan],
            "drift before decay": [0.014194, 0.0032],
        },
        index=index,
    )
    html = report.styled(table).to_html()
    for shown in (">0.3<", ">0<", ">0.24<", ">0.00472<", ">5<", ">1.42%<", ">–<"):
        assert shown in html, shown
    assert "0.300000" not in html and "5.000000" not in html


def test_the_comparison_figures_draw_from_the_store():
    """hsam_core.figures on the pendulum's settled grid, read from the book's store."""
    import matplotlib

    matplotlib.use("Agg")
    from hsam_core import figures, settings, studies
    from hsam_core.systems import pendulum

    settings.configure(quick=False, store=settings.BOOK_STORE)
    study = studies.get("pendulum_settled")
    results = report.results(study)
    picks = report.family_picks(results)
    assert len(figures.chosen(results, picks, "θ error").axes) == 1
    assert len(figures.against_rho(results, picks, "θ error").axes) == 2
    assert len(figures.sharpness(results, "θ error").axes) == 2
    fig = figures.theta_paths(study, picks, {"omega2": pendulum.OMEGA2}, 2000)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 + len(picks) + 2  # ERM, physics only, each pick, truth, budget
