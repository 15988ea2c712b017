"""nbval settings shared by every chapter notebook (see book-ecosystem notes, section 3.4).

This touches nbval internals (``metadata_tags``, ``IPyNbFile.skip_compare``), which is why
requirements.txt pins ``nbval==0.11.0``.
"""

import pathlib
import subprocess
import sys

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
# Quick mode: the chapters' studies trained before the first chapter runs.
#
# In quick mode a chapter trains the quick version of the studies it reads into a scratch store
# (hsam_core.report.results), one run after another on one core. Here the same sweep trains them
# all at once, on a local Ray (one worker per core, the radii of a method as one stacked
# ensemble), in the background while the unit tests run; the first chapter waits for it and every
# chapter then finds its runs in the scratch store. The numbers are the ones the chapters would
# train (tests/test_sweep.py: Ray and stacked sweeps store exactly the rows of a plain sweep). A
# study missing from this list is still trained by its chapter, only later and alone.

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
# The order in which they are handed to the sweep: the longest first (measured in quick mode),
# so that the two workers finish together.
LONGEST_FIRST = (
    "pendulum_images",
    "duffing_settled",
    "duffing_identifiable_settled",
    "pendulum_settled",
    "pendulum_cost",
    "pendulum_failure",
    "pendulum_greybox",
    "reaction_diffusion",
    "reaction_diffusion_aphynity",
    "light_tunnel",
    "wind_tunnel",
    "failure_case",
)

_pretraining: dict = {}


def pytest_collection_finish(session):
    """Start the sweep of the studies of the quick-mode chapters to run (if any)."""
    from hsam_core import settings

    chapters = {i.path.stem for i in session.items if i.path.suffix == ".ipynb"}
    needed = {name for c in chapters for name in CHAPTER_STUDIES.get(c, ())}
    if not settings.get().quick or not needed:
        return
    folder = settings.get().store.parent
    folder.mkdir(parents=True, exist_ok=True)
    log = open(folder / "pretraining.log", "w")  # noqa: SIM115 - closed after the sweep
    names = [name for name in LONGEST_FIRST if name in needed]
    command = [sys.executable, "-m", "hsam_core", "sweep", *names, "--together", "--ray"]
    _pretraining.update(
        process=subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log=log
    )


def pytest_runtest_setup(item):
    """Before the first chapter's first cell: wait for the sweep; if it failed, fail that cell
    with the end of its log (the chapters would then train their runs themselves)."""
    if item.path.suffix != ".ipynb" or "process" not in _pretraining:
        return
    process, log = _pretraining.pop("process"), _pretraining.pop("log")
    code = process.wait()
    log.close()
    if code != 0:
        tail = pathlib.Path(log.name).read_text(errors="replace")[-3000:]
        pytest.fail(f"the quick-mode sweep of the chapters' studies failed ({code}):\n{tail}")
