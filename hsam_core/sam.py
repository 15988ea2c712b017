"""Sharpness-aware minimization (SAM / ASAM) with per-group ρ — one file, torch only.

SAM (Foret et al., 2021) minimises the worst loss in a ball around the weights,

    min_w  max_{‖ε‖ ≤ ρ}  L(w + ε),

with the one-step approximation of the inner maximum

    ε = ρ · T² g / ‖T g‖₂,     g = ∇L(w),

where T = 1 for SAM and T = diag(|w| + η) for adaptive SAM (ASAM, Kwon et al., 2021). The
update is then the base optimizer's step with the gradient ∇L(w + ε), taken at w.

What this file adds to the usual davda54/sam wrapper, for hybrid models:

* **per-group ρ**: a group with ``rho=0`` is *updated but never perturbed*. Perturbing only the
  neural network of a hybrid model is
  ``SAM([{"params": nn_params}, {"params": physics_params, "rho": 0.0}], torch.optim.Adam,
  rho=0.1, lr=1e-3)``;
* the norm ‖T g‖ is taken over the **perturbed parameters only**;
* ``step(closure)`` follows the torch convention: it calls the closure itself at w;
* weights are restored **by copy**, never by subtraction;
* ``state_dict`` / ``load_state_dict`` carry the base optimizer's state;
* ``member_dim``: for an ensemble whose parameters stack K independent models along one
  dimension, every member gets its own norm ‖T g‖_k, exactly as K separate SAM optimizers.

Copy this file alone into a project: it depends on torch only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch


def _check_rho(rho: Any, where: str) -> None:
    if not isinstance(rho, (int, float)) or not math.isfinite(rho) or rho < 0:
        raise ValueError(f"SAM: rho must be a finite number >= 0, got {rho!r} ({where})")


class SAM(torch.optim.Optimizer):
    """SAM / ASAM around any torch optimizer.

    Args:
        params: tensors or param-group dicts, as for any torch optimizer. A group may carry its
            own ``rho`` (``0`` = updated, never perturbed), ``adaptive`` and ``eta``.
        base_optimizer: an optimizer *class*, e.g. ``torch.optim.Adam``; it is built over the
            same param groups with ``**kwargs``.
        rho: radius ρ of the neighbourhood (default for groups that do not set one).
        adaptive: ASAM — scale the neighbourhood by T = |w| + η.
        eta: η of ASAM; with ``eta=0`` ASAM equals the davda54 / pytorch_optimizer variant.
        member_dim: if given, every perturbed parameter stacks K independent models along this
            dimension, and the norm ‖T g‖ is taken per member.
        **kwargs: passed to ``base_optimizer`` (``lr``, ``betas``, ...).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: type[torch.optim.Optimizer],
        rho: float = 0.05,
        adaptive: bool = False,
        eta: float = 0.01,
        member_dim: int | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(base_optimizer, type) or not issubclass(
            base_optimizer, torch.optim.Optimizer
        ):
            raise TypeError(
                "SAM: base_optimizer must be an optimizer class such as torch.optim.Adam, "
                f"got {base_optimizer!r}"
            )
        _check_rho(rho, "default rho")
        if not math.isfinite(eta) or eta < 0:
            raise ValueError(f"SAM: eta must be a finite number >= 0, got {eta!r}")
        defaults = dict(rho=rho, adaptive=adaptive, eta=eta, **kwargs)
        super().__init__(params, defaults)
        for i, group in enumerate(self.param_groups):
            _check_rho(group["rho"], f"param group {i}")
        # The base optimizer shares our param groups, so lr schedules and per-group options
        # act on both (the davda54 convention).
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)
        self.member_dim = member_dim
        self._perturbed: list[torch.Tensor] | None = None  # parameters moved by first_step

    def _perturbed_params(self) -> list[tuple[dict[str, Any], torch.Tensor]]:
        return [
            (group, p)
            for group in self.param_groups
            if group["rho"] > 0
            for p in group["params"]
            if p.grad is not None
        ]

    def _scaled_grad_norm(self, pairs: list[tuple[dict[str, Any], torch.Tensor]]) -> torch.Tensor:
        """‖T g‖₂ over the perturbed parameters: a scalar, or one value per ensemble member."""
        squares = []
        for group, p in pairs:
            tg = (p.abs() + group["eta"]) * p.grad if group["adaptive"] else p.grad
            if self.member_dim is None:
                squares.append(tg.pow(2).sum())
            else:
                dims = [d for d in range(tg.dim()) if d != self.member_dim % tg.dim()]
                squares.append(tg.pow(2).sum(dim=dims) if dims else tg.pow(2))
        return torch.stack(squares).sum(dim=0).sqrt()

    def _per_member(self, scale: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Reshape a per-member scale (K,) so that it broadcasts against ``p``."""
        if self.member_dim is None:
            return scale
        shape = [1] * p.dim()
        shape[self.member_dim % p.dim()] = -1
        return scale.view(shape)

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Climb to w + ε, ε = ρ T² g / ‖T g‖, saving w. A zero norm gives ε = 0."""
        pairs = self._perturbed_params()
        if pairs:
            norm = self._scaled_grad_norm(pairs)
            if not torch.isfinite(norm).all():
                raise FloatingPointError(
                    "SAM.first_step: the gradient norm over the perturbed parameters is not "
                    f"finite ({norm.tolist()}); the loss or its gradient contains inf or NaN"
                )
            # Where the norm is zero there is no ascent direction: stay at w (ε = 0).
            inv_norm = torch.where(norm > 0, 1.0 / norm.clamp_min(1e-30), torch.zeros_like(norm))
        for group, p in pairs:
            state = self.state[p]
            if "old_p" in state:
                state["old_p"].copy_(p)
            else:
                state["old_p"] = p.detach().clone()
            t2 = (p.abs() + group["eta"]).pow(2) if group["adaptive"] else 1.0
            p.add_(t2 * p.grad * self._per_member(group["rho"] * inv_norm, p))
        self._perturbed = [p for _, p in pairs]
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Go back to w (by copy), then take the base step with the gradient at w + ε."""
        if self._perturbed is None:
            raise RuntimeError("SAM.second_step() called without a preceding first_step()")
        for p in self._perturbed:
            p.copy_(self.state[p]["old_p"])
        self._perturbed = None
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One SAM step. ``closure()`` zeroes the gradients, computes the loss, calls
        ``backward`` and returns the loss; it is called at w and at w + ε. Returns the loss at w.
        """
        if closure is None:
            raise ValueError(
                "SAM.step needs a closure that zeroes the gradients, computes the loss, calls "
                "backward() and returns the loss; or call first_step() and second_step() yourself"
            )
        closure = torch.enable_grad()(closure)
        loss = closure()
        if not any(group["rho"] > 0 for group in self.param_groups):
            self.base_optimizer.step()  # every ρ = 0: exactly the base optimizer's step
            return loss
        self.first_step()
        closure()
        self.second_step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state (Adam moments, step counts) and the shared groups."""
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base_optimizer.load_state_dict(state_dict)
        # load_state_dict builds new group dicts: share them again.
        self.param_groups = self.base_optimizer.param_groups
        for i, group in enumerate(self.param_groups):
            _check_rho(group["rho"], f"param group {i} of the loaded state")
