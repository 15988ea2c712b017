"""Hybrid models, data, the training loop, metrics and the pendulum system."""

import math

import pytest
import torch

import hsam_core as hc
from hsam_core.systems import pendulum


class Scale(hc.PhysicsModel):
    """g_phys(x) = θ · x₀ (a toy measurement law)."""

    def __init__(self):
        super().__init__()
        self.add_theta("theta", 1.0, map="exp")

    def forward(self, x):
        return self.param("theta") * x[..., :1]


@pytest.mark.parametrize(
    "kind,value,scale",
    [("softplus", 0.5, 1.0), ("exp", 2.0, 1.0), ("sigmoid", 3e-3, 1e-2), ("identity", -1.5, 1.0)],
)
def test_theta_maps_round_trip(kind, value, scale):
    phys = hc.PhysicsModel()
    phys.add_theta("a", value, map=kind, scale=scale)
    assert math.isclose(phys.theta()["a"].item(), value, rel_tol=1e-5)


def test_theta_outside_its_range_is_refused():
    with pytest.raises(ValueError, match="outside the range"):
        hc.PhysicsModel().add_theta("a", -1.0, map="softplus")


def test_wrong_input_shape_names_the_expected_shape():
    model = pendulum.make_hybrid(hidden=8)
    with pytest.raises(ValueError, match=r"expects inputs of shape \(\.\.\., 2\), got \(5, 3\)"):
        model(torch.zeros(5, 3))


def test_physics_without_parameters_is_refused():
    class Known(hc.PhysicsModel):
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match="no trainable parameters"):
        hc.HybridODE(Known(), hc.mlp([2, 4, 2]), state_dim=2)


def test_non_finite_data_is_refused():
    t = torch.linspace(0, 1, 5)
    x = torch.zeros(2, 5, 2)
    x[1, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="1 non-finite"):
        hc.Trajectories(t, x)
    with pytest.raises(ValueError, match=r"\(N, T, d\)"):
        hc.Trajectories(t, torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match="non-finite"):
        hc.Pairs(torch.zeros(3, 1), torch.tensor([[0.0], [float("inf")], [1.0]]))


def test_negative_rho_is_refused_by_method():
    with pytest.raises(ValueError, match="rho"):
        hc.Method.sam(-0.1)


def test_looksam_method_builds_looksam_and_keys_its_settings():
    from hsam_core.experiments import describe

    model = hc.Ensemble.from_seeds(lambda: pendulum.make_hybrid(hidden=8), [0, 1])
    method = hc.Method.looksam(0.1, every=5, alpha=0.5)
    opt = hc.make_optimizer(model, method)
    assert isinstance(opt, hc.LookSAM) and (opt.k, opt.alpha, opt.member_dim) == (5, 0.5, 0)
    assert type(hc.make_optimizer(model, hc.Method.sam(0.1))) is hc.SAM
    # the run's key tells LookSAM settings apart
    assert describe(method) != describe(hc.Method.looksam(0.1, every=10, alpha=0.5))
    assert describe(hc.Method.sam(0.1))["every"] == 1
    labels = {hc.Method.looksam(0.1, every=k, alpha=a).label for k in (5, 10) for a in (0, 0.7)}
    assert len(labels) == 4
    with pytest.raises(ValueError, match="needs rho > 0"):
        hc.Method("ERM", every=5)
    data = pendulum.make_data("train", 2, horizon=3.0).windows(2)
    history = hc.fit(model, data, method, epochs=3, batch_size=4)
    assert torch.isfinite(history.loss).all()


def test_optimizer_with_foreign_parameters_is_refused():
    data = pendulum.make_data("train", 2, horizon=3.0).windows(2)
    model = hc.Ensemble.from_seeds(lambda: pendulum.make_hybrid(hidden=8), [0])
    other = hc.Ensemble.from_seeds(lambda: pendulum.make_hybrid(hidden=8), [0])
    with pytest.raises(ValueError, match="not this model's"):
        hc.fit(
            model,
            data,
            hc.Method.erm(),
            epochs=1,
            optimizer=torch.optim.Adam(list(model.parameters()) + list(other.parameters())),
        )
    with pytest.raises(ValueError, match="does not update"):
        hc.fit(
            model,
            data,
            hc.Method.erm(),
            epochs=1,
            optimizer=torch.optim.Adam(model.ml_parameters()),
        )


