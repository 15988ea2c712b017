"""The results store: every finished run as rows of tidy, schema-checked tables in the repository.

A run is one configuration trained over its seeds (:func:`hsam_core.experiments.run`), named by
its key (:func:`hsam_core.experiments.run_key`: the canonical specification + declared versions
+ the data's content hash). The store, a folder (``book/results/store`` in full mode; see
:mod:`hsam_core.settings`), holds three kinds of file::

    specs.jsonl        one line per run: {"key": ..., "spec": {...}} — what was run, in full
    <task>.csv         one row per run × seed: the structured method fields and every metric
    <task>_theta.csv   θ against epoch per run × seed, subsampled (at most PATH_POINTS epochs)
    weights/<key>.pt   the trained weights of a run (its ensemble's state dict), so that a
                       chapter that draws what a network learned needs no training

Rows are small enough to commit and diff, so results from several days and machines accumulate
by committing rows; the chapters only read them. Weights are written for every run the sweep
trains (tens of kB for the book's 32- and 64-wide networks); runs trained before they were
kept have their weights in a local cache only.

Nothing is dropped or overwritten silently: :func:`write` refuses a run whose key is already
stored with other numbers (unless ``replace=True``), and :func:`check` refuses a row whose
fields disagree with its specification, a key that is not the hash of its specification, a
missing or duplicated seed, or a missing column — each error names the file, the run and what
is wrong.
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Iterable, Sequence

import pandas as pd
import torch

from . import settings
from .experiments import run_key, settled, theta_drift, write_whole
from .train import History

SPECS = "specs.jsonl"
WEIGHTS = "weights"
# The fields of a run's specification (hsam_core.experiments.run_spec): a spec without one of
# them — a version above all — is refused, never read with a default.
SPEC_FIELDS = (
    "task",
    "task_version",
    "task_spec",
    "data",
    "numerics_version",
    "curvature_samples",
    "method",
    "model",
    "seeds",
    "training",
    "device",
)
PATH_POINTS = 60  # θ paths keep at most this many epochs (evenly spaced, first and last kept)
# Training curves a path table keeps beside θ (runs stored before they were kept lack them)
CURVES = ("loss", "nn_norm")

# Columns of <task>.csv, in this order; θ estimates follow as theta_<name> (per task).
ID_COLUMNS = ("key", "task", "method", "kind", "rho", "adaptive", "perturb", "every")
SETTING_COLUMNS = ("regularizer", "strength", "model", "epochs")
METRIC_COLUMNS = (
    "seed",
    "theta_rel_error",
    "theta_cosine",
    "val_mse",
    "test_mse",
    "extrap_mse",
    "nn_norm",
    "sharpness",
    "hessian_top",
)
# converged: θ settled (the protocol's verdict where a run used one: hsam_core.train.Settle);
# theta_drift: over the last 20 % of the epochs; decay_epoch, drift_before_decay: the protocol's
RUN_COLUMNS = (
    "converged",
    "theta_drift",
    "decay_epoch",
    "drift_before_decay",
    "seconds",
    "device",
    "mode",
    "source",
)
COLUMNS = ID_COLUMNS + SETTING_COLUMNS + METRIC_COLUMNS + RUN_COLUMNS
# Floats are written with 9 significant digits: every float32 metric reads back exactly.
FLOAT_FORMAT = "%.9g"


def folder() -> pathlib.Path:
    """The store of this process's settings."""
    return settings.get().store


def strength(spec: dict) -> float:
    """The regularizer's strength in a method spec: L2's and orthogonality's weight,
    APHYNITY's λ₀; NaN without a regularizer."""
    reg = spec["method"]["regularizer"]
    if reg is None:
        return math.nan
    return float(reg.get("weight", reg.get("lambda0", math.nan)))


def fields(spec: dict) -> dict:
    """The columns of a row that :func:`check` derives from its run's specification."""
    method = spec["method"]
    reg = method["regularizer"]
    epochs = spec["training"].get("epochs")
    return {
        "task": spec["task"],
        "method": spec["training"]["model"] or method["label"],
        "kind": method["kind"],
        "rho": float(method["rho"]),
        "adaptive": bool(method["adaptive"]),
        "perturb": method["perturb"],
        "every": int(method["every"]),
        "regularizer": "" if reg is None else reg["name"],
        "strength": strength(spec),
        "model": "" if spec["model"] is None else json.dumps(spec["model"], sort_keys=True),
        # the epochs run: fixed, or (with the protocol) up to it, in the rows
        **({} if epochs is None else {"epochs": int(epochs)}),
    }


