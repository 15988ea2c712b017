"""hsam_core — deep hybrid models trained with sharpness-aware minimization.

What a user imports::

    from hsam_core import SAM, HybridODE, PhysicsModel, Ensemble, Method, fit, Settle
    from hsam_core import choose_rho   # the recipe: ρ chosen without the true θ
"""

from . import experiments, plotting, select, settings, store, studies
from .data import Pairs, Trajectories
from .ensemble import Ensemble
from .hybrid import HybridModel, HybridODE, PhysicsModel, StaticHybrid, mlp
from .metrics import (
    cosine_similarity,
    fnn_sq_norm,
    nn_contribution,
    prediction_mse,
    sharpness_ascent,
    theta_rel_error,
    top_hessian_eigenvalue,
)
from .regularizers import L2, Aphynity, Orthogonality, Regularizer
from .runtime import (
    default_device,
    pick,
    quick_mode,
    seed_everything,
    set_cpu_threads,
    setup_chapter,
)
from .sam import SAM, LookSAM
from .select import Choice, choose_rho
from .train import History, Method, Settle, check_optimizer, fit, make_optimizer

__version__ = "0.1.0"


__all__ = [
    "experiments",
    "settings",
    "store",
    "studies",
    "plotting",
    "select",
    "choose_rho",
    "Choice",
    "Settle",
    "SAM",
    "LookSAM",
    "HybridModel",
    "HybridODE",
    "StaticHybrid",
    "PhysicsModel",
    "mlp",
    "Ensemble",
    "Trajectories",
    "Pairs",
    "L2",
    "Aphynity",
    "Orthogonality",
    "Regularizer",
    "Method",
    "History",
    "fit",
    "make_optimizer",
    "check_optimizer",
    "theta_rel_error",
    "cosine_similarity",
    "fnn_sq_norm",
    "prediction_mse",
    "nn_contribution",
    "sharpness_ascent",
    "top_hessian_eigenvalue",
    "quick_mode",
    "pick",
    "seed_everything",
    "default_device",
    "set_cpu_threads",
    "setup_chapter",
]
