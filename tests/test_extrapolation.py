"""Every task's extrapolation split and measurement noise (``task(extrapolation=True, noise=σ)``).

For each task: the split exists, has the validation split's type and lies outside the training
range (its actual inputs, initial states or horizon are checked against the training data's);
the training, validation and extrapolation data carry noise of std σ and the test data none;
``Task.noise`` is σ. With the defaults the task is the one built before the split existed: its
data hash is the one of the committed results (full mode) or of the code before it (quick mode).

Each task is built three times, once per module (defaults; extrapolation; extrapolation with
noise at the task's ``NOISE``).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import math

import numpy as np
import pytest
import torch

from hsam_core import runtime

TASKS = (
    "sine_toy",
    "pendulum",
    "pendulum_images",
    "duffing",
    "duffing_identifiable",
    "reaction_diffusion",
    "wind_tunnel",
    "light_tunnel",
)
# The data hashes of the default tasks before the extrapolation split existed (commit a5b896d);
# the full-mode ones are those of the committed results (book/results/store/specs.jsonl).
DEFAULT_HASHES = {
    "quick": {
        "sine_toy": "fc81db2460a07aa1",
        "pendulum": "e9d8922a06315dec",
        "pendulum_images": "d8872684ffe70434",
        "duffing": "22b4484f87498b2d",
        "duffing_identifiable": "22b4484f87498b2d",
        "reaction_diffusion": "18e5cfdb3c467bcb",
        "wind_tunnel": "ca5ff07938532c42",
        "light_tunnel": "98bc7c687ad80597",
    },
    "full": {
        "sine_toy": "fc81db2460a07aa1",
        "pendulum": "3708cc65defdf4a1",
        "pendulum_images": "3d0c329d945e7067",
        "duffing": "b6ab26135a1352c2",
        "duffing_identifiable": "b6ab26135a1352c2",
        "reaction_diffusion": "15592a0437377dd7",
        "wind_tunnel": "ca5ff07938532c42",
        "light_tunnel": "601378a6412ee7d2",
    },
}


@pytest.fixture(scope="module", params=TASKS)
def built(request, tmp_path_factory):
    """(module, default task, task with the extrapolation split, the same with noise NOISE)."""
    name = request.param
    module = importlib.import_module(f"hsam_core.systems.{name}")
    extra = {"cache_dir": tmp_path_factory.mktemp("rd")} if name == "reaction_diffusion" else {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # causalchamber's import banner
            default = module.task(**extra)
            clean = module.task(extrapolation=True, **extra)
            noisy = module.task(extrapolation=True, noise=module.NOISE, **extra)
    finally:
        torch.set_num_threads(threads)
    return module, default, clean, noisy


def observed(data) -> torch.Tensor:
    """What a split's loss compares with a prediction: outputs, states or frames."""
    for field in ("y", "frames", "x"):
        if hasattr(data, field):
            return getattr(data, field)
    raise TypeError(type(data).__name__)


def test_defaults_are_the_task_as_it_was(built):
    module, default, _, _ = built
    assert default.extrapolation is None and "extrapolation" not in default.spec
    mode = "quick" if runtime.quick_mode() else "full"
    assert default.data_hash == DEFAULT_HASHES[mode][default.name]
    barometer = module.BAROMETER_PRECISION / module.P_SCALE if default.name == "wind_tunnel" else 0
    assert default.noise == barometer


def test_the_split_exists_and_has_the_validation_splits_type(built):
    _, _, clean, noisy = built
    for task in (clean, noisy):
        assert type(task.extrapolation) is type(task.val)
        assert len(task.extrapolation) == len(task.val)
        assert isinstance(task.spec["extrapolation"], str) and task.spec["extrapolation"]
    assert clean.data_hash != noisy.data_hash


def test_noise_on_training_validation_and_extrapolation_data_only(built):
    module, _, clean, noisy = built
    sigma = module.NOISE
    barometer = module.BAROMETER_PRECISION / module.P_SCALE if clean.name == "wind_tunnel" else 0
    assert noisy.noise == pytest.approx(math.hypot(sigma, barometer))
    assert clean.noise == pytest.approx(barometer)
    for split in ("train", "val", "extrapolation"):
        diff = observed(getattr(noisy, split)).double() - observed(getattr(clean, split)).double()
        assert diff.std().item() == pytest.approx(sigma, rel=0.2), split
        assert abs(diff.mean().item()) < 0.2 * sigma, split
    assert torch.equal(observed(noisy.test), observed(clean.test))
    # the noise of the extrapolation split is its own, not the validation split's
    n = min(observed(noisy.val).shape[1], observed(noisy.extrapolation).shape[1])
    val_noise = observed(noisy.val) - observed(clean.val)
    extra_noise = observed(noisy.extrapolation) - observed(clean.extrapolation)
    assert not torch.allclose(val_noise[:, :n], extra_noise[:, :n])


def _same_step_twice_the_points(extrapolation, val):
    assert len(extrapolation.t) == 2 * len(val.t)
    assert torch.allclose(extrapolation.t[: len(val.t)], val.t)


