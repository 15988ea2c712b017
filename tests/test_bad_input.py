"""Issue 30: the public API refuses bad input with an error naming the argument, the value and
what is expected, instead of returning an answer that looks right. Each test here failed (or
passed silently wrong) before the checks existed."""

import pathlib
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

import hsam_core as hc
from hsam_core import select, settings

ROOT = pathlib.Path(__file__).resolve().parents[1]


class Decay(hc.PhysicsModel):
    """f_phys(x) = −a x: same shape as x."""

    def __init__(self):
        super().__init__()
        self.add_theta("a", 1.0)

    def forward(self, x):
        return -self.param("a") * x


def linear_member():
    return hc.StaticHybrid(None, torch.nn.Linear(2, 1, bias=False), state_dim=2)


def pairs(n=20):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    return hc.Pairs(x, x @ torch.tensor([[1.0], [-2.0]]))


# --- fit ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [-1, 0, 2.5, True])
def test_fit_refuses_a_batch_size_that_is_not_a_positive_int(batch_size):
    # -1 trained nothing and returned an all-zero loss history; 0 failed inside range()
    model = hc.Ensemble.from_seeds(linear_member, [0, 1])
    with pytest.raises(ValueError, match=rf"batch_size must be None .* got {batch_size}"):
        hc.fit(model, pairs(), hc.Method.erm(), epochs=2, batch_size=batch_size)


def test_fit_refuses_what_is_not_an_ensemble_epochs_or_seeds():
    model = hc.Ensemble.from_seeds(linear_member, [0, 1])
    with pytest.raises(TypeError, match=r"Ensemble\(\[model\]\)"):
        hc.fit(linear_member(), pairs(), hc.Method.erm(), epochs=1)
    for epochs in (0, -3, 2.0):
        with pytest.raises(ValueError, match=f"epochs must be an int >= 1, got {epochs}"):
            hc.fit(model, pairs(), hc.Method.erm(), epochs=epochs)
    with pytest.raises(ValueError, match="3 seeds for an ensemble of 2 members"):
        hc.fit(model, pairs(), hc.Method.erm(), epochs=1, seeds=[0, 1, 2])
    with pytest.raises(TypeError, match="data must be a Trajectories or Pairs.*got Tensor"):
        hc.fit(model, torch.zeros(3, 2), hc.Method.erm(), epochs=1)
    with pytest.raises(TypeError, match="method must be a Method.*got str"):
        hc.fit(model, pairs(), "sam", epochs=1)
    for name, value in [("clip", 0.0), ("clip", -1.0), ("lr_nn", -1e-3), ("lr_phys", float("nan"))]:
        with pytest.raises(ValueError, match=rf"fit: {name} must be .*got {value}"):
            hc.fit(model, pairs(), hc.Method.erm(), epochs=1, **{name: value})


def test_fit_clips_each_members_gradient_to_the_given_norm():
    """One full-batch SGD step (lr = 1) with ``clip``: member k moves by −g_k · min(1, c/‖g_k‖),
    with g_k = 2/N (X w_k − y)ᵀ X, the gradient of its own mean squared error."""
    data = pairs()
    model = hc.Ensemble.from_seeds(linear_member, [0, 1])
    w = model.model.network.weight.detach().clone()  # (K, 1, 2)
    residual = torch.einsum("nd,kod->kno", data.x, w) - data.y  # (K, N, 1)
    grad = 2 / len(data) * torch.einsum("kno,nd->kod", residual, data.x)
    norms = grad.flatten(1).norm(dim=1)
    clip = norms.mean().item()  # clips the member with the larger gradient only
    assert norms.min() < clip < norms.max()
    sgd = torch.optim.SGD(model.parameters(), lr=1.0)
    hc.fit(model, data, hc.Method.erm(), epochs=1, clip=clip, optimizer=sgd)
    scale = (clip / norms).clamp(max=1.0).view(-1, 1, 1)
    torch.testing.assert_close(model.model.network.weight.detach(), w - scale * grad)
    moved = (model.model.network.weight.detach() - w).flatten(1).norm(dim=1)
    torch.testing.assert_close(moved, torch.minimum(norms, torch.tensor(clip)))


