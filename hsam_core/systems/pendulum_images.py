"""The damped pendulum of :mod:`hsam_core.systems.pendulum`, observed as images (TASKS.md §2).

Truth:   the pendulum task's dynamics and trajectories (``pendulum.initial_states`` and
         ``pendulum.simulate``: q' = p, p' = −ω₀² sin q − α p, ω₀² ≈ 1.0966, α = 0.2; the same
         seeds and splits; horizon 20, dt 0.5, 40 frames), each state rendered by
         :func:`render` as a 32×32 grayscale frame. Optional Gaussian pixel noise, seeded per
         split.
Render:  the bob is a Gaussian blob of radius σ = 0.15 centred at (sin q, −cos q) (rod length 1,
         pivot at the image centre, the image spans [−1.25, 1.25]², y upwards); optionally a
         thin rod from the pivot to the bob. Written in torch, so it is differentiable in q.
         A frame shows q only; the momentum p must be read from several frames.
Hybrid:  encoder → latent ODE → decoder.
         * encoder: a CNN from the first ``CONTEXT`` = 3 frames of a window (stacked as channels)
           to (q₀, p₀); q₀ = atan2 of two outputs, so it lives on the circle as the images do;
         * latent ODE: the pendulum hybrid, frictionless pendulum with unknown ω₀² (softplus,
           init 0.5) + MLP 2→200→200→2 (:func:`pendulum.make_hybrid`), rk4 on the frame grid;
         * decoder: the known renderer itself, no parameters.
         The decoder is the renderer because it is part of the scientific model: we know how
         a pendulum at angle q looks. It pins the latent coordinates to the physical ones — the
         only latent q that reproduces a frame is the true angle, and the only p that
         reproduces the next frames is the true momentum — so ω₀² keeps its meaning. With a
         learned decoder the latent space is defined only up to an invertible map, the network
         f_nn can absorb whatever that map distorts, and "ω₀²" is no longer the parameter of
         the pendulum (the image task would test the autoencoder, not the hybrid).
Data:    :class:`Frames` — windows of frames; it owns the loss (encode the window's first frames,
         integrate the latent hybrid, render, pixel MSE over every frame of the window,
         frame 0 included). The states on which penalties such as ‖f_nn‖² are evaluated are
         the predicted latent states, detached (the analogue of the observed states of the
         time-series task). The true (q, p) travel along for diagnostics only.
Extrapolation: (``task(extrapolation=True)``) the pendulum task's extrapolation split rendered:
         n_val movies released from rest at ±U[2.7, 3.0) rad (the bob near the top, where no
         training frame shows it), 80 frames, twice the validation horizon.
Noise:   ``noise`` (std, in pixel values) on the training, validation and extrapolation frames;
         the test frames are noise-free. The book's level is :data:`NOISE` = 0.0010, 1 % of the
         std of the noise-free training pixels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, vmap

from ..data import add_noise
from ..ensemble import Ensemble
from ..experiments import Task
from ..hybrid import HybridODE
from ..runtime import pick
from . import pendulum

SIZE = 32
EXTENT = 1.25  # the image spans [−EXTENT, EXTENT]² in units of the rod length
SIGMA = 0.15  # radius of the Gaussian bob
ROD_SIGMA = 0.04  # half-width of the optional rod
CONTEXT = 3  # frames the encoder sees
TRUTH = pendulum.TRUTH
HORIZON = pendulum.HORIZON
DT = 0.5


def pixel_grid(size: int = SIZE, device=None, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel centres (X, Y), each (size, size): row 0 is the top (y = +EXTENT), column 0 the
    left (x = −EXTENT)."""
    coords = torch.linspace(-EXTENT, EXTENT, size, device=device, dtype=dtype)
    y, x = torch.meshgrid(coords.flip(0), coords, indexing="ij")
    return x, y


def render(q: torch.Tensor, size: int = SIZE, rod: float = 0.0) -> torch.Tensor:
    """Frames (..., size, size) of a pendulum at angles ``q`` (...), values in [0, 1]:
    a Gaussian bob at (sin q, −cos q), plus a rod of intensity ``rod`` if ``rod > 0``."""
    x, y = pixel_grid(size, q.device, q.dtype)
    bx, by = torch.sin(q)[..., None, None], -torch.cos(q)[..., None, None]
    image = torch.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * SIGMA**2))
    if rod > 0:
        # distance from each pixel to the segment pivot → bob (the rod has length 1)
        s = (x * bx + y * by).clamp(0.0, 1.0)
        d2 = (x - s * bx) ** 2 + (y - s * by) ** 2
        image = torch.maximum(image, rod * torch.exp(-d2 / (2 * ROD_SIGMA**2)))
    return image


