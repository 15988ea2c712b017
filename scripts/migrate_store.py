"""Import the committed per-chapter CSVs of book/results into the results store (one-off).

The runs behind these tables were trained before runs had explicit keys; their caches are gone
(they lived on the machines that trained them), so the committed CSVs are the only copy. Each
CSV row is matched, by its configuration's label and rho, to a configuration of its study's
full-mode grid; the run's key is computed from that configuration's explicit specification
(with today's task data, whose hash goes into the key), and the rows are written with
``source = "migrated from book/results/<file> at <commit>"``. A row that matches no
configuration, or a configuration whose seeds differ from the spec, stops the migration with an
error naming it: nothing is dropped silently.

What is not migrated, and why: ``sam_cost.csv`` (a cost table derived from per-step timings, not
runs) and ``failure_case.csv`` (chapter 2's runs at several training lengths, not a grid of a
study), ``identifiability.csv`` (references computed without training), and the two θ-path
tables (medians over seeds, not per-seed paths; the per-seed histories were in the lost caches).
Rows trained apart from their chapter (extra radii, the long twin, the GPU rerun) had their wall
time in ``seconds_measured`` and ``seconds`` NaN, since their machine was not the chapter's; the
store keeps ``seconds`` NaN for them, so that no cost ratio mixes machines.

    HSAM_QUICK=0 python scripts/migrate_store.py      # reads the CSVs from git, commit SOURCE
"""

from __future__ import annotations

import io
import pathlib
import subprocess
import sys

import pandas as pd

from hsam_core import settings, store, sweep
from hsam_core.experiments import run_key

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The last commit whose chapters wrote book/results/*.csv (before the store).
SOURCE = "323eaea"
# file -> (studies whose grids its rows come from, device the spec asks for). A run in the
# tables of several chapters (chapter 5's ERM is also in chapter 3's and 5c's) is one run: the
# first table that holds it is imported, and a later copy with other numbers is reported.
TABLES = {
    "pendulum.csv": ("pendulum", "any"),
    "regularizers.csv": ("pendulum pendulum_greybox", "any"),
    "architectures.csv": ("pendulum_architectures", "any"),
    "pendulum_images.csv": ("pendulum_images", "any"),
    "reaction_diffusion.csv": ("reaction_diffusion", "any"),
    "reaction_diffusion_rho.csv": ("reaction_diffusion_rho", "any"),
    "reaction_diffusion_aphynity.csv": ("reaction_diffusion_aphynity", "any"),
    "duffing.csv": ("duffing", "any"),
    "duffing_identifiable.csv": ("duffing_identifiable", "any"),
    "duffing_identifiable_long.csv": ("duffing_identifiable_long", "any"),
    "duffing_identifiable_gpu.csv": ("duffing_identifiable_gpu", "cuda"),
    "wind_tunnel.csv": ("wind_tunnel", "any"),
    "light_tunnel.csv": ("light_tunnel", "any"),
}
METRICS = [c for c in store.METRIC_COLUMNS if c != "seed"]


def same_numbers(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Do two copies of a run's rows hold the same metrics (to float32 precision)?"""
    a, b = a.sort_values("seed"), b.sort_values("seed")
    for column in METRICS:
        x, y = a[column].to_numpy(float), b[column].to_numpy(float)
        if not ((abs(x - y) <= 1e-6 * abs(y)) | (pd.isna(x) & pd.isna(y))).all():
            return False
    return True


def fill_flags(stored: pd.DataFrame, copy: pd.DataFrame) -> pd.DataFrame | None:
    """The stored rows with ``converged`` and ``theta_drift`` taken from another table's copy of
    the same run (same numbers) where the stored ones lack them; None if there is nothing to
    fill. (Chapter 5's table had no convergence columns; section 5c's copy of its runs has.)"""
    stored = stored.sort_values("seed", ignore_index=True)
    copy = copy.sort_values("seed", ignore_index=True)
    columns = [c for c in ("converged", "theta_drift") if stored[c].isna().all()]
    columns = [c for c in columns if copy[c].notna().any()]
    if not columns:
        return None
    return stored.assign(**{c: copy[c].to_numpy() for c in columns})


def migrate(file: str, studies: str, device: str, commit: str) -> tuple[int, list[str]]:
    text = subprocess.run(
        ["git", "show", f"{commit}:book/results/{file}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    table = pd.read_csv(io.StringIO(text))
    todo, done = sweep.plan(studies.split())
    jobs = todo + done  # "done": already imported from an earlier table
    by_config = {}
    for job in jobs:
        by_config.setdefault((job.label, float(job.rho)), job)
    written, conflicts = 0, []
    for (label, rho), rows in table.groupby(["method", "rho"], sort=False):
        job = by_config.get((label, float(rho)))
        if job is None:
            raise SystemExit(f"{file}: no configuration {label!r} rho {rho:g} in {studies}")
        spec = {**job.spec, "device": device}
        key = run_key(spec)
        theta = [c for c in rows.columns if c.startswith("theta_") and c not in store.COLUMNS]
        keep = ["task", "method", "rho", "seed", *METRICS, *theta, "seconds", "device", "mode"]
        per_seed = rows.reindex(columns=keep).dropna(axis=1, how="all")
        per_seed = per_seed.loc[:, [c for c in per_seed.columns if c in keep]]
        records = per_seed.to_dict("records")
        out = store.run_rows(
            key, spec, records, None, f"migrated from book/results/{file} at {commit}"
        )
        for column in ("converged", "theta_drift"):
            if column in rows:
                out[column] = rows[column].to_numpy()
        out = store._order(out)
        stored = store.read(spec["task"])
        if len(stored) and (stored.key == key).any():
            mine = stored[stored.key == key]
            filled = fill_flags(mine, out) if same_numbers(out, mine) else None
            if filled is not None:
                store.write(key, spec, store._order(filled), replace=True)
                continue
            if not same_numbers(out, mine):
                old = stored[stored.key == key].theta_rel_error.median()
                conflicts.append(
                    f"{file}: {label} rho {rho:g} (run {key}): median theta error "
                    f"{out.theta_rel_error.median():.4g} here, {old:.4g} in the store (kept)"
                )
            continue
        store.write(key, spec, out)
        written += 1
    return written, conflicts


def main() -> None:
    if settings.get().quick:
        raise SystemExit("the book's results are full-mode: unset HSAM_QUICK")
    for file, (studies, device) in TABLES.items():
        written, conflicts = migrate(file, studies, device, SOURCE)
        print(f"{file}: {written} runs imported", flush=True)
        for line in conflicts:
            print(f"  CONFLICT {line}")
    problems = store.check()
    print("\n".join(problems) or "store check: sound")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
