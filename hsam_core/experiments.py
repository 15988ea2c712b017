"""Experiments as data: run a method on a task over seeds, score it, cache it, pick ρ.

:func:`run` trains the seeds of one configuration as one ensemble and returns one row per seed
with the columns every results table carries::

    task, method, rho, seed, theta_rel_error, val_mse, test_mse, nn_norm, sharpness,
    hessian_top, seconds, mode, selected, theta_<name>...

A run is identified by an explicit key (:func:`run_key`): the canonical form of its
specification — task and its resolved parameters, method fields, model factory and arguments,
seeds, training settings — plus two declared version numbers (:data:`NUMERICS_VERSION` for
``hsam_core``'s numerics, ``Task.version`` for the task) and a content hash of the task's data.
No source code is hashed: refactoring changes no key, and a change to what a run computes is a
version bump, a reviewed decision written in its commit. Data generated differently, through
whatever helper, has another hash and so another key: a stale result cannot be served.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import pathlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch

from . import settings as hsam_settings
from .ensemble import Ensemble
from .hybrid import HybridModel
from .metrics import (
    nn_contribution,
    prediction_mse,
    sharpness_ascent,
    theta_rel_error,
    top_hessian_eigenvalue,
)
from .regularizers import Regularizer
from .runtime import default_device, quick_mode
from .train import History, Method, Settle, deviation, fit

SHARPNESS_RHO = 0.05  # radius of the ascent-step sharpness metric, the same for every method

# The version of what hsam_core computes for a run (sam, hybrid, ensemble, data, regularizers,
# train, metrics and train_and_score below). Bump it, in a commit that says why, when a change
# alters any number a run produces; a refactor that computes the same numbers keeps it.
NUMERICS_VERSION = 1


def content_hash(obj: object) -> str:
    """SHA-256 (16 hex digits) of the content of ``obj``: tensors (dtype, shape and bytes, on
    the CPU), dataclasses (field by field), lists, tuples, dicts (sorted by key), numbers,
    strings, booleans and None. Anything else raises ``TypeError`` naming its type, so that
    nothing is left out of a hash silently."""
    digest = hashlib.sha256()

    def feed(value: object) -> None:
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(f"tensor {tensor.dtype} {tuple(tensor.shape)};".encode())
            digest.update(tensor.numpy().tobytes())
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            digest.update(f"{type(value).__name__}(".encode())
            for f in dataclasses.fields(value):
                digest.update(f"{f.name}=".encode())
                feed(getattr(value, f.name))
            digest.update(b")")
        elif isinstance(value, (list, tuple)):
            digest.update(f"[{len(value)}".encode())
            for item in value:
                feed(item)
        elif isinstance(value, Mapping):
            digest.update(f"{{{len(value)}".encode())
            for key in sorted(value):
                digest.update(f"{key!r}:".encode())
                feed(value[key])
        elif value is None or isinstance(value, (bool, int, float, str)):
            digest.update(f"{type(value).__name__} {value!r};".encode())
        else:
            raise TypeError(f"content_hash cannot hash a {type(value).__name__}: {value!r:.80}")

    feed(obj)
    return digest.hexdigest()[:16]


@dataclass
class Task:
    """What a method is run on: data splits, a model factory, the true θ, a description.

    ``version`` is the task's declared version (its module's ``VERSION``): bump it when the
    task's model, metrics or scoring change what a run computes. Changes to its *data* need no
    bump: :attr:`data_hash` follows them."""

    name: str
    train: object
    val: object
    test: object
    # The task's hybrid: ``make_model()`` its default, ``make_model(**model)`` a variant named by
    # keyword arguments (``physics="none"``, ``network=False``, ``architecture="deeper"`` ...):
    # the task's vocabulary for models, so that a run's key holds its model as plain data.
    make_model: Callable[..., HybridModel]
    truth: dict[str, float]
    spec: dict = field(default_factory=dict)  # the task's resolved parameters, in words
    normalized_norm: bool = False  # report ‖f_nn‖² state-normalised (the pendulum convention)
    # Sharpness and the Hessian's top eigenvalue on the first ``curvature_samples`` training
    # samples only (None: all). Power iteration costs ~20 passes over the data: on the larger
    # tasks a subset keeps it a fraction of the training cost.
    curvature_samples: int | None = None
    # θ scores that replace the default relative error, e.g. for θ identifiable only up to
    # scale: a function of ``model.theta()`` returning {"theta_rel_error": (K,), "theta_cosine":
    # (K,), ...}; each key becomes a column.
    theta_scores: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None
    version: int = 1
    # The extrapolation split: data the physics should predict and a network alone should not
    # (initial conditions or inputs outside the training range, a longer horizon), as noisy as
    # the validation data, so that a θ-free rule may use it; scored for every run as
    # ``extrap_mse``. None: the task has none (``spec["extrapolation"]`` says what it is).
    extrapolation: object | None = None
    # The standard deviation of the measurement noise on the training, validation and
    # extrapolation data, in the units that :func:`~hsam_core.metrics.prediction_mse` compares
    # (the test data are noise-free): σ² is the floor of a perfect model's validation MSE.
    noise: float = 0.0
    # What the data determine of θ, as functions of θ's history ({name: (E, K)} → {name:
    # (E, K)}), e.g. ratios for θ identifiable only up to scale: what "θ has settled" watches.
    # None: θ itself.
    identified: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None

    @functools.cached_property
    def data_hash(self) -> str:
        """:func:`content_hash` of the training, validation, test and (where the task has one)
        extrapolation data."""
        splits = [self.train, self.val, self.test]
        return content_hash(splits if self.extrapolation is None else [*splits, self.extrapolation])


@dataclass
class _Head:
    """The first ``n`` samples of a data object (the metrics index ``range(len(data))``)."""

    data: object
    n: int

    def __len__(self) -> int:
        return min(self.n, len(self.data))

    def to(self, device) -> _Head:
        return _Head(self.data.to(device), self.n)

    def loss(self, model, idx: torch.Tensor):
        return self.data.loss(model, idx)


@dataclass
class Result:
    """What :func:`run` returns: one row per seed, the training history, the trained models."""

    rows: pd.DataFrame
    history: History
    model: Ensemble


def describe(method: Method) -> dict:
    """The method's identity as plain data: its label (its name in tables) and its fields."""
    return {"label": method.label, **method.spec()}


