"""The architecture study (section 5c): its networks, and that it shares the runs of chapters 3
and 5 instead of training them again. Each test runs in a second or two."""

import pandas as pd
import pytest
import torch

from hsam_core import report, studies
from hsam_core.systems import pendulum

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_every_network_starts_from_the_same_physics_with_a_silent_network():
    x = torch.randn(7, 2)
    for architecture in pendulum.ARCHITECTURES:
        model = pendulum.make_hybrid(hidden=8, architecture=architecture)
        phys, net = model(x)
        torch.testing.assert_close(phys, pendulum.FrictionlessPendulum()(x))
        assert torch.all(net == 0), architecture  # zero-initialised last layer
        assert set(model.theta()) == {"omega2"}
    deeper = pendulum.make_hybrid(8, architecture="deeper")
    linear = [m for m in deeper.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.in_features for m in linear] == [2, 8, 8, 8]
    greybox = pendulum.make_hybrid(8, architecture="grey-box")
    assert [m.in_features for m in greybox.modules() if isinstance(m, torch.nn.Linear)][0] == 5
    silu = pendulum.make_hybrid(8, architecture="SiLU")
    assert any(isinstance(m, torch.nn.SiLU) for m in silu.modules())
    assert not any(isinstance(m, torch.nn.ReLU) for m in silu.modules())


def test_an_unknown_network_is_named_in_the_error():
    with pytest.raises(ValueError, match="'wider'.*additive"):
        pendulum.make_hybrid(architecture="wider")
    with pytest.raises(ValueError, match="'frictional'.*incomplete"):
        pendulum.make_hybrid(physics="frictional")


def test_chapter_2s_changes_are_one_at_a_time_from_the_settled_erm():
    """Study pendulum_failure: ω₀² starts where its model says (the rest of the hybrid as the
    reference's), and each configuration differs from the settled ERM in its model alone."""
    model = pendulum.make_hybrid(hidden=8, omega2_init=2.0)
    assert model.theta()["omega2"].item() == pytest.approx(2.0, rel=1e-5)
    assert pendulum.make_hybrid(hidden=8).theta()["omega2"].item() == pytest.approx(0.5, rel=1e-5)
    failure, settled = studies.get("pendulum_failure"), studies.get("pendulum_settled")
    reference = settled.spec(settled.configs[0])
    for config in failure.configs:
        spec = failure.spec(config)
        differ = {k for k in spec if spec[k] != reference[k]}
        # The reference runs five seeds in full mode, three in quick mode (as this study).
        assert differ - {"seeds"} == {"model", "training"}, differ
        assert spec["seeds"] == reference["seeds"][:3]
        training = {**spec["training"], "model": ""}  # the model's label is part of its training
        assert training == reference["training"]


def test_study_runs_every_method_on_every_network_once_and_each_grid_whole():
    study = studies.get("pendulum_architectures")
    rows = report.with_names(
        pd.DataFrame(
            [
                {
                    "kind": c.method.kind,
                    "regularizer": c.method.regularizer.name if c.method.regularizer else "",
                    "strength": c.method.regularizer.params().get("weight", float("nan"))
                    if c.method.regularizer
                    else float("nan"),
                    "rho": c.method.rho,
                    "adaptive": c.method.adaptive,
                    "perturb": c.method.perturb,
                    "every": c.method.every,
                    "model": "" if c.model is None else __import__("json").dumps(c.model),
                }
                for c in study.configs
            ]
        )
    )
    untuned = rows.iloc[:24]
    names = ["ERM", "L2", "APHYNITY", "orthogonality", "SAM (nn)", "ASAM (nn)"]
    assert sorted(zip(untuned.architecture, untuned.trained_with)) == sorted(
        (a, m) for a in pendulum.ARCHITECTURES for m in names
    )
    for architecture in pendulum.ARCHITECTURES:
        for name, values in studies.RETUNE.items():
            mine = rows[(rows.architecture == architecture) & (rows.trained_with == name)]
            assert sorted(mine.setting) == list(values), (architecture, name)
    assert len(study.configs) == 40


