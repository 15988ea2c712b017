"""Sweeps (hsam_core.sweep): in this process and on a local Ray they store the same rows, skip
what is stored, and report a failed run while the others go on. Every test works on the scratch
store and cache of tests/conftest.py."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import torch

from hsam_core import L2, Method, experiments, report, settings, store, sweep
from hsam_core.experiments import Config
from hsam_core.regularizers import Orthogonality
from hsam_core.studies import Study

# A small pendulum study: two configurations, two seeds, two epochs, a small network.
STUDY = Study(
    "tiny",
    "pendulum",
    (Config(Method.erm()), Config(Method.sam(0.1))),
    (0, 1),
    dict(epochs=2, batch_size=50),
    task_params=dict(n_train=3, n_val=2, n_test=2, hidden=8),
)
LABELS, EPOCHS = ["ERM", "SAM (nn)"], None


def untimed(rows) -> list[dict]:
    """Result rows without the timing column (the only one two runs may differ in), a NaN
    score (no extrapolation split, say) as None: NaN is not equal to itself."""
    return [
        {k: None if v != v else v for k, v in r.items() if k != "seconds"}  # noqa: PLR0124
        for r in rows
    ]


def stored_rows() -> pd.DataFrame:
    """The store's rows of the pendulum, sorted, without the timing column."""
    table = store.read("pendulum").drop(columns="seconds")
    return table.sort_values(["key", "seed"], ignore_index=True)


def test_ray_sweep_stores_exactly_the_rows_of_the_in_process_sweep(tmp_path, one_thread):
    import ray  # in requirements.txt, for this test

    assert sweep.sweep([STUDY], LABELS, EPOCHS) == []
    local = stored_rows()
    settings.configure(store=tmp_path / "ray-store", cache=tmp_path / "ray-cache")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        failures = sweep.sweep([STUDY], LABELS, EPOCHS, ray_address="local")
    finally:
        ray.shutdown()
    assert failures == []
    remote = stored_rows()
    assert len(local) == 2 * len(STUDY.seeds)
    pd.testing.assert_frame_equal(remote, local)  # same runs, same keys, same numbers


def test_a_rerun_trains_only_what_is_not_stored(one_thread):
    sweep.sweep([STUDY], ["ERM"], EPOCHS)
    todo, done = sweep.plan([STUDY], LABELS, EPOCHS)
    assert [j.label for j in done] == ["ERM"] and [j.label for j in todo] == ["SAM (nn)"]
    assert store.check() == []


def test_a_run_in_the_cache_only_is_written_into_the_store_without_training(
    one_thread, monkeypatch
):
    sweep.sweep([STUDY], ["ERM"], EPOCHS)
    [job] = sweep.plan([STUDY], ["ERM"], EPOCHS)[1]
    shutil.rmtree(settings.get().store)  # the store is lost, the cache is not

    def no_training(*args):
        raise AssertionError("trained again")

    monkeypatch.setattr(sweep, "train_job", no_training)
    assert sweep.sweep([STUDY], ["ERM"], EPOCHS) == []
    assert set(store.read("pendulum").key) == {job.key}


def test_a_failed_run_is_reported_and_the_others_are_stored(one_thread, monkeypatch):
    train = sweep.train_job

    def flaky(study, index, spec, quick):
        if spec["method"]["label"] == "ERM":
            raise FloatingPointError("loss is NaN at epoch 1")
        return train(study, index, spec, quick)

    monkeypatch.setattr(sweep, "train_job", flaky)
    failures = sweep.sweep([STUDY], LABELS, EPOCHS)
    assert [(f.job.label, f.error) for f in failures] == [
        ("ERM", "FloatingPointError: loss is NaN at epoch 1")
    ]
    assert "flaky" in failures[0].details  # the traceback comes with it
    todo, done = sweep.plan([STUDY], LABELS, EPOCHS)
    assert [j.label for j in done] == ["SAM (nn)"] and [j.label for j in todo] == ["ERM"]


