"""The minimum-norm reference (hsam_core.identifiability) and the Duffing twin that uses it
(hsam_core.systems.duffing_identifiable). Each test runs in a few seconds on one CPU thread."""

import pytest
import torch

import hsam_core as hc
from hsam_core import studies
from hsam_core.experiments import describe
from hsam_core.identifiability import min_norm_theta
from hsam_core.systems import duffing
from hsam_core.systems import duffing_identifiable as twin

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def train_states():
    """Chapter 8's training states: every point of the 25 training trajectories."""
    return duffing.make_data("train", 25).x


# --- the minimum-norm reference ---------------------------------------------------------------


def test_min_norm_reproduces_chapter_8_least_squares(train_states):
    # chapter 8: the projection of βx³ onto (x, v) by least squares
    states = train_states.reshape(-1, 2).double()
    shift = torch.linalg.lstsq(states, duffing.BETA * states[:, :1] ** 3).solution.squeeze(1)
    physics = duffing.DampedLinearOscillator()
    theta = min_norm_theta(physics, duffing.true_vector_field, train_states)
    assert set(theta) == {"alpha", "delta"}
    assert theta["alpha"].dtype == torch.float64
    assert float(theta["alpha"]) == pytest.approx(duffing.ALPHA + float(shift[0]), abs=1e-8)
    assert float(theta["delta"]) == pytest.approx(duffing.DELTA + float(shift[1]), abs=1e-8)
    assert float(theta["alpha"]) == pytest.approx(2.67, abs=0.01)  # chapter 8's figure
    assert float(theta["delta"]) == pytest.approx(0.1, abs=0.02)
    # the physics model passed in is left as it was
    assert float(physics.theta()["alpha"]) == pytest.approx(0.5)


def test_min_norm_of_the_twin_is_its_least_squares_and_near_the_truth(train_states):
    # conservative physics (α, β): the projection of −δv onto (x, x³)
    states = train_states.reshape(-1, 2).double()
    design = torch.stack([states[:, 0], states[:, 0] ** 3], -1)
    shift = torch.linalg.lstsq(design, duffing.DELTA * states[:, 1:]).solution.squeeze(1)
    theta = min_norm_theta(twin.ConservativeDuffing(), duffing.true_vector_field, train_states)
    assert float(theta["alpha"]) == pytest.approx(twin.ALPHA + float(shift[0]), abs=1e-8)
    assert float(theta["beta"]) == pytest.approx(twin.BETA + float(shift[1]), abs=1e-8)
    error = float(hc.theta_rel_error(theta, twin.TRUTH))
    assert error < 0.03  # 1.1 % on these states, against ~0.9 for chapter 8's specification
    original = min_norm_theta(
        duffing.DampedLinearOscillator(), duffing.true_vector_field, train_states
    )
    assert float(hc.theta_rel_error(original, duffing.TRUTH)) > 20 * error


def test_min_norm_of_the_complete_physics_is_the_truth(train_states):
    theta = min_norm_theta(duffing.DuffingPhysics(), duffing.true_vector_field, train_states)
    for name, value in {
        "alpha": duffing.ALPHA,
        "delta": duffing.DELTA,
        "beta": duffing.BETA,
    }.items():
        assert float(theta[name]) == pytest.approx(value, rel=1e-7)


def test_min_norm_refuses_bad_input(train_states):
    physics, truth = twin.ConservativeDuffing(), duffing.true_vector_field
    with pytest.raises(TypeError, match="PhysicsModel"):
        min_norm_theta(twin.make_hybrid(hidden=4), truth, train_states)
    with pytest.raises(TypeError, match="torch.Tensor"):
        min_norm_theta(physics, truth, train_states.tolist())
    with pytest.raises(ValueError, match="at least one state"):
        min_norm_theta(physics, truth, torch.zeros(0, 2))
    with pytest.raises(ValueError, match="at least one state"):
        min_norm_theta(physics, truth, torch.zeros(2))
    bad = train_states.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="inf or NaN"):
        min_norm_theta(physics, truth, bad)
    with pytest.raises(ValueError, match="true_vector_field returned"):
        min_norm_theta(physics, lambda s: s[..., :1], train_states)
    with pytest.raises(ValueError, match="not finite"):
        min_norm_theta(physics, lambda s: s / 0, train_states)
    with pytest.raises(ValueError, match="cannot evaluate"):
        min_norm_theta(physics, truth, torch.ones(5, 1))

    class NoUnknowns(hc.PhysicsModel):
        def forward(self, s):
            return s

    with pytest.raises(ValueError, match="no unknown parameters"):
        min_norm_theta(NoUnknowns(), truth, train_states)


def test_min_norm_says_when_it_did_not_converge(train_states):
    with pytest.raises(RuntimeError, match="did not converge"):
        min_norm_theta(
            twin.ConservativeDuffing(), duffing.true_vector_field, train_states, max_iter=1
        )


# --- the Duffing twin ---------------------------------------------------------------------------


def test_twin_reuses_chapter_8_data_and_swaps_the_physics():
    task, original = (
        twin.task(n_train=2, n_val=2, n_test=2, hidden=8),
        duffing.task(n_train=2, n_val=2, n_test=2, hidden=8),
    )
    assert task.name == "duffing_identifiable" and task.truth == {"alpha": 1.0, "beta": 1.0}
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(task, split).x, getattr(original, split).x)
    model = task.make_model()
    assert isinstance(model.physics, twin.ConservativeDuffing)
    assert model.network[0].in_features == 2 and model.network[-1].out_features == 2
    # with the true (α, β) the physics misses exactly the damping
    # seeded: the states must not depend on what other tests drew; θ is stored through a
    # softplus computed in float32, so the laws agree to float32 precision, not to 1e-12
    s = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    physics = twin.ConservativeDuffing(twin.ALPHA, twin.BETA).double()
    damping = torch.stack([torch.zeros(64), -twin.DELTA * s[:, 1]], -1).double()
    assert torch.allclose(physics(s) + damping, duffing.true_vector_field(s), atol=1e-6)


def test_twin_grid_matches_chapter_8_plus_the_control():
    """The same methods at the same settings and seeds as chapter 8, on the twin's task."""
    control = "physics only [complete]"

    def rows(study):
        return [(c.model_label, c.model, describe(c.method)) for c in study.configs]

    study, original = studies.get("duffing_identifiable"), studies.get("duffing")
    assert rows(study) == rows(original) and study.seeds == original.seeds
    assert study.task == "duffing_identifiable" and original.task == "duffing"
    assert study.configs[-1].model_label == control
    model = twin.task(n_train=2, n_val=1, n_test=1, hidden=8).make_model(**study.configs[-1].model)
    assert isinstance(model.physics, duffing.DuffingPhysics) and model.network is None


def test_twin_fit_smoke():
    task = twin.task(n_train=2, n_val=2, n_test=2, hidden=8)
    model = hc.Ensemble.from_seeds(task.make_model, [0, 1])
    history = hc.fit(model, task.train, hc.Method.sam(0.1), epochs=2, batch_size=40)
    assert torch.isfinite(history.loss).all()
    assert set(history.theta) == {"alpha", "beta"}
    assert torch.isfinite(hc.theta_rel_error(model.theta(), task.truth)).all()
