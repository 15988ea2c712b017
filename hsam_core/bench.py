"""Benchmark: what SAM and ensembles cost on the pendulum hybrid. Prints ratios; asserts nothing.

    python -m hsam_core.bench            # CPU, one thread
    python -m hsam_core.bench --threads 2 --device cuda

1. Step cost: one optimizer step (closure included) of SAM, ASAM and APHYNITY divided by one
   Adam step, on the same model and minibatch (150 windows of 10 rk4 steps, MLP 2→200→200→2).
   SAM's physical floor is 2.0: two forward+backward passes.
2. Ensembles: K = 5 seeds trained as one :class:`~hsam_core.ensemble.Ensemble` versus 5
   sequential single-seed fits, for ERM and SAM (same epochs, same data).
3. Peak memory: the process's peak resident set (CPU) or ``max_memory_allocated`` (CUDA).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from . import Aphynity, Ensemble, Method, fit, make_optimizer, set_cpu_threads
from .systems import pendulum


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_seconds(method: Method, data, device: torch.device, repeats: int) -> float:
    """Median wall time of one optimizer step of ``method`` (K = 1, batch 150)."""
    model = Ensemble.from_seeds(pendulum.make_hybrid, [0]).to(device)
    opt = make_optimizer(model, method)
    idx = torch.arange(150, device=device).unsqueeze(0)
    reg = method.regularizer
    if reg is not None:
        reg.reset(1)

    def closure():
        opt.zero_grad()
        loss, states = data.loss(model, idx)
        objective = loss if reg is None else reg.objective(model, loss, states)
        objective.sum().backward()
        return loss.detach()

    times = []
    for i in range(repeats + 3):  # 3 warm-up steps
        _sync(device)
        start = time.perf_counter()
        opt.step(closure)
        _sync(device)
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


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
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    set_cpu_threads(args.threads)
    device = torch.device(args.device)
    data = pendulum.make_data("train", 25).windows(10).to(device)
    print(f"device {device}, {torch.get_num_threads()} CPU thread(s), torch {torch.__version__}")

    base = step_seconds(Method.erm(), data, device, args.repeats)
    print(
        f"\n1. step cost (median of {args.repeats} steps), relative to Adam = {base * 1e3:.1f} ms"
    )
    for method in (
        Method.sam(0.1),
        Method.asam(1.0),
        Method.regularized(Aphynity(normalized=True)),
    ):
        seconds = step_seconds(method, data, device, args.repeats)
        print(f"   {method.label:<12} {seconds * 1e3:7.1f} ms   ratio {seconds / base:.3f}")

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
