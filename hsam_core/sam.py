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
  dimension, every member gets its own norm ‖T g‖_k, exactly as K separate SAM optimizers;
  a group's ``rho`` may then also be K per-member radii, ε_k = ρ_k T_k² g_k / ‖T_k g_k‖, its
  ``adaptive`` K per-member flags (SAM and ASAM members in one stack), and ``member_blocks``
  makes the stack of several configurations bit-for-bit equal to one optimizer per
  configuration.

A SAM step costs two forward-backward passes. :class:`LookSAM` (Liu et al., 2022) amortises
the second one: the full SAM gradient every k-th step, its sharpness direction reused in between
at the cost of a plain step.

Copy this file alone into a project: it depends on torch only.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch


def _is_real(x: Any) -> bool:
    """A real number (int, float, NumPy scalar), not a bool, a string or a tensor."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _check_rho(rho: Any, where: str) -> float | torch.Tensor:
    """ρ as SAM uses it: a number ≥ 0, or K per-member radii ≥ 0 (a 1-D tensor or a list or
    tuple of numbers), stored as a float64 tensor on the CPU."""
    if not isinstance(rho, (torch.Tensor, list, tuple)):
        if not _is_real(rho) or not math.isfinite(rho) or rho < 0:
            raise ValueError(
                f"SAM: rho must be a finite number >= 0, got {rho!r} ({where}); with member_dim "
                "it may also be a 1-D tensor of per-member radii"
            )
        return rho
    if isinstance(rho, torch.Tensor):
        shaped = rho.dim() == 1 and rho.dtype != torch.bool and not rho.is_complex()
    else:
        shaped = all(_is_real(r) for r in rho)
    if not shaped or len(rho) == 0:
        raise ValueError(
            "SAM: a per-member rho must be a non-empty 1-D tensor, list or tuple of numbers, "
            f"got {rho!r} ({where})"
        )
    if isinstance(rho, torch.Tensor):
        radii = rho.detach().to(device="cpu", dtype=torch.float64).clone()
    else:  # Python floats are doubles: keep them exact (torch's default dtype is float32)
        radii = torch.tensor([float(r) for r in rho], dtype=torch.float64)
    if not torch.isfinite(radii).all() or (radii < 0).any():
        raise ValueError(
            f"SAM: every per-member rho must be a finite number >= 0, got {radii.tolist()} "
            f"({where})"
        )
    return radii


def _check_adaptive(adaptive: Any, where: str) -> bool | torch.Tensor:
    """``adaptive``: True (ASAM) or False (SAM), or per-member flags, returned as a bool
    tensor."""
    if isinstance(adaptive, bool):
        return adaptive
    if (
        isinstance(adaptive, (list, tuple))
        and adaptive
        and all(isinstance(a, bool) for a in adaptive)
    ):
        return torch.tensor(adaptive)
    if isinstance(adaptive, torch.Tensor) and adaptive.dtype == torch.bool and adaptive.dim() == 1:
        return adaptive.detach().cpu().clone()
    raise TypeError(
        f"SAM: adaptive must be True (ASAM) or False (SAM), got {adaptive!r} ({where}); with "
        "member_dim also per-member flags (a non-empty 1-D list, tuple or bool tensor)"
    )


def _check_members(
    values: torch.Tensor, what: str, group: dict[str, Any], member_dim: int | None, where: str
) -> None:
    """Per-member ``values`` (``what``: "rho" radii or "adaptive" flags): one per member of
    every parameter of the group, along ``member_dim``."""
    noun = "radii" if what == "rho" else "flags"
    if member_dim is None:
        raise ValueError(
            f"SAM: a per-member {what} ({values.numel()} {noun}) needs member_dim, the dimension "
            f"that stacks the members ({where})"
        )
    for p in group.get("params", []):
        size = p.shape[member_dim % p.dim()] if p.dim() else None
        if size != values.numel():
            raise ValueError(
                f"SAM: {what} holds {values.numel()} per-member {noun} but a parameter of shape "
                f"{tuple(p.shape)} stacks {size} members along member_dim={member_dim} ({where})"
            )


def _check_group(group: dict[str, Any], where: str, member_dim: int | None = None) -> None:
    """ρ, η and ``adaptive`` of one param group (its own or the defaults); per-member values
    are stored as tensors (ρ in float64), their length checked against the group's
    parameters."""
    group["rho"] = rho = _check_rho(group["rho"], where)
    group["adaptive"] = adaptive = _check_adaptive(group["adaptive"], where)
    for what, values in (("rho", rho), ("adaptive", adaptive)):
        if isinstance(values, torch.Tensor):
            _check_members(values, what, group, member_dim, where)
    eta = group["eta"]
    if not _is_real(eta) or not math.isfinite(eta) or eta < 0:
        raise ValueError(f"SAM: eta must be a finite number >= 0, got {eta!r} ({where})")


def _check_blocks(
    blocks: Any, member_dim: int | None, groups: list[dict[str, Any]]
) -> list[int] | None:
    """``member_blocks``: None, or ints >= 1 that add up to every parameter's K members."""
    if blocks is None:
        return None
    if member_dim is None:
        raise ValueError("SAM: member_blocks needs member_dim, the dimension that stacks members")
    if (
        isinstance(blocks, (str, bytes))
        or not isinstance(blocks, Sequence)
        or not blocks
        or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in blocks)
    ):
        raise ValueError(
            f"SAM: member_blocks must be a non-empty list of ints >= 1, got {blocks!r}"
        )
    for group in groups:
        for p in group["params"]:
            size = p.shape[member_dim % p.dim()] if p.dim() else None
            if size != sum(blocks):
                raise ValueError(
                    f"SAM: member_blocks {list(blocks)} add up to {sum(blocks)} members, but a "
                    f"parameter of shape {tuple(p.shape)} stacks {size} along "
                    f"member_dim={member_dim}"
                )
    return list(blocks)