class Encoder(nn.Module):
    """CNN from ``context`` frames (..., context, 32, 32) to latent states (..., 2) = (q, p)."""

    def __init__(self, context: int = CONTEXT, channels: int = 16, hidden: int = 64) -> None:
        super().__init__()
        c = channels
        self.context = context
        self.layers = nn.Sequential(
            nn.Conv2d(context, c, 4, stride=2, padding=1),  # 16×16
            nn.ReLU(),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),  # 8×8
            nn.ReLU(),
            nn.Conv2d(2 * c, 2 * c, 4, stride=2, padding=1),  # 4×4
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * c * 16, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 3),  # (cos q, sin q, p)
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        lead = frames.shape[:-3]
        out = self.layers(frames.reshape(-1, *frames.shape[-3:]))
        q = torch.atan2(out[:, 1], out[:, 0])
        return torch.stack([q, out[:, 2]], dim=-1).reshape(*lead, 2)


class LatentHybridODE(HybridODE):
    """A hybrid ODE on latent states (q, p), entered through an encoder and left through the
    known renderer. ``physics_parameters()`` is θ alone; ``ml_parameters()`` is the encoder's
    and the network's weights (what SAM perturbs in its hybrid variant, what L2 penalises)."""

    def __init__(self, latent: HybridODE, encoder: Encoder, rod: float = 0.0) -> None:
        super().__init__(latent.physics, latent.network, latent.state_dim, latent.coupling)
        self.encoder = encoder
        self.rod = rod

    def ml_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters()) + super().ml_parameters()

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        return self.encoder(frames)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return render(z[..., 0], rod=self.rod)


def encode(model, frames: torch.Tensor) -> torch.Tensor:
    """Latent states of ``frames``: (K, B, context, H, W) → (K, B, 2) for an ensemble (each
    member its own encoder), (..., context, H, W) → (..., 2) for one model."""
    if not isinstance(model, Ensemble):
        return model.encode(frames)
    prefix = "encoder."
    params = {
        name[len(prefix) :]: p
        for name, p in model.model.named_parameters()
        if name.startswith(prefix)
    }
    return vmap(lambda p, f: functional_call(model.model.encoder, p, (f,)))(params, frames)


def decoder(model) -> LatentHybridODE:
    """The member class behind ``model`` (the renderer has no parameters to stack)."""
    return model.model if isinstance(model, Ensemble) else model