def _pendulum_checks(module, train_states, extra_states, extra, val):
    """Released from rest at ±[2.7, 3.0) rad, beyond every angle of the training data, below
    the separatrix; twice the validation horizon."""
    q0, p0 = extra_states[:, 0, 0], extra_states[:, 0, 1]
    assert (p0 == 0).all()
    assert ((q0.abs() >= 2.7 - 1e-6) & (q0.abs() < 3.0)).all()
    assert (q0 > 0).any() and (q0 < 0).any()
    assert q0.abs().min() > train_states[..., 0].abs().max()
    energy = p0**2 / 2 + module.OMEGA2 * (1 - torch.cos(q0))
    assert (energy < 2 * module.OMEGA2).all()
    assert (extra_states[..., 0].abs() < math.pi).all()  # each one oscillates, none goes over
    _same_step_twice_the_points(extra, val)


def test_the_split_lies_outside_the_training_range(built):
    module, _, clean, _ = built
    train, val, test, extra = clean.train, clean.val, clean.test, clean.extrapolation
    name = clean.name
    if name == "sine_toy":
        assert train.x.abs().max() <= math.pi
        assert extra.x.abs().min() >= math.pi * (1 - 1e-6)
        assert extra.x.abs().max() < 1.5 * math.pi
        assert (extra.x > 0).any() and (extra.x < 0).any()
        assert torch.allclose(extra.y, module.true_law(extra.x.double()).float(), atol=1e-5)
    elif name == "pendulum":
        _pendulum_checks(module, train.x.double(), extra.x.double(), extra, val)
    elif name == "pendulum_images":
        pendulum = importlib.import_module("hsam_core.systems.pendulum")
        _pendulum_checks(pendulum, train.states.double(), extra.states.double(), extra, val)
        frames = module.render(extra.states[:, :, 0].double()).float()
        assert torch.allclose(extra.frames, frames, atol=1e-5)
    elif name in ("duffing", "duffing_identifiable"):
        duffing = importlib.import_module("hsam_core.systems.duffing")

        def energy(s):
            x, v = s[..., 0], s[..., 1]
            return v**2 / 2 + duffing.ALPHA * x**2 / 2 + duffing.BETA * x**4 / 4

        s0 = extra.x[:, 0].double()
        assert (s0[:, 1] == 0).all()
        assert ((s0[:, 0].abs() >= 2.3 - 1e-6) & (s0[:, 0].abs() < 2.6)).all()
        # above every training state, and above the largest state of the training ring
        assert energy(s0).min() > energy(train.x.double()).max()
        assert energy(s0).min() >= energy(torch.tensor([2.3, 0.0], dtype=torch.float64)) - 1e-4
        _same_step_twice_the_points(extra, val)
    elif name == "reaction_diffusion":
        assert extra.t[-1] == pytest.approx(2 * test.t[-1])
        assert len(extra.t) == 2 * (len(test.t) - 1) + 1
        assert torch.allclose(extra.t[: len(test.t)], test.t)
        train_firsts = module.initial_states("train", clean.spec["n_train"]).flatten(1).float()
        firsts = torch.cat([val.x[:, 0], test.x[:, 0], train_firsts])
        assert torch.cdist(extra.x[:, 0], firsts).min() > 1.0  # new initial fields
        assert extra.x[:, 0].min() >= 0 and extra.x[:, 0].max() <= 1  # the same law, U(0, 1)
    elif name == "wind_tunnel":
        cut = module.LOAD_CUT
        for split in (train, val, test):
            assert split.x[:, :2].max() < cut
        fans = extra.x[:, :2]
        assert (fans.amax(1) >= cut - 1e-6).all() and (fans.amin(1) < cut).all()
        assert (fans[:, 0] >= cut - 1e-6).any() and (fans[:, 1] >= cut - 1e-6).any()
        assert fans.max() < 1.0 + 1e-6
        assert (extra.x[:, 2] >= 0).all() and (extra.x[:, 2] < 1).all()
    elif name == "light_tunnel":
        cut = module.ANGLE_CUT / 90  # the network's input ψ₂ / 90°
        for split in (train, val, test):
            assert split.x[:, 4].max() < cut and split.x[:, 4].min() < -0.9
        assert (extra.x[:, 4] >= cut - 1e-6).all() and (extra.x[:, 4] < 1).all()

        # ... at angle differences ψ₁ − ψ₂ (mod 180°) that training covered, so that Malus's
        # law has seen them: every 10° bin of the extrapolation's is one of training's
        def bins(pairs):
            x = pairs.x.double()
            return set((((x[:, 3] - x[:, 4]) * 90) % 180 // 10).int().tolist())

        assert bins(extra) <= bins(train) and len(bins(train)) == 18
        assert extra.x[:, :3].min() >= 0 and extra.x[:, :3].max() < 1
    else:
        raise AssertionError(f"no check for {name}")


def test_seeds_of_the_extrapolation_split_are_its_own():
    """Every task module seeds the extrapolation split apart from the others."""
    for name in TASKS:
        module = importlib.import_module(f"hsam_core.systems.{name}")
        seeds = getattr(module, "SPLIT_SEED", None)
        if seeds is None:  # the Duffing tasks use the pendulum's seeds
            continue
        assert seeds["extrapolation"] not in {seeds["train"], seeds["val"], seeds["test"]}
        assert abs(seeds["extrapolation"] - seeds["val"]) >= 10**6
    levels = [importlib.import_module(f"hsam_core.systems.{n}").NOISE for n in TASKS]
    assert np.all(np.array(levels) > 0)