# --- Method, SAM, LookSAM ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(label=""), "label must be a non-empty string"),
        (dict(label="x", rho="0.1"), "rho must be a finite number >= 0, got '0.1'"),
        (dict(label="x", rho=0.1, eta=-1.0), "eta must be a finite number >= 0, got -1.0"),
        (dict(label="x", rho=0.1, every=0), "every must be an int >= 1.*got 0"),
        (dict(label="x", rho=0.1, every=2.5), "every must be an int >= 1.*got 2.5"),
        (dict(label="x", rho=0.1, every=5, alpha=-1), "alpha must be a finite number >= 0"),
        (dict(label="x", rho=0.1, adaptive="yes"), "adaptive must be True or False, got 'yes'"),
        (dict(label="x", regularizer="L2"), "regularizer must be a Regularizer or None"),
    ],
)
def test_method_refuses_bad_fields(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        hc.Method(**kwargs)


def param():
    return torch.nn.Parameter(torch.ones(2))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(rho=True), r"rho must be a finite number >= 0, got True \(default\)"),
        (dict(eta="0.1"), r"eta must be a finite number >= 0, got '0.1' \(default\)"),
        (dict(adaptive="yes"), r"adaptive must be True \(ASAM\) or False \(SAM\), got 'yes'"),
        (dict(member_dim="0"), "member_dim must be None or an int.*got '0'"),
    ],
)
def test_sam_refuses_bad_options(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        hc.SAM([param()], torch.optim.SGD, lr=0.1, **kwargs)


def test_sam_refuses_a_bad_option_of_one_group():
    groups = [{"params": [param()]}, {"params": [param()], "eta": -1.0}]
    with pytest.raises(ValueError, match=r"eta must be .* got -1.0 \(param group 1\)"):
        hc.SAM(groups, torch.optim.SGD, lr=0.1, adaptive=True)
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0, got True"):
        hc.LookSAM([param()], torch.optim.SGD, lr=0.1, alpha=True)


# --- hybrid models -----------------------------------------------------------------------------


def test_a_network_output_of_another_shape_than_the_physics_is_refused_not_broadcast():
    x = torch.randn(20, 2)
    static = hc.StaticHybrid(Decay(), hc.mlp([2, 4, 1]), state_dim=2)
    message = r"network's output has shape \(20, 1\) but the physics' output has shape \(20, 2\)"
    with pytest.raises(ValueError, match=message):
        static.predict(x)  # was (20, 2): the one network output added to both components
    ode = hc.HybridODE(Decay(), hc.mlp([2, 4, 1]), state_dim=2)
    with pytest.raises(ValueError, match=r"network's output has shape \(3, 1\) for states"):
        ode.integrate(torch.randn(3, 2), torch.linspace(0, 1, 5))
    nn_only = hc.HybridODE(None, hc.mlp([2, 4, 1]), state_dim=2)
    with pytest.raises(ValueError, match=r"must have the shape of x \(state_dim = 2\)"):
        nn_only(torch.randn(3, 2))
    ensemble = hc.Ensemble.from_seeds(lambda: hc.HybridODE(Decay(), hc.mlp([2, 4, 1]), 2), [0, 1])
    data = hc.Trajectories(torch.linspace(0, 1, 4), torch.randn(3, 4, 2))
    with pytest.raises(ValueError, match=r"network's output has shape \(\d+, 1\)"):
        hc.fit(ensemble, data, hc.Method.erm(), epochs=1)
    # matching shapes still work, and a network-only static model has no constraint
    hc.HybridODE(Decay(), hc.mlp([2, 4, 2]), state_dim=2).integrate(x[:3], torch.linspace(0, 1, 3))
    assert hc.StaticHybrid(None, hc.mlp([2, 4, 1]), 2).predict(x).shape == (20, 1)


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        (dict(state_dim=0), ValueError, "state_dim must be an int >= 1.*got 0"),
        (dict(state_dim="2"), ValueError, "state_dim must be an int >= 1.*got '2'"),
        (dict(method="rk5"), ValueError, "method must be one of torchdiffeq's solvers.*'rk5'"),
        (dict(step_size=-0.1), ValueError, "step_size must be None .* got -0.1"),
        (dict(network=lambda x: x), TypeError, "network must be a torch.nn.Module.*function"),
        (dict(physics=torch.nn.Linear(2, 2)), TypeError, "physics must be a PhysicsModel"),
    ],
)
def test_hybrid_ode_refuses_bad_arguments(kwargs, error, message):
    args = {**dict(physics=Decay(), network=hc.mlp([2, 4, 2]), state_dim=2), **kwargs}
    with pytest.raises(error, match=message):
        hc.HybridODE(**args)


# --- Ensemble ----------------------------------------------------------------------------------


def test_ensemble_refuses_a_single_model_mixed_shapes_and_repeated_seeds():
    with pytest.raises(TypeError, match=r"a list of models, e.g. Ensemble\(\[model\]\)"):
        hc.Ensemble(linear_member())
    with pytest.raises(TypeError, match="member 0 must be a HybridModel.*Sequential"):
        hc.Ensemble([hc.mlp([2, 2])])
    small, wide = (hc.StaticHybrid(None, hc.mlp([2, h, 1]), 2) for h in (4, 8))
    with pytest.raises(ValueError, match=r"'network.0.weight' has shape \(8, 2\) in member 1"):
        hc.Ensemble([small, wide])
    with pytest.raises(ValueError, match=r"seeds must be distinct, got \[0, 0\]"):
        hc.Ensemble.from_seeds(linear_member, [0, 0])
    with pytest.raises(ValueError, match="non-empty list of ints"):
        hc.Ensemble.from_seeds(linear_member, [0, 1.5])
    with pytest.raises(IndexError, match=r"k must be an int in \[0, 2\), got 2"):
        hc.Ensemble.from_seeds(linear_member, [0, 1]).member(2)


# --- data --------------------------------------------------------------------------------------