def test_study_shares_the_runs_of_part_is_grid():
    """A configuration of the study that Part I's grid (study ``pendulum``, 700 epochs) ran has
    the same key: it is one run, in one row of the store."""
    arch = studies.get("pendulum_architectures")
    study = studies.get("pendulum")
    shared = {study.key(c): (c.label, c.method.rho) for c in study.configs}
    reused = {shared[arch.key(c)] for c in arch.configs if arch.key(c) in shared}
    # the untuned methods on the additive network and SAM's retuning grid — wherever the
    # grid (in this mode) has them
    expected = {("ERM", 0.0), ("L2", 0.0), ("APHYNITY", 0.0), ("orthogonality", 0.0)}
    expected |= {("SAM (nn)", 0.03), ("SAM (nn)", 0.1), ("SAM (nn)", 0.3), ("ASAM (nn)", 1.0)}
    expected &= set(shared.values())
    assert len(expected) >= 6
    assert reused == expected


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
    picked = report.retuned(table, studies.RETUNE, rule="validation")
    choice = picked.groupby(["architecture", "trained_with"]).setting.agg(["first", "size"])
    assert choice.to_dict("index") == {
        ("deeper", "L2"): {"first": 1e-3, "size": 5},
        ("deeper", "SAM (nn)"): {"first": 0.3, "size": 5},
        ("SiLU", "L2"): {"first": 1e-4, "size": 5},
    }
    assert report.retuned(table[table.trained_with == "ERM"], studies.RETUNE).empty
    # the book's rule (each family's fixed default) on every network whose grid is whole
    default = report.retuned(table, studies.RETUNE).groupby(["architecture", "trained_with"])
    assert default.setting.first().to_dict() == {
        ("deeper", "L2"): 1e-3,
        ("deeper", "SAM (nn)"): 0.1,
        ("SiLU", "L2"): 1e-3,
    }
    # within the seeds' spread (IQR 2e-3) of the best: the largest such value
    wide = report.retuned(table, studies.RETUNE, rule="within_spread")
    assert wide.groupby(["architecture", "trained_with"]).setting.first().to_dict() == {
        ("deeper", "L2"): 1e-3,
        ("deeper", "SAM (nn)"): 0.3,
        ("SiLU", "L2"): 1e-3,
    }


def test_by_family_chooses_a_regularizers_strength_by_the_rule_that_chooses_rho():
    def rows(task, label, kind, val_mse, rho=0.0, regularizer=None, strength=None):
        return [
            {
                "task": task,
                "method": label,
                "kind": kind,
                "rho": rho,
                "adaptive": False,
                "perturb": "nn",
                "every": 1,
                "regularizer": regularizer,
                "strength": strength,
                "model": None,
                "seed": s,
                "val_mse": val_mse + 1e-3 * s,
            }
            for s in range(5)
        ]

    table = pd.DataFrame(
        rows("grid", "ERM", "erm", 1.0)
        + rows("grid", "SAM (nn)", "sam", 2.0, rho=0.03)
        + rows("grid", "SAM (nn)", "sam", 0.5, rho=0.1)
        + rows("grid", "L2 λ=0.0001", "regularized", 3.0, regularizer="L2", strength=1e-4)
        + rows("grid", "L2 λ=0.001", "regularized", 0.2, regularizer="L2", strength=1e-3)
        + rows("grid", "L2 λ=0.01", "regularized", 0.9, regularizer="L2", strength=1e-2)
        + rows("one", "L2", "regularized", 7.0, regularizer="L2", strength=1e-3)
        + rows("one", "L2 [grey-box]", "regularized", 5.0, regularizer="L2", strength=1e-3)
    )
    out = report.by_family(table)
    assert list(out.index) == list(table.index)  # the rows, in their order
    configs = out.drop_duplicates("configuration").set_index("configuration")
    assert configs.method.to_dict() == {
        "ERM": "ERM",
        "SAM (nn)": "SAM (nn)",
        "L2 λ=0.0001": "L2",
        "L2 λ=0.001": "L2",
        "L2 λ=0.01": "L2",
        "L2": "L2",
        "L2 [grey-box]": "L2 [grey-box]",
    }
    picked = out[out.selected == 1].groupby(["task", "method"]).rho.agg(["first", "size"])
    assert picked.to_dict("index") == {
        ("grid", "ERM"): {"first": 0.0, "size": 5},
        ("grid", "L2"): {"first": 1e-3, "size": 5},  # the strength, chosen per task
        ("grid", "SAM (nn)"): {"first": 0.1, "size": 5},
        ("one", "L2"): {"first": 1e-3, "size": 5},  # one strength: selected as it is
        ("one", "L2 [grey-box]"): {"first": 1e-3, "size": 5},
    }
    # without mark, no column is invented and the input is untouched
    assert "selected" not in report.by_family(table, mark=False)
    assert "configuration" not in table and set(table.method) >= {"L2 λ=0.01"}
