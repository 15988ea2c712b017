"""Several configurations (ERM and the radii of SAM's and ASAM's grids, or a regularizer's strength
grid) trained as one stacked ensemble give the numbers of each configuration trained alone: the histories, the protocol's
decay epochs, lengths and verdicts, and the trained weights."""

import pytest
import torch

from hsam_core import L2, Ensemble, Method, fit, train
from hsam_core.regularizers import Aphynity, Orthogonality, per_member
from hsam_core.systems import pendulum, sine_toy
from hsam_core.train import Settle

SEEDS = [0, 1]


@pytest.fixture(scope="module")
def toy():
    return sine_toy.task(n_train=64, n_val=32, n_test=32)


def _alone_and_together(task, methods, **kwargs):
    """Each method fitted on its own ensemble, and all of them fitted together."""
    alone = []
    for method in methods:
        model = Ensemble.from_seeds(task.make_model, SEEDS)
        alone.append((model, fit(model, task.train, method, **kwargs)))
    models = [Ensemble.from_seeds(task.make_model, SEEDS) for _ in methods]
    histories = fit(models, task.train, methods, **kwargs)
    return alone, list(zip(models, histories))


def _assert_same(alone, together, rtol=1e-5):
    """Same protocol record exactly; θ, losses and weights to ``rtol``."""
    for (m0, h0), (m1, h1) in zip(alone, together):
        assert len(h1.loss) == len(h0.loss)
        assert h1.decay_epoch == h0.decay_epoch
        if h0.settled is not None:
            assert torch.equal(h1.settled, h0.settled)
            assert torch.equal(h1.drift_before_decay, h0.drift_before_decay)
        assert h1.theta.keys() == h0.theta.keys()
        for name in h0.theta:
            torch.testing.assert_close(h1.theta[name], h0.theta[name], rtol=rtol, atol=0)
        torch.testing.assert_close(h1.loss, h0.loss, rtol=1e-4, atol=1e-7)
        for (name, p), q in zip(m0.named_parameters(), m1.parameters()):
            torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-6, msg=name)


def test_radii_under_the_protocol_equal_their_separate_fits(toy):
    # ρ = 0 (ERM: Adam) batches with SAM, whose member with ρ_k = 0 takes Adam's step
    methods = [Method.erm(), Method.sam(0.05), Method.sam(0.5)]
    settle = Settle(min_epochs=20, max_epochs=40, check_every=10)
    alone, together = _alone_and_together(toy, methods, batch_size=16, settle=settle)
    _assert_same(alone, together)
    for (model, history), method in zip(together, methods):
        assert model.seeds == SEEDS and history.loss.shape[1] == len(SEEDS), method.label


def test_sam_and_asam_radii_under_the_protocol_equal_their_separate_fits(toy):
    # ERM, SAM and ASAM in one stack: each member scaled by its own T (1, or |w| + η)
    methods = [Method.erm(), Method.sam(0.1), Method.asam(0.5), Method.asam(1.0)]
    settle = Settle(min_epochs=20, max_epochs=40, check_every=10)
    alone, together = _alone_and_together(toy, methods, batch_size=16, settle=settle)
    _assert_same(alone, together)


def test_configurations_that_settle_at_different_epochs(toy, monkeypatch):
    # with this tolerance ρ = 0.01 settles at epoch 80 while ρ = 1 runs into its budget (100):
    # the first decays while the second still trains at the full rate, then leaves the stack
    # at epoch 90 (its members no longer computed) while the second trains on
    left = []
    leave = train._leave
    monkeypatch.setattr(
        train, "_leave", lambda model, *a: left.append(model.size) or leave(model, *a)
    )
    methods = [Method.sam(0.01), Method.sam(1.0)]
    settle = Settle(min_epochs=20, max_epochs=100, check_every=10, tol=1e-2)
    alone, together = _alone_and_together(toy, methods, batch_size=16, settle=settle)
    decay = [history.decay_epoch for _, history in together]
    assert decay == [80, 100]
    assert [len(history.loss) for _, history in together] == [90, 110]
    assert left == [2 * len(SEEDS)]  # once, from the two configurations' members
    _assert_same(alone, together)