def test_trajectories_and_pairs_refuse_bad_tensors():
    t = torch.linspace(0, 1, 3)
    with pytest.raises(TypeError, match="Trajectories: x must be a torch.Tensor, got list"):
        hc.Trajectories(t, [[1.0]])
    with pytest.raises(TypeError, match="t must be a floating-point tensor, got dtype torch.int64"):
        hc.Trajectories(torch.arange(3), torch.zeros(2, 3, 2))
    with pytest.raises(ValueError, match=r"strictly increasing, got t\[1\] = 0.2 followed by"):
        hc.Trajectories(torch.tensor([0.0, 0.2, 0.1]), torch.zeros(2, 3, 2))
    with pytest.raises(ValueError, match=r"x is empty \(shape \(0, 3, 2\)\)"):
        hc.Trajectories(t, torch.zeros(0, 3, 2))
    with pytest.raises(TypeError, match="steps must be an int or None, got 1.5"):
        hc.Trajectories(t, torch.zeros(2, 3, 2)).windows(1.5)
    with pytest.raises(TypeError, match="Pairs: x must be a torch.Tensor, got ndarray"):
        hc.Pairs(np.zeros((3, 2)), torch.zeros(3, 1))
    with pytest.raises(ValueError, match=r"Pairs: x is empty"):
        hc.Pairs(torch.zeros(0, 2), torch.zeros(0, 1))
    with pytest.raises(TypeError, match="one dtype, got x torch.float64 and y torch.float32"):
        hc.Pairs(torch.zeros(3, 2, dtype=torch.float64), torch.zeros(3, 1))


# --- select.mark: the rule applied to a chapter's table -----------------------------------------


def grid_rows():
    """SAM at two radii, three seeds each: ρ = 0.1 is best on every seed."""
    return pd.DataFrame(
        {
            "method": ["SAM (nn)"] * 6,
            "rho": [0.1] * 3 + [0.2] * 3,
            "seed": [0, 1, 2] * 2,
            "val_mse": [1.0, 1.1, 1.2, 2.0, 2.1, 2.2],
        }
    )


def test_mark_refuses_repeated_row_labels():
    rows = grid_rows()
    assert select.mark(rows, "validation").selected.tolist() == [1, 1, 1, 0, 0, 0]
    # a concat without ignore_index: labels 0..2 twice; .loc would mark both radii
    repeated = pd.concat([rows.iloc[:3], rows.iloc[3:].reset_index(drop=True)])
    with pytest.raises(ValueError, match=r"repeated row labels.*ignore_index=True"):
        select.mark(repeated, "validation")


def test_mark_refuses_non_finite_scores_by_method_and_seeds():
    rows = grid_rows()
    rows.loc[[1, 2], "val_mse"] = [np.nan, np.inf]  # ρ = 0.1 diverged on two seeds of three
    rows.loc[3:, "val_mse"] = [1.5, 1.5, 1.5]
    # a median would skip NaN: ρ = 0.1 would win on its one surviving seed
    message = r"'SAM \(nn\)'.*non-finite val_mse at \(setting, seed\) \[\[0.1, 1\S*\], \[0.1, 2"
    for rule in ("validation", "within_spread"):
        with pytest.raises(ValueError, match=message):
            select.mark(rows, rule)


def test_mark_refuses_a_table_it_cannot_read():
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['val_mse'\]"):
        select.mark(grid_rows().drop(columns="val_mse"), "validation")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['seed'\]"):
        select.mark(grid_rows().drop(columns="seed"))
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        select.mark(grid_rows().to_dict())


# --- the quick-mode cache ----------------------------------------------------------------------


def test_the_quick_folders_change_with_any_source_file(tmp_path):
    """Quick mode's scratch store and cache are named after every *.py of hsam_core: an edit
    anywhere (systems/ and the glue included) gives new, empty folders."""
    copy = tmp_path / "hsam_core"
    shutil.copytree(settings.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = settings.source_hash(copy)
    assert before == settings.source_hash(copy)  # deterministic
    for name in ("experiments.py", "systems/duffing.py", "sam.py"):
        path = copy / name
        original = path.read_text()
        path.write_text(original + "\n# an edit\n")
        assert settings.source_hash(copy) != before, name
        path.write_text(original)
        assert settings.source_hash(copy) == before
    (copy / "new_module.py").write_text("X = 1\n")
    assert settings.source_hash(copy) != before
    # the package's own folders are the ones quick mode uses
    quick = settings.from_environment({"HSAM_QUICK": "1"})
    assert quick.store.parent.name == quick.cache.parent.name == settings.source_hash()
    assert quick.store.parent.parent.name == "hsam-quick"
    full = settings.from_environment({})
    assert full.store == settings.BOOK_STORE and not full.quick


def test_ci_runs_readmes_command_after_emptying_the_quick_cache():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"^HSAM_QUICK=1 python -m pytest .*$", readme, re.M).group(0)
    ci_lines = ci.splitlines()
    assert command in ci_lines
    clear = ci_lines.index('rm -rf "${TMPDIR:-/tmp}/hsam-quick"')
    assert clear < ci_lines.index(command)
    assert "sanitize" not in command  # no cell is marked # NBVAL_CHECK_OUTPUT: nothing to sanitize