def run_spec(
    task: Task,
    method: Method,
    seeds: Sequence[int],
    training: dict,
    model: Mapping | None,
    device: str = "any",
) -> dict:
    """The canonical specification of a run: everything that determines its numbers, as plain
    data (stored with the result, so that a cache or a store row can be audited). ``device``
    is ``"any"`` unless a study asks for results of one kind of device (``"cuda"``)."""
    return {
        "task": task.name,
        "task_version": task.version,
        "task_spec": task.spec,
        "data": task.data_hash,
        "numerics_version": NUMERICS_VERSION,
        "curvature_samples": task.curvature_samples,
        "method": describe(method),
        "model": dict(model) if model else None,
        "seeds": [int(s) for s in seeds],
        "training": training,
        "device": device,
    }


def run_key(inputs: dict) -> str:
    """The key of a run: SHA-256 (20 hex digits) of its canonical specification
    (:func:`run_spec`) as sorted JSON."""
    blob = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cache_path(spec: dict) -> pathlib.Path:
    """Where the weights of the run ``spec`` (:func:`run_spec`) are cached: ``runs/`` of the
    settings' cache folder (a scratch folder in quick mode), named by task and key."""
    return hsam_settings.get().cache / "runs" / f"{spec['task']}-{run_key(spec)}.pt"


