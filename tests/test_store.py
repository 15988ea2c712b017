"""The results store (hsam_core.store): what goes in comes out the same, and what is wrong with
it is named — a malformed row, a spec without its version, a key that is not its spec's hash, a
run stored twice, an unknown study. Every test works on the scratch store of conftest.py."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
import torch

from hsam_core import Method, report, settings, store, studies
from hsam_core.experiments import Config, run_key, run_spec
from hsam_core.studies import Study
from hsam_core.train import History

STUDY = Study(
    "tiny",
    "pendulum",
    (Config(Method.erm()), Config(Method.sam(0.1))),
    (0, 1),
    dict(epochs=3, batch_size=50),
    task_params=dict(n_train=2, n_val=1, n_test=1, hidden=8),
)


def fake_run(config: Config, error: float = 0.5):
    """The spec, key, rows and θ history of a run of STUDY that was never trained."""
    spec = STUDY.spec(config)
    key = run_key(spec)
    rows = [
        {"task": "pendulum", "method": config.label, "rho": config.method.rho, "seed": s,
         "theta_rel_error": error + s, "val_mse": 1e-3, "test_mse": 2e-3, "nn_norm": 0.1,
         "sharpness": 0.2, "hessian_top": 3.0, "theta_omega2": 1.0, "device": "cpu",
         "seconds": 1.5, "mode": settings.get().mode}
        for s in STUDY.seeds
    ]  # fmt: skip
    theta = {"omega2": torch.tensor([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])}  # settled
    return spec, key, rows, theta


def put(config: Config, error: float = 0.5) -> str:
    spec, key, rows, theta = fake_run(config, error)
    store.write(key, spec, store.run_rows(key, spec, rows, theta, "test"),
                store.path_rows(key, theta, STUDY.seeds))  # fmt: skip
    return key


def put_runs(study: Study, configs) -> None:
    """Store a never-trained run of each of ``configs`` of ``study`` (rows, no paths)."""
    for config in configs:
        _, _, rows, theta = fake_run(config)
        spec = study.spec(config)
        key = run_key(spec)
        store.write(key, spec, store.run_rows(key, spec, rows, theta, "test"))


def test_a_written_run_reads_back_the_same_and_the_store_is_sound():
    key = put(STUDY.configs[0])
    rows = report.results(STUDY, missing="skip")
    assert rows.attrs["missing"] == ["SAM (nn)"]
    assert rows.key.tolist() == [key, key] and rows.seed.tolist() == [0, 1]
    assert rows.theta_rel_error.tolist() == [0.5, 1.5] and (rows.converged == 1).all()
    assert (rows.kind == "erm").all() and rows.strength.isna().all() and (rows.epochs == 3).all()
    assert store.check() == []
    paths = report.paths(STUDY)
    assert paths.epoch.tolist() == [1, 2, 3, 1, 2, 3] and set(paths.method) == {"ERM"}


def test_a_grid_with_a_run_missing_is_selected_nowhere():
    """report.results(missing="skip") names the methods whose grid the missing runs leave
    incomplete, and report.by_family selects none of their rows: L2 trained at one of its two
    strengths does not stand in for the strength the book's rule would pick."""
    from hsam_core.regularizers import L2

    configs = [Config(Method(f"L2 λ={w:g}", regularizer=L2(w))) for w in (1e-4, 1e-3)]
    study = dataclasses.replace(STUDY, name="tiny_l2", configs=(STUDY.configs[0], *configs))
    put_runs(study, study.configs[:2])  # ERM and L2 λ=1e-4; L2 λ=1e-3 (the default) is missing
    rows = report.results(study, missing="skip")
    assert rows.attrs["missing"] == ["L2 λ=0.001"] and rows.attrs["incomplete"] == ["L2"]
    families = report.by_family(rows)
    assert set(families.method) == {"ERM", "L2"}
    assert families.attrs["incomplete"] == {"pendulum": ["L2"]}  # per table (task)
    assert (families[families.method == "L2"].selected == 0).all()
    assert (families[families.method == "ERM"].selected == 1).all()


def test_a_run_is_never_overwritten_silently():
    config = STUDY.configs[0]
    put(config)
    with pytest.raises(ValueError, match="is in the store already"):
        put(config, error=0.9)
    spec, key, rows, theta = fake_run(config, error=0.9)
    store.write(key, spec, store.run_rows(key, spec, rows, theta, "test"), replace=True)
    assert store.read("pendulum").theta_rel_error.tolist() == [0.9, 1.9]


