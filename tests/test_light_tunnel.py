"""The light tunnel (chapter 10), the chamber CSV reader and offline imports. Fast, offline."""

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

import hsam_core as hc
from hsam_core import chambers
from hsam_core.experiments import run, settled
from hsam_core.systems import light_tunnel as lt

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_nominal_law_is_the_simulator_at_averaged_transmittances():
    """Malus's law at the true response equals the package's simulator where the colours'
    transmittances agree, and the simulator is used (not re-implemented) for the truth."""
    frame = lt.sample_inputs("train", 50)
    import causalchamber.simulators.lt as cclt

    params = dict(lt.SIM_PARAMETERS)
    params["Tp"] = np.full(3, lt.SIM_PARAMETERS["Tp"].mean())
    params["Tc"] = np.full(3, lt.SIM_PARAMETERS["Tc"].mean())
    sim = cclt.Deterministic(**params).simulate_from_inputs(frame)
    vis3 = sim[cclt.Deterministic.outputs_names.index("vis_3")] / lt.Y_SCALE
    with torch.no_grad():
        law = lt.nominal_law()(lt.to_pairs(frame, vis3).x).squeeze(-1).double()
    np.testing.assert_allclose(law.numpy(), vis3, rtol=1e-5)


def test_scale_is_not_identifiable_and_the_scores_say_so():
    """(λθ, T_p/λ, T_c/λ) predicts the same readings; the scores ignore the scale."""
    x = lt.make_data("val", 20).x
    a = lt.MalusLaw([0.5, 1.0, 2.0], tp=0.4, tc=0.02)
    b = lt.MalusLaw([1.5, 3.0, 6.0], tp=0.4 / 3, tc=0.02 / 3)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=1e-5, atol=1e-6)
    true = {n: torch.tensor([float(v), 3 * float(v)]) for n, v in zip(lt.NAMES, lt.RESPONSE)}
    scores = lt.theta_scores(true)
    torch.testing.assert_close(scores["theta_cosine"], torch.ones(2))
    torch.testing.assert_close(scores["theta_rel_error"], torch.zeros(2), atol=1e-6, rtol=0)
    wrong = lt.theta_scores({n: torch.tensor([1.0]) for n in lt.NAMES})
    assert wrong["theta_cosine"].item() < 0.95 and wrong["theta_rel_error"].item() > 0.2


def test_splits_are_deterministic_and_disjoint():
    a, b = lt.make_data("train", 30), lt.make_data("train", 30)
    torch.testing.assert_close(a.x, b.x)
    torch.testing.assert_close(a.y, b.y)
    assert not torch.isin(a.x[:, 0], lt.make_data("test", 30).x[:, 0]).any()


def test_run_writes_the_cosine_column():
    """experiments.run uses the task's θ scores: both columns, finite, one row per seed."""
    task = lt.task(n_train=40, n_val=20, n_test=20)
    rows = run(task, hc.Method.sam(0.1), [0, 1], epochs=3, cache=False).rows
    assert {"theta_cosine", "theta_rel_error", "theta_r", "theta_Tp"} <= set(rows.columns)
    assert len(rows) == 2 and np.isfinite(rows[["theta_cosine", "theta_rel_error"]]).all().all()


def test_settled():
    flat = torch.ones(100, 2)
    drifting = torch.linspace(1, 2, 100).unsqueeze(1).expand(100, 2)
    assert settled({"a": flat}).all()
    assert not settled({"a": drifting}).any()
    both = settled({"a": flat, "b": torch.stack([flat[:, 0], drifting[:, 0]], 1)})
    assert both.tolist() == [True, False]
    with pytest.raises(ValueError, match="tail"):
        settled({"a": flat}, tail=0)


# --- the chamber CSV reader: the real-data path, tested on a fixture in the chamber's format ---

COLUMNS = [*lt.INPUTS, lt.OUTPUT, "diode_vis_3", "t_vis_3"]


