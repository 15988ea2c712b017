"""Benchmark: what SAM and ensembles cost on the pendulum hybrid. Prints ratios; asserts nothing.

    python -m hsam_core.bench            # CPU, one thread
    python -m hsam_core.bench --threads 2 --device cuda

1. Step cost: the mean optimizer step (closure included) of SAM, ASAM, the LookSAM variants and
   APHYNITY divided by Adam's, on the same model and minibatch (150 windows of 10 rk4 steps, MLP
   2→200→200→2); the methods take turns in blocks of ``--repeats`` steps (a multiple of every k)
   so that a load on the machine hits them alike, and each keeps its fastest block. SAM's
   physical floor is 2.0, two forward+backward passes; LookSAM's is 1 + 1/k.
   Then the wall time of one training epoch (5 seeds as one ensemble, as the chapters train)
   relative to ERM's, the figure the accuracy–cost frontier of chapter 5b uses.
2. Ensembles: K = 5 seeds trained as one :class:`~hsam_core.ensemble.Ensemble` versus 5
   sequential single-seed fits, for ERM and SAM (same epochs, same data).
3. Peak memory: the process's peak resident set (CPU) or ``max_memory_allocated`` (CUDA).
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable

import torch

from . import Aphynity, Ensemble, HybridModel, Method, fit, make_optimizer, set_cpu_threads
from .systems import pendulum


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _closure_for(model, opt, data, idx, reg):
    def closure():
        opt.zero_grad()
        loss, states = data.loss(model, idx)
        objective = loss if reg is None else reg.objective(model, loss, states)
        objective.sum().backward()
        return loss.detach()

    return closure


def step_seconds(method: Method, data, device: torch.device, repeats: int) -> float:
    """Mean wall time of one optimizer step of ``method`` (K = 1, batch 150)."""
    return compare_step_seconds([method], data, device, repeats)[0]


def compare_step_seconds(
    methods: list[Method],
    data,
    device: torch.device,
    repeats: int,
    rounds: int = 5,
    make_model: Callable[[], HybridModel] = pendulum.make_hybrid,
) -> list[float]:
    """Mean wall time of one optimizer step of each method (K = 1, batch 150) on the hybrid
    ``make_model()`` builds: the methods take turns in blocks of ``repeats`` steps, ``rounds``
    times; each keeps its fastest block."""
    runs = []
    for method in methods:
        model = Ensemble.from_seeds(make_model, [0]).to(device)
        opt = make_optimizer(model, method)
        reg = method.regularizer
        if reg is not None:
            reg.reset(1)
        idx = torch.arange(150, device=device).unsqueeze(0)
        closure = _closure_for(model, opt, data, idx, reg)
        for _ in range(3):  # warm-up
            opt.step(closure)
        runs.append((opt, closure))
    best = [float("inf")] * len(methods)
    for _ in range(rounds):
        for i, (opt, closure) in enumerate(runs):
            _sync(device)
            start = time.perf_counter()
            for _ in range(repeats):
                opt.step(closure)
            _sync(device)
            best[i] = min(best[i], (time.perf_counter() - start) / repeats)
    return best


def epoch_seconds(
    methods: list[Method],
    data,
    device: torch.device,
    epochs: int,
    make_model: Callable[[], HybridModel] = pendulum.make_hybrid,
    rounds: int = 3,
) -> list[float]:
    """Wall time per training epoch of each method on the hybrid ``make_model()`` builds: 5
    seeds as one ensemble, batch 150, as the chapters train; the methods take turns in blocks
    of ``epochs`` epochs, ``rounds`` times; each keeps its fastest block."""
    best = [float("inf")] * len(methods)
    for _ in range(rounds):
        for i, method in enumerate(methods):
            model = Ensemble.from_seeds(make_model, [0, 1, 2, 3, 4]).to(device)
            history = fit(model, data, method, epochs=epochs, batch_size=150)
            best[i] = min(best[i], history.seconds / epochs)
    return best


def ensemble_seconds(
    method: Method, data, device: torch.device, seeds: list[int], epochs: int
) -> tuple[float, float]:
    """(one ensemble of all seeds, the seeds one after another), in seconds."""
    _sync(device)
    start = time.perf_counter()
    fit(
        Ensemble.from_seeds(pendulum.make_hybrid, seeds).to(device),
        data,
        method,
        epochs=epochs,
        batch_size=150,
    )
    _sync(device)
    together = time.perf_counter() - start
    start = time.perf_counter()
    for seed in seeds:
        fit(
            Ensemble.from_seeds(pendulum.make_hybrid, [seed]).to(device),
            data,
            method,
            epochs=epochs,
            batch_size=150,
        )
    _sync(device)
    return together, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20, help="steps per timed block")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    set_cpu_threads(args.threads)
    device = torch.device(args.device)
    data = pendulum.make_data("train", 25).windows(10).to(device)
    print(f"device {device}, {torch.get_num_threads()} CPU thread(s), torch {torch.__version__}")

    methods = [
        Method.erm(),
        Method.sam(0.1),
        Method.asam(1.0),
        Method.looksam(0.1, every=5),
        Method.looksam(0.1, every=10),
        Method.looksam(1.0, every=5, adaptive=True),
        Method.regularized(Aphynity(normalized=True)),
    ]
    steps = compare_step_seconds(methods, data, device, args.repeats)
    epochs = epoch_seconds(methods[:-1], data, device, args.epochs)
    print(
        f"\n1. cost relative to ERM (Adam): one step (blocks of {args.repeats}, batch 150, "
        f"K = 1; Adam {steps[0] * 1e3:.1f} ms) and one epoch (K = 5, {len(data)} windows; "
        f"ERM {epochs[0]:.2f} s)"
    )
    print(f"   {'method':<22} {'ms/step':>8} {'step ratio':>10} {'s/epoch':>8} {'epoch ratio':>11}")
    for i, method in enumerate(methods):
        per_epoch = (
            f"{epochs[i]:8.2f} {epochs[i] / epochs[0]:11.3f}" if i < len(epochs) else " " * 20
        )
        print(
            f"   {method.label:<22} {steps[i] * 1e3:8.1f} {steps[i] / steps[0]:10.3f} {per_epoch}"
        )

    seeds = [0, 1, 2, 3, 4]
    print(f"\n2. K = {len(seeds)} seeds, {args.epochs} epochs of {len(data)} windows, batch 150")
    for method in (Method.erm(), Method.sam(0.1)):
        together, apart = ensemble_seconds(method, data, device, seeds, args.epochs)
        print(
            f"   {method.label:<12} ensemble {together:6.1f} s   sequential {apart:6.1f} s   "
            f"throughput ratio {apart / together:.2f}x"
        )

    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        print(f"\n3. peak GPU memory allocated: {peak:.0f} MiB")
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
        print(f"\n3. peak resident memory of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