def run_rows(
    key: str, spec: dict, rows: Sequence[dict], theta: dict | None, source: str
) -> pd.DataFrame:
    """The store rows of one run: its per-seed ``rows`` (as :func:`~hsam_core.experiments.
    train_and_score` returns them) with the fields of ``spec``, ``converged`` and
    ``theta_drift`` — the rows' own where they carry them, else from the θ history ``theta``
    (``{name: (epochs, seeds)}``; None: NaN)."""
    frame = pd.DataFrame(list(rows))
    seeds = [int(s) for s in spec["seeds"]]
    if sorted(frame["seed"].astype(int)) != sorted(seeds):
        raise ValueError(f"run {key}: rows for seeds {list(frame.seed)}, spec says {seeds}")
    if "converged" not in frame:  # rows of train_and_score carry them
        frame["converged"] = settled(theta).float().numpy() if theta else math.nan
        frame["theta_drift"] = theta_drift(theta).numpy() if theta else math.nan
    for name, value in fields(spec).items():
        frame[name] = value
    frame["key"] = key
    frame["source"] = source
    # a score a run lacks (no network: no sharpness; no protocol: no decay epoch)
    for column in (*METRIC_COLUMNS, "decay_epoch", "drift_before_decay", "seconds"):
        if column not in frame:
            frame[column] = math.nan
    drop = [c for c in ("selected",) if c in frame]
    return _order(frame.drop(columns=drop))


def _order(frame: pd.DataFrame) -> pd.DataFrame:
    theta = sorted(c for c in frame.columns if c.startswith("theta_") and c not in COLUMNS)
    extra = [c for c in frame.columns if c not in COLUMNS and c not in theta]
    if extra:
        raise ValueError(f"columns {extra} are not in the store's schema")
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}")
    return frame[list(COLUMNS) + theta]


def path_rows(
    key: str,
    theta: dict[str, torch.Tensor],
    seeds: Sequence[int],
    curves: dict[str, torch.Tensor] | None = None,
) -> pd.DataFrame:
    """θ against epoch of one run, one row per (seed, kept epoch), at most
    :data:`PATH_POINTS` epochs (evenly spaced, the first and last kept); epochs count from 1.
    ``curves`` adds per-epoch training curves of the same shape (epochs, seeds) as columns of
    their own — :data:`CURVES`: the training loss and ‖f_nn‖² of the history."""
    epochs = next(iter(theta.values())).shape[0]
    curves = curves or {}
    unknown = sorted(set(curves) - set(CURVES))
    if unknown:
        raise ValueError(f"run {key}: unknown training curves {unknown}; the store keeps {CURVES}")
    keep = sorted({round(i * (epochs - 1) / (PATH_POINTS - 1)) for i in range(PATH_POINTS)})
    keep = [e for e in keep if e < epochs]
    frames = []
    for k, seed in enumerate(seeds):
        part = {"key": key, "seed": int(seed), "epoch": [e + 1 for e in keep]}
        for name, values in sorted(theta.items()):
            part[f"theta_{name}"] = values[keep, k].double().numpy()
        for name, values in curves.items():
            if values.shape[0] != epochs:
                raise ValueError(f"run {key}: {name} has {values.shape[0]} epochs, θ {epochs}")
            part[name] = values[keep, k].double().numpy()
        frames.append(pd.DataFrame(part))
    return pd.concat(frames, ignore_index=True)


def history_paths(key: str, history: History, seeds: Sequence[int]) -> pd.DataFrame | None:
    """:func:`path_rows` of a training history (:class:`hsam_core.train.History`): its θ, its
    training loss and ‖f_nn‖²; None for a history without θ."""
    if not history.theta:
        return None
    curves = {"loss": history.loss, "nn_norm": history.nn_norm}
    return path_rows(key, history.theta, seeds, curves)


def read_specs(store: pathlib.Path | None = None) -> dict[str, dict]:
    """``{key: spec}`` of every run in the store."""
    path = (store or folder()) / SPECS
    if not path.exists():
        return {}
    specs = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            key, spec = entry["key"], entry["spec"]
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}:{number}: not a {{'key', 'spec'}} JSON line: {err}") from err
        missing = [f for f in SPEC_FIELDS if f not in spec]
        if missing:
            raise ValueError(f"{path}:{number}: run {key}: the spec lacks {missing}")
        if key in specs and specs[key] != spec:
            raise ValueError(f"{path}:{number}: run {key} listed twice with different specs")
        specs[key] = spec
    return specs


def _read_csv(path: pathlib.Path) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame()
    return pd.read_csv(
        path, keep_default_na=False, na_values=["", "nan", "NaN"], dtype={"key": str}
    )


def _write_csv(table: pd.DataFrame, path: pathlib.Path) -> None:
    """Write ``table`` to ``path`` whole (:func:`~hsam_core.experiments.write_whole`), in the
    store's float format."""
    write_whole(path, lambda tmp: table.to_csv(tmp, index=False, float_format=FLOAT_FORMAT))


