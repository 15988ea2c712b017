"""The regularizer baselines that SAM is compared with. Each is tailored to one architecture.

A regularizer turns the per-member prediction loss L_k (K,) into the per-member objective that
is minimised; all work on an :class:`~hsam_core.ensemble.Ensemble` (K members, summed).

* :class:`L2` — weight decay on the network only: L + λ Σ ‖w_nn‖².
* :class:`Aphynity` — Yin et al. (2021): λ L + ‖f_nn‖² on the observed states, with the adaptive
  multiplier λ ← λ + τ₂ L every ``every`` steps (τ₂ = 0 keeps λ fixed).
* :class:`Orthogonality` — Takeishi & Kalousis (2023): L + c |mean ⟨f_phys(x), f_nn(x)⟩|.
"""

from __future__ import annotations

import torch

from .metrics import fnn_sq_norm


class Regularizer:
    """Interface: ``reset`` before a fit, ``objective`` per step, ``after_step`` after it."""

    name = "regularizer"

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


class L2(Regularizer):
    """L + weight · Σ_w∈NN ‖w‖² (the physics parameters are not penalised)."""

    name = "L2"

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def params(self) -> dict:
        return {"weight": self.weight}

    def objective(self, model, loss, states):
        penalty = sum(p.pow(2).flatten(1).sum(1) for p in model.ml_parameters())
        return loss + self.weight * penalty


class Aphynity(Regularizer):
    """APHYNITY: λ_k L_k + mean ‖f_nn(x)‖² / P over the observed states x.

    ``normalized`` divides each ‖f_nn(x)‖² by (‖x‖ + 1e-5)², as APHYNITY does for the pendulum.
    ``points`` = P divides it by the number of grid points of a field state, as APHYNITY does for
    reaction–diffusion (its code averages the squared norm over the channels' pixels: for a
    2×32×32 state ‖f_nn(x)‖² / 1024, while L is a mean over every entry).
    Every ``every`` steps, λ_k ← λ_k + τ₂ · L_k (λ only grows; τ₂ = 0 keeps it at λ₀).
    """

    name = "APHYNITY"

    def __init__(
        self,
        lambda0: float = 1.0,
        tau2: float = 1.0,
        every: int = 5,
        normalized: bool = False,
        points: int = 1,
    ) -> None:
        if points < 1:
            raise ValueError(f"points must be a positive number of grid points, got {points}")
        self.lambda0, self.tau2, self.every, self.normalized = lambda0, tau2, every, normalized
        self.points = points
        self.lam = torch.tensor([lambda0])
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
        self.lam = torch.full((members,), float(self.lambda0))
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

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def params(self) -> dict:
        return {"weight": self.weight}

    def objective(self, model, loss, states):
        phys, net = model(states)
        inner = (phys * net).flatten(2).sum(-1).mean(-1)
        return loss + self.weight * inner.abs()


REGULARIZERS: dict[str, type[Regularizer]] = {r.name: r for r in (L2, Aphynity, Orthogonality)}


def from_params(name: str, params: dict) -> Regularizer:
    """The regularizer ``name`` (``"L2"``, ``"APHYNITY"``, ``"orthogonality"``) built with
    ``params``, as :meth:`Regularizer.params` returns them."""
    if name not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {name!r}; known: {sorted(REGULARIZERS)}")
    return REGULARIZERS[name](**params)
