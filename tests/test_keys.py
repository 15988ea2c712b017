"""Run keys are explicit: refactoring changes none, a change to a task's data changes its keys.

A run's key (hsam_core.experiments.run_key) is the hash of its canonical specification, two
declared version numbers and a content hash of the task's data — no source code. Both directions
are tested on a copy of the package in a fresh process: a refactor (a moved helper, an edited
docstring, a renamed local) keeps every key; an edit to a function or constant that a task's
data depend on — in the task's module or in another one — changes that task's keys and only its.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import hsam_core
from hsam_core import studies

PACKAGE = pathlib.Path(hsam_core.__file__).parent
# Studies whose tasks are cheap to build in quick mode, and one of each task.
STUDIES = (
    "pendulum",
    "pendulum_images",
    "duffing",
    "duffing_identifiable",
    "wind_tunnel",
    "light_tunnel",
    "failure_case",
)
SCRIPT = """
import json, sys
import hsam_core
from hsam_core import studies
assert hsam_core.__file__.startswith(sys.argv[1]), hsam_core.__file__
out = {}
for name in json.loads(sys.argv[2]):
    study = studies.get(name)
    out[name] = {"data": study.build_task().data_hash,
                 "keys": [study.key(c) for c in study.configs]}
print(json.dumps(out))
"""


def keys_of(root: pathlib.Path) -> dict:
    """The data hashes and run keys of :data:`STUDIES` (quick mode) computed by the package
    at ``root``/hsam_core, in a fresh process."""
    env = {**os.environ, "HSAM_QUICK": "1", "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    env.pop("HSAM_RESULTS", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(root), json.dumps(STUDIES)],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def edited(tmp_path: pathlib.Path, edits: list[tuple[str, str, str]]) -> pathlib.Path:
    """A copy of the package with each (file, old, new) replacement made (old must occur)."""
    root = tmp_path / "copy"
    shutil.copytree(PACKAGE, root / "hsam_core", ignore=shutil.ignore_patterns("__pycache__"))
    for file, old, new in edits:
        path = root / "hsam_core" / file
        text = path.read_text()
        assert old in text, f"{file}: {old!r} not found: the test lost its target"
        path.write_text(text.replace(old, new, 1))
    return root


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> dict:
    return keys_of(edited(tmp_path_factory.mktemp("base"), []))


def test_the_quick_studies_have_distinct_keys(baseline):
    keys = [k for study in baseline.values() for k in study["keys"]]
    assert len(keys) == len(set(keys)) >= 30


def test_a_refactor_keeps_every_key(tmp_path, baseline):
    """Move a helper into a module of its own, reword docstrings and comments, rename a local,
    reorder imports: the keys of every study stay as they were."""
    root = edited(
        tmp_path,
        [
            # move pendulum.initial_states into a new module and import it back
            (
                "systems/pendulum.py",
                "def initial_states(split: str, n: int) -> torch.Tensor:",
                "from ._rings import initial_states  # noqa: E402\n\n\n"
                "def _old_initial_states(split: str, n: int) -> torch.Tensor:",
            ),
            (
                "systems/pendulum.py",
                '"""(n, 2) initial states;',
                '"""Moved; (n, 2) initial states;',
            ),
            (
                "experiments.py",
                '"""Train ``method`` on ``task`` for every seed',
                '"""Train (reworded) ``method`` on ``task`` for every seed',
            ),
            (
                "systems/duffing.py",
                "from ..data import Trajectories, add_noise",
                "from ..data import Trajectories, add_noise  # a comment",
            ),
            ("train.py", "def make_optimizer(", "# a helper moved nowhere\ndef make_optimizer("),
        ],
    )
    helper = (root / "hsam_core" / "systems" / "pendulum.py").read_text()
    start = helper.index("def _old_initial_states")
    body = helper[start : helper.index("\n\n\n", start)].replace(
        "_old_initial_states", "initial_states"
    )
    (root / "hsam_core" / "systems" / "_rings.py").write_text(
        "import torch\n\nSPLIT_SEED = {'train': 0, 'val': 10**6, 'test': 2**31 - 1}\n\n\n"
        + body.replace("states = []", "found = []")
        .replace("states.append", "found.append")
        .replace("torch.stack(states)", "torch.stack(found)")
        + "\n"
    )
    assert keys_of(root) == baseline