def read(task: str, store: pathlib.Path | None = None) -> pd.DataFrame:
    """Every row of ``task`` in the store (empty if none)."""
    return _read_csv((store or folder()) / f"{task}.csv")


def read_paths(task: str, store: pathlib.Path | None = None) -> pd.DataFrame:
    """Every θ path row of ``task`` in the store (empty if none)."""
    return _read_csv((store or folder()) / f"{task}_theta.csv")


def write(
    key: str,
    spec: dict,
    rows: pd.DataFrame,
    paths: pd.DataFrame | None = None,
    store: pathlib.Path | None = None,
    replace: bool = False,
) -> None:
    """Add one run (its spec, its rows from :func:`run_rows`, its θ paths) to the store.

    A run already stored is refused with ``ValueError`` unless ``replace`` — then its rows and
    paths are replaced, never mixed with the old ones."""
    store = store or folder()
    store.mkdir(parents=True, exist_ok=True)
    missing = [f for f in SPEC_FIELDS if f not in spec]
    if missing:
        raise ValueError(f"run {key}: the spec lacks {missing}")
    if run_key(spec) != key:
        raise ValueError(f"run {key}: the key is not the hash of its spec ({run_key(spec)})")
    task = spec["task"]
    specs = read_specs(store)
    old = read(task, store)
    if key in specs or (len(old) and (old.key == key).any()):
        if not replace:
            raise ValueError(f"run {key} ({rows.method.iloc[0]}) is in the store already")
        old = old[old.key != key]
    specs[key] = spec
    table = pd.concat([old, rows], ignore_index=True) if len(old) else rows
    _write_csv(_order(table), store / f"{task}.csv")
    old_paths = read_paths(task, store)
    if len(old_paths):
        old_paths = old_paths[old_paths.key != key]
    if paths is not None and len(paths):
        old_paths = pd.concat([old_paths, paths], ignore_index=True) if len(old_paths) else paths
    if len(old_paths):
        _write_csv(old_paths, store / f"{task}_theta.csv")
    lines = [json.dumps({"key": k, "spec": specs[k]}, sort_keys=True) for k in sorted(specs)]
    write_whole(store / SPECS, lambda tmp: tmp.write_text("\n".join(lines) + "\n"))


def write_paths(
    key: str, paths: pd.DataFrame, store: pathlib.Path | None = None, replace: bool = False
) -> None:
    """Add the θ paths (:func:`path_rows`) of the stored run ``key``, which has none (a run
    imported from a table, whose history a local cache kept). A run that is not stored, or
    that has paths already, is refused with ``ValueError`` naming it — unless ``replace``
    (the same training's paths with more columns: its training curves)."""
    store = store or folder()
    spec = read_specs(store).get(key)
    if spec is None:
        raise ValueError(f"run {key} is not in the store {store}: write its rows before its paths")
    if set(paths.key) != {key}:
        raise ValueError(f"run {key}: the paths belong to {sorted(set(paths.key))}")
    old = read_paths(spec["task"], store)
    if len(old) and (old.key == key).any():
        if not replace:
            raise ValueError(f"run {key} has θ paths in the store already")
        old = old[old.key != key]
    table = pd.concat([old, paths], ignore_index=True) if len(old) else paths
    _write_csv(table, store / f"{spec['task']}_theta.csv")


def weights_path(key: str, store: pathlib.Path | None = None) -> pathlib.Path:
    """Where the weights of the run ``key`` are kept."""
    return (store or folder()) / WEIGHTS / f"{key}.pt"


def write_weights(
    key: str, state: dict[str, torch.Tensor], store: pathlib.Path | None = None
) -> None:
    """Keep the trained weights ``state`` (an ensemble's state dict) of the stored run ``key``;
    a key the store has no spec for is refused (write the run's rows first)."""
    store = store or folder()
    if key not in read_specs(store):
        raise KeyError(f"run {key} is not in the store {store}: write its rows before its weights")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TypeError(f"run {key}: weights must be a state dict of tensors, got {type(state)}")
    path = weights_path(key, store)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_whole(path, lambda tmp: torch.save({k: v.detach().cpu() for k, v in state.items()}, tmp))


def read_weights(key: str, store: pathlib.Path | None = None) -> dict[str, torch.Tensor] | None:
    """The kept weights of the run ``key``, or ``None`` when the store has none."""
    path = weights_path(key, store)
    return torch.load(path, weights_only=True) if path.exists() else None