def test_a_malformed_row_is_named_by_the_check():
    put(STUDY.configs[0])
    put(STUDY.configs[1])
    path = settings.get().store / "pendulum.csv"
    table = pd.read_csv(path, dtype={"key": str})
    table.loc[table.method == "SAM (nn)", "rho"] = 0.2  # disagrees with its spec
    table = table[~((table.method == "ERM") & (table.seed == 1))]  # a seed lost
    table.to_csv(path, index=False)
    problems = store.check()
    assert any("SAM (nn)" in p and "column rho is [0.2]" in p and "0.1" in p for p in problems)
    assert any("ERM" in p and "seeds [0]" in p for p in problems)
    table.drop(columns="val_mse").to_csv(path, index=False)
    assert "pendulum.csv: missing column(s) ['val_mse']" in store.check()


def test_a_spec_without_its_version_or_a_wrong_key_is_refused():
    key = put(STUDY.configs[0])
    path = settings.get().store / store.SPECS
    entry = json.loads(path.read_text())
    del entry["spec"]["task_version"]
    path.write_text(json.dumps(entry) + "\n")
    with pytest.raises(ValueError, match=rf"run {key}: the spec lacks \['task_version'\]"):
        store.read_specs()
    spec, other, rows, theta = fake_run(STUDY.configs[1])
    with pytest.raises(ValueError, match="lacks"):
        store.write(other, {k: v for k, v in spec.items() if k != "numerics_version"}, None)
    with pytest.raises(ValueError, match="not the hash of its spec"):
        store.write(key, spec, store.run_rows(key, spec, rows, theta, "test"))
    path.write_text("not json\n")
    with pytest.raises(ValueError, match=r"specs.jsonl:1: not a \{'key', 'spec'\} JSON line"):
        store.read_specs()


def test_rows_must_match_the_seeds_and_the_schema():
    spec, key, rows, theta = fake_run(STUDY.configs[0])
    with pytest.raises(ValueError, match=r"rows for seeds \[0\], spec says \[0, 1\]"):
        store.run_rows(key, spec, rows[:1], theta, "test")
    with pytest.raises(ValueError, match=r"columns \['colour'\] are not in the store's schema"):
        store.run_rows(key, spec, [{**r, "colour": "red"} for r in rows], theta, "test")


def test_an_unknown_study_and_a_missing_run_are_named():
    with pytest.raises(ValueError, match="no study 'pendulm'; studies: failure_case, pendulum"):
        studies.get("pendulm")
    with pytest.raises(KeyError, match=r"runs \['nokey'\] of pendulum are not in the store"):
        store.lookup(["nokey"], "pendulum")
    with pytest.raises(ValueError, match="missing must be"):
        report.results(STUDY, missing="ignore")


def test_the_spec_in_the_store_is_the_runs_canonical_specification():
    key = put(STUDY.configs[1])
    spec = store.read_specs()[key]
    task = STUDY.build_task()
    expected = run_spec(
        task, STUDY.configs[1].method, STUDY.seeds, STUDY.settings(STUDY.configs[1]), None
    )
    assert spec == json.loads(json.dumps(expected))
    assert spec["method"]["kind"] == "sam" and spec["data"] == task.data_hash
    history = History(torch.zeros(3, 2), {"omega2": torch.ones(3, 2)}, torch.zeros(3, 2), 1.0)
    assert history.theta["omega2"].shape == (3, 2)


def test_rule_grids_leave_out_a_family_whose_grid_lacks_runs():
    """report.rule_grids: L2 stored at two of its three strengths is not judged as a grid of
    two (its part would stand in for the whole); the missing run is named."""
    from hsam_core.regularizers import L2

    configs = [Config(Method(f"L2 λ={w:g}", regularizer=L2(w))) for w in (1e-4, 1e-3, 1e-2)]
    study = dataclasses.replace(STUDY, name="tiny_l2_grid", configs=(STUDY.configs[1], *configs))
    put_runs(study, study.configs[:3])  # SAM and two of L2's strengths
    grids, _, missing = report.rule_grids([study])
    assert "pendulum / L2" not in grids and missing == {"tiny_l2_grid": ["L2 λ=0.01"]}


def test_rule_grids_are_per_network_and_leave_out_an_incomplete_one():
    """A study with L2 on two networks: the additive grid (whole) is one grid, the grey-box
    grid (a strength missing) is left out whole — never merged into the additive one."""
    from hsam_core.regularizers import L2

    additive = [Config(Method(f"L2 λ={w:g}", regularizer=L2(w))) for w in (1e-4, 1e-3)]
    greybox = [
        Config(c.method, {"architecture": "grey-box"}, f"{c.label} [grey-box]") for c in additive
    ]
    study = dataclasses.replace(STUDY, name="tiny_l2_nets", configs=(*additive, *greybox))
    put_runs(study, study.configs[:3])  # the grey-box λ = 1e-3 is missing
    grids, contexts, missing = report.rule_grids([study])
    assert list(grids) == ["pendulum / L2"] and missing == {
        "tiny_l2_nets": ["L2 λ=0.001 [grey-box]"]
    }
    assert set(grids["pendulum / L2"].method) == {"L2 λ=0.0001", "L2 λ=0.001"}
    assert contexts["pendulum / L2"].default == 1e-3