def test_a_worker_that_builds_another_run_refuses_to_train(one_thread):
    """A worker whose code, data or mode differs from the driver's computes another spec."""
    [job] = sum(sweep.plan([STUDY], ["ERM"], EPOCHS), [])
    other = {**job.spec, "seeds": [*job.spec["seeds"], 99]}
    with pytest.raises(RuntimeError, match=r"differs here from the driver's in \['seeds'\]"):
        sweep.train_job(job.study, job.index, other, settings.get().quick)


def test_unknown_studies_and_labels_are_named():
    with pytest.raises(ValueError, match="no study 'pendulm'.*pendulum"):
        sweep.plan(["pendulm"])
    with pytest.raises(ValueError, match=r"SAM \(typo\)"):
        sweep.plan([STUDY], ["SAM (typo)"])
    with pytest.raises(ValueError, match="has no configurations"):
        STUDY.but(configs=())


def test_a_chapter_reads_what_the_sweep_stored_and_finds_its_cached_fit(one_thread, monkeypatch):
    """report.results reads the rows the sweep wrote; report.fit finds the weights the sweep
    cached (the same key), without training."""
    study = STUDY.only(["ERM"])
    sweep.sweep([study])
    rows = report.results(study, missing="error")
    assert list(rows.method.unique()) == ["ERM"] and len(rows) == len(study.seeds)

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(experiments, "train_and_score", no_training)
    fit = report.fit(study, "ERM")
    assert fit.rows.theta_rel_error.tolist() == pytest.approx(rows.theta_rel_error.tolist())
    assert fit.history.theta["omega2"].shape == (study.training["epochs"], len(study.seeds))


def test_a_chapter_draws_a_trained_network_from_the_stores_weights_alone(one_thread, monkeypatch):
    """The sweep keeps each run's weights in the store; report.model rebuilds the ensemble from
    them with the local cache gone and training forbidden."""
    study = STUDY.only(["SAM (nn)"])
    sweep.sweep([study])
    cached = report.fit(study, "SAM (nn)").model.state_dict()
    for job in sweep.plan([study])[1]:
        job.path.unlink()  # no local cache

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(experiments, "train_and_score", no_training)
    model = report.model(study, "SAM (nn)")
    assert model.state_dict().keys() == cached.keys()
    assert all(torch.equal(model.state_dict()[k].cpu(), v.cpu()) for k, v in cached.items())
    assert store.check() == []


def test_weights_of_an_unknown_run_are_refused_and_named_by_the_check(tmp_path):
    with pytest.raises(KeyError, match="write its rows before its weights"):
        store.write_weights("0" * 20, {"w": torch.zeros(2)})
    orphan = store.weights_path("0" * 20)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.zeros(2)}, orphan)
    assert any("weights of a run without a spec" in p for p in store.check())
    orphan.unlink()


def test_in_full_mode_a_chapter_never_trains_a_missing_run():
    settings.configure(quick=False, store=settings.get().store, cache=settings.get().cache)
    with pytest.raises(KeyError, match=r"not in the store.*python -m hsam_core sweep pendulum"):
        report.results("pendulum")
    with pytest.raises(KeyError, match=r"not in the store.*sweep tiny"):
        report.results(STUDY)


def test_a_chapter_trains_like_a_sweep_with_subnormals_flushed(one_thread, monkeypatch):
    """experiments.run (a chapter) and sweep.train_job (a sweep) train through train_and_score,
    which flushes subnormal floats to zero while it trains and scores, and only then: the same
    configuration gives the same numbers on both paths (flushing changes results at float32
    rounding, and training amplifies that), and nothing after it computes differently."""
    study = STUDY
    erm = next(c for c in study.configs if c.label == "ERM")
    training = dict(study.training)
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormal floats (no SSE3)")
    torch.set_flush_denormal(False)
    subnormal = torch.tensor([1e-39])  # made with the flag off (with it on, it would be 0)
    seen = []
    fit = experiments.fit

    def watched(*args, **kwargs):
        seen.append((subnormal * 1.0).item())  # 0.0 while the flag is set
        return fit(*args, **kwargs)

    monkeypatch.setattr(experiments, "fit", watched)
    try:
        assert (subnormal * 1.0).item() > 0
        chapter = experiments.run(
            study.build_task(), erm.method, study.seeds, cache=False, **training
        )
        assert (subnormal * 1.0).item() > 0  # the flag is off again after the run
        [job] = sum(sweep.plan([STUDY], ["ERM"], EPOCHS), [])
        payload = sweep.train_job(STUDY, job.index, job.spec, settings.get().quick)
    finally:
        torch.set_flush_denormal(False)
    assert seen == [0.0, 0.0]  # both trained with the flag set
    assert untimed(payload["rows"]) == untimed(chapter.rows.to_dict("records"))


