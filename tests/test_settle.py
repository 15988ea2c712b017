"""The training protocol (hsam_core.train.Settle): decay once θ has settled, refuse to call a
moving θ settled, and key the runs that use it."""

import pytest
import torch

from hsam_core.ensemble import Ensemble
from hsam_core.experiments import run, training_settings
from hsam_core.systems import sine_toy
from hsam_core.train import History, Method, Settle, _Protocol, fit

SEEDS = [0, 1]


@pytest.fixture(scope="module")
def toy():
    return sine_toy.task(n_train=64, n_val=32, n_test=32)


def physics_only(toy):
    return Ensemble.from_seeds(lambda: toy.make_model(network=False), SEEDS)


def test_a_settled_theta_decays_early_and_is_called_settled(toy):
    protocol = Settle(min_epochs=300, max_epochs=3000, check_every=10)
    model = physics_only(toy)
    history = fit(model, toy.train, Method.erm(), batch_size=None, lr_phys=0.05, settle=protocol)
    # full-batch Adam on one parameter: θ reaches the truth long before the budget
    assert history.decay_epoch < 1000
    assert len(history.loss) == history.decay_epoch + protocol.decay_epochs(history.decay_epoch)
    assert history.settled.all()
    assert (history.drift_before_decay < protocol.tol).all()
    # ... at the least-squares θ of the physics alone: Σ y sin x / Σ sin² x
    x, y = toy.train.x, toy.train.y
    best = float((y * torch.sin(x)).sum() / torch.sin(x).pow(2).sum())
    assert model.theta()["theta"].tolist() == pytest.approx([best] * len(SEEDS), rel=1e-3)


def test_a_moving_theta_is_not_called_settled_when_the_budget_runs_out(toy):
    # a tiny rate: θ is still walking towards the truth when the budget ends; the decay then
    # freezes it, and the verdict must still say "not settled", with the drift before the decay
    protocol = Settle(min_epochs=20, max_epochs=60, check_every=10)
    model = physics_only(toy)
    history = fit(model, toy.train, Method.erm(), batch_size=None, lr_phys=1e-3, settle=protocol)
    assert history.decay_epoch == 60
    assert (history.drift_before_decay > protocol.tol).all()
    assert not history.settled.any()
    # the decay phase ran at the decayed rates: θ barely moved in it
    late = history.theta["theta"][history.decay_epoch :]
    assert (late[-1] - late[0]).abs().max() < (
        history.theta["theta"][59] - history.theta["theta"][0]
    ).abs().min()


def test_the_decay_sets_each_rate_to_its_factor_of_the_base_rate(toy):
    protocol = Settle(min_epochs=10, max_epochs=20, check_every=10, gammas=(0.5, 0.1))
    model = Ensemble.from_seeds(toy.make_model, SEEDS)
    optimizer = torch.optim.Adam(
        [
            {"params": model.ml_parameters(), "lr": 1e-3},
            {"params": model.physics_parameters(), "lr": 1e-2},
        ]
    )
    history = fit(model, toy.train, Method.erm(), settle=protocol, optimizer=optimizer)
    assert history.decay_epoch is not None
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-4, 1e-3])


def test_the_drift_ignores_jitter_and_sees_a_steady_walk():
    protocol = Settle(window=0.2)
    epochs = 1000
    noise = 1e-2 * torch.randn(epochs, 1, generator=torch.Generator().manual_seed(0))
    jitter = {"theta": 1.0 + noise}
    walk = {"theta": 1.0 + 1e-5 * torch.arange(epochs, dtype=torch.float32).unsqueeze(1)}
    # jitter of 1 %: the half-window means (100 epochs each) differ by ~0.14 %
    assert protocol.drift(jitter, epochs) < 5e-3
    # a walk of 1e-5 per epoch: the means of two 100-epoch halves are 1e-3 apart
    assert protocol.drift(walk, epochs).item() == pytest.approx(1e-3, rel=0.02)