def merge(source: pathlib.Path, store: pathlib.Path | None = None) -> tuple[int, int]:
    """Add every run of the store ``source`` (another machine's, another day's) to ``store``:
    its spec, rows and θ paths, through :func:`write`. A run that ``store`` holds already with
    the same numbers is skipped; with other numbers, ``ValueError`` names it (nothing is
    overwritten). ``source`` must be sound (:func:`check`). Returns (added, already there)."""
    source = pathlib.Path(source)
    problems = check(source)
    if problems:
        raise ValueError(f"{source} is not a sound store: {problems[0]} ({len(problems)} problems)")
    target = store or folder()
    have = read_specs(target) if (target / SPECS).exists() else {}
    added = same = 0
    for key, spec in read_specs(source).items():
        rows = lookup([key], spec["task"], source)
        if key in have:
            mine = lookup([key], spec["task"], target)
            numbers = [c for c in METRIC_COLUMNS if c in rows]
            theirs = rows.sort_values("seed")[numbers].reset_index(drop=True)
            ours = mine.sort_values("seed")[numbers].reset_index(drop=True)
            if not theirs.equals(ours):
                raise ValueError(
                    f"run {key} ({rows.method.iloc[0]}, rho {rows.rho.iloc[0]:g}) is in "
                    f"{target} with other numbers than in {source}"
                )
            same += 1
            continue
        paths = read_paths(spec["task"], source)
        paths = paths[paths.key == key] if len(paths) else None
        write(key, spec, rows, paths, target)
        state = read_weights(key, source)
        if state is not None:
            write_weights(key, state, target)
        added += 1
    return added, same


def check(store: pathlib.Path | None = None) -> list[str]:
    """Every problem of the store, one line each (empty: the store is sound): a row whose key
    has no spec, whose fields disagree with its spec, or whose seeds are missing or repeated; a
    spec whose key is not its hash; a file without the schema's columns; a θ path or weights of
    an unknown run."""
    store = store or folder()
    problems = []
    specs = read_specs(store)
    for key, spec in specs.items():
        if run_key(spec) != key:
            problems.append(f"{SPECS}: run {key}: key is not the hash of its spec")
    seen = set()
    for path in sorted(store.glob("*.csv")):
        if path.stem.endswith("_theta"):
            continue
        table = _read_csv(path)
        missing = [c for c in COLUMNS if c not in table.columns]
        if missing:
            problems.append(f"{path.name}: missing column(s) {missing}")
            continue
        for key, rows in table.groupby("key", sort=False):
            seen.add(key)
            where = f"{path.name}: run {key} ({rows.method.iloc[0]}, rho {rows.rho.iloc[0]:g})"
            if key not in specs:
                problems.append(f"{where}: no spec in {SPECS}")
                continue
            spec = specs[key]
            for name, expected in fields(spec).items():
                values = {_plain(v) for v in rows[name]}
                ok = len(values) == 1 and _same(next(iter(values)), expected)
                if not ok:
                    problems.append(
                        f"{where}: column {name} is {sorted(values, key=str)}, "
                        f"its spec says {expected!r}"
                    )
            if path.stem != spec["task"]:
                problems.append(f"{where}: task {spec['task']} stored in {path.name}")
            seeds = sorted(int(s) for s in rows.seed)
            if seeds != sorted(int(s) for s in spec["seeds"]):
                problems.append(f"{where}: seeds {seeds}, its spec says {spec['seeds']}")
    for path in sorted(store.glob("*_theta.csv")):
        table = _read_csv(path)
        unknown = set(table.key) - set(specs)
        if unknown:
            problems.append(f"{path.name}: paths of runs without a spec {sorted(unknown)}")
        known = ("key", "seed", "epoch", *CURVES)
        extra = [c for c in table.columns if c not in known and not c.startswith("theta_")]
        if extra:
            problems.append(f"{path.name}: columns {extra} are not in the paths' schema")
    for key in sorted(set(specs) - seen):
        problems.append(f"{SPECS}: run {key} has no rows")
    for path in sorted((store / WEIGHTS).glob("*.pt")):
        if path.stem not in specs:
            problems.append(f"{WEIGHTS}/{path.name}: weights of a run without a spec")
    return problems


def _plain(value: object) -> object:
    """A cell as a plain value, every NaN and empty cell as None (NaN != NaN in a set)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _same(value: object, expected: object) -> bool:
    if value is None:
        return expected == "" or (isinstance(expected, float) and math.isnan(expected))
    if isinstance(expected, float):
        return isinstance(value, (int, float)) and math.isclose(value, expected, rel_tol=1e-9)
    return value == expected


def lookup(keys: Iterable[str], task: str, store: pathlib.Path | None = None) -> pd.DataFrame:
    """The rows of the runs ``keys`` of ``task``, in the order of ``keys``; a key that is not
    stored raises ``KeyError`` naming it (nothing is dropped silently)."""
    table = read(task, store)
    keys = list(keys)
    missing = [k for k in keys if not len(table) or not (table.key == k).any()]
    if missing:
        raise KeyError(f"runs {missing} of {task} are not in the store {store or folder()}")
    return pd.concat([table[table.key == k] for k in keys], ignore_index=True)
