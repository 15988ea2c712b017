"""One training loop for every method: ERM, the regularizers, SAM, ASAM and LookSAM.

A method is a :class:`Method`: a regularizer (or none) and a SAM radius ρ (0 = plain Adam),
with which parameters SAM perturbs ("nn" — the hybrid variant — or "all"), whether it is
adaptive (ASAM) and how often the SAM gradient is computed (``every = k``: LookSAM, which
reuses it for k − 1 cheaper steps). :func:`fit` trains an
:class:`~hsam_core.ensemble.Ensemble` of K seeds at once; member k draws its own minibatch
order from its own seed, exactly as a separate run with that seed would. It also trains
several configurations that differ only in ρ and in SAM versus ASAM (ERM and the radii of
both grids), or only in a regularizer's strength, as one stacked ensemble, each with its own
radius or strength, protocol and history: for tiny networks a wider ensemble costs little more
per epoch than a narrow one.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

from .ensemble import Ensemble
from .metrics import fnn_sq_norm
from .regularizers import REGULARIZERS, Regularizer, from_params, per_member
from .sam import SAM, LookSAM


def _is_real(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _check_number(name: str, value: object, minimum: str, optional: bool = False) -> None:
    """``value`` a finite number ``> 0`` or ``>= 0`` (``minimum``), or ``None`` where
    ``optional``; else an error naming the argument, the value and what was expected."""
    if optional and value is None:
        return
    if (
        not _is_real(value)
        or not math.isfinite(value)
        or (value <= 0 if minimum == "> 0" else value < 0)
    ):
        expected = f"a finite number {minimum}"
        raise ValueError(
            f"fit: {name} must be {'None or ' if optional else ''}{expected}, got {value!r}"
        )


@dataclass(frozen=True)
class Method:
    """How to train. ``rho > 0`` means SAM (or ASAM if ``adaptive``) around Adam."""

    label: str
    rho: float = 0.0
    perturb: str = "nn"
    adaptive: bool = False
    eta: float = 0.01
    every: int = 1  # k of LookSAM: a full SAM step every k steps (1 = SAM)
    alpha: float = 0.7  # LookSAM's weight of the reused sharpness direction
    regularizer: Regularizer | None = None  # compared by its settings (Regularizer.params)

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label:
            raise ValueError(f"Method: label must be a non-empty string, got {self.label!r}")
        if self.perturb not in ("nn", "all"):
            raise ValueError(f"perturb must be 'nn' or 'all', got {self.perturb!r}")
        for name in ("rho", "eta", "alpha"):
            value = getattr(self, name)
            if not _is_real(value) or not math.isfinite(value) or value < 0:
                raise ValueError(f"Method: {name} must be a finite number >= 0, got {value!r}")
        if not isinstance(self.adaptive, bool):
            raise TypeError(f"Method: adaptive must be True or False, got {self.adaptive!r}")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(
                f"Method: every must be an int >= 1 (a SAM step every k steps), got {self.every!r}"
            )
        if self.every != 1 and self.rho == 0:
            raise ValueError(f"every = {self.every} amortises SAM steps: it needs rho > 0")
        if self.regularizer is not None and not isinstance(self.regularizer, Regularizer):
            raise TypeError(
                f"Method: regularizer must be a Regularizer or None, got {self.regularizer!r}"
            )

    @property
    def kind(self) -> str:
        """``"erm"``, ``"regularized"`` or ``"sam"`` (SAM, ASAM, LookSAM: ``rho > 0``)."""
        if self.rho > 0:
            return "sam"
        return "regularized" if self.regularizer is not None else "erm"

    def spec(self) -> dict:
        """Every field that determines how the method trains, as plain data: the method's
        identity in a results table and in a run's key (the label is only its name)."""
        reg = self.regularizer
        return {
            "kind": self.kind,
            "rho": self.rho,
            "perturb": self.perturb,
            "adaptive": self.adaptive,
            "eta": self.eta,
            "every": self.every,
            "alpha": self.alpha,
            "regularizer": None if reg is None else {"name": reg.name, **reg.params()},
        }

    @classmethod
    def from_spec(cls, label: str, spec: dict) -> Method:
        """The method of :meth:`spec` (``kind`` is implied by the other fields)."""
        fields = {k: v for k, v in spec.items() if k not in ("kind", "regularizer")}
        reg = spec.get("regularizer")
        if reg is not None:
            reg = dict(reg)
            fields["regularizer"] = from_params(reg.pop("name"), reg)
        method = cls(label, **fields)
        if "kind" in spec and method.kind != spec["kind"]:
            raise ValueError(
                f"{label}: spec says kind {spec['kind']!r}, fields say {method.kind!r}"
            )
        return method

    @classmethod
    def erm(cls) -> Method:
        """Empirical risk minimisation: Adam on the prediction loss."""
        return cls("ERM")

    @classmethod
    def regularized(cls, regularizer: Regularizer) -> Method:
        """Adam on the prediction loss plus a regularizer."""
        return cls(regularizer.name, regularizer=regularizer)

    @classmethod
    def sam(cls, rho: float, perturb: str = "nn") -> Method:
        """SAM around Adam; ``perturb="nn"`` leaves θ unperturbed (the hybrid variant)."""
        return cls(f"SAM ({perturb})", rho=rho, perturb=perturb)

    @classmethod
    def asam(cls, rho: float, eta: float = 0.01, perturb: str = "nn") -> Method:
        """Adaptive SAM (T = |w| + η) around Adam."""
        return cls(f"ASAM ({perturb})", rho=rho, perturb=perturb, adaptive=True, eta=eta)

    @classmethod
    def looksam(
        cls,
        rho: float,
        every: int = 5,
        alpha: float = 0.7,
        adaptive: bool = False,
        eta: float = 0.01,
        perturb: str = "nn",
    ) -> Method:
        """LookSAM: SAM (or ASAM) gradient every ``every`` steps, its sharpness direction
        reused with weight ``alpha`` in between (see :class:`~hsam_core.sam.LookSAM`)."""
        name = "LookASAM" if adaptive else "LookSAM"
        label = f"{name} ({perturb}) k={every}" + ("" if alpha == 0.7 else f" α={alpha:g}")
        return cls(
            label,
            rho=rho,
            perturb=perturb,
            adaptive=adaptive,
            eta=eta,
            every=every,
            alpha=alpha,
        )


