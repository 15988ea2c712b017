"""How good is a fitted hybrid model? θ error, prediction error, NN contribution, sharpness.

Every function works on an :class:`~hsam_core.ensemble.Ensemble` and returns one value per
member (shape (K,)), so K seeds are scored at once.
"""

from __future__ import annotations

import torch


def theta_rel_error(theta: dict[str, torch.Tensor], truth: dict[str, float]) -> torch.Tensor:
    """Mean over the parameters in ``truth`` of |θ̂ − θ| / |θ|, per member."""
    missing = set(truth) - set(theta)
    if missing:
        raise KeyError(f"the model has no parameter(s) {sorted(missing)}; it has {sorted(theta)}")
    errors = [(theta[name] - value).abs() / abs(value) for name, value in truth.items()]
    return torch.stack(errors).mean(dim=0)


def cosine_similarity(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """cos ∠(θ̂, θ) along the last dimension: for parameters identifiable only up to scale."""
    truth = truth.to(estimate)
    return torch.nn.functional.cosine_similarity(estimate, truth.expand_as(estimate), dim=-1)


def fnn_sq_norm(model, states: torch.Tensor, normalized: bool = False) -> torch.Tensor:
    """mean over states x of ‖f_nn(x)‖² (divided by (‖x‖ + 1e-5)² if ``normalized``)."""
    _, net = model(states)
    sq = net.flatten(2).pow(2).sum(-1)
    if normalized:
        sq = sq / (states.flatten(2).norm(dim=-1) + 1e-5).pow(2)
    return sq.mean(-1)


@torch.no_grad()
def prediction_mse(model, data) -> torch.Tensor:
    """Per-member MSE of ``model`` on every sample of ``data``."""
    return _on_model_device(model, data).loss(model, _all(model, data))[0]


@torch.no_grad()
def nn_contribution(model, data, normalized: bool = False) -> torch.Tensor:
    """‖f_nn‖² on the observed states of ``data`` (every sample), per member."""
    _, states = _on_model_device(model, data).loss(model, _all(model, data))
    return fnn_sq_norm(model, states, normalized)


def _on_model_device(model, data):
    return data.to(next(model.parameters()).device)


def _all(model, data) -> torch.Tensor:
    """Indices of every sample of ``data`` for every member: shape (K, N)."""
    return torch.arange(len(data), device=next(model.parameters()).device).expand(model.size, -1)


def _member_dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    return sum((x * y).flatten(1).sum(1) for x, y in zip(a, b))


def sharpness_ascent(model, data, rho: float) -> torch.Tensor:
    """Loss rise L(w + ε) − L(w) after one normalised ascent step ε = ρ g / ‖g‖ over the
    network weights (each member its own norm): SAM's own estimate of the worst case in the
    ρ-ball. The physics parameters are held fixed."""
    params = model.ml_parameters()
    data, idx = _on_model_device(model, data), _all(model, data)
    loss = data.loss(model, idx)[0]
    grads = torch.autograd.grad(loss.sum(), params)
    norm = _member_dot(grads, grads).sqrt().clamp_min(1e-30)
    with torch.no_grad():
        steps = [rho * g / norm.view(-1, *[1] * (g.dim() - 1)) for g in grads]
        for p, s in zip(params, steps):
            p.add_(s)
        perturbed = data.loss(model, idx)[0]
        for p, s in zip(params, steps):
            p.sub_(s)
    return (perturbed - loss).detach()


def top_hessian_eigenvalue(model, data, iterations: int = 20, seed: int = 0) -> torch.Tensor:
    """Largest-magnitude eigenvalue of the Hessian of the loss in the network weights, per
    member, by power iteration with Hessian-vector products (Pearlmutter's trick):
    v ← H v / ‖H v‖, λ = vᵀ H v."""
    params = model.ml_parameters()
    data, idx = _on_model_device(model, data), _all(model, data)
    loss = data.loss(model, idx)[0]
    grads = torch.autograd.grad(loss.sum(), params, create_graph=True)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen).to(p) for p in params]
    eig = torch.zeros(model.size, device=loss.device)
    for _ in range(iterations):
        norm = _member_dot(v, v).sqrt().clamp_min(1e-30)
        v = [x / norm.view(-1, *[1] * (x.dim() - 1)) for x in v]
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        eig = _member_dot(v, hv).detach()
        v = [h.detach() for h in hv]
    return eig