def test_book_results_marks_once_by_family():
    """report.book_results is marked in one place (by_family): each regularizer is one method
    over its strengths with one setting selected; marking its rows again is refused."""
    from hsam_core.regularizers import L2

    configs = [Config(Method(f"L2 λ={w:g}", regularizer=L2(w))) for w in (1e-4, 1e-3)]
    study = dataclasses.replace(STUDY, name="tiny_l2_whole", configs=(STUDY.configs[0], *configs))
    put_runs(study, study.configs)
    families = report.book_results({"pendulum": [study]})
    assert sorted(families.method.unique()) == ["ERM", "L2"] and set(families.file) == {"pendulum"}
    picked = families[families.selected == 1]
    assert picked.groupby("method").configuration.unique().map(list).to_dict() == {
        "ERM": ["ERM"],
        "L2": ["L2 λ=0.001"],  # the book's rule: the family's default strength
    }
    with pytest.raises(ValueError, match="families already"):
        report.by_family(families)


def test_keep_weights_copies_a_cached_runs_weights_and_theta_paths_into_the_store():
    """sweep.keep_weights: a stored run without weights or paths (imported from a table) gets
    both from the local cache's payload; a second call copies nothing; write_paths refuses a
    run that has paths already or is not stored."""
    from hsam_core import experiments, sweep

    spec, key, rows, theta = fake_run(STUDY.configs[0])
    store.write(key, spec, store.run_rows(key, spec, rows, theta, "test"))  # no paths
    history = History(torch.zeros(3, 2), theta, torch.zeros(3, 2), 1.0)
    payload = {"rows": rows, "history": history, "model": {"w": torch.ones(2)}, "key": spec}
    experiments.save_result(payload, experiments.cache_path(spec))
    assert store.read_weights(key) is None and not len(store.read_paths("pendulum"))
    assert sweep.keep_weights([STUDY]) == (1, 0, [])  # SAM's run is not stored: not counted
    assert torch.equal(store.read_weights(key)["w"], torch.ones(2))
    paths = store.read_paths("pendulum")
    assert set(paths.key) == {key} and paths.epoch.tolist() == [1, 2, 3, 1, 2, 3]
    assert sweep.keep_weights([STUDY]) == (0, 0, []) and store.check() == []
    with pytest.raises(ValueError, match="has θ paths in the store already"):
        store.write_paths(key, store.path_rows(key, theta, STUDY.seeds))
    with pytest.raises(ValueError, match="is not in the store"):
        store.write_paths("nokey", store.path_rows("nokey", theta, STUDY.seeds))


def test_training_curves_are_kept_beside_theta_and_read_back_per_configuration():
    """A run stored with θ paths only (before the store kept training curves) gets its loss
    and ‖f_nn‖² from the cache's history of the same training; report.path_curve reads them
    back per seed, and a curve the store does not keep is an error naming it."""
    from hsam_core import experiments, sweep

    key = put(STUDY.configs[0])  # θ paths, no curves
    paths = report.paths(STUDY)
    with pytest.raises(KeyError, match="keeps no loss path of ERM"):
        report.path_curve(paths, "ERM", 0.0, "loss")
    _, _, rows, theta = fake_run(STUDY.configs[0])
    loss = torch.tensor([[4.0, 5.0], [2.0, 2.5], [1.0, 1.25]])
    history = History(loss, theta, 10 * loss, 1.0)
    payload = {
        "rows": rows,
        "history": history,
        "model": {"w": torch.ones(2)},
        "key": STUDY.spec(STUDY.configs[0]),
    }
    experiments.save_result(payload, experiments.cache_path(payload["key"]))
    assert sweep.keep_weights([STUDY]) == (1, 0, [])
    paths = report.paths(STUDY)
    assert torch.equal(report.path_curve(paths, "ERM", 0.0, "loss"), loss.double())
    assert torch.equal(report.path_curve(paths, "ERM", 0.0, "nn_norm"), 10 * loss.double())
    assert report.path_epochs(paths, "ERM").tolist() == [1, 2, 3]
    assert torch.equal(report.path_series(paths, "ERM")["omega2"], theta["omega2"].double())
    assert set(store.read_paths("pendulum").key) == {key} and store.check() == []
    with pytest.raises(KeyError, match="no θ paths of SAM"):
        report.path_epochs(paths, "SAM (nn)", 0.1)
    with pytest.raises(ValueError, match="unknown training curves"):
        store.path_rows(key, theta, STUDY.seeds, {"lr": loss})
    table = store.read_paths("pendulum").assign(lr=1.0)
    table.to_csv(store.folder() / "pendulum_theta.csv", index=False)
    assert store.check() == ["pendulum_theta.csv: columns ['lr'] are not in the paths' schema"]