def _verdict(theta: torch.Tensor, decay_epoch: int, drift: float) -> torch.Tensor:
    """The verdict of a protocol whose decay began at ``decay_epoch`` on the θ series
    ``theta`` (E, K), with ``drift`` before the decay."""
    protocol = Settle(gammas=(0.1, 0.01))
    state = _Protocol(protocol, torch.zeros(theta.shape), {"theta": theta}, None)
    state.decay_epoch, state.drift = decay_epoch, torch.full((theta.shape[1],), drift)
    history = History(torch.zeros(theta.shape), {"theta": theta}, torch.zeros(theta.shape), 0.0)
    return state.verdict(history).settled


def test_the_verdict_judges_stillness_over_the_decays_last_segment():
    # decay at epoch 100, two segments (100-109 at x0.1, 110-119 at x0.01)
    epochs = torch.arange(120, dtype=torch.float32)
    jitter = 1.0 + 0.005 * torch.sin(epochs)  # ±0.5 % about a steady mean
    jitter[100:110] = torch.linspace(float(jitter[99]), 1.0, 10)  # collapses onto the mean
    jitter[110:] = 1.0
    assert _verdict(jitter[:, None], 100, drift=1e-4).tolist() == [True]
    # the same θ, but still moving by 0.5 % at the smallest rate: not settled
    moving = jitter.clone()
    moving[110:] = torch.linspace(1.0, 1.005, 10)
    assert _verdict(moving[:, None], 100, drift=1e-4).tolist() == [False]
    # at rest after the decay, but walking before it: not settled
    assert _verdict(jitter[:, None], 100, drift=2e-3).tolist() == [False]


def test_a_network_alone_is_watched_through_its_loss(toy):
    protocol = Settle(min_epochs=20, max_epochs=200, check_every=20)
    nn_only = Ensemble.from_seeds(lambda: _network_only(), SEEDS)
    history = fit(nn_only, toy.train, Method.erm(), batch_size=None, settle=protocol)
    assert history.theta == {}
    assert history.decay_epoch is not None and history.settled.shape == (2,)


def _network_only():
    from hsam_core.hybrid import StaticHybrid, mlp

    return StaticHybrid(None, mlp([1, 8, 1]), state_dim=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(tol=0.0),
        dict(window=1.5),
        dict(min_epochs=0),
        dict(min_epochs=100, max_epochs=50),
        dict(gammas=()),
        dict(gammas=(0.1, 2.0)),
        dict(gammas=[0.1]),
        dict(decay_fraction=0.0),
        dict(check_every=2.5),
    ],
)
def test_bad_protocols_are_refused(kwargs):
    with pytest.raises(ValueError, match="Settle"):
        Settle(**kwargs)


def test_epochs_and_a_protocol_together_are_refused(toy):
    model = physics_only(toy)
    with pytest.raises(ValueError, match="settle decides"):
        fit(model, toy.train, Method.erm(), epochs=10, settle=Settle())
    with pytest.raises(ValueError, match="settle decides"):
        fit(model, toy.train, Method.erm(), settle=Settle(), lr_milestones=(5,))
    with pytest.raises(TypeError, match="settle"):
        fit(model, toy.train, Method.erm(), settle={"tol": 1e-3})


def test_a_runs_key_holds_its_protocol_and_old_keys_do_not_change():
    plain = training_settings(epochs=100)
    assert "settle" not in plain  # the settings of a fixed-length run are as before
    keyed = training_settings(settle=Settle(max_epochs=500))
    assert keyed["settle"]["max_epochs"] == 500 and keyed["settle"]["gammas"] == [0.1, 0.01]
    assert Settle.from_params(keyed["settle"]) == Settle(max_epochs=500)


def test_run_rows_carry_the_protocols_record(toy):
    protocol = Settle(min_epochs=20, max_epochs=100, check_every=20)
    result = run(toy, Method.erm(), SEEDS, model={"network": False}, settle=protocol, cache=False)
    rows = result.rows
    assert (rows.epochs == len(result.history.loss)).all()
    assert (rows.decay_epoch == result.history.decay_epoch).all()
    assert rows.drift_before_decay.tolist() == pytest.approx(
        result.history.drift_before_decay.tolist()
    )
    assert rows.converged.tolist() == result.history.settled.float().tolist()
