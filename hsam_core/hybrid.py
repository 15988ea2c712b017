"""Hybrid models: a scientific model with unknown parameters θ plus a neural network.

Every hybrid model here returns its two parts separately, ``phys, nn = model(x)``, and predicts
their sum. Three architectures:

* :class:`HybridODE`, additive:  dx/dt = f_phys(x; θ) + f_nn(x)                  (APHYNITY)
* :class:`HybridODE`, grey-box:  dx/dt = f_phys(x; θ) + f_nn([x, θ, f_phys(x; θ)])  (grey-box)
* :class:`StaticHybrid`:         y = g_phys(x; θ) + g_nn(x)      (measurement law + residual)

Physical parameters live in a :class:`PhysicsModel`, each stored as an unconstrained raw value
and read through a documented map that keeps it in its valid range (softplus, exp or a scaled
sigmoid). ``model.theta()`` returns the physical values by name.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import nn
from torchdiffeq import odeint

try:  # the solver names odeint accepts (a private table: checked only where it exists)
    from torchdiffeq._impl.odeint import SOLVERS as _SOLVERS
except ImportError:  # pragma: no cover - another torchdiffeq layout
    _SOLVERS = None

MAPS = ("identity", "softplus", "exp", "sigmoid")


def _to_physical(kind: str, raw: torch.Tensor, scale: float) -> torch.Tensor:
    if kind == "identity":
        return raw
    if kind == "softplus":  # θ = softplus(raw) = log(1 + e^raw) > 0
        return nn.functional.softplus(raw)
    if kind == "exp":  # θ = e^raw > 0
        return raw.exp()
    return scale * torch.sigmoid(raw)  # "sigmoid": θ = scale · σ(raw) ∈ (0, scale)


def _to_raw(kind: str, value: float, scale: float) -> float:
    if kind == "identity":
        return value
    if value <= 0 or (kind == "sigmoid" and value >= scale):
        bound = f"(0, {scale})" if kind == "sigmoid" else "(0, inf)"
        raise ValueError(f"initial value {value} is outside the range {bound} of map '{kind}'")
    if kind == "softplus":
        return value + math.log(-math.expm1(-value))  # inverse of softplus
    if kind == "exp":
        return math.log(value)
    return math.log(value / scale) - math.log1p(-value / scale)  # logit(value / scale)


class PhysicsModel(nn.Module):
    """Base class of the scientific part. Subclasses declare their unknown parameters with
    :meth:`add_theta` and read them with :meth:`param` inside ``forward``.

    ``forward(x)`` returns f_phys(x; θ) with the shape of ``x`` (dynamics) or of the output
    (static laws).
    """

    def __init__(self) -> None:
        super().__init__()
        self._maps: dict[str, tuple[str, float]] = {}

    def add_theta(self, name: str, init: float, map: str = "softplus", scale: float = 1.0) -> None:
        """Declare θ_name, initialised at the physical value ``init``, kept valid by ``map``."""
        if map not in MAPS:
            raise ValueError(f"unknown map '{map}' for θ '{name}'; choose one of {MAPS}")
        raw = torch.tensor(_to_raw(map, float(init), scale), dtype=torch.get_default_dtype())
        self.register_parameter(f"raw_{name}", nn.Parameter(raw))
        self._maps[name] = (map, scale)

    def param(self, name: str) -> torch.Tensor:
        """The physical value of θ_name (differentiable)."""
        kind, scale = self._maps[name]
        return _to_physical(kind, getattr(self, f"raw_{name}"), scale)

    def theta(self) -> dict[str, torch.Tensor]:
        """All physical parameters by name, detached. In an ensemble each has shape (K,)."""
        return {name: self.param(name).detach() for name in self._maps}

    def theta_vector(self) -> torch.Tensor:
        """θ as one differentiable vector (..., n_θ), in declaration order."""
        return torch.stack([self.param(name) for name in self._maps], dim=-1)


class HybridModel(nn.Module):
    """A physics part and a network part whose outputs add up. Either part may be ``None``
    (physics only, or network only), not both.

    Args:
        physics: the scientific model; it must have at least one unknown parameter.
        network: the neural network; it sees ``x`` (additive) or ``[x, θ, f_phys(x)]``
            (``coupling="greybox"``).
        coupling: ``"additive"`` or ``"greybox"``.
        state_dim: size of the last dimension of ``x``; inputs of any other size are refused.
    """

    def __init__(
        self,
        physics: PhysicsModel | None,
        network: nn.Module | None,
        state_dim: int,
        coupling: str = "additive",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if physics is None and network is None:
            raise ValueError("a hybrid model needs a physics part, a network part, or both")
        if physics is not None and not isinstance(physics, PhysicsModel):
            raise TypeError(
                f"{name}: physics must be a PhysicsModel (its unknowns declared with "
                f"add_theta) or None, got {type(physics).__name__}"
            )
        if network is not None and not isinstance(network, nn.Module):
            raise TypeError(
                f"{name}: network must be a torch.nn.Module or None, got {type(network).__name__}"
            )
        if isinstance(state_dim, bool) or not isinstance(state_dim, int) or state_dim < 1:
            raise ValueError(
                f"{name}: state_dim must be an int >= 1 (the size of the last dimension of x), "
                f"got {state_dim!r}"
            )
        if physics is not None and not any(True for _ in physics.parameters()):
            raise ValueError(
                f"the physics model {type(physics).__name__} has no trainable parameters: there "
                "is no θ to estimate. Declare its unknowns with add_theta(), or pass physics=None "
                "for a network-only model"
            )
        if coupling not in ("additive", "greybox"):
            raise ValueError(f"coupling must be 'additive' or 'greybox', got {coupling!r}")
        if coupling == "greybox" and physics is None:
            raise ValueError(
                "the grey-box coupling feeds θ and f_phys to the network: it needs physics"
            )
        self.physics = physics
        self.network = network
        self.coupling = coupling
        self.state_dim = state_dim

    def physics_parameters(self) -> list[nn.Parameter]:
        """The raw parameters behind θ (what SAM leaves unperturbed in the hybrid variant)."""
        return [] if self.physics is None else list(self.physics.parameters())

    def ml_parameters(self) -> list[nn.Parameter]:
        """The neural network's weights."""
        return [] if self.network is None else list(self.network.parameters())

    def theta(self) -> dict[str, torch.Tensor]:
        """Current physical parameter values by name (empty for a network-only model)."""
        return {} if self.physics is None else self.physics.theta()

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{type(self).__name__} expects a tensor x, got {type(x).__name__}")
        if x.dim() < 1 or x.shape[-1] != self.state_dim:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (..., {self.state_dim}), "
                f"got {tuple(x.shape)}"
            )

    def _check_output(self, x: torch.Tensor, phys: torch.Tensor, net: torch.Tensor) -> None:
        """The two parts are added: refuse outputs of different shapes (never broadcast)."""
        if phys.shape != net.shape:
            raise ValueError(
                f"{type(self).__name__}: the network's output has shape {tuple(net.shape)} but "
                f"the physics' output has shape {tuple(phys.shape)} (input {tuple(x.shape)}); "
                "the two parts are added and must have the same shape, not be broadcast — "
                "check the size of the network's last layer"
            )

    def _parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.physics is None:
            out = self.network(x)
            return torch.zeros_like(out), out
        phys = self.physics(x)
        if self.network is None:
            return phys, torch.zeros_like(phys)
        if self.coupling == "greybox":
            theta = self.physics.theta_vector().expand(*x.shape[:-1], -1)
            return phys, self.network(torch.cat([x, theta, phys], dim=-1))
        return phys, self.network(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (f_phys(x), f_nn(...)), of one shape; a missing part is zeros."""
        self._check_input(x)
        phys, net = self._parts(x)
        self._check_output(x, phys, net)
        return phys, net


class HybridODE(HybridModel):
    """dx/dt = f_phys(x; θ) + f_nn(x), integrated with torchdiffeq's ``odeint``.

    ``integrate(x0, t)`` solves all trajectories of a batch in one ``odeint`` call. The default
    solver is fixed-step ``rk4`` on the time grid (or on ``step_size`` if given): each SAM step
    integrates twice, and a perturbed network can make adaptive solvers stall.
    """

    def __init__(
        self,
        physics: PhysicsModel | None,
        network: nn.Module | None,
        state_dim: int,
        coupling: str = "additive",
        method: str = "rk4",
        step_size: float | None = None,
    ) -> None:
        super().__init__(physics, network, state_dim, coupling)
        if _SOLVERS is not None and method not in _SOLVERS:
            raise ValueError(
                f"HybridODE: method must be one of torchdiffeq's solvers {sorted(_SOLVERS)}, "
                f"got {method!r}"
            )
        if step_size is not None and (
            not isinstance(step_size, numbers.Real)
            or isinstance(step_size, bool)
            or not math.isfinite(step_size)
            or step_size <= 0
        ):
            raise ValueError(
                f"HybridODE: step_size must be None (the time grid) or a finite number > 0, "
                f"got {step_size!r}"
            )
        self.method = method
        self.step_size = step_size

    def _check_output(self, x: torch.Tensor, phys: torch.Tensor, net: torch.Tensor) -> None:
        """dx/dt has the shape of x: each part must, too (never broadcast against it)."""
        for part, out in (("physics", phys), ("network", net)):
            if out.shape != x.shape:
                raise ValueError(
                    f"HybridODE: the {part}'s output has shape {tuple(out.shape)} for states "
                    f"of shape {tuple(x.shape)}; a vector field dx/dt must have the shape of x "
                    f"(state_dim = {self.state_dim}) — check the size of the {part}'s output"
                )

    def vector_field(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        phys, net = self(x)
        return phys + net

    def integrate(self, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Trajectories from ``x0`` (..., d) at times ``t`` (T,): shape (T, ..., d)."""
        return integrate(self.vector_field, x0, t, self.method, self.step_size)


def integrate(
    vector_field, x0: torch.Tensor, t: torch.Tensor, method: str, step_size: float | None
) -> torch.Tensor:
    """``odeint`` with this library's solver options (fixed-step unless told otherwise)."""
    if not torch.isfinite(x0).all():
        raise ValueError("initial states contain inf or NaN")
    options = {"step_size": step_size} if step_size is not None else None
    return odeint(vector_field, x0, t, method=method, options=options)


class StaticHybrid(HybridModel):
    """y = g_phys(x; θ) + g_nn(x): a measurement law plus a learned residual.

    ``state_dim`` is the input size; ``predict(x)`` returns the sum of the two parts.
    """

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        phys, net = self(x)
        return phys + net


def mlp(
    sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU, zero_last: bool = True
) -> nn.Sequential:
    """A plain MLP, e.g. ``mlp([2, 200, 200, 2])``.

    ``zero_last`` initialises the last layer at zero so that training starts from the physics
    alone (f_nn ≡ 0) — every method then starts from the same hybrid.
    """
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    if zero_last:
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
    return nn.Sequential(*layers)