@dataclass(frozen=True)
class Settle:
    """The book's training protocol: train at constant rates until θ settles, then decay the
    rates and confirm it. Every task and method is trained with it (:func:`fit`'s ``settle``).

    **Phase 1, constant rates.** Every ``check_every`` epochs from ``min_epochs`` on, each
    member's *drift* is measured over a trailing window of ``window`` × (epochs run so far),
    split into two halves:

        drift = max_i |θ̄_i(second half) − θ̄_i(first half)| / |θ̄_i(second half)|,

    the change of θ's average over half the window (θ̄: the mean over the half's epochs). Jitter
    from minibatches averages out; a steady drift of r per epoch shows as r · window · E / 2,
    so a slow drift must get slower as training goes on to pass — the window grows with E.
    Phase 1 ends at the first check where every member's drift is below ``tol``, or after
    ``max_epochs`` epochs (the budget): the *decay epoch*.

    **Phase 2, decay.** The learning rates are multiplied by each factor of ``gammas`` in turn,
    over ``decay_fraction`` × (decay epoch) epochs in all (at least ``min_decay_epochs``),
    split equally between the factors.

    **Verdict, per member.** *Settled* when its drift at the decay epoch was below ``tol`` (the
    decay did not freeze a moving θ) and, over the decay's last segment (the smallest rate),
    every θ stayed within ``tol`` of its final value, relative to it (:func:`deviation`). The
    first segments are not judged: there minibatch jitter — and SAM's oscillation across the
    valley — collapses onto its average, a move of the size of the jitter (up to ~0.3 % on the
    pendulum), not a walk; a walk is what the drift before the decay rules out. A member that
    used up the budget with its drift above ``tol`` is reported "not settled", with its drift.

    A model without θ (a network alone) is watched through its training loss instead, with
    ``loss_tol``: the loss of a network fitting noisy data levels off, its weights need not.
    """

    tol: float = 1e-3
    window: float = 0.2
    min_epochs: int = 100
    max_epochs: int = 5000
    check_every: int = 10
    gammas: tuple[float, ...] = (0.1, 0.01)
    decay_fraction: float = 0.1
    min_decay_epochs: int = 10
    loss_tol: float = 1e-2

    def __post_init__(self) -> None:
        for name in ("tol", "loss_tol"):
            value = getattr(self, name)
            if not _is_real(value) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"Settle: {name} must be a finite number > 0, got {value!r}")
        if not _is_real(self.window) or not 0 < self.window <= 1:
            raise ValueError(f"Settle: window must be in (0, 1], got {self.window!r}")
        if not _is_real(self.decay_fraction) or not 0 < self.decay_fraction <= 1:
            raise ValueError(
                f"Settle: decay_fraction must be in (0, 1], got {self.decay_fraction!r}"
            )
        for name in ("min_epochs", "max_epochs", "check_every", "min_decay_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Settle: {name} must be an int >= 1, got {value!r}")
        if self.min_epochs > self.max_epochs:
            raise ValueError(
                f"Settle: min_epochs ({self.min_epochs}) exceeds max_epochs ({self.max_epochs})"
            )
        if (
            not isinstance(self.gammas, tuple)
            or not self.gammas
            or not all(_is_real(g) and 0 < g <= 1 for g in self.gammas)
        ):
            raise ValueError(
                f"Settle: gammas must be a non-empty tuple of factors in (0, 1], got {self.gammas!r}"
            )

    @property
    def longest(self) -> int:
        """The most epochs a fit can take: the budget and its decay phase."""
        return self.max_epochs + self.decay_epochs(self.max_epochs)

    def decay_epochs(self, decay_epoch: int) -> int:
        """The length of the decay phase that starts at ``decay_epoch``."""
        length = max(self.min_decay_epochs, math.ceil(self.decay_fraction * decay_epoch))
        return len(self.gammas) * math.ceil(length / len(self.gammas))

    def drift(self, series: dict[str, torch.Tensor], epochs: int) -> torch.Tensor:
        """Each member's drift (K,) over the trailing window of the first ``epochs`` rows of
        ``series`` ({name: (E, K)}, E >= ``epochs``), as the class docstring defines it."""
        half = max(1, round(self.window * epochs / 2))
        drifts = []
        for values in series.values():
            values = values.reshape(values.shape[0], values.shape[1], -1)
            recent = values[epochs - half : epochs].mean(0)
            before = values[epochs - 2 * half : epochs - half].mean(0)
            drifts.append(((recent - before).abs() / recent.abs().clamp_min(1e-12)).amax(-1))
        return torch.stack(drifts).amax(0)

    @classmethod
    def from_params(cls, params: dict) -> Settle:
        """The protocol of :meth:`params`."""
        return cls(**{**params, "gammas": tuple(params.get("gammas", cls.gammas))})

    def params(self) -> dict:
        """The protocol's settings as plain data (a run's key holds them)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)} | {
            "gammas": list(self.gammas)
        }


def _positive(rho: float | torch.Tensor) -> bool:
    """Whether a radius, or any of per-member radii, is > 0."""
    return bool((torch.as_tensor(rho) > 0).any())


def make_optimizer(
    model: Ensemble,
    method: Method,
    lr_nn: float = 1e-3,
    lr_phys: float = 1e-2,
    rho: torch.Tensor | None = None,
    member_blocks: Sequence[int] | None = None,
    adaptive: torch.Tensor | None = None,
) -> torch.optim.Optimizer:
    """Adam with one group for the network and one for θ; wrapped in SAM when ``rho > 0``.
    Several configurations stacked into one model (:func:`fit`): ``rho`` and ``adaptive``, the
    per-member radii and ASAM flags (K,) in place of ``method.rho`` and ``method.adaptive``,
    and ``member_blocks``, the members of each configuration (SAM's ``member_blocks``)."""
    radius = method.rho if rho is None else rho
    groups = [
        {"params": model.ml_parameters(), "lr": lr_nn, "rho": radius},
        {
            "params": model.physics_parameters(),
            "lr": lr_phys,
            "rho": radius if method.perturb == "all" else 0.0,
        },
    ]
    groups = [g for g in groups if g["params"]]
    if not _positive(radius):
        return torch.optim.Adam([{k: v for k, v in g.items() if k != "rho"} for g in groups])
    if not any(_positive(g["rho"]) for g in groups):
        raise ValueError(f"{method.label}: the model has no parameters for SAM to perturb")
    options = dict(
        rho=radius,
        adaptive=method.adaptive if adaptive is None else adaptive,
        eta=method.eta,
        member_dim=0,
        member_blocks=member_blocks,
    )
    if method.every == 1:
        return SAM(groups, torch.optim.Adam, **options)
    return LookSAM(groups, torch.optim.Adam, k=method.every, alpha=method.alpha, **options)


def check_optimizer(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Refuse an optimizer that misses some of the model's parameters or holds foreign ones."""
    own = {id(p) for p in model.parameters() if p.requires_grad}
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    if own - held:
        names = [n for n, p in model.named_parameters() if id(p) in own - held]
        raise ValueError(f"the optimizer does not update these model parameters: {names}")
    if held - own:
        raise ValueError(
            f"the optimizer holds {len(held - own)} parameter tensor(s) that are not this "
            "model's (was it built for another model or before Ensemble stacked the members?)"
        )


@dataclass
class History:
    """Per-epoch training record; every tensor has shape (epochs, K)."""

    loss: torch.Tensor
    theta: dict[str, torch.Tensor]
    nn_norm: torch.Tensor
    seconds: float
    # With a protocol (:class:`Settle`): the epoch where the decay began, each member's drift
    # at that epoch (K,), and its verdict (K,) — None without one.
    decay_epoch: int | None = None
    drift_before_decay: torch.Tensor | None = None
    settled: torch.Tensor | None = None


def deviation(series: dict[str, torch.Tensor], start: int) -> torch.Tensor:
    """The largest relative distance (K,) of any series ({name: (E, K, ...)}) from its final
    value over epochs ``start`` … E − 1: max |v_e − v_E| / |v_E|."""
    worst = []
    for values in series.values():
        values = values.reshape(values.shape[0], values.shape[1], -1)
        last = values[-1]
        gap = (values[start:] - last).abs() / last.abs().clamp_min(1e-12)
        worst.append(gap.amax(dim=(0, 2)))
    return torch.stack(worst).amax(0)


def _clip_per_member_(params: list[torch.Tensor], max_norm: float) -> None:
    """Scale each member's whole gradient down to norm ``max_norm`` (direction unchanged)."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = sum(g.pow(2).reshape(g.shape[0], -1).sum(1) for g in grads).sqrt()
    scale = (max_norm / (norm + 1e-12)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *[1] * (g.dim() - 1)))


def _configurations(
    model: Ensemble | Sequence[Ensemble], method: Method | Sequence[Method]
) -> tuple[list[Ensemble], list[Method]]:
    """The ensembles and methods of :func:`fit`, one per configuration, checked: one ensemble
    and one method, or lists of equal length whose methods differ only in ρ, ``adaptive`` and
    the regularizer's strength (and label)."""
    several = not isinstance(model, torch.nn.Module) and isinstance(model, (list, tuple))
    if not several and not isinstance(model, Ensemble):
        raise TypeError(
            "fit trains an Ensemble (or a list of Ensembles, one per configuration); wrap a "
            "single model as Ensemble([model])"
        )
    models = list(model) if several else [model]
    if several != isinstance(method, (list, tuple)):
        raise TypeError(
            "fit: give one Ensemble and one Method, or a list of Ensembles and a list of "
            f"Methods of the same length (one per configuration); got {type(model).__name__} "
            f"and {type(method).__name__}"
        )
    methods = list(method) if several else [method]
    if several and (not models or len(models) != len(methods)):
        raise ValueError(
            f"fit: {len(models)} ensembles and {len(methods)} methods; give one method per "
            "ensemble (at least one)"
        )
    for i, (m, meth) in enumerate(zip(models, methods)):
        where = f"[{i}]" if several else ""
        if not isinstance(m, Ensemble):
            raise TypeError(f"fit: model{where} must be an Ensemble, got {type(m).__name__}")
        if not isinstance(meth, Method):
            raise TypeError(
                f"fit: method{where} must be a Method (e.g. Method.sam(0.1)), got "
                f"{type(meth).__name__}"
            )
    if not several:
        return models, methods
    if len({id(m) for m in models}) != len(models):
        raise ValueError("fit: an ensemble appears twice in model; give each configuration its own")
    shared = [stack_fields(meth.spec()) for meth in methods]
    for meth, fields in zip(methods[1:], shared[1:]):
        if fields != shared[0]:
            differ = sorted(k for k in fields if fields[k] != shared[0][k])
            raise ValueError(
                f"fit: the configurations trained together must differ only in rho, adaptive "
                f"and the regularizer's strength; "
                f"{meth.label} differs from {methods[0].label} in {differ}"
            )
    return models, methods


def stack_fields(spec: dict) -> dict:
    """What configurations trained as one stack share: a method's specification
    (:meth:`Method.spec`, or a run's ``spec["method"]``) without its label, ρ, ``adaptive``,
    ``kind`` (ERM is SAM at ρ = 0) and its regularizer's strength."""
    fields = {k: v for k, v in spec.items() if k not in ("label", "kind", "rho", "adaptive")}
    reg = fields.get("regularizer")
    if reg is not None:
        strength = REGULARIZERS[reg["name"]].strength
        fields["regularizer"] = {k: v for k, v in reg.items() if k != strength}
    return fields


def fit(
    model: Ensemble | Sequence[Ensemble],
    data,
    method: Method | Sequence[Method],
    epochs: int | None = None,
    batch_size: int | None = None,
    lr_nn: float = 1e-3,
    lr_phys: float = 1e-2,
    clip: float | None = None,
    seeds: list[int] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    progress: bool = False,
    lr_milestones: Sequence[int] = (),
    lr_gamma: float = 0.1,
    settle: Settle | None = None,
    watch: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
) -> History | list[History]:
    """Train ``model`` (an ensemble of K members) on ``data`` with ``method``.

    **Several configurations at once.** ``model`` a list of ensembles and ``method`` a list of
    methods, one per configuration, that differ only in ρ, ``adaptive`` and the regularizer's
    strength (e.g. the radii of SAM's and ASAM's grids, or L2's λ grid): they train as one
    stacked ensemble (:meth:`Ensemble.stack`) whose member k has its configuration's radius
    ρ_k and SAM or ASAM (:class:`~hsam_core.sam.SAM`'s per-member radii and flags), its
    strength (:func:`~hsam_core.regularizers.per_member`), and draws its minibatches from its
    own seed. With ``settle`` each configuration follows the protocol on its own: its decay
    begins when *its* members have settled (or at the budget), its rates decay on its own
    schedule, and once its decay has ended its members leave the stack while the others train
    on (they cost nothing more). Rates are per parameter group, so a configuration whose
    factor γ_c is below the largest γ of the epoch has its members' steps scaled, w ← w_old +
    (γ_c / γ_max)(w_new − w_old) — Adam's step is linear in its rate, so that is the step at
    the rate γ_c. Each ensemble of the list is trained in place and gets its own
    :class:`History` (its members, epochs, decay epoch, drift and verdict): the numbers a fit
    of it alone gives, up to float rounding. Returns the list of histories.

    Args:
        data: a :class:`~hsam_core.data.Trajectories` (windows) or :class:`~hsam_core.data.Pairs`.
        batch_size: minibatch size, an int >= 1; ``None`` (or any size >= the number of
            samples) = full batch.
        clip: clip each member's update gradient to this norm (> 0). With SAM the clipping happens
            inside the closure, i.e. on both gradients: on the first it changes nothing (SAM
            normalises it), on the second it clips the gradient that makes the update.
        seeds: member k's minibatch order comes from ``seeds[k]`` (default: ``model.seeds``,
            the seeds its members were initialised with; with several configurations, the
            stacked members').
        optimizer: defaults to :func:`make_optimizer`; a custom one must hold exactly the
            model's parameters (one configuration only).
        progress: show a tqdm bar over epochs.
        lr_milestones: step decay (torch's ``MultiStepLR``): every learning rate is multiplied
            by ``lr_gamma`` at the start of each of these epochs, e.g. ``(600,)`` trains the
            last epochs of a 700-epoch run at a tenth of the rate, once θ has settled.
        settle: train by the book's protocol instead of for a fixed number of epochs (give
            ``epochs`` or ``settle``, not both): constant rates until θ settles, then a decay
            (:class:`Settle`); the history records the decay epoch, the drift before it and
            each member's verdict.
        watch: with ``settle``, the quantities whose settling is tested, as a function of θ's
            history ({name: (E, K)} → {name: (E, K)}) — e.g. ratios, for θ identifiable only
            up to scale. Default: θ itself.
    """
    models, methods = _configurations(model, method)
    several = len(models) > 1 or not isinstance(model, Ensemble)
    if not all(callable(getattr(data, a, None)) for a in ("loss", "to", "__len__")):
        raise TypeError(
            "fit: data must be a Trajectories or Pairs (an object with __len__, to and loss), "
            f"got {type(data).__name__}"
        )
    if len(data) < 1:
        raise ValueError("fit: data holds no samples")
    if settle is not None:
        if not isinstance(settle, Settle):
            raise TypeError(f"fit: settle must be a Settle or None, got {settle!r}")
        if epochs is not None or list(lr_milestones):
            raise ValueError(
                "fit: settle decides when to decay and stop; give it without epochs and "
                f"lr_milestones (got epochs={epochs!r}, lr_milestones={tuple(lr_milestones)})"
            )
        capacity = settle.longest
    elif isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    else:
        capacity = epochs
    if watch is not None and not callable(watch):
        raise TypeError(f"fit: watch must be a function of θ's history or None, got {watch!r}")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(
            f"fit: batch_size must be None (full batch) or an int >= 1, got {batch_size!r}"
        )
    _check_number("lr_nn", lr_nn, ">= 0")  # 0 freezes a part (e.g. θ at its initial value)
    _check_number("lr_phys", lr_phys, ">= 0")
    _check_number("clip", clip, "> 0", optional=True)
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"fit: optimizer must be None or a torch.optim.Optimizer, got {optimizer!r}"
        )
    if optimizer is not None and several:
        raise ValueError(
            "fit: several configurations build their own optimizer (one radius per member); "
            "give optimizer=None"
        )
    method = methods[0]
    model = Ensemble.stack(models) if several else models[0]
    sizes = [m.size for m in models]
    bounds = [sum(sizes[:c]) for c in range(len(sizes) + 1)]
    members = [slice(a, b) for a, b in zip(bounds, bounds[1:])]
    k = model.size
    seeds = list(model.seeds if seeds is None else seeds)
    if len(seeds) != k:
        raise ValueError(f"{len(seeds)} seeds for an ensemble of {k} members")
    if any(isinstance(s, bool) or not isinstance(s, numbers.Integral) for s in seeds):
        raise ValueError(f"fit: seeds must be ints, got {seeds!r}")
    lr_milestones = list(lr_milestones)
    if (
        any(isinstance(m, bool) or not isinstance(m, int) for m in lr_milestones)
        or not _is_real(lr_gamma)
        or any(not 0 < m < capacity for m in lr_milestones)
        or not 0 < lr_gamma <= 1
    ):
        raise ValueError(
            f"lr_milestones must lie in (0, epochs = {capacity}) and lr_gamma in (0, 1]; got "
            f"{tuple(lr_milestones)} and {lr_gamma}"
        )
    if several:  # member k perturbed with its configuration's radius, as SAM or ASAM
        radii = [float(m.rho) for m, size in zip(methods, sizes) for _ in range(size)]
        rho = torch.tensor(radii, dtype=torch.float64)
        adaptive = torch.tensor(
            [m.adaptive for m, size in zip(methods, sizes) for _ in range(size)]
        )
        optimizer = make_optimizer(
            model, method, lr_nn, lr_phys, rho, member_blocks=sizes, adaptive=adaptive
        )
    optimizer = optimizer or make_optimizer(model, method, lr_nn, lr_phys)
    check_optimizer(model, optimizer)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, lr_milestones, lr_gamma)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    label = method.label
    if several:
        label = ", ".join(f"{m.label} rho={m.rho:g}" for m in methods)
    reg = method.regularizer
    if reg is not None and several:  # member k with its configuration's strength
        reg = per_member([m.regularizer for m in methods], sizes)
    if reg is not None:
        reg.reset(k)
    n = len(data)
    batch = n if batch_size is None else min(batch_size, n)
    device = next(model.parameters()).device
    data = data.to(device)
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
    params = list(model.parameters())
    # the members still in the stack, of the K at the start: a configuration whose protocol has
    # ended leaves it (_leave), so that the others train on without computing its members
    active = torch.arange(k)
    running = list(range(len(models)))  # the configurations still in the stack

    def run_batch(
        idx: torch.Tensor, rate: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        def closure():
            optimizer.zero_grad()
            loss, states = data.loss(model, idx)
            objective = loss if reg is None else reg.objective(model, loss, states)
            objective.sum().backward()  # a sum: every member gets its own gradient
            if clip is not None:
                _clip_per_member_(params, clip)
            closure.states = states
            return loss.detach()

        if rate is None:
            return optimizer.step(closure), closure.states
        before = [p.detach().clone() for p in params]
        loss = optimizer.step(closure)
        with torch.no_grad():  # member k's step at rate[k] × the groups' rates (0: frozen)
            for p, old in zip(params, before):
                p.copy_(torch.lerp(old, p, rate.view(-1, *[1] * (p.dim() - 1))))
        return loss, closure.states

    # The history is allocated once and filled in place: a copy of θ per epoch (an identity-
    # mapped θ is the parameter itself, so storing it would store a reference to the final
    # value), and no small long-lived tensor per epoch, which fragments the heap (resident
    # memory grew by ~0.8 MB per full-batch step of a 5-member static hybrid before).
    history_loss = torch.zeros(capacity, k)
    history_norm = torch.zeros(capacity, k)
    history_theta = {
        name: torch.zeros((capacity, *value.shape), dtype=value.dtype)
        for name, value in model.theta().items()
    }
    protocols = []
    if settle is not None:
        protocols = [
            _Protocol(settle, history_loss, history_theta, watch, part) for part in members
        ]
    end = capacity
    rate = None  # each member's factor of the groups' rates; None: all 1
    bar = tqdm(total=end, disable=not progress, desc=label)
    start = time.perf_counter()
    epoch = 0
    while epoch < end:
        order = [torch.randperm(n, generator=generators[i]) for i in active.tolist()]
        order = torch.stack(order).to(device)
        epoch_loss = torch.zeros(len(active), device=device)
        epoch_norm = torch.zeros(len(active), device=device)
        for start_idx in range(0, n, batch):
            idx = order[:, start_idx : start_idx + batch]
            try:
                loss, states = run_batch(idx, rate)
            except FloatingPointError as err:
                raise FloatingPointError(f"{label}, epoch {epoch}: {err}") from err
            if not torch.isfinite(loss).all():
                bad = [seeds[int(i)] for i, x in zip(active, loss) if not torch.isfinite(x)]
                raise FloatingPointError(
                    f"{label}: the training loss became non-finite at epoch {epoch} "
                    f"for seed(s) {bad}; lower the learning rate or ρ"
                )
            if reg is not None:
                reg.after_step(loss)
            with torch.no_grad():
                epoch_loss += loss * idx.shape[1] / n
                epoch_norm += fnn_sq_norm(model, states.detach()) * idx.shape[1] / n
        schedule.step()
        history_loss[epoch, active] = epoch_loss.cpu()
        history_norm[epoch, active] = epoch_norm.cpu()
        with torch.no_grad():
            for name, value in model.theta().items():
                history_theta[name][epoch, active] = value.cpu()
        epoch += 1
        bar.update()
        if protocols:
            gammas = [protocol.after_epoch(epoch) for protocol in protocols]
            end = max(protocol.end for protocol in protocols)
            ended = [c for c in running if gammas[c] == 0]
            if ended and len(ended) < len(running):  # they leave; the others train on
                gone = torch.zeros(len(active), dtype=torch.bool)
                for c in ended:
                    mine = _local(active, members[c])
                    _copy_weights(model, models[c], mine)
                    gone[mine] = True
                running = [c for c in running if c not in ended]
                active = active[~gone]
                _leave(model, optimizer, reg, ~gone, [sizes[c] for c in running])
            rate = _set_rates(optimizer, base_lrs, gammas, sizes, device)
            rate = None if rate is None else rate[active.to(device)]
            if rate is not None and bool((rate == 1).all()):
                rate = None  # the configurations left all train at the groups' rates
            bar.total = end
    bar.close()
    seconds = time.perf_counter() - start
    if not several:
        history = History(
            loss=history_loss[:end],
            theta={name: values[:end] for name, values in history_theta.items()},
            nn_norm=history_norm[:end],
            seconds=seconds,
        )
        return history if not protocols else protocols[0].verdict(history)
    ends = [protocol.end for protocol in protocols] if protocols else [end] * len(models)
    work = [size * length for size, length in zip(sizes, ends)]
    histories = []
    for c, (part, length) in enumerate(zip(members, ends)):
        history = History(
            loss=history_loss[:length, part].clone(),
            theta={name: v[:length, part].clone() for name, v in history_theta.items()},
            nn_norm=history_norm[:length, part].clone(),
            seconds=seconds * work[c] / sum(work),  # its share of the member-epochs
        )
        histories.append(history if not protocols else protocols[c].verdict(history))
    for c in running:  # each configuration's ensemble, trained in place (the others: on leaving)
        _copy_weights(model, models[c], _local(active, members[c]))
    return histories


def _local(active: torch.Tensor, part: slice) -> torch.Tensor:
    """The positions in the stack of a configuration's members (``part``, of the members at
    the start of the fit) while the members ``active`` remain."""
    return torch.nonzero((active >= part.start) & (active < part.stop)).flatten()


def _copy_weights(stack: Ensemble, ensemble: Ensemble, positions: torch.Tensor) -> None:
    """Copy the members at ``positions`` of ``stack`` into ``ensemble`` (its configuration)."""
    trained = dict(stack.named_parameters())
    with torch.no_grad():
        for name, p in ensemble.named_parameters():
            p.copy_(trained[name][positions.to(p.device)])


def _leave(
    model: Ensemble,
    optimizer: torch.optim.Optimizer,
    reg: Regularizer | None,
    keep: torch.Tensor,
    blocks: list[int],
) -> None:
    """Shrink a stacked fit to the members ``keep`` (a boolean mask over the stack), in place:
    the parameters (the same Parameter objects), every per-member optimizer state (Adam's
    moments, LookSAM's stored gradient) and setting (SAM's radii and ASAM flags, ``blocks``
    the remaining configurations' sizes), and the regularizer's strengths. The members kept
    continue exactly as before: nothing couples them to those that leave."""
    old = model.size
    with torch.no_grad():
        for p in model.parameters():
            p.data = p.data[keep.to(p.device)]
    states = [optimizer.state, getattr(optimizer, "base_optimizer", optimizer).state]
    for state in {id(s): s for s in states}.values():
        for values in state.values():
            for key, value in values.items():
                if torch.is_tensor(value) and value.dim() > 0 and value.shape[0] == old:
                    values[key] = value[keep.to(value.device)]
    for group in optimizer.param_groups:
        for key in ("rho", "adaptive"):
            value = group.get(key)
            if torch.is_tensor(value) and value.dim() > 0:
                group[key] = value[keep.to(value.device)]
    if getattr(optimizer, "member_blocks", None) is not None:
        optimizer.member_blocks = blocks
    model.size = int(keep.sum())
    model.seeds = [s for s, kept in zip(model.seeds, keep.tolist()) if kept]
    if reg is not None:
        reg.keep(keep)


def _set_rates(
    optimizer: torch.optim.Optimizer,
    base_lrs: list[float],
    gammas: list[float],
    sizes: list[int],
    device: torch.device,
) -> torch.Tensor | None:
    """Set each group's rate to its base rate × the largest γ of the configurations, and
    return each member's factor γ_c / γ_max of it (None when every factor is 1)."""
    top = max(gammas)
    if top == 0:  # every configuration has ended: the fit stops here
        return None
    for group, lr in zip(optimizer.param_groups, base_lrs):
        group["lr"] = lr * top
    if all(gamma == top for gamma in gammas):
        return None
    factors = [gamma / top for gamma, size in zip(gammas, sizes) for _ in range(size)]
    return torch.tensor(factors, device=device)


class _Protocol:
    """:class:`Settle` applied to one configuration — the ``members`` of the ensemble — during
    a :func:`fit`: decides its decay epoch and the factor of its learning rates, and gives the
    verdict. ``history_loss`` and ``history_theta`` are the fit's buffers ((E, K) each)."""

    def __init__(
        self,
        settle: Settle,
        history_loss: torch.Tensor,
        history_theta: dict,
        watch,
        members: slice = slice(None),
    ) -> None:
        self.settle = settle
        self.loss = history_loss
        self.theta = history_theta
        self.watch = watch or (lambda theta: theta)
        self.members = members
        self.decay_epoch: int | None = None
        self.drift: torch.Tensor | None = None
        self.end = settle.longest

    def series(self, epochs: int) -> tuple[dict, float]:
        """The watched series of its members over the first ``epochs`` epochs, and their
        tolerance."""
        part = self.members
        if self.theta:
            watched = self.watch({n: v[:epochs, part] for n, v in self.theta.items()})
            return watched, self.settle.tol
        return {"loss": self.loss[:epochs, part]}, self.settle.loss_tol

    def after_epoch(self, epoch: int) -> float:
        """Called after ``epoch`` epochs: decides the decay epoch (and with it ``end``, the
        epoch count at which the configuration stops), and returns the factor of the base
        learning rates for the next epoch: 1 before the decay, the decay's factor during it,
        0 once the configuration has ended."""
        s = self.settle
        if self.decay_epoch is None:
            due = epoch >= s.min_epochs and epoch % s.check_every == 0
            if due or epoch >= s.max_epochs:
                series, tol = self.series(epoch)
                drift = s.drift(series, epoch)
                if bool((drift < tol).all()) or epoch >= s.max_epochs:
                    self.decay_epoch, self.drift = epoch, drift
                    self.end = epoch + s.decay_epochs(epoch)
        if self.decay_epoch is None:
            return 1.0
        if epoch >= self.end:
            return 0.0
        length = self.end - self.decay_epoch
        return s.gammas[(epoch - self.decay_epoch) * len(s.gammas) // length]

    def verdict(self, history: History) -> History:
        """``history`` (its members' record, ending at ``end``) with the protocol's record."""
        end = len(history.loss)
        series, tol = self.series(end)
        if not self.theta:  # the loss of the decay phase is lower by construction
            series = {}
        last = end - (end - self.decay_epoch) // len(self.settle.gammas)  # the last segment
        still = deviation(series, last) if series else torch.zeros_like(self.drift)
        history.decay_epoch = self.decay_epoch
        history.drift_before_decay = self.drift
        history.settled = (self.drift < tol) & (still < tol)
        return history