def write_whole(path: pathlib.Path, write: Callable[[pathlib.Path], object]) -> None:
    """Write ``path`` whole or not at all: ``write(temporary)`` fills a file beside it, named
    after this process, that then replaces it — a reader in another process (a parallel sweep,
    a chapter reading the store while a sweep adds to it) sees the old file or the new one,
    never half of one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    write(temporary)
    os.replace(temporary, path)


def save_result(payload: dict, path: pathlib.Path) -> None:
    """Write a :func:`train_and_score` payload to ``path`` whole (:func:`write_whole`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_whole(path, lambda temporary: torch.save(payload, temporary))


def train_and_score(
    task: Task,
    method: Method,
    seeds: Sequence[int],
    settings: dict,
    model: Mapping | None = None,
    device: torch.device | None = None,
    make_model: Callable[[], HybridModel] | None = None,
) -> tuple[dict, Ensemble]:
    """Train ``method`` on ``task`` for every seed (one ensemble) and score each seed; no cache.

    The model is ``task.make_model(**model)``, or ``make_model()`` when given (a user's own
    factory: such a run has no key and is never cached).

    ``settings`` holds ``epochs``, ``batch_size``, ``lr_nn``, ``lr_phys``, ``model`` (the
    label of the model, or ``""``) and ``lr_milestones`` (see :func:`fit`).
    Returns the payload that :func:`run` caches — ``{"rows": [one dict per seed], "history":
    History, "model": state dict on the CPU}`` — and the trained ensemble.

    Trains and scores with ``torch.set_flush_denormal(True)`` (CPU only), and sets it back to
    torch's default (off) when done, so that nothing after it computes differently: subnormal floats
    (< 1.2e-38) slow a CPU matrix product up to ~85x on some processors (measured on this
    project's machines: L2 fits of the architecture study ran over 35 minutes against ERM's 12
    without it, 14 with it; the source of the subnormals was not isolated). Flushing them to
    zero changes each step only at float32 rounding, but training amplifies such differences:
    every result, in a notebook or a sweep, is trained with the flag, so that both give the same
    numbers."""
    torch.set_flush_denormal(True)
    try:
        [scored] = _train_and_score(task, [method], seeds, settings, model, device, make_model)
        return scored
    finally:
        torch.set_flush_denormal(False)


def train_and_score_together(
    task: Task,
    methods: Sequence[Method],
    seeds: Sequence[int],
    settings: dict,
    model: Mapping | None = None,
    device: torch.device | None = None,
) -> list[tuple[dict, Ensemble]]:
    """:func:`train_and_score` of several configurations that differ only in ρ and ``adaptive``
    (the radii of SAM's and ASAM's grids) or in a regularizer's strength, trained as one
    stacked ensemble (:func:`~hsam_core.train.fit` with lists of ensembles and methods) and
    scored one by one. Each configuration gets what :func:`train_and_score` gives it — the
    same numbers (up to float rounding, see :func:`~hsam_core.train.fit`), its ``seconds`` its
    share of the common wall time — so its result belongs under its own run key."""
    if isinstance(methods, Method) or not isinstance(methods, Sequence) or not methods:
        raise TypeError(
            f"train_and_score_together: methods must be a non-empty list of Methods, got {methods!r}"
        )
    torch.set_flush_denormal(True)
    try:
        return _train_and_score(task, list(methods), seeds, settings, model, device, None)
    finally:
        torch.set_flush_denormal(False)


def _train_and_score(task, methods, seeds, settings, model, device, make_model):
    build = _builder(task, model, make_model)
    models = [Ensemble.from_seeds(build, seeds).to(device or default_device()) for _ in methods]
    several = len(methods) > 1
    settle = settings.get("settle")
    histories = fit(
        models if several else models[0],
        task.train,
        methods if several else methods[0],
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        lr_nn=settings["lr_nn"],
        lr_phys=settings["lr_phys"],
        lr_milestones=settings.get("lr_milestones", ()),
        settle=None if settle is None else Settle.from_params(settle),
        watch=task.identified,
    )
    histories = histories if several else [histories]
    return [
        (_score(task, method, seeds, settings, trained, history), trained)
        for method, trained, history in zip(methods, models, histories)
    ]


def _score(task, method, seeds, settings, model: Ensemble, history: History) -> dict:
    """The payload of a trained configuration: one row per seed, its history, its weights."""
    theta = model.theta()
    model_device = next(model.parameters()).device
    has_nn = bool(model.ml_parameters())
    curvature_data = (
        task.train if task.curvature_samples is None else _Head(task.train, task.curvature_samples)
    )
    nan = torch.full((len(seeds),), float("nan"))
    if task.theta_scores is not None and theta:
        theta_columns = task.theta_scores(theta)
    else:
        error = theta_rel_error(theta, task.truth) if task.truth and theta else nan
        theta_columns = {"theta_rel_error": error}
    scores = {
        **theta_columns,
        "val_mse": prediction_mse(model, task.val),
        "test_mse": prediction_mse(model, task.test),
        "extrap_mse": nan
        if task.extrapolation is None
        else prediction_mse(model, task.extrapolation),
        "nn_norm": nn_contribution(model, task.test, task.normalized_norm),
        "sharpness": sharpness_ascent(model, curvature_data, SHARPNESS_RHO) if has_nn else nan,
        "hessian_top": top_hessian_eigenvalue(model, curvature_data) if has_nn else nan,
    }
    scores.update(convergence(history, task.identified, len(seeds)))
    label = settings["model"] or method.label
    rows = []
    for k, seed in enumerate(seeds):
        row = {"task": task.name, "method": label, "rho": method.rho, "seed": seed}
        row["epochs"] = len(history.loss)
        row.update({name: float(v[k]) for name, v in scores.items()})
        row.update({f"theta_{n}": float(v[k]) for n, v in theta.items()})
        row["device"] = model_device.type
        row.update(
            {
                "seconds": history.seconds / len(seeds),
                "mode": "quick" if quick_mode() else "full",
                "selected": 0,
            }
        )
        rows.append(row)
    state = {name: value.detach().cpu() for name, value in model.state_dict().items()}
    return {"rows": rows, "history": history, "model": state}


def convergence(
    history: History, identified: Callable | None, members: int
) -> dict[str, torch.Tensor]:
    """Per member: ``converged`` (1.0 settled, 0.0 not, NaN without θ) and ``theta_drift``
    (:func:`theta_drift` over the last 20 % of the epochs; NaN after a single epoch) of what
    the data determine of θ
    (``identified``, default θ itself); with a protocol (:class:`~hsam_core.train.Settle`)
    the verdict is the protocol's, and ``decay_epoch`` and ``drift_before_decay`` are added."""
    nan = torch.full((members,), float("nan"))
    if not history.theta or len(history.loss) < 2:  # no θ, or no history to judge it by
        columns = {"converged": nan, "theta_drift": nan}
    else:
        series = history.theta if identified is None else identified(history.theta)
        columns = {"converged": settled(series).float(), "theta_drift": theta_drift(series)}
    if history.settled is not None:
        columns["decay_epoch"] = torch.full((members,), float(history.decay_epoch))
        columns["drift_before_decay"] = history.drift_before_decay
        if history.theta:
            columns["converged"] = history.settled.float()
    return columns


def load_ensemble(
    task: Task,
    model: Mapping | None,
    seeds: Sequence[int],
    state: Mapping[str, torch.Tensor],
    device: torch.device | str | None = None,
) -> Ensemble:
    """The trained ensemble of a run from its saved weights (the cache's or the store's):
    the task's model (``model``: its keyword arguments) built once per seed, moved to
    ``device`` (default: :func:`~hsam_core.runtime.default_device`), then ``state`` loaded."""
    trained = Ensemble.from_seeds(_builder(task, model, None), seeds)
    trained = trained.to(device or default_device())
    trained.load_state_dict(state)  # tensors land on the model's device
    return trained


def _builder(
    task: Task, model: Mapping | None, make_model: Callable[[], HybridModel] | None
) -> Callable[[], HybridModel]:
    if make_model is not None:
        if model:
            raise ValueError("give the model as model=(keyword arguments) or make_model, not both")
        return make_model
    kwargs = dict(model or {})
    return lambda: task.make_model(**kwargs)


def training_settings(
    epochs: int | None = None,
    batch_size: int | None = None,
    lr_nn: float = 1e-3,
    lr_phys: float = 1e-2,
    model_label: str = "",
    lr_milestones: Sequence[int] = (),
    settle: Settle | Mapping | None = None,
) -> dict:
    """The training settings of one configuration as :func:`run` keys them (a study's training
    plus the label of its model): the one place that builds them, for :func:`run` and for a
    sweep that fills the cache ahead of it. ``settle`` (the protocol, instead of ``epochs``)
    appears in them only when given."""
    settings = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr_nn": lr_nn,
        "lr_phys": lr_phys,
        "model": model_label,
        "lr_milestones": list(lr_milestones),
    }
    if settle is not None:
        protocol = settle if isinstance(settle, Settle) else Settle.from_params(settle)
        settings["settle"] = protocol.params()
    return settings


