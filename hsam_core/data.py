"""Data sets as the training loop sees them: a number of samples, and a per-member loss.

* :class:`Trajectories` — observed trajectories x(t) on a common time grid. Training fits short
  windows: each window is integrated from its first observed state and compared with the
  observations (an "integral" or multiple-shooting loss).
* :class:`Pairs` — input/output pairs of a static law y = g(x).
* :func:`add_noise` — seeded Gaussian measurement noise, as the tasks add it to their data.

``loss(model, idx)`` takes an ensemble and indices of shape (K, B) — member k's minibatch — and
returns the per-member mean squared error (K,) and the observed states (K, N, d) on which
penalties such as ‖f_nn‖² are evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _check_tensors(owner: str, **tensors: object) -> None:
    """Each argument a floating-point tensor with at least one sample, all on one device."""
    for name, x in tensors.items():
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"{owner}: {name} must be a torch.Tensor, got {type(x).__name__} "
                "(convert with torch.as_tensor(..., dtype=torch.float32))"
            )
        if not x.is_floating_point():
            raise TypeError(f"{owner}: {name} must be a floating-point tensor, got dtype {x.dtype}")
        if x.dim() >= 1 and x.shape[0] == 0:
            raise ValueError(f"{owner}: {name} is empty (shape {tuple(x.shape)})")
    devices = {name: x.device for name, x in tensors.items()}
    if len(set(devices.values())) > 1:
        raise ValueError(f"{owner}: tensors on different devices: {devices}")


def _check_finite(name: str, x: torch.Tensor) -> None:
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).sum().item()
        raise ValueError(f"{name} contains {bad} non-finite values (inf or NaN)")


@dataclass
class Trajectories:
    """Trajectories ``x`` of shape (N, T, d) observed at times ``t`` (T,)."""

    t: torch.Tensor
    x: torch.Tensor

    def __post_init__(self) -> None:
        _check_tensors("Trajectories", t=self.t, x=self.x)
        if (
            self.t.dim() != 1
            or self.x.dim() != 3
            or self.x.shape[1] != self.t.shape[0]
            or self.t.shape[0] < 2
            or self.x.shape[2] < 1
        ):
            raise ValueError(
                f"trajectories need t of shape (T,) with T >= 2 and x of shape (N, T, d); got t "
                f"{tuple(self.t.shape)} and x {tuple(self.x.shape)}"
            )
        _check_finite("trajectory data", self.x)
        _check_finite("time grid", self.t)
        steps = self.t[1:] - self.t[:-1]
        if not (steps > 0).all():
            i = int((steps <= 0).nonzero()[0])
            raise ValueError(
                "Trajectories: the time grid t must be strictly increasing, got "
                f"t[{i}] = {self.t[i].item():g} followed by t[{i + 1}] = {self.t[i + 1].item():g}"
            )

    def windows(self, steps: int | None) -> Trajectories:
        """All windows of ``steps`` steps (``steps + 1`` points) of every trajectory, as a new
        set of N·(T − steps) trajectories; ``None`` keeps whole trajectories."""
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)):
            raise TypeError(f"windows: steps must be an int or None, got {steps!r}")
        if steps is None or steps == self.t.shape[0] - 1:
            return self
        if not 1 <= steps < self.t.shape[0]:
            raise ValueError(
                f"window of {steps} steps does not fit trajectories of {self.t.shape[0]} points"
            )
        w = self.x.unfold(1, steps + 1, 1)  # (N, T - steps, d, steps + 1)
        w = w.permute(0, 1, 3, 2).reshape(-1, steps + 1, self.x.shape[-1])
        return Trajectories(self.t[: steps + 1] - self.t[0], w.contiguous())

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str) -> Trajectories:
        return Trajectories(self.t.to(device), self.x.to(device))

    def loss(self, model, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member MSE of the trajectories integrated from the first observed state."""
        obs = self.x[idx]  # (K, B, T, d)
        pred = model.integrate(obs[:, :, 0], self.t)  # (T, K, B, d)
        pred = pred.permute(1, 2, 0, 3)
        mse = (pred[:, :, 1:] - obs[:, :, 1:]).pow(2).mean(dim=(1, 2, 3))
        return mse, obs.flatten(1, 2)


@dataclass
class Pairs:
    """Inputs ``x`` (N, d_in) and outputs ``y`` (N, d_out) of a static law."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        _check_tensors("Pairs", x=self.x, y=self.y)
        if self.x.dim() != 2 or self.y.dim() != 2 or self.x.shape[0] != self.y.shape[0]:
            raise ValueError(
                f"pairs need x of shape (N, d_in) and y of shape (N, d_out); got x "
                f"{tuple(self.x.shape)} and y {tuple(self.y.shape)}"
            )
        if self.x.dtype != self.y.dtype:
            raise TypeError(
                f"Pairs: x and y must have one dtype, got x {self.x.dtype} and y {self.y.dtype}"
            )
        _check_finite("inputs x", self.x)
        _check_finite("outputs y", self.y)

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str) -> Pairs:
        return Pairs(self.x.to(device), self.y.to(device))

    def loss(self, model, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[idx]  # (K, B, d_in)
        mse = (model.predict(x) - self.y[idx]).pow(2).mean(dim=(1, 2))
        return mse, x


def add_noise(x: torch.Tensor, noise: float, seed: int) -> torch.Tensor:
    """``x`` plus Gaussian noise of standard deviation ``noise``, drawn in float64 from a generator
    seeded with ``seed`` (``x`` itself when ``noise`` is 0). The tasks draw it from a seed of
    each split, so that a split's noise never depends on another's."""
    if noise < 0:
        raise ValueError(f"noise is a standard deviation, got {noise}")
    if noise == 0:
        return x
    g = torch.Generator().manual_seed(seed)
    return x + noise * torch.randn(x.shape, generator=g, dtype=torch.float64)
