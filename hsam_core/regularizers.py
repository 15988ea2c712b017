"""The regularizer baselines that SAM is compared with. Each is tailored to one architecture.

A regularizer turns the per-member prediction loss L_k (K,) into the per-member objective that
is minimised; all work on an :class:`~hsam_core.ensemble.Ensemble` (K members, summed).

* :class:`L2` — weight decay on the network only: L + λ Σ ‖w_nn‖².
* :class:`Aphynity` — Yin et al. (2021): λ L + ‖f_nn‖² on the observed states, with the adaptive
  multiplier λ ← λ + τ₂ L every ``every`` steps (τ₂ = 0 keeps λ fixed).
* :class:`Orthogonality` — Takeishi & Kalousis (2023): L + c |mean ⟨f_phys(x), f_nn(x)⟩|.

Each has one *strength* (``strength`` names it: λ, λ₀ or c), the setting its grid varies.
:func:`per_member` joins the regularizers of configurations stacked into one ensemble (a grid of
strengths trained as one model, :func:`hsam_core.train.fit`): member k gets its configuration's
strength, a tensor (K,) where a single configuration has a number.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .metrics import fnn_sq_norm


class Regularizer:
    """Interface: ``reset`` before a fit, ``objective`` per step, ``after_step`` after it."""

    name = "regularizer"
    strength = ""  # the constructor argument a grid varies
    state: tuple[str, ...] = ()  # attributes that hold per-member state during a fit

    def params(self) -> dict:
        """The settings the regularizer was built with (its constructor's arguments): what
        identifies it in a results table and a run's key."""
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.params() == self.params()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.params().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def reset(self, members: int) -> None:
        """Start a new fit of ``members`` models."""

    def objective(self, model, loss: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self, loss: torch.Tensor) -> None:
        """Called with the step's prediction loss (K,) after each optimizer step."""

    def keep(self, members: torch.Tensor) -> None:
        """Keep the per-member state of ``members`` only (a boolean mask over the K members):
        the configurations whose fit has ended leave a stacked fit."""
        for name in (self.strength, *self.state):
            value = getattr(self, name, None) if name else None
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                setattr(self, name, value[members.to(value.device)])


class L2(Regularizer):
    """L + weight · Σ_w∈NN ‖w‖² (the physics parameters are not penalised)."""

    name = "L2"
    strength = "weight"

    def __init__(self, weight: float | torch.Tensor) -> None:
        self.weight = weight

    def params(self) -> dict:
        return {"weight": self.weight}

    def objective(self, model, loss, states):
        penalty = sum(p.pow(2).flatten(1).sum(1) for p in model.ml_parameters())
        return loss + _on(self.weight, loss) * penalty


class Aphynity(Regularizer):
    """APHYNITY: λ_k L_k + mean ‖f_nn(x)‖² / P over the observed states x.

    ``normalized`` divides each ‖f_nn(x)‖² by (‖x‖ + 1e-5)², as APHYNITY does for the pendulum.
    ``points`` = P divides it by the number of grid points of a field state, as APHYNITY does for
    reaction–diffusion (its code averages the squared norm over the channels' pixels: for a
    2×32×32 state ‖f_nn(x)‖² / 1024, while L is a mean over every entry).
    Every ``every`` steps, λ_k ← λ_k + τ₂ · L_k (λ only grows; τ₂ = 0 keeps it at λ₀).
    """

    name = "APHYNITY"
    strength = "lambda0"
    state = ("lam",)

    def __init__(
        self,
        lambda0: float | torch.Tensor = 1.0,
        tau2: float = 1.0,
        every: int = 5,
        normalized: bool = False,
        points: int = 1,
    ) -> None:
        if points < 1:
            raise ValueError(f"points must be a positive number of grid points, got {points}")
        self.lambda0, self.tau2, self.every, self.normalized = lambda0, tau2, every, normalized
        self.points = points
        self.lam = torch.as_tensor(lambda0, dtype=torch.float32).reshape(-1).clone()
        self.steps = 0

    def params(self) -> dict:
        return {
            "lambda0": self.lambda0,
            "tau2": self.tau2,
            "every": self.every,
            "normalized": self.normalized,
            "points": self.points,
        }

    def reset(self, members: int) -> None:
        self.lam = torch.as_tensor(self.lambda0, dtype=torch.float32).expand(members).clone()
        self.steps = 0

    def objective(self, model, loss, states):
        self.lam = self.lam.to(loss.device)
        return self.lam * loss + fnn_sq_norm(model, states, self.normalized) / self.points

    def after_step(self, loss: torch.Tensor) -> None:
        self.steps += 1
        if self.steps % self.every == 0:
            self.lam = self.lam + self.tau2 * loss.detach()


class Orthogonality(Regularizer):
    """L + c · |mean_x ⟨f_phys(x), f_nn(x)⟩| over the observed states."""

    name = "orthogonality"
    strength = "weight"

    def __init__(self, weight: float | torch.Tensor) -> None:
        self.weight = weight

    def params(self) -> dict:
        return {"weight": self.weight}

    def objective(self, model, loss, states):
        phys, net = model(states)
        inner = (phys * net).flatten(2).sum(-1).mean(-1)
        return loss + _on(self.weight, loss) * inner.abs()


def _on(strength: float | torch.Tensor, like: torch.Tensor) -> float | torch.Tensor:
    """A number as it is; per-member strengths (K,) on ``like``'s device."""
    return strength.to(like.device) if isinstance(strength, torch.Tensor) else strength


REGULARIZERS: dict[str, type[Regularizer]] = {r.name: r for r in (L2, Aphynity, Orthogonality)}


def per_member(regularizers: Sequence[Regularizer], sizes: Sequence[int]) -> Regularizer:
    """One regularizer for configurations stacked into one ensemble, configuration c's
    ``sizes[c]`` members in a row: the configurations' ``regularizers``, of one kind and differing
    at most in their strength, as one whose strength is a float32 tensor (K,) — member k's its
    configuration's. ``ValueError`` names a pair that differs otherwise."""
    first = regularizers[0]
    if len(regularizers) != len(sizes):
        raise ValueError(f"{len(regularizers)} regularizers for {len(sizes)} configurations")
    rest = {k: v for k, v in first.params().items() if k != first.strength}
    for other in regularizers[1:]:
        mine = {k: v for k, v in other.params().items() if k != first.strength}
        if type(other) is not type(first) or mine != rest:
            raise ValueError(
                f"configurations trained together must differ only in the regularizer's "
                f"strength; {other!r} differs from {first!r}"
            )
    values = [
        float(r.params()[first.strength]) for r, n in zip(regularizers, sizes) for _ in range(n)
    ]
    return type(first)(**rest, **{first.strength: torch.tensor(values, dtype=torch.float32)})


def from_params(name: str, params: dict) -> Regularizer:
    """The regularizer ``name`` (``"L2"``, ``"APHYNITY"``, ``"orthogonality"``) built with
    ``params``, as :meth:`Regularizer.params` returns them."""
    if name not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {name!r}; known: {sorted(REGULARIZERS)}")
    return REGULARIZERS[name](**params)
