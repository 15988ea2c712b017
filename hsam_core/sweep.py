"""Sweeps: train every run of one or more studies into the results store, here or on Ray.

A sweep lists the runs of the named studies (:mod:`hsam_core.studies`), skips those already in
the results store, trains the others — one after another in this process, or as Ray tasks (one
CPU each, and a fraction of a GPU where the cluster has GPUs) — and writes each result as it
arrives, in the driver, so that workers need no shared disk: rows and θ paths into the store
(:mod:`hsam_core.store`), weights into the local cache. An interrupted sweep resumes where it
stopped; a run that fails is reported with its error while the others go on::

    python -m hsam_core sweep pendulum duffing          # this process
    python -m hsam_core sweep pendulum --ray            # a local Ray, one task per core
    python -m hsam_core sweep pendulum --ray auto       # the cluster of `ray start`

With ``together`` (``--together``), the runs that differ only in ρ and in SAM versus ASAM —
ERM with SAM's and ASAM's radii, of one study or of several on the same task and training —
and those that differ only in a regularizer's strength (L2's λ grid) each train as one stacked
ensemble (one process, one Ray task): the same numbers as trained one by one, up to float
rounding (:func:`~hsam_core.train.fit`), each written under its own key, for a fraction of the
time where the networks are small.

Ray is optional (``pip install "hsam-core[ray]"``) and imported only when a sweep asks for it.
"""

from __future__ import annotations

import json
import pathlib
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from . import experiments, settings, store, studies
from .runtime import set_cpu_threads
from .studies import Study
from .train import stack_fields


@dataclass(frozen=True)
class Job:
    """One run of a study: its configuration's place in the study, its key and where its
    weights are cached."""

    study: Study
    index: int  # position in the study's configurations
    label: str  # the configuration's name in the results table
    rho: float
    spec: dict  # the run's canonical specification (hsam_core.experiments.run_spec)
    key: str  # the run's key in the store
    path: pathlib.Path  # the cache file of its weights


@dataclass(frozen=True)
class Failure:
    job: Job
    error: str  # the exception's type and message
    details: str  # its traceback


def resolve(names: Sequence[Study | str], epochs: int | None = None) -> list[Study]:
    """The studies ``names`` (names or studies), with ``epochs`` replacing their training's
    when given; ``"all"`` names every study."""
    if list(names) == ["all"]:
        names = studies.names()
    resolved = [studies.get(n) if isinstance(n, str) else n for n in names]
    if epochs is not None:
        resolved = [s.but(training={**s.training, "epochs": epochs}) for s in resolved]
    return resolved


def plan(
    names: Sequence[Study | str],
    labels: Sequence[str] | None = None,
    epochs: int | None = None,
) -> tuple[list[Job], list[Job]]:
    """The runs of the studies ``names`` (only the configurations labelled ``labels``, if
    given), split into (to train, already in the store); a run that two studies share (the
    same key) is listed once, under the first. An unknown label raises ``ValueError`` listing
    the labels there are."""
    jobs = []
    for study in resolve(names, epochs):
        chosen = study.only(labels) if labels else study
        index = {(c.label, c.method.rho): i for i, c in enumerate(study.configs)}
        for config in chosen.configs:
            spec = study.spec(config)
            key = experiments.run_key(spec)
            path = experiments.cache_path(spec)
            i = index[config.label, config.method.rho]
            jobs.append(Job(study, i, config.label, config.method.rho, spec, key, path))
    first = {}
    for job in jobs:
        first.setdefault(job.key, job)
    jobs = list(first.values())
    stored = store.read_specs()
    done = [job for job in jobs if job.key in stored]
    return [job for job in jobs if job.key not in stored], done


def record(job: Job, payload: dict) -> None:
    """Write a trained run into the results store (its rows, θ paths and weights) and into the
    local cache (rows, full history, weights)."""
    if not job.path.exists():
        experiments.save_result({**payload, "key": job.spec}, job.path)
    history = payload["history"]
    rows = store.run_rows(job.key, job.spec, payload["rows"], history.theta, source="trained")
    store.write(job.key, job.spec, rows, store.history_paths(job.key, history, job.spec["seeds"]))
    store.write_weights(job.key, payload["model"])


def _checked_config(study: Study, index: int, spec: dict, quick: bool):
    """Configuration ``index`` of ``study``, in the driver's mode, refused where its
    specification here differs from ``spec``, the driver's: a worker whose code, mode or data
    differ from the driver's computes another."""
    set_cpu_threads(1)  # tiny models: one thread per configuration, one configuration per core
    if settings.get().quick != quick:
        settings.configure(quick=quick)
    config = study.configs[index]
    mine = study.spec(config)
    if mine != spec:
        differ = sorted(k for k in set(mine) | set(spec) if mine.get(k) != spec.get(k))
        raise RuntimeError(
            f"{study.name} configuration {index} ({config.label}) differs here from the "
            f"driver's in {differ}: driver and worker run different code, data or modes"
        )
    return config


