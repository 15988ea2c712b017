"""The architecture study (chapter 5c): its networks, and that it shares the cached results of
chapters 3 and 5 instead of training them again. Each test runs in a second or two."""

import pandas as pd
import pytest
import torch

from hsam_core import sweep
from hsam_core.systems import pendulum, pendulum_architectures, pendulum_greybox
from hsam_core.systems import pendulum_networks as networks

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_every_network_starts_from_the_same_physics_with_a_silent_network():
    x = torch.randn(7, 2)
    for architecture in networks.ARCHITECTURES:
        model = networks.make_hybrid(architecture, hidden=8)
        phys, net = model(x)
        torch.testing.assert_close(phys, pendulum.FrictionlessPendulum()(x))
        assert torch.all(net == 0), architecture  # zero-initialised last layer
        assert set(model.theta()) == {"omega2"}
    linear = [
        m for m in networks.make_hybrid("deeper", 8).modules() if isinstance(m, torch.nn.Linear)
    ]
    assert [m.in_features for m in linear] == [2, 8, 8, 8]
    silu = networks.make_hybrid("SiLU", 8)
    assert any(isinstance(m, torch.nn.SiLU) for m in silu.modules())
    assert not any(isinstance(m, torch.nn.ReLU) for m in silu.modules())


def test_an_unknown_network_is_named_in_the_error():
    with pytest.raises(ValueError, match="'wider'.*additive"):
        networks.make_hybrid("wider")
    with pytest.raises(ValueError, match="'wider'"):
        networks.model_factory("wider")


def test_study_runs_every_method_on_every_network_once_and_each_grid_whole():
    entries = pendulum_architectures.study()
    untuned = [(e.architecture, e.method) for e in entries if e.untuned]
    methods = [m.label for m in pendulum_architectures.untuned_methods()]
    assert sorted(untuned) == sorted((a, m) for a in networks.ARCHITECTURES for m in methods)
    assert all(e.untuned for e in entries[: len(untuned)])  # the untuned half runs first
    for architecture in networks.ARCHITECTURES:
        for name, values in pendulum_architectures.RETUNE.items():
            settings = [
                pendulum_architectures.setting(e.config.method)
                for e in entries
                if e.architecture == architecture and e.method == name
            ]
            assert sorted(settings) == list(values), (architecture, name)
    keys = [(e.config.label, e.config.method.rho) for e in entries]
    assert len(set(keys)) == len(keys) == 40  # one table key per configuration


def test_study_shares_the_cache_of_chapters_3_and_5(tmp_path):
    todo, _ = sweep.plan(["pendulum_architectures"], folder=tmp_path)
    shared, _ = sweep.plan(["pendulum", "pendulum_greybox"], folder=tmp_path)
    shared_paths = {job.path for job in shared}
    reused = {(job.label, job.rho) for job in todo if job.path in shared_paths}
    ran = {(c.label, c.method.rho) for c in pendulum.grid() + pendulum_greybox.grid()}
    study = {(e.config.label, e.config.method.rho) for e in pendulum_architectures.study()}
    # the six methods on the additive network and the points of SAM's retuning grid that
    # chapter 5's grid has (full mode; its quick grid has one ρ), ERM / L2 / APHYNITY on the
    # grey-box one
    assert reused == ran & study
    untuned = {("ERM", 0.0), ("L2", 0.0), ("APHYNITY", 0.0), ("orthogonality", 0.0)}
    untuned |= {("SAM (nn)", 0.1), ("ASAM (nn)", 1.0)}
    greybox = {(f"{m} [grey-box]", 0.0) for m in ("ERM", "L2", "APHYNITY")}
    retuning = {("SAM (nn)", rho) for rho in pendulum_architectures.RETUNE["SAM (nn)"]} & ran
    assert reused == untuned | greybox | retuning


def test_merge_replaces_what_is_new_keeps_the_rest_and_refuses_strangers():
    labels = [(e.config.label, e.config.method.rho) for e in pendulum_architectures.study()]

    def table(configs, value):
        return pd.DataFrame(
            [{"method": m, "rho": r, "seed": s, "value": value} for m, r in configs for s in (0, 1)]
        )

    committed = table(labels[:3], "old")
    new = table(labels[2:4], "new")
    merged = pendulum_architectures.merge(committed, new)
    assert list(dict.fromkeys(zip(merged.method, merged.rho))) == labels[:4]  # study order
    assert (merged.value == ["old"] * 4 + ["new"] * 4).all()
    assert len(pendulum_architectures.merge(merged, new)) == 8  # idempotent
    with pytest.raises(ValueError, match="not in the study"):
        pendulum_architectures.merge(committed, table([("ERM [wider]", 0.0)], "new"))


def test_retuned_applies_the_books_rule_per_network_and_only_to_whole_grids():
    def rows(architecture, name, settings, val_mse):
        return [
            {
                "architecture": architecture,
                "trained_with": name,
                "setting": x,
                "seed": s,
                "val_mse": v + 1e-3 * s,
                "theta_rel_error": x,
            }
            for x, v in zip(settings, val_mse)
            for s in range(5)
        ]

    table = pd.DataFrame(
        rows("deeper", "L2", [1e-4, 1e-3, 1e-2], [3.0, 1.0, 2.0])
        + rows("deeper", "SAM (nn)", [0.03, 0.1, 0.3], [3.0, 2.0, 1.0])
        + rows("SiLU", "L2", [1e-4, 1e-3, 1e-2], [1.0, 1.001, 5.0])  # 1e-3: within spread
        + rows("SiLU", "SAM (nn)", [0.03, 0.1], [1.0, 2.0])  # grid not whole: no pick
        + rows("SiLU", "ERM", [float("nan")], [1.0])  # not retuned
    )
    picked = pendulum_architectures.retuned(table)
    choice = picked.groupby(["architecture", "trained_with"]).setting.agg(["first", "size"])
    assert choice.to_dict("index") == {
        ("deeper", "L2"): {"first": 1e-3, "size": 5},
        ("deeper", "SAM (nn)"): {"first": 0.3, "size": 5},
        ("SiLU", "L2"): {"first": 1e-4, "size": 5},
    }
    assert pendulum_architectures.retuned(table[table.trained_with == "ERM"]).empty
    # within the seeds' spread (IQR 2e-3) of the best: the largest such value
    wide = pendulum_architectures.retuned(table, within_spread=True)
    assert wide.groupby(["architecture", "trained_with"]).setting.first().to_dict() == {
        ("deeper", "L2"): 1e-3,
        ("deeper", "SAM (nn)"): 0.3,
        ("SiLU", "L2"): 1e-3,
    }


def test_collect_refuses_quick_mode(monkeypatch):
    monkeypatch.setenv("HSAM_QUICK", "1")
    with pytest.raises(RuntimeError, match="full-mode"):
        pendulum_architectures.collect()
