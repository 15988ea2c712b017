"""An ensemble of K seeds trained by ``fit`` equals K separate single-model runs."""

import pytest
import torch

import hsam_core as hc
from hsam_core.systems import pendulum


def small_hybrid():
    return pendulum.make_hybrid(hidden=16)


@pytest.fixture(scope="module")
def windows():
    return pendulum.make_data("train", 4, horizon=6.0).windows(4)


def single_run(seed, data, method, epochs, batch):
    """The reference: one plain HybridODE, its own optimizer, hand-written loop."""
    hc.seed_everything(seed)
    model = small_hybrid()
    groups = [
        {"params": model.ml_parameters(), "lr": 1e-3},
        {"params": model.physics_parameters(), "lr": 1e-2},
    ]
    if method.rho > 0:
        groups[0]["rho"] = method.rho
        groups[1]["rho"] = method.rho if method.perturb == "all" else 0.0
        opt = hc.SAM(
            groups, torch.optim.Adam, rho=method.rho, adaptive=method.adaptive, eta=method.eta
        )
    else:
        opt = torch.optim.Adam(groups)
    gen = torch.Generator().manual_seed(seed)
    n = len(data)
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for s in range(0, n, batch):
            obs = data.x[order[s : s + batch]]

            def closure(obs=obs):
                opt.zero_grad()
                pred = model.integrate(obs[:, 0], data.t).transpose(0, 1)
                loss = (pred[:, 1:] - obs[:, 1:]).pow(2).mean()
                loss.backward()
                return loss

            opt.step(closure)
    return model


@pytest.mark.parametrize(
    "method",
    [hc.Method.erm(), hc.Method.sam(0.1), hc.Method.sam(0.05, perturb="all"), hc.Method.asam(0.5)],
    ids=["ERM", "SAM-nn", "SAM-all", "ASAM-nn"],
)
def test_ensemble_equals_separate_runs(windows, method):
    seeds = [3, 7, 11]
    ensemble = hc.Ensemble.from_seeds(small_hybrid, seeds)
    hc.fit(ensemble, windows, method, epochs=2, batch_size=16)
    for k, seed in enumerate(seeds):
        single = single_run(seed, windows, method, epochs=2, batch=16)
        member = ensemble.member(k)
        for (name, p), q in zip(single.named_parameters(), member.parameters()):
            torch.testing.assert_close(
                p, q, rtol=1e-4, atol=1e-6, msg=f"{method.label} seed {seed} {name}"
            )


def test_members_differ_and_theta_is_per_member(windows):
    ensemble = hc.Ensemble.from_seeds(small_hybrid, [0, 1])
    hist = hc.fit(ensemble, windows, hc.Method.erm(), epochs=2, batch_size=8)
    assert hist.loss.shape == (2, 2) and hist.theta["omega2"].shape == (2, 2)
    w = ensemble.ml_parameters()[0]
    assert not torch.equal(w[0], w[1])


def test_ensemble_input_shape_is_checked():
    ensemble = hc.Ensemble.from_seeds(small_hybrid, [0, 1])
    with pytest.raises(ValueError, match="member dimension"):
        ensemble(torch.zeros(3, 5, 2))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        ensemble(torch.zeros(2, 5, 3))


def test_buffers_are_refused():
    model = hc.HybridModel(pendulum.FrictionlessPendulum(), torch.nn.BatchNorm1d(2), state_dim=2)
    with pytest.raises(ValueError, match="buffers"):
        hc.Ensemble([model])