def _perturbs(group: dict[str, Any]) -> bool:
    """Whether SAM perturbs the group: ρ > 0 (for some member, with per-member radii)."""
    rho = group["rho"]
    return bool((rho > 0).any()) if isinstance(rho, torch.Tensor) else rho > 0


class SAM(torch.optim.Optimizer):
    """SAM / ASAM around any torch optimizer.

    Args:
        params: tensors or param-group dicts, as for any torch optimizer. A group may carry its
            own ``rho`` (``0`` = updated, never perturbed), ``adaptive`` and ``eta``.
        base_optimizer: an optimizer *class*, e.g. ``torch.optim.Adam``; it is built over the
            same param groups with ``**kwargs``.
        rho: radius ρ of the neighbourhood (default for groups that do not set one). With
            ``member_dim``, a group's ρ may also be K per-member radii (a 1-D tensor, list or
            tuple): member k is perturbed by ε_k = ρ_k T² g_k / ‖T g_k‖, as K separate SAM
            optimizers with radii ρ_k would.
        adaptive: ASAM — scale the neighbourhood by T = |w| + η. With ``member_dim``, also K
            per-member flags: T_k = |w_k| + η for the ASAM members, 1 for the others.
        eta: η of ASAM; with ``eta=0`` ASAM equals the davda54 / pytorch_optimizer variant.
        member_dim: if given, every perturbed parameter stacks K independent models along this
            dimension, and the norm ‖T g‖ is taken per member.
        member_blocks: with ``member_dim``, the sizes of consecutive blocks of members (e.g.
            configurations stacked into one model) whose sums over the parameters are taken
            block by block. The result is the same up to float rounding; what it buys is the
            rounding of one optimizer per block, bit for bit — torch's order of summation over
            a (parameters, K) stack depends on K. Default: one block.
        **kwargs: passed to ``base_optimizer`` (``lr``, ``betas``, ...).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: type[torch.optim.Optimizer],
        rho: float = 0.05,
        adaptive: bool | Sequence[bool] | torch.Tensor = False,
        eta: float = 0.01,
        member_dim: int | None = None,
        member_blocks: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(base_optimizer, type) or not issubclass(
            base_optimizer, torch.optim.Optimizer
        ):
            raise TypeError(
                "SAM: base_optimizer must be an optimizer class such as torch.optim.Adam, "
                f"got {base_optimizer!r}"
            )
        if member_dim is not None and (
            isinstance(member_dim, bool) or not isinstance(member_dim, int)
        ):
            raise TypeError(
                f"SAM: member_dim must be None or an int (the dimension that stacks the "
                f"ensemble members), got {member_dim!r}"
            )
        defaults = dict(rho=rho, adaptive=adaptive, eta=eta, **kwargs)
        _check_group(defaults, "default", member_dim)
        super().__init__(params, defaults)
        for i, group in enumerate(self.param_groups):
            _check_group(group, f"param group {i}", member_dim)
        # The base optimizer shares our param groups, so lr schedules and per-group options
        # act on both (the davda54 convention).
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)
        self.member_dim = member_dim
        self.member_blocks = _check_blocks(member_blocks, member_dim, self.param_groups)
        self._perturbed: list[torch.Tensor] | None = None  # parameters moved by first_step

    def _perturbed_params(self) -> list[tuple[dict[str, Any], torch.Tensor]]:
        return [
            (group, p)
            for group in self.param_groups
            if _perturbs(group)
            for p in group["params"]
            if p.grad is not None
        ]

    def _member_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Σ of ``t``'s entries: a scalar, or one value per ensemble member (over member_dim)."""
        if self.member_dim is None:
            return t.sum()
        dims = [d for d in range(t.dim()) if d != self.member_dim % t.dim()]
        return t.sum(dim=dims) if dims else t

    def _sum_over_params(self, sums: list[torch.Tensor]) -> torch.Tensor:
        """Σ over parameters of per-parameter sums (scalars, or (K,) per member), block by
        block of ``member_blocks``."""
        stacked = torch.stack(sums)
        if self.member_blocks is None:
            return stacked.sum(dim=0)
        return torch.cat([b.sum(dim=0) for b in stacked.split(self.member_blocks, dim=1)])

    def _scale(self, group: dict[str, Any], p: torch.Tensor) -> torch.Tensor | float:
        """T of ``p``: |w| + η for ASAM, 1 for SAM; with per-member flags, per member."""
        adaptive = group["adaptive"]
        if isinstance(adaptive, torch.Tensor):
            members = self._per_member(adaptive.to(p.device), p)
            return torch.where(members, p.abs() + group["eta"], 1.0)
        return p.abs() + group["eta"] if adaptive else 1.0

    def _scaled_grad_norm(self, pairs: list[tuple[dict[str, Any], torch.Tensor]]) -> torch.Tensor:
        """‖T g‖₂ over the perturbed parameters: a scalar, or one value per ensemble member."""
        squares = []
        for group, p in pairs:
            tg = self._scale(group, p) * p.grad
            squares.append(self._member_sum(tg.pow(2)))
        return self._sum_over_params(squares).sqrt()

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
            t2 = self._scale(group, p) ** 2
            rho = group["rho"]
            if isinstance(rho, torch.Tensor):  # per-member radii, rounded as a scalar ρ is
                rho = rho.to(inv_norm)
            p.add_(t2 * p.grad * self._per_member(rho * inv_norm, p))
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
        if not any(_perturbs(group) for group in self.param_groups):
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
            _check_group(group, f"param group {i} of the loaded state", self.member_dim)


