"""The minimum-norm reference: the θ an ideal small-output bias would find.

A hybrid model dx/dt = f_phys(x; θ) + f_nn(x) can fit the data with many θ: for each θ the
network only has to supply f_nn = f_true − f_phys(·; θ). A method that prefers the *smallest*
network output — APHYNITY's ‖f_nn‖² at its best, and perhaps a flat minimum — therefore lands
near

    θ_mn = argmin_θ  (1/N) Σ_i ‖f_true(x_i) − f_phys(x_i; θ)‖²,

the mean taken over the N training states x_i. When the term the physics misses is correlated
with what the physics can represent, θ_mn is biased away from the true θ, and so is any method
that keeps the network small.

:func:`min_norm_theta` needs the *true* vector field: it is an analysis for the reader (where
should a simplicity bias land on this task?), never a method to estimate θ.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from .hybrid import PhysicsModel


def min_norm_theta(
    physics: PhysicsModel,
    true_vector_field: Callable[[torch.Tensor], torch.Tensor],
    states: torch.Tensor,
    grad_tol: float = 1e-10,
    max_iter: int = 1000,
) -> dict[str, torch.Tensor]:
    """θ_mn = argmin_θ mean_i ‖f_true(x_i) − f_phys(x_i; θ)‖² over ``states`` (..., d).

    θ is optimised through the physics model's own parametrisation (its raw parameters and
    their maps, so a positive θ stays positive) with L-BFGS and a strong-Wolfe line search in
    float64, starting from the model's current θ, until every component of the gradient with
    respect to the raw parameters is below ``grad_tol``. ``physics`` itself is left unchanged.
    For a physics model linear in θ the objective is a least-squares problem with one minimum
    (reached unless it lies on the boundary of a map's range); otherwise the result is the
    local minimum nearest the starting θ.

    Args:
        physics: the scientific model (not an ensemble), e.g. ``duffing.DampedLinearOscillator()``.
        true_vector_field: the truth f_true(x), returning the shape of ``physics(x)``.
        states: the training states, shape (..., d) with d the state size; every leading
            entry counts once, so pass the distinct states (e.g. the training trajectories'
            ``x``), not overlapping windows of them.
        grad_tol: the gradient tolerance that defines convergence.
        max_iter: the most L-BFGS iterations.

    Returns:
        θ_mn by name, as ``physics.theta()`` returns θ (0-dim float64 tensors).

    Raises:
        TypeError: ``physics`` is not a :class:`PhysicsModel` or ``states`` not a tensor.
        ValueError: no unknown parameters, no states, non-finite states or truth, or
            ``true_vector_field`` and ``physics`` disagree on the output shape.
        RuntimeError: L-BFGS did not bring the gradient below ``grad_tol``.
    """
    if not isinstance(physics, PhysicsModel):
        raise TypeError(f"physics must be a PhysicsModel, got {type(physics).__name__}")
    if not any(True for _ in physics.parameters()):
        raise ValueError(f"{type(physics).__name__} has no unknown parameters: nothing to fit")
    if not isinstance(states, torch.Tensor):
        raise TypeError(f"states must be a torch.Tensor of shape (..., d), got {type(states)}")
    if states.dim() < 2 or states.numel() == 0:
        raise ValueError(
            f"states must have shape (..., d) with at least one state, got {tuple(states.shape)}"
        )
    if not torch.isfinite(states).all():
        raise ValueError("states contain inf or NaN")

    x = states.detach().to("cpu", torch.float64).reshape(-1, states.shape[-1])
    model = copy.deepcopy(physics).to("cpu", torch.float64)
    with torch.no_grad():
        try:
            guess = model(x)
        except (IndexError, RuntimeError) as err:
            raise ValueError(
                f"{type(physics).__name__} cannot evaluate states of shape {tuple(states.shape)}:"
                f" {err}"
            ) from err
        target = true_vector_field(x)
    if not isinstance(target, torch.Tensor) or target.shape != guess.shape:
        shape = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target)
        raise ValueError(
            f"true_vector_field returned {shape}, but {type(physics).__name__} returns "
            f"{tuple(guess.shape)} for the same states"
        )
    if not torch.isfinite(target).all():
        raise ValueError("true_vector_field is not finite on these states")
    target = target.to(torch.float64)

    params = list(model.parameters())
    optimizer = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=grad_tol,
        tolerance_change=0.0,  # stop on the gradient only
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = (target - model(x)).pow(2).sum(-1).mean()
        loss.backward()
        return loss

    optimizer.step(closure)
    closure()  # the gradient at the returned θ
    worst = max(float(p.grad.abs().max()) for p in params)
    if not worst <= grad_tol:
        raise RuntimeError(
            f"min_norm_theta did not converge: largest gradient component {worst:.3g} > "
            f"grad_tol {grad_tol:g} after at most {max_iter} L-BFGS iterations"
        )
    return model.theta()
