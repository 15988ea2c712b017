"""Sweeps (hsam_core.sweep): in this process and on a local Ray they cache the same rows, skip
what is cached, and report a failed configuration while the others go on."""

from __future__ import annotations

import pytest
import torch

from hsam_core import experiments, sweep

SYSTEM, METHODS, EPOCHS = "pendulum", ["ERM", "SAM (nn)"], 2


@pytest.fixture
def fresh():
    """Systems built anew for each test. The mode is the process's (CI: quick): the systems'
    settings are read when their modules are imported, so a test must not switch it."""
    sweep.load_system.cache_clear()
    yield
    sweep.load_system.cache_clear()


def untimed(rows: list[dict]) -> list[dict]:
    """Result rows without the timing column (the only one two runs may differ in)."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def cached_rows(folder) -> dict[str, list[dict]]:
    """Every cached result of ``folder``, by file name, without the timing column."""
    return {
        path.name: untimed(torch.load(path, weights_only=False)["rows"])
        for path in sorted(folder.glob("*.pt"))
    }


def test_ray_sweep_caches_exactly_the_rows_of_the_in_process_sweep(tmp_path, fresh, one_thread):
    import ray  # in requirements.txt, for this test

    failures = sweep.sweep([SYSTEM], METHODS, EPOCHS, folder=tmp_path / "local")
    assert failures == []
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        failures = sweep.sweep(
            [SYSTEM], METHODS, EPOCHS, ray_address="local", folder=tmp_path / "ray"
        )
    finally:
        ray.shutdown()
    assert failures == []
    local, remote = cached_rows(tmp_path / "local"), cached_rows(tmp_path / "ray")
    assert len(local) == 2 and set(remote) == set(local)  # same configurations, same cache keys
    assert remote == local


def test_a_rerun_trains_only_what_is_not_cached(tmp_path, fresh, one_thread):
    folder = tmp_path / "cache"
    sweep.sweep([SYSTEM], ["ERM"], EPOCHS, folder=folder)
    todo, cached = sweep.plan([SYSTEM], METHODS, EPOCHS, folder)
    assert [j.label for j in cached] == ["ERM"] and [j.label for j in todo] == ["SAM (nn)"]


def test_a_failed_configuration_is_reported_and_the_others_are_cached(
    tmp_path, fresh, one_thread, monkeypatch
):
    train = sweep.train_job

    def flaky(system, index, key, epochs):
        if key["method"]["label"] == "ERM":
            raise FloatingPointError("loss is NaN at epoch 1")
        return train(system, index, key, epochs)

    monkeypatch.setattr(sweep, "train_job", flaky)
    failures = sweep.sweep([SYSTEM], METHODS, EPOCHS, folder=tmp_path)
    assert [(f.job.label, f.error) for f in failures] == [
        ("ERM", "FloatingPointError: loss is NaN at epoch 1")
    ]
    assert "flaky" in failures[0].details  # the traceback comes with it
    todo, cached = sweep.plan([SYSTEM], METHODS, EPOCHS, tmp_path)
    assert [j.label for j in cached] == ["SAM (nn)"] and [j.label for j in todo] == ["ERM"]


def test_a_worker_that_builds_another_configuration_refuses_to_train(fresh, one_thread):
    """A worker whose code or mode differs from the driver's computes another cache key."""
    todo, cached = sweep.plan([SYSTEM], ["ERM"], EPOCHS)
    [job] = todo + cached
    other = {**job.key, "seeds": [*job.key["seeds"], 99]}
    with pytest.raises(RuntimeError, match=r"differs here from the driver's in \['seeds'\]"):
        sweep.train_job(job.system, job.index, other, EPOCHS)


def test_unknown_systems_and_labels_are_named(fresh):
    with pytest.raises(ValueError, match="no system 'pendulm'.*'pendulum'"):
        sweep.plan(["pendulm"])
    with pytest.raises(ValueError, match=r"SAM \(typo\)"):
        sweep.plan([SYSTEM], ["SAM (typo)"])
    assert {"pendulum", "reaction_diffusion", "light_tunnel"} <= set(sweep.available_systems())


def test_a_sweep_caches_under_the_key_a_chapter_looks_up(tmp_path, fresh, one_thread, monkeypatch):
    """What a chapter trains through experiments.run lands where the sweep looks (and so the
    other way round): the two build the same training settings and cache key."""
    monkeypatch.setattr(experiments, "CACHE_DIR", tmp_path)
    monkeypatch.setattr(experiments, "QUICK_CACHE_DIR", tmp_path)
    module, task, configs = sweep.load_system(SYSTEM)
    erm = next(c for c in configs if c.label == "ERM")
    training = {**module.TRAINING, "epochs": EPOCHS}
    experiments.run(task, erm.method, module.SEEDS, make_model=erm.make_model, **training)
    todo, cached = sweep.plan([SYSTEM], METHODS, EPOCHS, tmp_path)
    assert [j.label for j in cached] == ["ERM"] and [j.label for j in todo] == ["SAM (nn)"]


def test_a_chapter_trains_like_a_sweep_with_subnormals_flushed(fresh, one_thread):
    """experiments.run (a chapter) and sweep.train_job (a sweep) train through train_and_score,
    which flushes subnormal floats to zero: the same configuration gives the same numbers on
    both paths (flushing changes results at float32 rounding, and training amplifies that)."""
    module, task, configs = sweep.load_system(SYSTEM)
    erm = next(c for c in configs if c.label == "ERM")
    training = {**module.TRAINING, "epochs": EPOCHS}
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormal floats (no SSE3)")
    torch.set_flush_denormal(False)
    subnormal = torch.tensor([1e-39])  # made with the flag off (with it on, it would be 0)
    try:
        assert (subnormal * 1.0).item() > 0
        chapter = experiments.run(
            task, erm.method, module.SEEDS, make_model=erm.make_model, cache=False, **training
        )
        assert (subnormal * 1.0).item() == 0.0  # run() trained with the flag set
        torch.set_flush_denormal(False)
        todo, cached = sweep.plan([SYSTEM], ["ERM"], EPOCHS)
        job = (todo + cached)[0]
        payload = sweep.train_job(SYSTEM, job.index, job.key, EPOCHS)
    finally:
        torch.set_flush_denormal(False)
    assert untimed(payload["rows"]) == untimed(chapter.rows.to_dict("records"))