class LookSAM(SAM):
    """LookSAM (Liu et al., 2022): the SAM gradient every ``k``-th step, reused in between.

    Write g = ∇L(w) for the plain gradient and g_s = ∇L(w + ε) for the SAM gradient. On every
    k-th step (steps 0, k, 2k, …) LookSAM takes a full SAM step and keeps the part of g_s that
    is orthogonal to g, the direction that only the sharpness term contributes,

        g_v = g_s − (⟨g_s, g⟩ / ‖g‖²) g.

    On the k − 1 steps in between it computes g alone (one forward-backward pass, as Adam) and
    hands the base optimizer

        g + α (‖g‖ / ‖g_v‖) g_v,

    the current gradient plus the last sharpness direction, rescaled to the current gradient's
    size. A step costs (1 + 1/k) passes on average instead of SAM's 2. ``k = 1`` is SAM exactly;
    ``alpha = 0`` is SAM every k-th step with plain steps in between (no reuse).

    Inner products and norms run over every parameter the optimizer updates, groups with
    ``rho = 0`` included: those are not perturbed, but SAM updates them with their gradient at
    w + ε, and the reuse keeps that part too (for a hybrid, θ's share of the sharpness gradient).
    With ``member_dim`` they are taken per member, as K separate optimizers would.
    This is the split of the paper's Algorithm 1, over the whole gradient vector;
    pytorch_optimizer's ``LookSAM`` splits every tensor separately instead. Everything else —
    per-group ρ, per-member radii, ASAM, ``first_step``/``second_step`` — is
    :class:`SAM`'s.

    Args:
        k: a full SAM step every ``k`` steps (an int ≥ 1).
        alpha: weight α ≥ 0 of the reused direction (the paper uses 0.7).
        The other arguments are :class:`SAM`'s.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: type[torch.optim.Optimizer],
        rho: float = 0.05,
        k: int = 5,
        alpha: float = 0.7,
        **kwargs: Any,
    ) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(
                f"LookSAM: k must be an int >= 1 (a SAM step every k steps), got {k!r}"
            )
        if not _is_real(alpha) or not math.isfinite(alpha) or alpha < 0:
            raise ValueError(f"LookSAM: alpha must be a finite number >= 0, got {alpha!r}")
        super().__init__(params, base_optimizer, rho=rho, **kwargs)
        self.k = k
        self.alpha = float(alpha)
        self.steps = 0  # steps taken; a full SAM step when steps % k == 0

    def _updated(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"] if p.grad is not None]

    def _dot(self, a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
        """⟨a, b⟩ over a list of tensors: a scalar, or one value per member."""
        return self._sum_over_params([self._member_sum(x * y) for x, y in zip(a, b)])

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One LookSAM step (the closure as for :meth:`SAM.step`). Returns the loss at w."""
        if closure is None or self.steps % self.k == 0:
            loss = self._sam_step(closure)
        else:
            closure = torch.enable_grad()(closure)
            loss = closure()
            self._reuse()
            self.base_optimizer.step()
        self.steps += 1
        return loss

    def _sam_step(self, closure: Callable[[], Any] | None) -> Any:
        if closure is None:
            return super().step(closure)  # raises SAM's explanation
        closure = torch.enable_grad()(closure)
        loss = closure()
        if not any(_perturbs(group) for group in self.param_groups):
            self.base_optimizer.step()
            return loss
        params = self._updated()
        g = [p.grad.clone() for p in params]
        self.first_step()
        closure()
        if self.k > 1:  # k = 1 never reuses: skip the bookkeeping, SAM exactly
            g_s = [p.grad for p in params]
            g_sq = self._dot(g, g)
            coef = torch.where(g_sq > 0, self._dot(g_s, g) / g_sq.clamp_min(1e-30), 0.0)
            for p, gi, gsi in zip(params, g, g_s):
                self.state[p]["g_v"] = gsi - self._per_member(coef, p) * gi
        self.second_step()
        return loss

    def _reuse(self) -> None:
        """Add α (‖g‖ / ‖g_v‖) g_v to the current gradient g (in place)."""
        params = [p for p in self._updated() if "g_v" in self.state[p]]
        if not params or self.alpha == 0:
            return
        g = [p.grad for p in params]
        g_v = [self.state[p]["g_v"] for p in params]
        g_norm, v_norm = self._dot(g, g).sqrt(), self._dot(g_v, g_v).sqrt()
        scale = torch.where(v_norm > 0, self.alpha * g_norm / v_norm.clamp_min(1e-30), 0.0)
        for p, gi, vi in zip(params, g, g_v):
            gi.add_(self._per_member(scale, p) * vi)

    def state_dict(self) -> dict[str, Any]:
        """SAM's state plus the step count and the kept directions g_v (in parameter order)."""
        state = super().state_dict()
        params = [p for group in self.param_groups for p in group["params"]]
        state["looksam"] = {
            "steps": self.steps,
            "g_v": {
                i: self.state[p]["g_v"].clone()
                for i, p in enumerate(params)
                if "g_v" in self.state[p]
            },
        }
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        extra = state_dict.pop("looksam", None)
        if extra is None:
            raise ValueError("LookSAM.load_state_dict: no 'looksam' entry (a plain SAM state?)")
        super().load_state_dict(state_dict)
        params = [p for group in self.param_groups for p in group["params"]]
        self.steps = int(extra["steps"])
        for i, p in enumerate(params):
            self.state[p].pop("g_v", None)
            if i in extra["g_v"]:
                self.state[p]["g_v"] = extra["g_v"][i].to(p).clone()