def test_a_sweep_together_stores_exactly_the_rows_of_a_sweep_apart(tmp_path, one_thread):
    """ERM, SAM and ASAM differ only in ρ and ``adaptive``: trained as one stacked ensemble,
    each run is stored under its own key with the numbers it has when trained alone (all but
    the timing) — ASAM here from a second study on the same task and training."""
    studies = [STUDY, STUDY.but(name="tiny_asam", configs=(Config(Method.asam(1.0)),))]
    todo, _ = sweep.plan(studies)
    assert [len(group) for group in sweep.batches(todo)] == [3]  # one model for the three
    assert sweep.sweep(studies) == []
    apart = stored_rows()
    settings.configure(store=tmp_path / "together-store", cache=tmp_path / "together-cache")
    assert sweep.sweep(studies, together=True) == []
    together = stored_rows()
    assert len(apart) == 3 * len(STUDY.seeds)
    pd.testing.assert_frame_equal(together, apart)  # same runs, same keys, same numbers
    assert store.check() == []


def test_a_regularizers_strengths_swept_together_store_the_rows_of_a_sweep_apart(
    tmp_path, one_thread
):
    """L2's λ grid as one stacked ensemble (each member its own λ): each run stored under its
    own key with the numbers it has when trained alone."""
    study = STUDY.but(
        name="tiny_l2",
        configs=tuple(Config(Method.regularized(L2(w)), None, f"L2 λ={w:g}") for w in (1e-3, 1.0)),
    )
    todo, _ = sweep.plan([study])
    assert [len(group) for group in sweep.batches(todo)] == [2]
    assert sweep.sweep([study]) == []
    apart = stored_rows()
    settings.configure(store=tmp_path / "together-store", cache=tmp_path / "together-cache")
    assert sweep.sweep([study], together=True) == []
    pd.testing.assert_frame_equal(stored_rows(), apart, rtol=1e-5)


def test_runs_that_differ_only_in_rho_and_adaptive_or_a_strength_are_batched():
    study = STUDY.but(
        configs=(
            Config(Method.erm()),
            Config(Method.sam(0.1)),
            Config(Method.asam(1.0)),
            Config(Method.regularized(L2(1e-3)), None, "L2 λ=0.001"),
            Config(Method.sam(0.2)),
            Config(Method.erm(), {"network": False}, "physics only"),
            Config(Method.regularized(Orthogonality(1e-2))),
            Config(Method.asam(2.0)),
            Config(Method.regularized(L2(1e-2)), None, "L2 λ=0.01"),
        )
    )
    todo, _ = sweep.plan([study])
    groups = [[(job.label, job.rho) for job in group] for group in sweep.batches(todo)]
    assert groups == [
        [
            ("ERM", 0.0),
            ("SAM (nn)", 0.1),
            ("ASAM (nn)", 1.0),
            ("SAM (nn)", 0.2),
            ("ASAM (nn)", 2.0),
        ],
        [("L2 λ=0.001", 0.0), ("L2 λ=0.01", 0.0)],  # one regularizer, two strengths
        [("physics only", 0.0)],
        [("orthogonality", 0.0)],
    ]
    # a second study on the same task, data, seeds and training joins the first one's group
    other = study.but(name="other", configs=(Config(Method.asam(0.5)), Config(Method.sam(0.1))))
    todo, _ = sweep.plan([study, other])  # its SAM ρ = 0.1 is the first study's run: listed once
    groups = [[(job.study.name, job.rho) for job in group] for group in sweep.batches(todo)]
    assert groups[0][-1] == ("other", 0.5) and len(groups[0]) == 6 and len(groups) == 4
    longer = other.but(training={**other.training, "epochs": 3})  # another training: apart
    todo, _ = sweep.plan([study, longer])
    assert [len(group) for group in sweep.batches(todo)] == [5, 2, 1, 1, 2]
