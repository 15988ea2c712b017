"""nbval settings shared by every chapter notebook (see book-ecosystem notes, section 3.4).

This touches nbval internals (``metadata_tags``, ``IPyNbFile.skip_compare``), which is why
requirements.txt pins ``nbval==0.11.0``.
"""

import nbval.plugin as _nbval

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
