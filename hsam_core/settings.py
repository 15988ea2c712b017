"""The run-time settings, resolved once: quick or full mode, the results store, the cache, the device.

Every part of ``hsam_core`` asks :func:`get` instead of reading the environment, and nothing is
read at import time. The first call resolves the settings from the environment:

=================  =======================================================================
``HSAM_QUICK``     quick mode when set to anything but ``""``, ``0``, ``false``, ``no``
                   (CI sets it: fewer epochs, seeds and radii, so the book runs in minutes)
``HSAM_RESULTS``   the results store (default: ``book/results/store`` of the repository in
                   full mode; a scratch folder in quick mode, never mixed with the book's)
``HSAM_CACHE``     the local cache of trained weights and simulated data
                   (default ``~/.cache/hsam``; quick mode: a scratch folder)
``HSAM_DEVICE``    ``cpu``, ``cuda``, ``cuda:1`` ... (default: the first GPU, else the CPU)
=================  =======================================================================

:func:`configure` replaces any of them for the rest of the process (a test, a notebook that
wants quick mode)::

    import hsam_core as hc
    hc.settings.configure(quick=True)

The quick-mode scratch folders are named after a hash of ``hsam_core``'s source, so results
computed by older code are never served to newer code (quick runs retrain in minutes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import tempfile
from collections.abc import Mapping

import torch

PACKAGE = pathlib.Path(__file__).resolve().parent
# The book's committed results, when hsam_core runs from a checkout of the book (on Colab too:
# the chapters' setup cell clones it), found from the package, never from the working directory:
# the store, and the side tables beside it.
BOOK_RESULTS = PACKAGE.parent / "book" / "results"
BOOK_STORE = BOOK_RESULTS / "store"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Mode, folders and device of this process (see the module docstring)."""

    quick: bool
    store: pathlib.Path
    cache: pathlib.Path
    device: str

    @property
    def mode(self) -> str:
        """``"quick"`` or ``"full"``: the value of the results' ``mode`` column."""
        return "quick" if self.quick else "full"

    def torch_device(self) -> torch.device:
        return torch.device(self.device)


def source_hash(root: pathlib.Path = PACKAGE) -> str:
    """Hash of the text of every ``*.py`` file under ``root``: names the quick-mode scratch
    folders, so that a change to any file of the package starts them afresh."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _flag(value: str) -> bool:
    return value.strip().lower() not in ("", "0", "false", "no")


def from_environment(env: Mapping[str, str] | None = None) -> Settings:
    """The settings that ``env`` (default: ``os.environ``) asks for."""
    env = os.environ if env is None else env
    quick = _flag(env.get("HSAM_QUICK", ""))
    scratch = pathlib.Path(tempfile.gettempdir()) / "hsam-quick" / source_hash()
    if env.get("HSAM_RESULTS"):
        store = pathlib.Path(env["HSAM_RESULTS"])
    else:
        store = scratch / "store" if quick else BOOK_STORE
    if env.get("HSAM_CACHE"):
        cache = pathlib.Path(env["HSAM_CACHE"])
    else:
        cache = scratch / "cache" if quick else pathlib.Path.home() / ".cache" / "hsam"
    device = env.get("HSAM_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.device(device)  # refuses a malformed name here, not at the first model
    return Settings(quick=quick, store=store, cache=cache, device=device)


_current: Settings | None = None


def get() -> Settings:
    """The settings of this process: resolved from the environment on the first call."""
    global _current
    if _current is None:
        _current = from_environment()
    return _current


def configure(**changes) -> Settings:
    """Replace some settings for the rest of the process and return them all, e.g.
    ``configure(quick=True)``. Changing ``quick`` alone also moves the store and the cache
    to that mode's default folders (unless ``HSAM_RESULTS``/``HSAM_CACHE`` are set or the
    call names them). An unknown name raises ``TypeError``."""
    global _current
    unknown = set(changes) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise TypeError(f"no setting {sorted(unknown)}; settings: quick, store, cache, device")
    current = get()
    if "quick" in changes and changes["quick"] != current.quick:
        env = {**os.environ, "HSAM_QUICK": "1" if changes["quick"] else "0"}
        defaults = from_environment(env)
        changes = {"store": defaults.store, "cache": defaults.cache, **changes}
    if "device" in changes:
        torch.device(changes["device"])
    _current = dataclasses.replace(current, **changes)
    return _current


def reset() -> None:
    """Forget the resolved settings: the next :func:`get` reads the environment again."""
    global _current
    _current = None
