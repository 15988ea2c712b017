"""Seconds per epoch of a study's task (5-seed ensemble, one thread), ERM and SAM ρ = 0.1.

    python scripts/epoch_cost.py pendulum pendulum:32 duffing_identifiable wind_tunnel

``STUDY:WIDTH`` builds the task's model with that hidden width. Prints one line per method.
"""

import functools
import sys
import time

import torch

from hsam_core import settings, studies
from hsam_core.ensemble import Ensemble
from hsam_core.train import Method, fit

torch.set_num_threads(1)
torch.set_flush_denormal(True)
settings.configure(quick=False)
for name in sys.argv[1:]:
    name, _, hidden = name.partition(":")
    study = studies.get(name)
    task = study.build_task()
    model = {"hidden": int(hidden)} if hidden else {}
    batch = study.training.get("batch_size")
    epochs = 500 if batch is None else 20  # full-batch chambers: many cheap epochs
    for method in (Method.erm(), Method.sam(0.1)):
        ens = Ensemble.from_seeds(functools.partial(task.make_model, **model), list(study.seeds))
        start = time.perf_counter()
        fit(ens, task.train, method, epochs=epochs, batch_size=batch)
        per_epoch = (time.perf_counter() - start) / epochs
        print(
            f"{name:22s} hidden={hidden or 'default':7s} {method.label:9s} {per_epoch * 1000:9.1f} ms"
        )