def test_non_finite_loss_names_the_epoch():
    data = pendulum.make_data("train", 2, horizon=3.0).windows(2)
    model = hc.Ensemble.from_seeds(lambda: pendulum.make_hybrid(hidden=8), [0])
    with pytest.raises(FloatingPointError, match=r"non-finite at epoch \d+ for seed\(s\) \[0\]"):
        hc.fit(model, data, hc.Method.erm(), epochs=2, lr_phys=1e12, lr_nn=1e12)


def test_pendulum_data_is_deterministic_and_splits_are_disjoint():
    a = pendulum.make_data("train", 3)
    b = pendulum.make_data("train", 5)
    torch.testing.assert_close(a.x, b.x[:3])  # trajectory i does not depend on n
    test = pendulum.make_data("test", 3)
    assert not torch.isclose(a.x[:, 0], test.x[:, 0]).all(dim=-1).any()
    r = a.x[:, 0].norm(dim=-1)
    assert ((r >= 1.3) & (r < 2.3)).all()
    assert a.x.shape == (3, 40, 2)


def test_complete_physics_recovers_theta():
    """Control: the complete pendulum without a network finds ω₀² and α."""
    data = pendulum.make_data("train", 8).windows(10)
    model = hc.Ensemble.from_seeds(
        lambda: pendulum.make_hybrid(physics="complete", network=False), [0]
    )
    hc.fit(model, data, hc.Method.erm(), epochs=40, batch_size=32, lr_phys=5e-2)
    err = hc.theta_rel_error(model.theta(), {"omega2": pendulum.OMEGA2, "alpha": pendulum.ALPHA})
    assert err.item() < 2e-3  # the floor is rk4's discretisation error on the dt = 0.5 grid


