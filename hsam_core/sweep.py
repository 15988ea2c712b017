"""Sweeps: every configuration of one or more systems' grids, in this process or on Ray.

A *system* is a module of :mod:`hsam_core.systems` with ``task()``, ``grid()``, ``SEEDS`` and
``TRAINING``. A sweep lists the configurations of the named systems, skips those whose result is
already in the cache, trains the others — one after another in this process, or as Ray tasks
(one CPU each, and a fraction of a GPU where the cluster has GPUs) — and writes each result into
the cache as it arrives, in the driver, so that workers need no shared disk. An interrupted
sweep resumes where it stopped; a configuration that fails is reported with its error while the
others go on. The chapters then read the cache as usual::

    python -m hsam_core.experiments pendulum duffing            # this process
    python -m hsam_core.experiments pendulum duffing --ray      # a local Ray, one task per core
    python -m hsam_core.experiments pendulum --ray auto         # the cluster of `ray start`

Ray is optional (``pip install "hsam-core[ray]"``) and imported only when a sweep asks for it.
"""

from __future__ import annotations

import functools
import importlib
import pathlib
import pkgutil
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

import pandas as pd
import torch
from tqdm.auto import tqdm

from . import experiments, store, systems
from .experiments import Config, Task
from .runtime import quick_mode, set_cpu_threads

SYSTEM_ATTRIBUTES = ("task", "grid", "SEEDS", "TRAINING")


@dataclass(frozen=True)
class Job:
    """One configuration of one system's grid, and the cache file its result goes to."""

    system: str  # module name in hsam_core.systems
    index: int  # position in the system's grid()
    label: str  # the configuration's name in the results table
    rho: float
    path: pathlib.Path
    key: dict  # the inputs of the cache key, stored with the result

    @property
    def store_key(self) -> str:
        """The run's key in the results store."""
        return experiments.run_key(self.key)


def record(job: Job, payload: dict) -> None:
    """Write a trained run into the results store (its rows and θ paths), and its weights into
    the local cache."""
    if not job.path.exists():
        experiments.save_result({**payload, "key": job.key}, job.path)
    theta = payload["history"].theta
    seeds = job.key["seeds"]
    rows = store.run_rows(job.store_key, job.key, payload["rows"], theta, source="trained")
    paths = store.path_rows(job.store_key, theta, seeds) if theta else None
    store.write(job.store_key, job.key, rows, paths)


@dataclass(frozen=True)
class Failure:
    job: Job
    error: str  # the exception's type and message
    details: str  # its traceback


def available_systems() -> list[str]:
    """The modules of :mod:`hsam_core.systems` that define a grid (every task of the book)."""
    names = []
    for info in pkgutil.iter_modules(systems.__path__):
        module = importlib.import_module(f"{systems.__name__}.{info.name}")
        if all(hasattr(module, a) for a in SYSTEM_ATTRIBUTES):
            names.append(info.name)
    return sorted(names)


@functools.cache
def load_system(name: str) -> tuple[ModuleType, Task, list[Config]]:
    """The module, task and grid of a system, built once per process (a Ray worker runs many
    configurations of the same task). Raises ``ValueError`` naming what is missing."""
    try:
        module = importlib.import_module(f"{systems.__name__}.{name}")
    except ModuleNotFoundError as err:
        raise ValueError(
            f"no system {name!r} in hsam_core.systems; systems with a grid: {available_systems()}"
        ) from err
    missing = [a for a in SYSTEM_ATTRIBUTES if not hasattr(module, a)]
    if missing:
        raise ValueError(f"system {name!r} has no {', '.join(missing)}: it cannot be swept")
    return module, module.task(), module.grid()


def settings(module: ModuleType, config: Config, epochs: int | None = None) -> dict:
    """The training settings of ``config`` (what :func:`experiments.run` hashes), with
    ``epochs`` replacing the system's when given."""
    training = dict(module.TRAINING)
    if epochs is not None:
        training["epochs"] = epochs
    return experiments.training_settings(**training, model_label=config.model_label)


def plan(
    names: Sequence[str],
    methods: Sequence[str] | None = None,
    epochs: int | None = None,
    folder: pathlib.Path | None = None,
) -> tuple[list[Job], list[Job]]:
    """The configurations of the systems ``names`` (only those labelled ``methods``, if given),
    split into (to train, already cached in ``folder``). An unknown label raises
    ``ValueError`` listing the labels there are."""
    jobs = []
    for name in names:
        module, task, configs = load_system(name)
        for index, config in enumerate(configs):
            if methods and config.label not in methods:
                continue
            path, key = experiments.cache_file(
                task,
                config.method,
                module.SEEDS,
                settings(module, config, epochs),
                config.make_model,
                folder,
            )
            jobs.append(Job(name, index, config.label, config.method.rho, path, key))
    if methods:
        labels = {c.label for name in names for c in load_system(name)[2]}
        unknown = sorted(set(methods) - labels)
        if unknown:
            raise ValueError(f"no configuration {unknown} in the grids of {list(names)}: {labels}")
    stored = store.read_specs()
    done = [job for job in jobs if job.path.exists() or job.store_key in stored]
    return [job for job in jobs if job not in done], done