# (file, old, new, the studies whose data change): each perturbs one function or constant that
# some tasks' data depend on — including through a helper in another module.
MUTATIONS = {
    "pendulum.ALPHA": (
        "systems/pendulum.py",
        "ALPHA = 0.2",
        "ALPHA = 0.21",
        {"pendulum", "pendulum_images"},
    ),
    "pendulum.initial_states (used by duffing)": (
        "systems/pendulum.py",
        "radius = 1.3 + ",
        "radius = 1.31 + ",
        {"pendulum", "pendulum_images", "duffing", "duffing_identifiable"},
    ),
    "pendulum.simulate (used by pendulum_images)": (
        "systems/pendulum.py",
        "rtol=1e-10",
        "rtol=1e-4",
        {"pendulum", "pendulum_images"},
    ),
    "duffing.true_vector_field (used by the twin)": (
        "systems/duffing.py",
        "DELTA = 0.1",
        "DELTA = 0.11",
        {"duffing", "duffing_identifiable"},
    ),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_a_change_to_a_tasks_data_changes_its_keys_and_only_its(tmp_path, baseline, mutation):
    file, old, new, affected = MUTATIONS[mutation]
    mutated = keys_of(edited(tmp_path, [(file, old, new)]))
    changed = {name for name in STUDIES if mutated[name]["data"] != baseline[name]["data"]}
    assert changed == affected
    for name in STUDIES:
        same = set(mutated[name]["keys"]) & set(baseline[name]["keys"])
        assert (not same) if name in affected else mutated[name] == baseline[name], name


def test_a_version_bump_changes_the_keys_of_that_task_only(tmp_path, baseline):
    mutated = keys_of(edited(tmp_path, [("systems/wind_tunnel.py", "VERSION = 1", "VERSION = 2")]))
    for name in STUDIES:
        assert (mutated[name]["keys"] != baseline[name]["keys"]) == (name == "wind_tunnel")
    numerics = keys_of(
        edited(tmp_path / "n", [("experiments.py", "NUMERICS_VERSION = 1", "NUMERICS_VERSION = 2")])
    )
    assert all(set(numerics[n]["keys"]).isdisjoint(baseline[n]["keys"]) for n in STUDIES)


def test_a_key_names_every_field_of_the_spec():
    """Two configurations that differ in any structured field have different keys, and a
    regularizer's strength is part of its method's identity."""
    from hsam_core import L2, Method
    from hsam_core.experiments import Config

    study = studies.get("pendulum")
    variants = [
        Config(Method.regularized(L2(1e-3))),
        Config(Method.regularized(L2(1e-2))),
        Config(Method.sam(0.1)),
        Config(Method.sam(0.1, perturb="all")),
        Config(Method.asam(0.1)),
        Config(Method.looksam(0.1, every=5)),
        Config(Method.erm(), {"architecture": "deeper"}, "ERM [deeper]"),
        Config(Method.erm(), {"architecture": "SiLU"}, "ERM [SiLU]"),
    ]
    keys = [study.key(c) for c in variants]
    assert len(set(keys)) == len(keys)
    assert Method.regularized(L2(1e-3)) != Method.regularized(L2(1e-2))
    longer = study.but(training={**study.training, "epochs": 3})
    assert longer.key(variants[0]) != study.key(variants[0])
    gpu = study.but(device="cuda")
    assert gpu.key(variants[0]) != study.key(variants[0])


def test_every_studys_ends_build_the_models_their_labels_say():
    """'NN only' has no physics and 'physics only' no network, on every task (a truthy string
    once gave the light tunnel's 'NN only' its physics back; `reproduce --check` found it)."""
    for name in studies.names():
        study = studies.get(name)
        task = study.build_task()
        for config in study.configs:
            model = task.make_model(**(config.model or {}))
            if config.label == "NN only":
                assert model.physics is None and model.network is not None, name
            if config.label.startswith("physics only"):
                assert model.network is None and model.physics is not None, name
            if config.model is None:
                assert model.physics is not None and model.network is not None, name
