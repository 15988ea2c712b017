"""K independently initialised copies of one hybrid model, trained as a single model.

The K members' parameters are stacked along a new leading dimension (the member dimension), and
the member's ``forward`` is mapped over it with ``torch.func.vmap`` + ``functional_call``. An
ODE batch of shape (K, B, d) is then integrated by **one** ``odeint`` call, so the per-step
Python and solver overhead is paid once for all K seeds (on a GPU: one kernel instead of K).

Members never interact: the training loss is the *sum* of the members' losses, so each member's
gradient is exactly the gradient it would get alone; Adam acts element-wise; SAM takes one norm
per member (``SAM(..., member_dim=0)``).
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from .hybrid import HybridModel, integrate
from .runtime import seed_everything


class Ensemble(nn.Module):
    """Stack ``members`` (same class and shapes) into one model with a member dimension 0.

    ``ensemble.model`` is a copy of the first member whose every parameter has shape (K, ...);
    ``physics_parameters()``, ``ml_parameters()`` and ``theta()`` therefore work as on one
    member and return stacked tensors (θ values of shape (K,)).
    """

    def __init__(self, members: Sequence[HybridModel]) -> None:
        super().__init__()
        if isinstance(members, nn.Module) or not isinstance(members, Sequence):
            raise TypeError(
                "Ensemble: members must be a list of models, e.g. Ensemble([model]), got "
                f"{type(members).__name__}"
            )
        if len(members) == 0:
            raise ValueError("an ensemble needs at least one member")
        for i, m in enumerate(members):
            if not isinstance(m, HybridModel):
                raise TypeError(
                    f"Ensemble: member {i} must be a HybridModel (HybridODE, StaticHybrid), "
                    f"got {type(m).__name__}"
                )
            if type(m) is not type(members[0]):
                raise TypeError(
                    f"Ensemble: members must be of one class; member 0 is "
                    f"{type(members[0]).__name__}, member {i} is {type(m).__name__}"
                )
        if any(True for _ in members[0].buffers()):
            raise ValueError(
                "ensemble members must not have buffers (e.g. BatchNorm running statistics): "
                "they would be updated by both SAM passes. Use normalisation without running "
                "statistics"
            )
        names = [n for n, _ in members[0].named_parameters()]
        shapes = [p.shape for _, p in members[0].named_parameters()]
        for i, m in enumerate(members[1:], start=1):
            if [n for n, _ in m.named_parameters()] != names:
                raise ValueError("ensemble members must have the same parameters")
            for name, shape, (_, p) in zip(names, shapes, m.named_parameters()):
                if p.shape != shape:
                    raise ValueError(
                        f"Ensemble: parameter {name!r} has shape {tuple(p.shape)} in member {i} "
                        f"but {tuple(shape)} in member 0; members must have the same shapes"
                    )
        self.model = copy.deepcopy(members[0])
        for name in names:
            stacked = torch.stack([dict(m.named_parameters())[name].detach() for m in members])
            module_name, _, attr = name.rpartition(".")
            owner = self.model.get_submodule(module_name) if module_name else self.model
            setattr(owner, attr, nn.Parameter(stacked))
        self.size = len(members)
        self.seeds = list(range(self.size))  # set by from_seeds; fit draws minibatches from them

    @classmethod
    def from_seeds(cls, make_member: Callable[[], HybridModel], seeds: Sequence[int]) -> Ensemble:
        """Build member k with ``seed_everything(seeds[k]); make_member()`` — the same
        initialisation as a single run with that seed."""
        if not callable(make_member):
            raise TypeError(
                f"Ensemble.from_seeds: make_member must be callable, got {make_member!r}"
            )
        seeds = list(seeds) if isinstance(seeds, Iterable) and not isinstance(seeds, str) else seeds
        if (
            not isinstance(seeds, list)
            or not seeds
            or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) for s in seeds)
        ):
            raise ValueError(
                f"Ensemble.from_seeds: seeds must be a non-empty list of ints, got {seeds!r}"
            )
        seeds = [int(s) for s in seeds]
        if len(set(seeds)) != len(seeds):
            raise ValueError(
                f"Ensemble.from_seeds: seeds must be distinct, got {seeds}: a repeated seed "
                "trains the same member twice and counts it twice in every statistic over seeds"
            )
        members = []
        for seed in seeds:
            seed_everything(seed)
            members.append(make_member())
        ensemble = cls(members)
        ensemble.seeds = list(seeds)
        return ensemble

    @classmethod
    def stack(cls, ensembles: Sequence[Ensemble]) -> Ensemble:
        """One ensemble of the members of ``ensembles``, in order (their seeds concatenated):
        several configurations trained as one model (:func:`~hsam_core.train.fit` with a list
        of ensembles). Unlike :meth:`from_seeds`, a seed may repeat — each configuration has
        its own member for it; :meth:`split` gives the configurations back."""
        if isinstance(ensembles, nn.Module) or not isinstance(ensembles, Sequence):
            raise TypeError(
                "Ensemble.stack: ensembles must be a list of Ensembles, got "
                f"{type(ensembles).__name__}"
            )
        if not ensembles:
            raise ValueError("Ensemble.stack: ensembles is empty")
        for i, e in enumerate(ensembles):
            if not isinstance(e, Ensemble):
                raise TypeError(
                    f"Ensemble.stack: ensembles[{i}] must be an Ensemble, got {type(e).__name__}"
                )
        # The constructor checks that every member has the first one's class and shapes.
        stacked = cls([e.member(k) for e in ensembles for k in range(e.size)])
        stacked.seeds = [s for e in ensembles for s in e.seeds]
        return stacked

    def split(self, sizes: Sequence[int]) -> list[Ensemble]:
        """The members as consecutive ensembles of ``sizes`` members each (copies, with their
        seeds): :meth:`stack` undone."""
        if (
            isinstance(sizes, (str, bytes))
            or not isinstance(sizes, Sequence)
            or not sizes
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes)
            or sum(sizes) != self.size
        ):
            raise ValueError(
                f"Ensemble.split: sizes must be ints >= 1 that add up to the {self.size} "
                f"members, got {sizes!r}"
            )
        parts, start = [], 0
        for n in sizes:
            part = Ensemble([self.member(k) for k in range(start, start + n)])
            part.seeds = self.seeds[start : start + n]
            parts.append(part)
            start += n
        return parts

    def member(self, k: int) -> HybridModel:
        """A standalone copy of member k (parameters un-stacked)."""
        if isinstance(k, bool) or not isinstance(k, int) or not -self.size <= k < self.size:
            raise IndexError(f"Ensemble.member: k must be an int in [0, {self.size}), got {k!r}")
        single = copy.deepcopy(self.model)
        for name, p in self.model.named_parameters():
            module_name, _, attr = name.rpartition(".")
            owner = single.get_submodule(module_name) if module_name else single
            setattr(owner, attr, nn.Parameter(p.detach()[k].clone()))
        return single

    def physics_parameters(self) -> list[nn.Parameter]:
        return self.model.physics_parameters()

    def ml_parameters(self) -> list[nn.Parameter]:
        return self.model.ml_parameters()

    def theta(self) -> dict[str, torch.Tensor]:
        """θ of every member by name, each of shape (K,)."""
        return self.model.theta()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f_phys, f_nn) of each member on its own inputs: ``x`` is (K, ..., d)."""
        if x.dim() < 2 or x.shape[0] != self.size:
            raise ValueError(
                f"ensemble inputs need the member dimension first: (K={self.size}, ..., d), "
                f"got {tuple(x.shape)}"
            )
        params = dict(self.model.named_parameters())
        return vmap(lambda p, xk: functional_call(self.model, p, (xk,)))(params, x)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        phys, net = self(x)
        return phys + net

    def integrate(self, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Trajectories of every member from its own ``x0`` (K, B, d): shape (T, K, B, d)."""

        def vector_field(_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return self.predict(x)

        return integrate(vector_field, x0, t, self.model.method, self.model.step_size)