def run(
    task: Task,
    method: Method,
    seeds: Sequence[int],
    epochs: int | None = None,
    batch_size: int | None = None,
    lr_nn: float = 1e-3,
    lr_phys: float = 1e-2,
    model: Mapping | None = None,
    model_label: str = "",
    cache: bool = True,
    device: torch.device | None = None,
    lr_milestones: Sequence[int] = (),
    make_model: Callable[[], HybridModel] | None = None,
    settle: Settle | None = None,
) -> Result:
    """Train ``method`` on ``task`` for every seed (one ensemble) and score each seed.

    ``model`` names a variant of the task's model by keyword arguments of ``task.make_model``
    (then ``model_label`` names it in the ``method`` column); ``make_model``, a factory of your
    own, replaces it in a run that is not cached (``cache=False``: such a run has no key); ``lr_milestones`` decays the learning rates tenfold
    at those epochs and ``settle`` trains by the book's protocol instead of for ``epochs``
    (:func:`~hsam_core.train.fit`). Returns the per-seed rows, the training
    history and the trained ensemble.
    Results are cached under their key (``cache=False`` always trains): in the settings' cache
    folder, a scratch folder in quick mode. The models train on ``device`` (default: the GPU when
    there is one).
    """
    settings = training_settings(
        epochs, batch_size, lr_nn, lr_phys, model_label, lr_milestones, settle
    )
    if cache and make_model is not None:
        raise ValueError(
            "a run with a factory of your own (make_model) has no key: pass cache=False, or "
            "name the model by keyword arguments of task.make_model (model={...})"
        )
    if cache:
        key_inputs = run_spec(task, method, seeds, settings, model)
        path = cache_path(key_inputs)
        if path.exists():
            saved = torch.load(path, weights_only=False)
            trained = load_ensemble(task, model, seeds, saved["model"], device)
            return Result(pd.DataFrame(saved["rows"]), saved["history"], trained)
    payload, trained = train_and_score(task, method, seeds, settings, model, device, make_model)
    if cache:
        save_result({**payload, "key": key_inputs}, path)
    return Result(pd.DataFrame(payload["rows"]), payload["history"], trained)