def test_theta_rel_error_and_cosine():
    err = hc.theta_rel_error(
        {"a": torch.tensor([1.1, 0.9]), "b": torch.tensor([2.0, 2.0])}, {"a": 1.0, "b": 2.0}
    )
    torch.testing.assert_close(err, torch.tensor([0.05, 0.05]))
    cos = hc.cosine_similarity(torch.tensor([[2.0, 0.0], [1.0, 1.0]]), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(cos, torch.tensor([1.0, 1 / math.sqrt(2)]))
    with pytest.raises(KeyError, match="no parameter"):
        hc.theta_rel_error({"a": torch.tensor([1.0])}, {"c": 1.0})


class ScaleFirst(Scale):
    """g_phys(x) = (θ · x₀, 0): the toy law on the first of two outputs."""

    def forward(self, x):
        first = super().forward(x)
        return torch.cat([first, torch.zeros_like(first)], dim=-1)


def test_top_hessian_eigenvalue_and_sharpness_match_closed_form():
    """Linear network y = W x under MSE: H = 2/(N d_out) · XᵀX ⊗ I. The loss is quadratic in
    W, so the ascent-step sharpness is exact: L(W + ρ Ĝ) − L(W) = ρ ‖G‖ + ½ ρ² ĜᵀHĜ with
    G = ∇L(W) and Ĝ = G / ‖G‖."""
    torch.manual_seed(0)
    x, y = torch.randn(40, 3), torch.randn(40, 2)
    net = torch.nn.Linear(3, 2, bias=False)
    model = hc.Ensemble([hc.StaticHybrid(ScaleFirst(), net, state_dim=3)])
    # g_phys only adds θ x₀ to the first output: it does not change the Hessian in W
    data = hc.Pairs(x, y)
    eig = hc.top_hessian_eigenvalue(model, data, iterations=200)
    expected = 2 / (40 * 2) * torch.linalg.eigvalsh(x.T @ x).max()
    torch.testing.assert_close(eig, expected.reshape(1), rtol=1e-3, atol=1e-5)
    rho = 0.1
    rise = hc.sharpness_ascent(model, data, rho=rho)
    xd, yd, w = x.double(), y.double(), net.weight.detach().double()
    phys = torch.cat([xd[:, :1], torch.zeros(40, 1, dtype=torch.float64)], dim=-1)  # θ = 1
    grad = 2 / (40 * 2) * (xd @ w.T + phys - yd).T @ xd  # ∇_W of the mean squared error
    unit = grad / grad.norm()
    closed_form = rho * grad.norm() + rho**2 / (40 * 2) * (xd @ unit.T).pow(2).sum()
    torch.testing.assert_close(rise.double(), closed_form.reshape(1), rtol=1e-4, atol=1e-6)


def test_regularizers_run_and_shrink_the_network():
    data = pendulum.make_data("train", 4, horizon=6.0).windows(4)
    norms = {}
    for method in (
        hc.Method.erm(),
        hc.Method.regularized(hc.Aphynity(lambda0=0.01, tau2=0.0)),
        hc.Method.regularized(hc.L2(1e-2)),
        hc.Method.regularized(hc.Orthogonality(1e-2)),
    ):
        model = hc.Ensemble.from_seeds(lambda: pendulum.make_hybrid(hidden=16), [0, 1])
        hist = hc.fit(model, data, method, epochs=20, batch_size=16)
        assert torch.isfinite(hist.loss).all()
        norms[method.label] = hc.nn_contribution(model, data).mean().item()
    assert norms["APHYNITY"] < norms["ERM"]


def _toy_task(n_train: int = 1, **extra):
    """A pendulum task small enough to train in seconds: windows of 5 steps of ``n_train``
    trajectories, one validation and one test trajectory, an 8-wide network."""
    from hsam_core import experiments as ex

    return ex.Task(
        name="toy",
        train=pendulum.make_data("train", n_train).windows(5),
        val=pendulum.make_data("val", 1),
        test=pendulum.make_data("test", 1),
        make_model=lambda **model: pendulum.make_hybrid(**{"hidden": 8, **model}),
        truth=pendulum.TRUTH,
        **extra,
    )


def test_curvature_metrics_on_a_subset_of_the_training_data():
    """``Task.curvature_samples = n`` scores sharpness on the first n training samples only, and
    enters the run's key."""
    from hsam_core import experiments as ex

    def make_task(n):
        return _toy_task(2, curvature_samples=n)

    task = make_task(7)
    result = ex.run(task, hc.Method.erm(), [0], epochs=1, batch_size=16, cache=False)
    head = pendulum.make_data("train", 2).windows(5)
    head = hc.Trajectories(head.t, head.x[:7])
    expected = hc.sharpness_ascent(result.model, head, ex.SHARPNESS_RHO)
    assert result.rows.sharpness[0] == pytest.approx(float(expected[0]), rel=1e-5)
    keys = [
        ex.run_key(ex.run_spec(make_task(n), hc.Method.erm(), [0], {}, None)) for n in (None, 7, 8)
    ]
    assert len(set(keys)) == 3


def test_uncached_run_accepts_a_factory_without_source_file():
    """``cache=False`` needs no cache key, so a model factory defined where there is no source
    file (a notebook cell, ``eval``) is accepted."""
    from hsam_core import experiments as ex

    make_model = eval("lambda: pendulum.make_hybrid(hidden=8)", {"pendulum": pendulum})
    task = ex.Task(
        name="toy",
        train=pendulum.make_data("train", 1).windows(5),
        val=pendulum.make_data("val", 1),
        test=pendulum.make_data("test", 1),
        make_model=make_model,
        truth=pendulum.TRUTH,
    )
    result = ex.run(task, hc.Method.erm(), [0], epochs=1, batch_size=16, cache=False)
    assert len(result.rows) == 1


def test_every_runs_rows_say_whether_theta_settled():
    """Every row of :func:`run` (and so of ``run_grid``) carries ``converged`` per seed: 1 where
    θ has settled (here frozen: lr_phys = 0), 0 where it still moves, NaN for a model without
    θ or a single epoch of history."""
    from hsam_core import experiments as ex

    task = _toy_task()
    nn_only = {"physics": "none"}
    grid = [ex.Config(hc.Method.erm()), ex.Config(hc.Method.erm(), nn_only, "NN only")]
    training = dict(epochs=5, batch_size=16, cache=False)
    moving = ex.run_grid(task, grid, [0, 1], **training)
    assert moving[moving.method == "ERM"].converged.tolist() == [0.0, 0.0]
    assert moving[moving.method == "NN only"].converged.isna().all()
    frozen = ex.run_grid(task, grid[:1], [0, 1], lr_phys=0.0, **training)
    assert frozen.converged.tolist() == [1.0, 1.0]
    once = ex.run_grid(task, grid[:1], [0], **{**training, "epochs": 1})
    assert once.converged.isna().all()


class _Slope(hc.PhysicsModel):
    """y = a x with a identity-mapped: θ() returns the raw parameter itself."""

    def __init__(self) -> None:
        super().__init__()
        self.add_theta("a", 0.5, map="identity")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.param("a") * x


def test_theta_history_records_every_epoch_for_identity_maps():
    """fit's history holds θ as it was after each epoch, not references to the parameter
    (which, for an identity map, would show the final value at every epoch)."""
    x = torch.linspace(-1, 1, 20).unsqueeze(1)
    data = hc.Pairs(x, 2 * x)
    model = hc.Ensemble.from_seeds(lambda: hc.StaticHybrid(_Slope(), None, 1), [0, 1])
    history = hc.fit(model, data, hc.Method.erm(), epochs=5, lr_phys=0.1)
    a = history.theta["a"]
    assert a.shape == (5, 2) and not a.requires_grad
    assert (a[1:] > a[:-1]).all(), f"θ did not move from epoch to epoch in the history: {a}"
    torch.testing.assert_close(a[-1], model.theta()["a"].detach())


def test_the_command_line_refuses_an_unknown_study_or_label(capsys):
    from hsam_core.__main__ import main

    with pytest.raises(SystemExit):
        main(["sweep", "pendulum_cost", "--only", "SAM (nn)", "SAM (typo)"])
    err = capsys.readouterr().err
    assert "SAM (typo)" in err and "LookSAM (nn) k=5" in err
    with pytest.raises(SystemExit):
        main(["tables", "pendulm"])
    assert "no study 'pendulm'" in capsys.readouterr().err
    assert main(["check"]) == 0  # the scratch store of tests/conftest.py: empty and sound


@pytest.mark.parametrize("method", [hc.Method.erm(), hc.Method.sam(0.05)])
def test_lr_milestones_decay_every_learning_rate_at_those_epochs(method):
    """``fit(lr_milestones=(m,))`` multiplies each group's rate by ``lr_gamma`` from epoch m on
    — with SAM too, whose base optimizer shares the param groups — and changes the fit."""
    data = pendulum.make_data("train", 2, horizon=4.0).windows(3)
    fits = {}
    for milestones in [(), (2,)]:
        model = hc.Ensemble.from_seeds(lambda: pendulum.make_hybrid(hidden=8), [0])
        optimizer = hc.make_optimizer(model, method, lr_nn=1e-3, lr_phys=1e-2)
        hc.fit(
            model,
            data,
            method,
            epochs=3,
            batch_size=4,
            optimizer=optimizer,
            lr_milestones=milestones,
            lr_gamma=0.5,
        )
        fits[milestones] = model.theta()["omega2"].item()
        rates = sorted(group["lr"] for group in optimizer.param_groups)
        assert rates == pytest.approx([1e-3, 1e-2] if not milestones else [5e-4, 5e-3])
        base = getattr(optimizer, "base_optimizer", optimizer)
        assert sorted(g["lr"] for g in base.param_groups) == pytest.approx(rates)
    assert fits[()] != fits[(2,)]


@pytest.mark.parametrize("milestones, gamma", [((0,), 0.1), ((3,), 0.1), ((1,), 0.0), ((1,), 2)])
def test_lr_milestones_outside_the_run_are_refused(milestones, gamma):
    data = pendulum.make_data("train", 1, horizon=2.0).windows(2)
    model = hc.Ensemble.from_seeds(lambda: pendulum.make_hybrid(hidden=4), [0])
    with pytest.raises(ValueError, match="lr_milestones"):
        hc.fit(model, data, hc.Method.erm(), epochs=3, lr_milestones=milestones, lr_gamma=gamma)


def test_aphynity_points_averages_the_squared_norm_over_grid_points():
    """APHYNITY's reaction–diffusion penalty is the squared norm averaged over grid points:
    ``points = P`` divides ‖f_nn‖² by P and leaves the prediction term alone."""
    data = pendulum.make_data("train", 2, horizon=3.0).windows(2)

    def make():
        net = hc.mlp([2, 8, 8, 2], zero_last=False)  # a network whose output is not zero
        return hc.HybridODE(pendulum.FrictionlessPendulum(), net, state_dim=2)

    model = hc.Ensemble.from_seeds(make, [0])
    loss, states = data.loss(model, torch.arange(len(data)).unsqueeze(0))
    norm = hc.metrics.fnn_sq_norm(model, states)
    assert norm.item() > 0
    for points in (1, 4):
        reg = hc.Aphynity(lambda0=2.0, tau2=0.0, points=points)
        reg.reset(1)
        torch.testing.assert_close(reg.objective(model, loss, states), 2 * loss + norm / points)
    with pytest.raises(ValueError, match="points"):
        hc.Aphynity(points=0)