@pytest.mark.parametrize(
    "methods, ends",
    [
        ([Method.looksam(0.01, every=3), Method.looksam(1.0, every=3)], [40, 110]),
        ([Method.asam(0.05), Method.sam(1.0), Method.erm()], [90, 110, 80]),
    ],
    ids=["LookSAM", "ASAM, SAM and ERM"],
)
def test_configurations_leave_the_stack_one_by_one_with_their_optimizer_state(toy, methods, ends):
    # LookSAM's stored gradient, ASAM's flags and Adam's moments shrink with the stack
    settle = Settle(min_epochs=20, max_epochs=100, check_every=10, tol=1e-2)
    alone, together = _alone_and_together(toy, methods, batch_size=16, settle=settle)
    assert [len(history.loss) for _, history in together] == ends
    _assert_same(alone, together)


def test_looksam_radii_with_clipping_and_milestones(toy):
    methods = [Method.looksam(0.05, every=3), Method.looksam(0.3, every=3)]
    alone, together = _alone_and_together(
        toy, methods, epochs=6, batch_size=16, clip=1.0, lr_milestones=(4,)
    )
    _assert_same(alone, together)


def test_a_tiny_pendulum_under_the_protocol():
    task = pendulum.task(n_train=3, hidden=8)
    methods = [Method.sam(0.05, perturb="all"), Method.sam(0.5, perturb="all")]
    settle = Settle(min_epochs=4, max_epochs=4, check_every=2, min_decay_epochs=2)
    alone, together = _alone_and_together(
        task, methods, batch_size=30, settle=settle, watch=task.identified
    )
    assert [len(history.loss) for _, history in together] == [6, 6]
    _assert_same(alone, together)


def test_one_configuration_in_a_list_is_a_list_of_one_history(toy):
    model = Ensemble.from_seeds(toy.make_model, SEEDS)
    histories = fit([model], toy.train, [Method.sam(0.1)], epochs=2, batch_size=32)
    assert isinstance(histories, list) and len(histories) == 1
    assert histories[0].loss.shape == (2, len(SEEDS))


def test_stack_repeats_seeds_and_split_gives_the_configurations_back(toy):
    a = Ensemble.from_seeds(toy.make_model, SEEDS)
    b = Ensemble.from_seeds(toy.make_model, SEEDS)
    fit(b, toy.train, Method.erm(), epochs=1, batch_size=32)  # b's weights differ from a's
    stacked = Ensemble.stack([a, b])
    assert stacked.size == 4 and stacked.seeds == SEEDS + SEEDS
    parts = stacked.split([2, 2])
    for original, part in zip((a, b), parts):
        assert part.seeds == original.seeds
        for p, q in zip(original.parameters(), part.parameters()):
            assert torch.equal(p, q)
    with pytest.raises(ValueError, match="distinct"):  # from_seeds still refuses repeats
        Ensemble.from_seeds(toy.make_model, [0, 0])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda a, b: Ensemble.stack(a), TypeError, "list of Ensembles"),
        (lambda a, b: Ensemble.stack([]), ValueError, "empty"),
        (lambda a, b: Ensemble.stack([a, "b"]), TypeError, r"ensembles\[1\]"),
        (lambda a, b: Ensemble.stack([a, b]), ValueError, "shape"),
        (lambda a, b: a.split([1, 2]), ValueError, "add up to the 2 members"),
        (lambda a, b: a.split([2, 0]), ValueError, "sizes"),
        (lambda a, b: a.split(2), ValueError, "sizes"),
    ],
)
def test_bad_stacks_and_splits_are_refused(toy, call, error, match):
    a = Ensemble.from_seeds(toy.make_model, SEEDS)
    wider = Ensemble.from_seeds(lambda: toy.make_model(hidden=8), SEEDS)
    with pytest.raises(error, match=match):
        call(a, wider)


