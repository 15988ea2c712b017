"""nbval settings shared by every chapter notebook (see book-ecosystem notes, section 3.4).

This touches nbval internals (``metadata_tags``, ``IPyNbFile.skip_compare``), which is why
requirements.txt pins ``nbval==0.11.0``.
"""

import pathlib
import signal
import subprocess
import sys
import time

import nbval.plugin as _nbval
import pytest

# A cell that Jupyter Book / nbclient must not run (tag ``skip-execution``, e.g. a long GPU-only
# run) must not run under nbval either: treat the tag like nbval's own ``nbval-skip``.
_nbval.metadata_tags.setdefault("skip-execution", "skip")

# Output kinds that differ between machines or library versions even when the code is right.
# ``--nbval-lax`` compares only cells marked ``# NBVAL_CHECK_OUTPUT`` — no chapter marks one
# (the committed outputs are full-mode, nbval runs quick mode) — and even there these kinds
# would never be compared. (PNG/JPEG are already skipped by nbval unless ``--nbdime`` is given.)
_NOT_COMPARED = (
    "image/svg+xml",  # random element ids
    "text/html",  # pandas/tqdm markup
    "stderr",  # warnings, progress bars
    "application/papermill.record/image/png",  # myst_nb.glue outputs
    "application/papermill.record/image/svg+xml",
    "application/papermill.record/text/html",
)


def pytest_collectstart(collector):
    """Extend the skip list of every notebook nbval collects below this folder."""
    path = getattr(collector, "path", None)
    if path is not None and path.suffix == ".ipynb" and hasattr(collector, "skip_compare"):
        collector.skip_compare = tuple(collector.skip_compare) + _NOT_COMPARED


# ---------------------------------------------------------------------------------------------
# Quick mode: the chapters' studies trained while the tests run.
#
# In quick mode a chapter trains the quick version of the studies it reads into a scratch store
# (hsam_core.report.results), one run after another on one core. Here one sweep trains them all,
# on a local Ray (one worker per core; ERM with SAM's and ASAM's radii as one stacked ensemble),
# in the background from the start of the session, in the order the chapters come; each chapter
# waits, before its first cell, only until its own runs are in the scratch store, so the first
# chapters run while the sweep trains the later ones. The numbers are the ones the chapters
# would train (tests/test_sweep.py: Ray and stacked sweeps store exactly the rows of a plain
# sweep). A study missing from this list is still trained by its chapter, only later and alone.

# The studies each chapter reads in quick mode (5c and 11 read the book's store in both modes);
# tests/test_book.py checks it against the study names in the chapters' code.
CHAPTER_STUDIES = {
    "01_hybrid_models": ("pendulum_settled",),
    "02_failure_case": ("failure_case", "pendulum_settled", "pendulum_failure"),
    "03_regularizers": ("pendulum_settled", "pendulum_greybox"),
    "04_sam_flatness": ("pendulum_settled",),
    "05_sam_for_hybrids": ("pendulum_settled",),
    "05b_cheaper_sam": ("pendulum_cost",),
    "06_pendulum_images": ("pendulum_images",),
    "07_reaction_diffusion": ("reaction_diffusion", "reaction_diffusion_aphynity"),
    "08_duffing": ("duffing_settled",),
    "08b_duffing_identifiable": ("duffing_identifiable_settled",),
    "09_wind_tunnel": ("wind_tunnel",),
    "10_light_tunnel": ("light_tunnel",),
}
POLL_SECONDS = 2

_pretraining: dict = {}


def pytest_collection_modifyitems(session, config, items):
    """The unit tests first, then the chapters that train nothing in quick mode (they read the
    book's store), then the others in reading order: the sweep trains while the first two run."""

    def rank(item) -> int:
        if item.path.suffix != ".ipynb":
            return 0
        return 2 if item.path.stem in CHAPTER_STUDIES else 1

    items.sort(key=rank)  # stable: cells and chapters keep their order within each rank


def pytest_collection_finish(session):
    """Start the sweep of the studies of the quick-mode chapters to run (if any), in the order
    the chapters will run."""
    from hsam_core import settings

    chapters = list(dict.fromkeys(i.path.stem for i in session.items if i.path.suffix == ".ipynb"))
    names = list(dict.fromkeys(n for c in chapters for n in CHAPTER_STUDIES.get(c, ())))
    if not settings.get().quick or not names:
        return
    folder = settings.get().store.parent
    folder.mkdir(parents=True, exist_ok=True)
    log = open(folder / "pretraining.log", "w")  # noqa: SIM115 - closed after the sweep
    command = [sys.executable, "-m", "hsam_core", "sweep", *names, "--together", "--ray"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    waiting = {c for c in chapters if c in CHAPTER_STUDIES}
    _pretraining.update(process=process, log=log, waiting=waiting)


def pytest_runtest_setup(item):
    """Before a chapter's first cell: wait until the sweep has stored that chapter's runs (or
    has ended); if it failed, fail that cell with the end of its log (the later chapters then
    train their runs themselves)."""
    waiting = _pretraining.get("waiting", set())
    if item.path.suffix != ".ipynb" or item.path.stem not in waiting:
        return
    waiting.discard(item.path.stem)
    from hsam_core import store, sweep

    # the chapter's run keys, stored already or not (planned here, while the sweep trains)
    keys = {job.key for part in sweep.plan(CHAPTER_STUDIES[item.path.stem]) for job in part}
    process = _pretraining["process"]
    while process.poll() is None and not keys <= store.read_specs().keys():
        time.sleep(POLL_SECONDS)
    if process.poll() not in (None, 0):
        waiting.clear()
        tail = pathlib.Path(_pretraining["log"].name).read_text(errors="replace")[-3000:]
        pytest.fail(
            f"the quick-mode sweep of the chapters' studies failed ({process.poll()}):\n{tail}"
        )


def pytest_sessionfinish(session):
    """Stop the sweep if the session ends before it does (a failure with ``-x``, a subset of
    the tests): SIGINT, so that it shuts its Ray down."""
    process = _pretraining.pop("process", None)
    if process is None:
        return
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    _pretraining.pop("log").close()