@dataclass
class Frames:
    """Frames (N, T, H, W) at times ``t`` (T,); optionally the true states (N, T, 2)."""

    t: torch.Tensor
    frames: torch.Tensor
    states: torch.Tensor | None = None
    context: int = CONTEXT

    def __post_init__(self) -> None:
        if self.t.dim() != 1 or self.frames.dim() != 4 or self.frames.shape[1] != len(self.t):
            raise ValueError(
                f"frames need t of shape (T,) and frames of shape (N, T, H, W); got t "
                f"{tuple(self.t.shape)} and frames {tuple(self.frames.shape)}"
            )
        if len(self.t) < self.context:
            raise ValueError(f"{len(self.t)} frames are fewer than the {self.context} encoded")
        if not torch.isfinite(self.frames).all():
            raise ValueError("frames contain inf or NaN")

    def windows(self, steps: int | None) -> Frames:
        """Every window of ``steps`` steps (``steps + 1`` frames); ``None`` keeps the whole."""
        if steps is None or steps == len(self.t) - 1:
            return self
        if not self.context - 1 <= steps < len(self.t):
            raise ValueError(f"a window of {steps} steps does not fit {len(self.t)} frames")

        def cut(x: torch.Tensor) -> torch.Tensor:
            w = x.unfold(1, steps + 1, 1)  # (N, T − steps, ..., steps + 1)
            return w.movedim(-1, 2).flatten(0, 1).contiguous()

        states = None if self.states is None else cut(self.states)
        return Frames(self.t[: steps + 1] - self.t[0], cut(self.frames), states, self.context)

    def __len__(self) -> int:
        return self.frames.shape[0]

    def to(self, device) -> Frames:
        states = None if self.states is None else self.states.to(device)
        return Frames(self.t.to(device), self.frames.to(device), states, self.context)

    def loss(self, model, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member pixel MSE of encode → integrate → render, and the latent states (K, N, 2)."""
        obs = self.frames[idx]  # (K, B, T, H, W)
        z0 = encode(model, obs[:, :, : self.context])  # (K, B, 2)
        z = model.integrate(z0, self.t).movedim(0, 2)  # (K, B, T, 2)
        pred = decoder(model).decode(z)
        mse = (pred - obs).pow(2).mean(dim=(1, 2, 3, 4))
        return mse, z.detach().flatten(1, 2)


def make_data(
    split: str,
    n: int,
    horizon: float = HORIZON,
    dt: float = DT,
    noise: float = 0.0,
    rod: float = 0.0,
) -> Frames:
    """``n`` rendered trajectories of a split (the pendulum task's, :func:`pendulum.split_states`),
    float32 frames, with Gaussian pixel noise of std ``noise`` drawn from the split's seed."""
    t = torch.arange(0.0, horizon, dt, dtype=torch.float64)
    states = pendulum.simulate(pendulum.split_states(split, n), t)
    frames = render(states[..., 0], rod=rod)
    frames = add_noise(frames, noise, pendulum.SPLIT_SEED[split] + 11)
    return Frames(t.float(), frames.float(), states.float())


def make_hybrid(
    hidden: int = 200, physics: str = "incomplete", network: bool = True, rod: float = 0.0
) -> LatentHybridODE:
    """Encoder + latent pendulum hybrid (:func:`pendulum.make_hybrid`) + renderer."""
    latent = pendulum.make_hybrid(hidden=hidden, physics=physics, network=network)
    return LatentHybridODE(latent, Encoder(), rod=rod)


# The task's version in run keys: bump it when the model or scoring change what a run computes
# (a change to the data needs no bump: the data hash follows it).
VERSION = 1

# The pendulum's recipe (windows of 10 steps, Adam) sized for the 2-core machine: 15 training
# movies (450 windows) in minibatches of 90, 150 epochs (750 steps; one epoch of a 5-seed
# ensemble ≈ 2.5 s ERM, ≈ 4 s SAM on one thread). Quick mode: 10 movies, the pendulum's recipe.
# Sharpness and Hessian on the first 150 training windows (power iteration is ~20 passes).
CURVATURE_SAMPLES = 150
# The pixel noise of the retrained book: 1 % of the std of the noise-free training pixels (full
# mode, 15 movies of 40 frames of 32×32 pixels: 0.1008), to 2 significant digits.
NOISE = 0.0010


def task(
    n_train: int | None = None,
    n_val: int = 10,
    n_test: int = 25,
    window: int = 10,
    hidden: int | None = None,
    noise: float = 0.0,
    rod: float = 0.0,
    extrapolation: bool = False,
) -> Task:
    """The pendulum-images task: training on every ``window``-step window of frames,
    validation and test on whole 40-frame trajectories encoded from their first frames.
    ``extrapolation`` adds the extrapolation split (n_val movies, see the module's docstring);
    ``noise`` is the std of the pixel noise (:data:`NOISE` in the book)."""
    n_train = n_train or pick(15, 10)
    hidden = hidden or pick(200, 32)
    spec = {
        "n_train": n_train,
        "n_val": n_val,
        "n_test": n_test,
        "window": window,
        "hidden": hidden,
        "noise": noise,
        "rod": rod,
        "horizon": HORIZON,
        "dt": DT,
        "size": SIZE,
        "sigma": SIGMA,
        "context": CONTEXT,
    }
    extra = None
    if extrapolation:
        horizon = pendulum.EXTRAPOLATION_HORIZON
        extra = make_data("extrapolation", n_val, horizon, noise=noise, rod=rod)
        spec["extrapolation"] = "rendered: " + pendulum.extrapolation_words(n_val, len(extra.t))
    return Task(
        name="pendulum_images",
        train=make_data("train", n_train, noise=noise, rod=rod).windows(window),
        val=make_data("val", n_val, noise=noise, rod=rod),
        test=make_data("test", n_test, rod=rod),
        make_model=functools.partial(make_hybrid, hidden=hidden, rod=rod),
        truth=TRUTH,
        spec=spec,
        normalized_norm=True,
        curvature_samples=CURVATURE_SAMPLES,
        version=VERSION,
        extrapolation=extra,
        noise=noise,
    )