@pytest.mark.parametrize(
    "methods, kwargs, error, match",
    [
        ([Method.sam(0.1)], {}, ValueError, "2 ensembles and 1 methods"),
        ([Method.sam(0.1), Method.sam(0.2, perturb="all")], {}, ValueError, r"\['perturb'\]"),
        ([Method.sam(0.1), Method.asam(0.2, eta=0.1)], {}, ValueError, r"\['eta'\]"),
        ([Method.sam(0.1), Method.looksam(0.1, every=5)], {}, ValueError, r"\[.every.\]"),
        ([Method.erm(), Method.regularized(L2(1e-3))], {}, ValueError, r"\['regularizer'\]"),
        (
            [Method.regularized(L2(1e-3)), Method.regularized(Orthogonality(1e-3))],
            {},
            ValueError,
            r"\['regularizer'\]",
        ),
        ([Method.sam(0.1), "SAM"], {}, TypeError, r"method\[1\] must be a Method"),
        ([Method.sam(0.1), Method.sam(0.2)], {"optimizer": "own"}, ValueError, "optimizer=None"),
    ],
)
def test_bad_configurations_are_refused(toy, methods, kwargs, error, match):
    models = [Ensemble.from_seeds(toy.make_model, SEEDS) for _ in range(2)]
    if kwargs.get("optimizer") == "own":
        kwargs = {"optimizer": torch.optim.Adam(models[0].parameters())}
    with pytest.raises(error, match=match):
        fit(models, toy.train, methods, epochs=1, **kwargs)


def test_mismatched_model_and_method_kinds_are_refused(toy):
    model = Ensemble.from_seeds(toy.make_model, SEEDS)
    with pytest.raises(TypeError, match="a list of Ensembles and a list of Methods"):
        fit(model, toy.train, [Method.sam(0.1)], epochs=1)
    with pytest.raises(TypeError, match="a list of Ensembles and a list of Methods"):
        fit([model], toy.train, Method.sam(0.1), epochs=1)
    with pytest.raises(ValueError, match="appears twice"):
        fit([model, model], toy.train, [Method.sam(0.1), Method.sam(0.2)], epochs=1)
    with pytest.raises(TypeError, match=r"model\[1\] must be an Ensemble"):
        fit([model, "b"], toy.train, [Method.sam(0.1), Method.sam(0.2)], epochs=1)


@pytest.mark.parametrize(
    "methods",
    [
        [Method.regularized(L2(w)) for w in (1e-4, 1e-2, 1.0)],
        [Method.regularized(Orthogonality(c)) for c in (1e-3, 1e-1)],
        [Method.regularized(Aphynity(lambda0=v, tau2=0.5, every=2)) for v in (0.1, 1.0, 10.0)],
    ],
    ids=["L2", "orthogonality", "APHYNITY"],
)
def test_a_regularizers_strengths_under_the_protocol_equal_their_separate_fits(toy, methods):
    # each member penalised with its configuration's strength (APHYNITY: its own λ₀, and λ
    # growing with its own loss); a strength that has settled leaves the stack with its state
    # (APHYNITY's λ₀ = 10 settles at epoch 20 at this tolerance, the others run to the budget)
    tol = 3e-2 if methods[0].regularizer.name == "APHYNITY" else 1e-2
    settle = Settle(min_epochs=20, max_epochs=60, check_every=10, tol=tol)
    alone, together = _alone_and_together(toy, methods, batch_size=16, settle=settle)
    ends = [len(history.loss) for _, history in together]
    assert len(set(ends)) > 1, ends  # the stack shrank during the fit
    _assert_same(alone, together)


def test_per_member_strengths_are_each_configurations_own():
    stacked = per_member([L2(1e-3), L2(0.5)], [2, 3])
    assert isinstance(stacked, L2)
    assert torch.equal(stacked.weight, torch.tensor([1e-3, 1e-3, 0.5, 0.5, 0.5]))
    aphynity = per_member([Aphynity(lambda0=1.0), Aphynity(lambda0=4.0)], [1, 2])
    aphynity.reset(3)
    assert torch.equal(aphynity.lam, torch.tensor([1.0, 4.0, 4.0]))
    with pytest.raises(ValueError, match="only in the regularizer's strength"):
        per_member([Aphynity(lambda0=1.0), Aphynity(lambda0=1.0, tau2=0.1)], [1, 1])
    with pytest.raises(ValueError, match="only in the regularizer's strength"):
        per_member([L2(1e-3), Orthogonality(1e-3)], [1, 1])
    with pytest.raises(ValueError, match="2 regularizers for 1 configurations"):
        per_member([L2(1e-3), L2(1e-2)], [2])