def test_keep_weights_never_pairs_the_stored_rows_with_another_trainings_weights():
    """A cached run of the same spec whose scores differ from the stored rows (trained again,
    elsewhere) is not copied but named; with replace=True rows, paths and weights are all the
    cached run's."""
    from hsam_core import experiments, sweep

    spec, key, rows, theta = fake_run(STUDY.configs[0], error=0.5)
    store.write(key, spec, store.run_rows(key, spec, rows, theta, "test"))
    _, _, other, _ = fake_run(STUDY.configs[0], error=0.4)  # another training of it
    history = History(torch.zeros(3, 2), theta, torch.zeros(3, 2), 1.0)
    payload = {"rows": other, "history": history, "model": {"w": torch.ones(2)}, "key": spec}
    experiments.save_result(payload, experiments.cache_path(spec))
    assert sweep.keep_weights([STUDY]) == (0, 0, [key])
    assert store.read_weights(key) is None and not len(store.read_paths("pendulum"))
    assert store.read("pendulum").theta_rel_error.tolist() == [0.5, 1.5]  # untouched
    assert sweep.keep_weights([STUDY], replace=True) == (1, 0, [])
    assert store.read("pendulum").theta_rel_error.tolist() == [0.4, 1.4]
    assert torch.equal(store.read_weights(key)["w"], torch.ones(2))
    assert set(store.read_paths("pendulum").key) == {key} and store.check() == []
    assert sweep.keep_weights([STUDY]) == (0, 0, [])  # now one training


def test_merge_adds_another_stores_runs_and_refuses_other_numbers(tmp_path):
    other = tmp_path / "other"
    erm, sam = STUDY.configs
    for config, error in ((erm, 0.5), (sam, 0.25)):
        spec, key, rows, theta = fake_run(config, error)
        store.write(key, spec, store.run_rows(key, spec, rows, theta, "test"),
                    store.path_rows(key, theta, STUDY.seeds), store=other)  # fmt: skip
    spec, key, rows, theta = fake_run(erm, 0.5)  # the same ERM run, here already
    store.write(key, spec, store.run_rows(key, spec, rows, theta, "test"))
    store.write_weights(run_key(sam_spec := STUDY.spec(sam)), {"w": torch.ones(3)}, store=other)
    assert store.merge(other) == (1, 1)
    assert store.check() == []
    assert torch.equal(store.read_weights(run_key(sam_spec))["w"], torch.ones(3))  # came along
    merged = store.read("pendulum")
    assert sorted(merged.method.unique()) == ["ERM", "SAM (nn)"]
    assert len(store.read_paths("pendulum")) == len(STUDY.seeds) * 3  # the added run's
    assert store.merge(other) == (0, 2)  # merging twice adds nothing
    # the same run with other numbers in a third store: refused, nothing written
    third = tmp_path / "third"
    spec, key, rows, theta = fake_run(sam, 0.75)
    store.write(key, spec, store.run_rows(key, spec, rows, theta, "test"), store=third)
    with pytest.raises(ValueError, match="other numbers"):
        store.merge(third)
    assert store.lookup([key], "pendulum").theta_rel_error.min() == pytest.approx(0.25)


def test_merge_refuses_an_unsound_store(tmp_path):
    bad = tmp_path / "bad"
    spec, key, rows, theta = fake_run(STUDY.configs[0])
    store.write(key, spec, store.run_rows(key, spec, rows, theta, "test"), store=bad)
    (bad / store.SPECS).write_text("")  # rows without their spec
    with pytest.raises(ValueError, match="not a sound store"):
        store.merge(bad)


def test_profile_sums_the_training_time_of_every_stored_run():
    for config in STUDY.configs:
        spec, key, rows, theta = fake_run(config)
        store.write(key, spec, store.run_rows(key, spec, rows, theta, "test"))
    table = report.profile(["pendulum"])
    # fake runs: 1.5 s per seed, two seeds, fixed length
    assert table.loc[("pendulum", "fixed", "ERM"), "cpu_hours"] == pytest.approx(3.0 / 3600)
    assert table.loc[("pendulum", "fixed", "SAM (nn)"), "runs"] == 1
    assert table.cpu_hours.sum() == pytest.approx(6.0 / 3600)