def theta_drift(series: dict[str, torch.Tensor], tail: float = 0.2) -> torch.Tensor:
    """How far θ still moves at the end of training, one value per member: over the last
    ``tail`` of the epochs, the largest relative distance of any series (E, K) — θ from
    :class:`History`, or a function of it such as a ratio for θ identifiable up to scale — from
    its final value,

        max_{series} max_{e ≥ (1 − tail) E} |θ_e − θ_E| / |θ_E|.
    """
    if not 0 < tail <= 1:
        raise ValueError(f"tail must be in (0, 1], got {tail}")
    if not series:
        raise ValueError("no series given")
    for name, values in series.items():
        if values.dim() != 2 or values.shape[0] < 2:
            raise ValueError(
                f"series {name!r} must have shape (epochs >= 2, K), got {tuple(values.shape)}"
            )
    starts = {name: min(int((1 - tail) * len(v)), len(v) - 2) for name, v in series.items()}
    return torch.stack([deviation({n: v}, starts[n]) for n, v in series.items()]).amax(dim=0)


def settled(series: dict[str, torch.Tensor], tail: float = 0.2, tol: float = 1e-3) -> torch.Tensor:
    """Has θ settled? One bool per member: :func:`theta_drift` below ``tol`` — over the last
    ``tail`` of the epochs every series stayed within ``tol`` of its final value, relative to
    that value. A result whose θ has not settled is reported as "not converged" beside its
    number."""
    return theta_drift(series, tail) < tol


def summarize(
    results: pd.DataFrame, columns: Sequence[str] = ("theta_rel_error", "test_mse")
) -> pd.DataFrame:
    """Median and interquartile range over seeds, one row per (method, ρ)."""
    grouped = results.groupby(["method", "rho"], sort=False)
    table = pd.DataFrame({"seeds": grouped.size()})
    for col in columns:
        q = grouped[col].quantile([0.25, 0.5, 0.75]).unstack()
        table[f"{col} median"] = q[0.5]
        table[f"{col} IQR"] = q[0.75] - q[0.25]
    return table


# The ρ grid of every task's full mode (one grid; the rule that picks from it: hsam_core.select):
# SAM perturbs the network by a step of length ρ; ASAM's ρ is relative to the weights' size,
# so its values are larger.
SAM_RHOS = (0.03, 0.05, 0.1, 0.2, 0.3)
ASAM_RHOS = (0.3, 1.0, 2.0)


@dataclass
class Config:
    """One row of a chapter's grid: a method, optionally on another model."""

    method: Method
    model: Mapping | None = None  # keyword arguments of task.make_model; None: the default
    model_label: str = ""

    @property
    def label(self) -> str:
        """The configuration's name in a results table: its model's label, else its method's."""
        return self.model_label or self.method.label

    @classmethod
    def comparison(
        cls,
        physics_only: Mapping,
        nn_only: Mapping,
        regularizers: Sequence[Regularizer],
        sam_variants: Sequence[Method],
    ) -> list[Config]:
        """The comparison of Part II, most informative first (a sweep cut short still has ERM
        and SAM): ERM; the ``sam_variants`` (SAM, ASAM at their ρ); the physics-only end; each
        of ``regularizers``; the NN-only end.

        The two ends are models of the task, as keyword arguments of its ``make_model``."""
        return [
            cls(Method.erm()),
            *[cls(method) for method in sam_variants],
            cls(Method.erm(), physics_only, "physics only"),
            *[cls(Method.regularized(reg)) for reg in regularizers],
            cls(Method.erm(), nn_only, "NN only"),
        ]


def run_grid(
    task: Task,
    grid: Sequence[Config],
    seeds: Sequence[int],
    **training,
) -> pd.DataFrame:
    """:func:`run` for every configuration of ``grid``; all rows in one table. Every row says
    whether its seed's θ settled (``converged``: 1.0, 0.0, NaN for a model without θ; see
    :func:`convergence`)."""
    frames = []
    for c in grid:
        result = run(task, c.method, seeds, model=c.model, model_label=c.model_label, **training)
        frames.append(result.rows)
    return pd.concat(frames, ignore_index=True)
