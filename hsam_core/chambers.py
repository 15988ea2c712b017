"""Causal Chambers data (Gamella, Peters & Bühlmann 2025): reading and checking a chamber's CSV.

The offline data of chapters 9 and 10 come from the ``causalchamber`` package's simulators. The
real measurements are published as CSV files with the chamber's own column names; this module
reads them for people who have the network (e.g. on Colab):

* :func:`read_chamber_csv` — read one experiment's CSV and check the columns a task needs:
  a missing column, a non-numeric or a non-finite value is an error that names the column and
  the number of rows; nothing is dropped.
* :func:`load_real` — download a published dataset through ``causalchamber.datasets.Dataset``
  (it verifies the archive's md5) into ``$HSAM_CACHE/chambers`` and read one experiment.

``causalchamber.datasets`` contacts the network when it is imported, so it is imported inside
:func:`load_real` only — never when ``hsam_core`` or a system module is imported.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import settings


def chamber_cache() -> pathlib.Path:
    """Where downloaded datasets go: ``chambers/`` of the settings' cache folder."""
    return settings.get().cache / "chambers"


def check_columns(frame: pd.DataFrame, columns: Sequence[str], source: str) -> pd.DataFrame:
    """The ``columns`` of ``frame`` as float64, or a ``ValueError`` naming what is wrong."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; it has {list(frame.columns)}")
    out = {}
    for c in columns:
        values = pd.to_numeric(frame[c], errors="coerce")
        non_numeric = int((values.isna() & frame[c].notna()).sum())
        if non_numeric:
            raise ValueError(
                f"{source}: column {c!r} has {non_numeric} non-numeric value(s) in "
                f"{len(frame)} rows"
            )
        bad = int((~np.isfinite(values.to_numpy(dtype=float))).sum())
        if bad:
            raise ValueError(
                f"{source}: column {c!r} has {bad} non-finite value(s) (empty, NaN or inf) "
                f"in {len(frame)} rows"
            )
        out[c] = values.astype("float64")
    return pd.DataFrame(out)


def read_chamber_csv(path: str | os.PathLike, columns: Sequence[str]) -> pd.DataFrame:
    """Read a chamber experiment's CSV and return ``columns`` (checked, float64, every row)."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no chamber CSV at {path}")
    return check_columns(pd.read_csv(path), columns, str(path))


def load_real(
    dataset: str,
    experiment: str | None,
    columns: Sequence[str],
    root: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """One experiment of a published Causal Chambers dataset, or all of them concatenated
    (``experiment=None``), e.g. ``load_real("lt_malus_v1", None, [...])``.

    Downloads (md5-verified, by ``causalchamber.datasets``) into ``root`` (default
    ``$HSAM_CACHE/chambers``) the first time; afterwards reads from disk. Without a network it
    raises a ``ConnectionError`` that names the dataset and how to get it.
    """
    root = pathlib.Path(root) if root is not None else chamber_cache()
    folder = root / dataset
    if folder.is_dir():  # already on disk: no network needed
        csvs = (
            sorted(folder.glob("*.csv")) if experiment is None else [folder / f"{experiment}.csv"]
        )
        if not csvs:
            raise FileNotFoundError(f"no experiment CSV in {folder}")
        return pd.concat([read_chamber_csv(c, columns) for c in csvs], ignore_index=True)
    try:
        import causalchamber.datasets as ccd  # contacts the network at import time
    except Exception as err:  # requests' errors, ConnectionError, …
        raise ConnectionError(
            f"the real data {dataset!r} are not on disk under {root} and could not be "
            f"downloaded ({type(err).__name__}: {err}). With a network, call "
            f"hsam_core.chambers.load_real({dataset!r}, ...) once, or place the "
            f"dataset's folder from https://causalchamber.org under {root}."
        ) from err
    root.mkdir(parents=True, exist_ok=True)
    data = ccd.Dataset(dataset, root=str(root), download=True)
    available = data.available_experiments()
    if experiment is not None and experiment not in available:
        raise ValueError(
            f"dataset {dataset!r} has no experiment {experiment!r}; it has {available}"
        )
    names = available if experiment is None else [experiment]
    frames = [
        check_columns(data.get_experiment(n).as_pandas_dataframe(), columns, f"{dataset}/{n}")
        for n in names
    ]
    return pd.concat(frames, ignore_index=True)