def write_fixture(path, n=12):
    """A CSV with the light tunnel's own column names, written from the simulator."""
    frame = lt.sample_inputs("test", n)
    frame[lt.OUTPUT] = lt.simulate(frame) * lt.Y_SCALE
    frame.insert(0, "timestamp", np.arange(n) * 0.1)  # the real files carry more columns
    frame.to_csv(path, index=False)
    return frame


def test_loader_reads_the_fixture(tmp_path):
    write_fixture(tmp_path / "exp.csv")
    frame = chambers.read_chamber_csv(tmp_path / "exp.csv", COLUMNS)
    pairs = lt.pairs_from_frame(frame)
    assert len(pairs) == 12 and pairs.x.shape == (12, 5) and pairs.y.shape == (12, 1)
    torch.testing.assert_close(pairs.y, lt.make_data("test", 12).y, rtol=1e-5, atol=1e-6)


def test_load_real_reads_a_dataset_on_disk_without_the_network(tmp_path, monkeypatch):
    folder = tmp_path / "lt_malus_v1"
    folder.mkdir()
    write_fixture(folder / "exp_a.csv", 5)
    write_fixture(folder / "exp_b.csv", 7)
    monkeypatch.setitem(sys.modules, "causalchamber.datasets", None)  # importing it fails
    frame = chambers.load_real("lt_malus_v1", None, COLUMNS, root=tmp_path)
    assert len(frame) == 12
    assert len(chambers.load_real("lt_malus_v1", "exp_b", COLUMNS, root=tmp_path)) == 7


def test_load_real_offline_names_the_dataset(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "causalchamber.datasets", None)
    with pytest.raises(ConnectionError, match="lt_malus_v1.*not on disk"):
        chambers.load_real("lt_malus_v1", None, COLUMNS, root=tmp_path)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda f: f.drop(columns=["pol_2"]), r"missing column\(s\) \['pol_2'\]"),
        (
            lambda f: f.assign(red=f.red.astype(object).where(f.index != 3, "bright")),
            r"'red' has 1 non-numeric value\(s\) in 12 rows",
        ),
        (
            lambda f: f.assign(vis_3=f.vis_3.where(f.index != 5, np.inf)),
            r"'vis_3' has 1 non-finite value\(s\).* in 12 rows",
        ),
        (
            lambda f: f.assign(green=f.green.where(f.index > 1, np.nan)),
            r"'green' has 2 non-finite value\(s\).* in 12 rows",
        ),
    ],
    ids=["missing column", "non-numeric", "inf", "empty"],
)
def test_loader_refuses_bad_input(tmp_path, corrupt, message):
    frame = write_fixture(tmp_path / "good.csv")
    corrupt(frame).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match=message):
        chambers.read_chamber_csv(tmp_path / "bad.csv", COLUMNS)


def test_other_gain_is_refused(tmp_path):
    frame = write_fixture(tmp_path / "x.csv")
    frame.loc[2, "t_vis_3"] = 3
    with pytest.raises(ValueError, match="1 of 12 rows have t_vis_3 != 1"):
        lt.pairs_from_frame(frame)


def test_importing_hsam_core_and_every_system_opens_no_connection():
    """With sockets patched to fail, import hsam_core and every system module, and simulate a
    few light-tunnel readings (in a fresh interpreter, so nothing is imported already)."""
    script = textwrap.dedent(
        """
        import importlib, pkgutil, socket

        def refuse(*args, **kwargs):
            raise AssertionError(f"network access: {args}")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        import hsam_core, hsam_core.systems
        for mod in pkgutil.iter_modules(hsam_core.systems.__path__):
            importlib.import_module(f"hsam_core.systems.{mod.name}")
        from hsam_core.systems import light_tunnel
        light_tunnel.make_data("train", 3)
        import sys
        assert "causalchamber.datasets" not in sys.modules
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_frame_check_keeps_every_row():
    frame = pd.DataFrame({"a": ["1", "2.5", "3"], "b": [1, 2, 3]})
    out = chambers.check_columns(frame, ["a"], "frame")
    assert out.a.tolist() == [1.0, 2.5, 3.0] and list(out.columns) == ["a"]
