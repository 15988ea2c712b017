"""Pilot of the settling protocol on the pendulum: 32 wide, with noise and the extrapolation
split, ERM, SAM ρ = 0.1 and ASAM ρ = 1, budget 1500 epochs (checks every 20 from 200).

    python scripts/pendulum_pilot.py        # about 40 minutes on one core
"""

import time

import torch

from hsam_core import settings
from hsam_core.ensemble import Ensemble
from hsam_core.metrics import theta_rel_error
from hsam_core.systems import pendulum
from hsam_core.train import Method, Settle, fit

torch.set_num_threads(1)
torch.set_flush_denormal(True)
settings.configure(quick=False)
task = pendulum.task(noise=pendulum.NOISE, extrapolation=True, hidden=32)
protocol = Settle(min_epochs=200, max_epochs=1500, check_every=20)
for method in (Method.erm(), Method.sam(0.1), Method.asam(1.0)):
    ens = Ensemble.from_seeds(task.make_model, [0, 1, 2, 3, 4])
    start = time.perf_counter()
    history = fit(ens, task.train, method, batch_size=150, settle=protocol)
    error = theta_rel_error(ens.theta(), task.truth)
    print(
        f"{method.label:10s} decay at {history.decay_epoch} of {len(history.loss)} epochs; "
        f"drift before decay {[f'{d:.1e}' for d in history.drift_before_decay.tolist()]}; "
        f"settled {history.settled.int().tolist()}; "
        f"θ error {[round(100 * e, 2) for e in error.tolist()]} %; "
        f"{time.perf_counter() - start:.0f} s"
    )