def _device(study: Study) -> torch.device | None:
    return None if study.device == "any" else torch.device(study.device)


def train_job(study: Study, index: int, spec: dict, quick: bool) -> dict:
    """Train configuration ``index`` of ``study`` and return what the cache stores (the unit of
    work, in this process or on a Ray worker). ``spec`` is the run's specification as the
    driver computed it: a worker whose code, mode or data differ from the driver's computes
    another and refuses to train."""
    config = _checked_config(study, index, spec, quick)
    device = _device(study)
    payload, _ = experiments.train_and_score(
        study.build_task(),
        config.method,
        study.seeds,
        study.settings(config),
        config.model,
        device,
    )
    return payload


def train_jobs(jobs: Sequence[Job], quick: bool) -> list:
    """Train ``jobs``, a group of :func:`batches` (runs whose specifications differ only in ρ
    and ``adaptive``, or in a regularizer's strength), as one stacked ensemble
    (:func:`~hsam_core.experiments.train_and_score_together`), and return what the cache stores
    for each — what :func:`train_job` returns for it."""
    configs = [_checked_config(job.study, job.index, job.spec, quick) for job in jobs]
    study = jobs[0].study  # its task, seeds and training settings are every job's
    scored = experiments.train_and_score_together(
        study.build_task(),
        [config.method for config in configs],
        study.seeds,
        study.settings(configs[0]),
        configs[0].model,
        _device(study),
    )
    return [payload for payload, _ in scored]


def batches(jobs: Sequence[Job]) -> list[list[Job]]:
    """``jobs`` in groups that train together: the runs whose specifications differ only in
    the method's ρ, kind (ERM is ρ = 0) and ``adaptive`` (SAM and ASAM), or only in the
    strength of one regularizer (L2's λ grid), and in labels; of one study or of several with
    the same task, data, seeds and training — in order of their first job; every other run
    alone."""
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        shared = stack_fields(job.spec["method"])  # what a stack shares (fit checks the same)
        rest = {k: v for k, v in job.spec.items() if k != "method"}
        # the configuration's display name ("ERM [deeper]") is in its training settings
        rest["training"] = {k: v for k, v in rest["training"].items() if k != "model"}
        key = json.dumps([shared, rest], sort_keys=True, default=str)
        groups.setdefault(key, []).append(job)
    return list(groups.values())


def _train(group: Sequence[Job], quick: bool) -> list[dict]:
    """The payloads of a group of :func:`batches`, in its order."""
    if len(group) == 1:
        [job] = group
        return [train_job(job.study, job.index, job.spec, quick)]
    return train_jobs(group, quick)


def _summary(job: Job, payload: dict) -> str:
    rows = pd.DataFrame(payload["rows"])
    return (
        f"{job.study.name:<20} {job.label:<26} rho {job.rho:<5g} "
        f"theta error median {rows.theta_rel_error.median():.4g}  "
        f"seconds/seed {rows.seconds[0]:.0f}"
    )


def sweep(
    names: Sequence[Study | str],
    labels: Sequence[str] | None = None,
    epochs: int | None = None,
    ray_address: str | None = None,
    gpu_fraction: float | None = None,
    together: bool = False,
) -> list[Failure]:
    """Train every run of the studies ``names`` that is not in the results store, and write
    each into the store as it arrives. A run whose weights are in the local cache but whose
    rows are not in the store is written from the cache without training. ``together``
    trains the runs that differ only in ρ and ``adaptive``, or in a regularizer's strength,
    as one stacked ensemble (:func:`batches`); each is still written under its own key.

    ``ray_address=None`` trains in this process; ``"local"`` starts a local Ray (one worker per
    core) unless one is already initialised; any other value is passed to ``ray.init(address=)``
    (``"auto"``, ``"ray://head:10001"``). Each run asks Ray for one CPU and ``gpu_fraction`` of
    a GPU (default: GPUs / CPUs of the cluster; 0 without GPUs). Returns the runs that failed,
    with their errors.
    """
    set_cpu_threads(1)
    todo, done = plan(names, labels, epochs)
    cached = [job for job in todo if job.path.exists()]
    for job in cached:
        record(job, torch.load(job.path, weights_only=False))
    todo = [job for job in todo if job not in cached]
    failures: list[Failure] = []
    bar = tqdm(total=len(todo) + len(done) + len(cached), initial=len(done) + len(cached))
    bar.set_description("sweep")
    bar.write(
        f"{len(done)} runs in the store, {len(cached)} written from the cache, {len(todo)} to train"
    )

    def finished(job: Job, payload: dict | None, error: BaseException | None) -> None:
        if error is None:
            record(job, payload)
            bar.write(_summary(job, payload))
        else:
            cause = getattr(error, "cause", None) or error  # a RayTaskError wraps the original
            message = f"{type(cause).__name__}: {cause}".splitlines()[0]
            details = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            failures.append(Failure(job, message, details))
            bar.write(f"FAILED {job.study.name} {job.label} rho {job.rho:g}: {message}")
        bar.update()

    quick = settings.get().quick
    groups = batches(todo) if together else [[job] for job in todo]
    try:
        if ray_address is None:
            for group in groups:
                try:
                    payloads = _train(group, quick)
                except Exception as error:  # noqa: BLE001 - reported, and the sweep goes on
                    for job in group:
                        finished(job, None, error)
                else:
                    for job, payload in zip(group, payloads):
                        finished(job, payload, None)
        elif groups:  # no cluster started or joined for nothing to train
            _sweep_on_ray(groups, quick, ray_address, gpu_fraction, finished)
    finally:
        bar.close()
    return failures


