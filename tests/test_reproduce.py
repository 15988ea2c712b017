"""hsam_core.reproduce: the chapters it re-executes, the committed store every study is checked
against, and the comparison that decides whether a re-run moved."""

from __future__ import annotations

import pathlib

import pandas as pd
import pytest

from hsam_core import reproduce, settings, store, studies, sweep

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
    assert out.loc["ASAM (nn)", "status"] == "not in the committed store"
    assert out.loc["L2", "status"] == "not re-run"
    # a deterministic fit (every seed equal) is not flagged for rounding, but is for more
    assert out.loc["physics only", "status"] == "ok"
    moved = COMMITTED.assign(theta_rel_error=COMMITTED.theta_rel_error * 1.01)
    out = reproduce.compare(moved, COMMITTED).set_index("method")
    assert out.loc["physics only", "status"] == "MOVED"


def test_cost_sums_the_training_time_of_both_tables_and_says_when_one_is_untimed():
    committed = COMMITTED.assign(seconds=3600.0)  # 15 rows: 15 CPU-hours
    rerun = COMMITTED.assign(seconds=1200.0)
    assert reproduce.cost(committed, rerun) == (
        "training: committed 15 CPU-hours, re-run 5 (committed / re-run: 3.00x)"
    )
    untimed = committed.assign(seconds=[float("nan")] + [3600.0] * 14)  # one trained elsewhere
    assert "committed nan CPU-hours" in reproduce.cost(untimed, rerun)


def test_compare_names_a_missing_column():
    with pytest.raises(ValueError, match="test_mse"):
        reproduce.compare(COMMITTED.drop(columns="test_mse"), COMMITTED)


# The runs of the book's studies that the committed store lacks, and why: the book's tables
# before the store did not hold them (chapter 2's toy was written as a table of its own; the
# long twin's regularizers were never trained).
NOT_STORED = {
    "failure_case": {"ERM"},
    "duffing_identifiable_long": {"APHYNITY", "L2", "orthogonality"},
}


def test_the_committed_store_is_sound_and_holds_every_run_but_the_known_gaps():
    """Every run of every study (full mode), looked up under the key this machine computes,
    is in the committed store — except the gaps listed above; and the store passes its check."""
    book = settings.BOOK_STORE
    assert store.check(book) == []
    settings.configure(quick=False, store=book)
    missing = {}
    for name in studies.names():
        todo, _ = sweep.plan([name])
        if todo:
            missing[name] = {job.label for job in todo}
    assert missing == NOT_STORED


def test_chapters_are_the_toc_notebooks_in_reading_order():
    names = [nb.stem for nb in reproduce.chapters(ROOT / "_toc.yml")]
    assert names[0] == "01_hybrid_models"  # the root (intro.md) is not a notebook
    assert names.index("05b_cheaper_sam") == names.index("05_sam_for_hybrids") + 1
    assert all((ROOT / "book" / f"{n}.ipynb").is_file() for n in names)
    with pytest.raises(FileNotFoundError, match="repository root"):
        reproduce.chapters(ROOT / "nowhere" / "_toc.yml")


def test_retrain_one_configuration_reproduces_the_store(capsys):
    """report.retrain: one configuration trained afresh in a scratch store and compared with the
    store it was committed to — the same code on the same machine moves nothing."""
    from hsam_core import report

    settings.configure(quick=False, store=settings.get().store, cache=settings.get().cache)
    tiny = studies.get("failure_case").but(name="tiny", seeds=(0, 1), training=dict(epochs=20))
    assert sweep.sweep([tiny]) == []
    assert report.retrain(tiny, "ERM") is True
    out = capsys.readouterr().out
    assert "nothing moved" in out and "retrained in" in out
    with pytest.raises(ValueError, match="configurations 'SAM"):
        report.retrain(tiny, "SAM (nn)", 0.1)
