"""One figure style for the whole book: a colour per method, labelled axes, small PNGs.

from hsam_core import plotting
plotting.use_style()
ax.plot(t, err, color=plotting.color("SAM (nn)"), label="SAM (nn)")
"""

from __future__ import annotations

import matplotlib as mpl

# One colour per method across the whole book (names exactly as in the tables).
METHOD_COLORS = {
    "truth": "#000000",
    "physics only": "#7f7f7f",
    "NN only": "#bcbd22",
    "ERM": "#d62728",
    "L2": "#9467bd",
    "APHYNITY": "#ff7f0e",
    "orthogonality": "#8c564b",
    "SAM (nn)": "#1f77b4",
    "SAM (all)": "#17becf",
    "ASAM (nn)": "#2ca02c",
    "ASAM (all)": "#98df8a",
    "LookSAM (nn)": "#393b79",
    "LookASAM (nn)": "#637939",
}


def color(method: str) -> str:
    """The book's colour of ``method`` (labels with a suffix such as "ERM [grey-box]" or
    "LookSAM (nn) k=5" share their method's colour)."""
    base = method.split(" [")[0].split(" k=")[0]
    if base not in METHOD_COLORS:
        raise KeyError(f"no colour for method {method!r}; known: {sorted(METHOD_COLORS)}")
    return METHOD_COLORS[base]


def use_style() -> None:
    """Small, readable, PNG figures (SVG outputs would bloat the notebooks and break nbval)."""
    mpl.rcParams.update(
        {
            "figure.figsize": (6.4, 3.6),
            "figure.dpi": 90,
            "savefig.dpi": 90,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
            "font.size": 10,
        }
    )