def _sweep_on_ray(
    groups: Sequence[Sequence[Job]],
    quick: bool,
    address: str,
    gpu_fraction: float | None,
    finished: Callable[[Job, dict | None, BaseException | None], None],
) -> None:
    """Submit every group of jobs as a Ray task and hand each job's result to ``finished`` as
    its group's arrives."""
    try:
        import ray
    except ImportError as err:
        raise ImportError('--ray needs Ray: pip install "hsam-core[ray]"') from err

    started = not ray.is_initialized()
    if started:
        ray.init(address=None if address == "local" else address)
    try:
        if gpu_fraction is None:
            resources = ray.cluster_resources()
            gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 1.0)
            gpu_fraction = min(1.0, gpus / cpus) if gpus else 0.0
        # The workers get the driver's mode as an argument; data and models are built there.
        remote = ray.remote(_train).options(
            num_cpus=1,
            num_gpus=gpu_fraction,
            max_retries=0,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}},
        )
        pending = {remote.remote(list(group), quick): group for group in groups}
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            group = pending.pop(ref)
            try:
                payloads = ray.get(ref)
            except Exception as error:  # noqa: BLE001 - reported, and the sweep goes on
                for job in group:
                    finished(job, None, error)
            else:
                for job, payload in zip(group, payloads):
                    finished(job, payload, None)
    finally:
        if started:
            ray.shutdown()


def keep_weights(names: Sequence[Study | str], replace: bool = False) -> tuple[int, int, list[str]]:
    """Copy into the store what the local cache keeps of the stored runs of ``names`` and the
    store lacks (runs trained or imported before the store kept them): their weights, and
    their θ paths and training curves where the store has none.

    A cached run counts as the stored one only if its per-seed scores are the stored rows'
    (:func:`same_scores`): the same specification trained again is not bit-identical (another
    machine, thread count or library version), and weights of another training would draw
    figures that disagree with the tables. Such a run is not copied but listed; with
    ``replace`` its stored rows, θ paths and weights are all replaced by the cached run's, so
    that tables and figures are one training (and the numbers move to the re-run's).

    Returns (runs whose weights were copied or replaced, runs still without weights, keys of
    runs whose cached training differs from the stored one and was left as it is)."""
    _, done = plan(names)
    copied, lacking, differing = 0, 0, []
    for job in done:
        has_weights = store.read_weights(job.key) is not None
        paths = store.read_paths(job.spec["task"])
        mine = paths[paths.key == job.key] if len(paths) else paths
        has_curves = bool(len(mine)) and all(
            c in mine and mine[c].notna().all() for c in store.CURVES
        )
        if not job.path.exists():
            lacking += not has_weights
            continue
        payload = torch.load(job.path, weights_only=False)
        history = payload["history"]
        stored = store.lookup([job.key], job.spec["task"])
        if not same_scores(stored, pd.DataFrame(payload["rows"])):
            if not replace:
                differing.append(job.key)
                continue
            rows = store.run_rows(
                job.key, job.spec, payload["rows"], history.theta, "re-run (cache)"
            )
            paths = store.history_paths(job.key, history, job.spec["seeds"])
            store.write(job.key, job.spec, rows, paths, replace=True)
            store.write_weights(job.key, payload["model"])
            copied += 1
            continue
        if not has_weights:
            store.write_weights(job.key, payload["model"])
            copied += 1
        if not has_curves:
            new_paths = store.history_paths(job.key, history, job.spec["seeds"])
            if new_paths is not None:  # None: a history without θ
                store.write_paths(job.key, new_paths, replace=bool(len(mine)))
    return copied, lacking, differing


def same_scores(stored: pd.DataFrame, other: pd.DataFrame, rtol: float = 1e-6) -> bool:
    """Whether two sets of a run's rows (one per seed) hold the same training: the same seeds
    and, seed by seed, the same θ error and validation MSE (to ``rtol``; NaN equal to NaN)."""
    a, b = stored.sort_values("seed"), other.sort_values("seed")
    if a.seed.astype(int).tolist() != b.seed.astype(int).tolist():
        return False
    return all(
        np.allclose(
            a[c].to_numpy(dtype=float), b[c].to_numpy(dtype=float), rtol=rtol, equal_nan=True
        )
        for c in ("theta_rel_error", "val_mse")
    )
