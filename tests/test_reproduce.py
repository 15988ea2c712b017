"""hsam_core.reproduce: the chapters it re-executes, the CSV each system is checked against, and
the comparison that decides whether a re-run moved."""

from __future__ import annotations

import pathlib

import pandas as pd
import pytest

from hsam_core import reproduce, sweep

ROOT = pathlib.Path(__file__).resolve().parents[1]


def table(method: str, rho: float, errors: list[float], mse: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {"method": method, "rho": rho, "seed": range(len(errors)), "theta_rel_error": errors,
         "test_mse": mse}
    )  # fmt: skip


COMMITTED = pd.concat(
    [
        table("ERM", 0.0, [0.40, 0.42, 0.45], [1e-3, 2e-3, 3e-3]),
        table("SAM (nn)", 0.1, [0.010, 0.011, 0.013], [1e-3, 1e-3, 1e-3]),
        table("NN only", 0.0, [float("nan")] * 3, [5e-3, 6e-3, 7e-3]),
        table("L2", 0.0, [0.1, 0.1, 0.1], [1e-3, 1e-3, 1e-3]),
        table("physics only", 0.0, [0.08] * 3, [3e-3] * 3),
    ],
    ignore_index=True,
)


def test_compare_flags_what_moved_and_what_is_missing():
    rerun = pd.concat(
        [
            table("ERM", 0.0, [0.40, 0.42, 0.45], [1e-3, 2e-3, 3e-3]),  # identical
            table("SAM (nn)", 0.1, [0.012, 0.012, 0.012], [1e-3, 1e-3, 1e-3]),  # within range
            table("NN only", 0.0, [float("nan")] * 3, [8e-3, 9e-3, 9e-3]),  # test MSE moved
            table("ASAM (nn)", 1.0, [0.005] * 3, [1e-3] * 3),  # new
            table("physics only", 0.0, [0.08 * (1 - 2e-5)] * 3, [3e-3] * 3),  # float32 rounding
        ],
        ignore_index=True,
    )
    out = reproduce.compare(COMMITTED, rerun).set_index("method")
    assert out.loc["ERM", "status"] == "ok" and out.loc["ERM", "identical"]
    assert out.loc["SAM (nn)", "status"] == "ok" and not out.loc["SAM (nn)", "identical"]
    assert out.loc["NN only", "status"] == "MOVED"
    assert out.loc["ASAM (nn)", "status"] == "not in the committed CSV"
    assert out.loc["L2", "status"] == "not re-run (not in grid())"
    # a deterministic fit (every seed equal) is not flagged for rounding, but is for more
    assert out.loc["physics only", "status"] == "ok"
    moved = COMMITTED.assign(theta_rel_error=COMMITTED.theta_rel_error * 1.01)
    out = reproduce.compare(moved, COMMITTED).set_index("method")
    assert out.loc["physics only", "status"] == "MOVED"


def test_compare_names_a_missing_column():
    with pytest.raises(ValueError, match="test_mse"):
        reproduce.compare(COMMITTED.drop(columns="test_mse"), COMMITTED)


def test_every_system_with_a_grid_has_a_committed_csv_to_check_against():
    folder = ROOT / "book" / "results"
    missing = [
        s for s in sweep.available_systems() if not reproduce.results_csv(s, folder).is_file()
    ]
    assert missing == []


def test_chapters_are_the_toc_notebooks_in_reading_order():
    names = [nb.stem for nb in reproduce.chapters(ROOT / "_toc.yml")]
    assert names[0] == "01_hybrid_models"  # the root (intro.md) is not a notebook
    assert names.index("05b_cheaper_sam") == names.index("05_sam_for_hybrids") + 1
    assert all((ROOT / "book" / f"{n}.ipynb").is_file() for n in names)
    with pytest.raises(FileNotFoundError, match="repository root"):
        reproduce.chapters(ROOT / "nowhere" / "_toc.yml")