def train_job(system: str, index: int, expected_key: dict, epochs: int | None) -> dict:
    """Train configuration ``index`` of ``system``'s grid and return what the cache stores (the
    unit of work, in this process or on a Ray worker). ``expected_key`` is the cache key's
    inputs as the driver computed them: a worker whose code, mode (HSAM_QUICK) or settings
    differ from the driver's computes another key and refuses to train."""
    set_cpu_threads(1)  # tiny models: one thread per configuration, one configuration per core
    module, task, configs = load_system(system)
    config = configs[index]
    training = settings(module, config, epochs)
    _, key = experiments.cache_file(task, config.method, module.SEEDS, training, config.make_model)
    if key != expected_key:
        differ = sorted(
            k for k in set(key) | set(expected_key) if key.get(k) != expected_key.get(k)
        )
        raise RuntimeError(
            f"{system}.grid()[{index}] ({config.label}) differs here from the driver's in "
            f"{differ}: driver and worker run different code or modes (HSAM_QUICK)"
        )
    payload, _ = experiments.train_and_score(
        task, config.method, module.SEEDS, training, config.make_model
    )
    return payload


def _summary(job: Job, payload: dict) -> str:
    rows = pd.DataFrame(payload["rows"])
    return (
        f"{job.system:<20} {job.label:<26} rho {job.rho:<5g} "
        f"theta error median {rows.theta_rel_error.median():.4g}  "
        f"seconds/seed {rows.seconds[0]:.0f}"
    )


def sweep(
    names: Sequence[str],
    methods: Sequence[str] | None = None,
    epochs: int | None = None,
    ray_address: str | None = None,
    gpu_fraction: float | None = None,
    folder: pathlib.Path | None = None,
) -> list[Failure]:
    """Train every configuration of the systems ``names`` that is neither in the results store
    nor cached in ``folder`` (default: the settings' cache), and write each result into the
    store (rows and θ paths) and the cache (weights) as it arrives; a result found only in the
    cache is written into the store without training.

    ``ray_address=None`` trains in this process; ``"local"`` starts a local Ray (one worker per
    core) unless one is already initialised; any other value is passed to ``ray.init(address=)``
    (``"auto"``, ``"ray://head:10001"``). Each configuration asks Ray for one CPU and
    ``gpu_fraction`` of a GPU (default: GPUs / CPUs of the cluster, so that every CPU slot can
    share the GPUs; 0 without GPUs). Returns the configurations that failed, with their errors.
    """
    set_cpu_threads(1)
    todo, cached = plan(names, methods, epochs, folder)
    stored = store.read_specs()
    for job in cached:  # trained before, in the local cache only: into the store
        if job.store_key not in stored:
            record(job, torch.load(job.path, weights_only=False))
    failures: list[Failure] = []
    bar = tqdm(total=len(todo) + len(cached), initial=len(cached), unit="config", desc="sweep")
    bar.write(f"{len(cached)} configurations cached, {len(todo)} to train")

    def done(job: Job, payload: dict | None, error: BaseException | None) -> None:
        if error is None:
            record(job, payload)
            bar.write(_summary(job, payload))
        else:
            cause = getattr(error, "cause", None) or error  # a RayTaskError wraps the original
            message = f"{type(cause).__name__}: {cause}".splitlines()[0]
            details = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            failures.append(Failure(job, message, details))
            bar.write(f"FAILED {job.system} {job.label} rho {job.rho:g}: {message}")
        bar.update()

    try:
        if ray_address is None:
            for job in todo:
                try:
                    payload = train_job(job.system, job.index, job.key, epochs)
                except Exception as error:  # noqa: BLE001 - reported, and the sweep goes on
                    done(job, None, error)
                else:
                    done(job, payload, None)
        else:
            _sweep_on_ray(todo, epochs, ray_address, gpu_fraction, done)
    finally:
        bar.close()
    return failures


def _sweep_on_ray(
    todo: Sequence[Job],
    epochs: int | None,
    address: str,
    gpu_fraction: float | None,
    done: Callable[[Job, dict | None, BaseException | None], None],
) -> None:
    """Submit every job as a Ray task and hand each result to ``done`` as it arrives."""
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
        # The workers see the driver's mode; data and models are built on the worker.
        env = {"HSAM_QUICK": "1" if quick_mode() else "0", "OMP_NUM_THREADS": "1"}
        remote = ray.remote(train_job).options(
            num_cpus=1, num_gpus=gpu_fraction, max_retries=0, runtime_env={"env_vars": env}
        )
        pending = {remote.remote(j.system, j.index, j.key, epochs): j for j in todo}
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ref)
            try:
                payload = ray.get(ref)
            except Exception as error:  # noqa: BLE001 - reported, and the sweep goes on
                done(job, None, error)
            else:
                done(job, payload, None)
    finally:
        if started:
            ray.shutdown()
