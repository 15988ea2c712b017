"""The recipe (hsam_core.select.choose_rho): a grid of radii in, the chosen model, its table,
the pick's stability and the protocol's verdict out; bad input refused by name."""

import pytest

from hsam_core.select import RULES, Context, choose_rho
from hsam_core.systems import sine_toy
from hsam_core.train import Settle

SEEDS = (0, 1, 2)
QUICK = Settle(min_epochs=40, max_epochs=120, check_every=10)


@pytest.fixture(scope="module")
def toy():
    return sine_toy.task(n_train=64, n_val=32, n_test=32)


@pytest.fixture(scope="module")
def choice(toy):
    # ρ = 30 throws each step's gradient so far off that the fit stays poor: a grid whose
    # validation pick is known
    return choose_rho(
        toy.make_model,
        toy.train,
        toy.val,
        rhos=(0.3, 30.0),
        seeds=SEEDS,
        rule="validation",
        settle=QUICK,
        batch_size=None,
        n_boot=50,
    )


def test_the_validation_rule_picks_the_radius_that_fits(choice):
    medians = choice.table.groupby("setting").val_mse.median()
    assert medians[30.0] > 2 * medians[0.3]
    assert choice.rho == 0.3
    assert 0 <= choice.stability <= 1 and choice.rule == "validation"


def test_the_choice_holds_the_chosen_ensemble_and_its_table(choice):
    table = choice.table
    assert sorted(table.setting.unique()) == [0.3, 30.0]
    assert table.groupby("setting").seed.apply(sorted).tolist() == [list(SEEDS)] * 2
    assert {"val_mse", "nn_norm", "theta_theta", "settled", "drift_before_decay"} <= set(table)
    chosen = table[table.setting == choice.rho].sort_values("seed")
    assert choice.model is choice.models[choice.rho]
    assert choice.model.theta()["theta"].tolist() == pytest.approx(chosen.theta_theta.tolist())
    assert choice.settled == bool(chosen.settled.all())
    assert (table.epochs <= QUICK.longest).all()
    assert all(dtype.kind in "biuf" for dtype in table.dtypes)  # plain numbers, no tensors


def test_every_rule_runs_on_a_three_radius_grid(toy):
    choice = choose_rho(
        toy.make_model,
        toy.train,
        toy.val,
        rhos=(0.1, 0.3, 1.0),
        seeds=SEEDS,
        settle=QUICK,
        batch_size=None,
        n_boot=10,
        noise=0.01,
        extrapolation=toy.val,
    )
    context = Context.of("ASAM (nn)", noise=0.01)
    for name, rule in RULES.items():
        assert rule(choice.table, context) in (0.1, 0.3, 1.0), name


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rhos=(0.3,)), "at least two"),
        (dict(rhos=(0.3, 0.0)), "radii > 0"),
        (dict(rhos=(0.3, float("nan"))), "finite"),
        (dict(rhos=(0.3, 0.3)), "distinct"),
        (dict(seeds=(0,)), "two seeds"),
        (dict(rule="median"), "unknown rule"),
        (dict(rule="extrapolation"), "needs extrapolation data"),
        (dict(rule="discrepancy"), "needs the noise level"),
        (dict(rhos=(0.3, 2.0)), "picks ρ = 1, which rhos"),
        (dict(epochs=100), "settling protocol"),
    ],
)
def test_bad_input_is_refused_by_name(toy, kwargs, message):
    with pytest.raises(ValueError, match=message):
        choose_rho(toy.make_model, toy.train, toy.val, **{"settle": QUICK, **kwargs})
