"""Chapter 8b's grid re-run on a GPU: does the θ-free rule pick the same ρ on other hardware?

The same task, seeds, training and code as :mod:`hsam_core.systems.duffing_identifiable` — the
same cache keys: the key names no device — for every configuration of its grid that trains a
network (ERM, SAM (nn) and ASAM (nn) over the book's ρ grids, APHYNITY, L2, orthogonality),
trained on a CUDA device instead of a CPU. Floating-point arithmetic differs between the two
(summation order, fused kernels), and training amplifies such differences, so each seed lands
on a slightly different fit: chapter 11 compares the two tables and the rule's pick on each.

Fill a separate cache on a machine with a GPU (the runs of a cache are keyed like the CPU's, so
keep the two caches apart), then write the table from it::

    HSAM_CACHE=gpu-cache python -m hsam_core.experiments duffing_identifiable \\
        --methods ERM "SAM (nn)" "ASAM (nn)" APHYNITY L2 orthogonality --ray
    python -m hsam_core.systems.duffing_identifiable_gpu --cache gpu-cache

The second command refuses results trained on a CPU. The committed table came from an NVIDIA
H200 (PyTorch 2.11, CUDA 13), its twelve configurations trained at once, one process each,
sharing the GPU under CUDA MPS; its ``seconds_measured`` are wall times under that load, not a
timing of the GPU.
"""

from __future__ import annotations

from collections.abc import Sequence

from .duffing_identifiable_long import LABELS, grid  # chapter 8b's configurations with a network
from .supplement import Supplement

__all__ = ["LABELS", "SUPPLEMENT", "grid", "main"]

SUPPLEMENT = Supplement("duffing_identifiable", "duffing_identifiable_gpu.csv", grid, "cuda")


def main(argv: Sequence[str] | None = None) -> None:
    """Write the GPU results of :func:`grid` from ``--cache`` into ``book/results``."""
    SUPPLEMENT.main(argv)


if __name__ == "__main__":
    main()
