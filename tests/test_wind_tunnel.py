"""The wind-tunnel task (chapter 9): its data, its real-data path on an offline fixture, and
that importing it opens no network connection."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from hsam_core import chambers
from hsam_core.systems import wind_tunnel as wt


def _fixture(tmp_path, n=8, edit=None):
    """A CSV in the chamber's column format, written from the simulator."""
    frame = wt.simulate_frame("test", n)
    frame["timestamp"] = np.arange(n) * 0.1  # an extra column, as real files have
    if edit is not None:
        frame = edit(frame)
    path = tmp_path / "wt_fixture.csv"
    frame.to_csv(path, index=False)
    return path


def test_fixture_loads_as_pairs(tmp_path):
    path = _fixture(tmp_path)
    frame = chambers.read_chamber_csv(path, wt.COLUMNS)
    assert list(frame.columns) == wt.COLUMNS and len(frame) == 8
    pairs = wt.to_pairs(frame)
    assert pairs.x.shape == (8, 3) and pairs.y.shape == (8, 1)
    assert torch.allclose(pairs.x, wt.make_data("test", 8).x)
    assert torch.allclose(pairs.y, wt.make_data("test", 8).y, atol=1e-5)


def test_simulated_data_follow_the_c3_law():
    """y = [S_max (1 − r(H)) (u_in² − u_out²) + p₀] / P_SCALE + noise, and the balanced design
    makes the physics' least-squares fit the true (S, p₀)."""
    d = wt.make_data("train", 400)
    x = d.x.double()
    drive = x[:, 0] ** 2 - x[:, 1] ** 2
    r = wt.R_0 + wt.BETA * x[:, 2]
    clean = (wt.S_MAX * (1 - r) * drive + wt.BAROMETER_ERROR) / wt.P_SCALE
    resid = d.y.double().squeeze(1) - clean
    assert abs(resid.std().item() - wt.BAROMETER_PRECISION / wt.P_SCALE) < 0.005
    design = torch.stack([drive, torch.ones_like(drive)], 1) / wt.P_SCALE
    s, p0 = torch.linalg.lstsq(design, d.y.double()).solution.squeeze(1).tolist()
    assert abs(s - wt.S_TRUE) / wt.S_TRUE < 0.01 and abs(p0 - wt.BAROMETER_ERROR) < 0.05
    # the hybrid's two parts at the truth reproduce the clean signal
    law = wt.FanPressureLaw(S=wt.S_TRUE, p0=wt.BAROMETER_ERROR)
    with torch.no_grad():
        phys = law(d.x).squeeze(1).double()
    total = phys + wt.hatch_term(d.x.double()).squeeze(1)
    assert torch.allclose(total, clean, atol=1e-5)


def test_balanced_design_needs_multiple_of_four():
    with pytest.raises(ValueError, match="multiple of 4"):
        wt.simulate_frame("train", 10)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda f: f.drop(columns="rpm_out"), r"missing column\(s\) \['rpm_out'\]"),
        (
            lambda f: f.astype({"hatch": object}).assign(hatch=["open"] + list(f.hatch[1:])),
            r"column 'hatch' has 1 non-numeric value\(s\) in 8 rows",
        ),
        (
            lambda f: f.assign(pressure_downwind=[np.inf] + list(f.pressure_downwind[1:])),
            r"column 'pressure_downwind' has 1 non-finite value\(s\).* in 8 rows",
        ),
    ],
    ids=["missing", "non-numeric", "inf"],
)
def test_bad_csv_is_refused(tmp_path, edit, message):
    path = _fixture(tmp_path, edit=edit)
    with pytest.raises(ValueError, match=message):
        chambers.read_chamber_csv(path, wt.COLUMNS)
    frame = pd.read_csv(path)
    with pytest.raises(ValueError, match=message):
        wt.to_pairs(frame)


def test_real_data_reads_a_file_on_disk(tmp_path):
    """load_real reads an experiment already under its root without the network."""
    folder = tmp_path / "wt_intake_impulse_v1"
    folder.mkdir()
    wt.simulate_frame("val", 8).to_csv(folder / "fixture_exp.csv", index=False)
    pairs = wt.real_data("fixture_exp", root=tmp_path)
    assert pairs.x.shape == (8, 3) and pairs.y.shape == (8, 1)


NO_NETWORK = """
import socket
def refuse(*args, **kwargs):
    raise AssertionError(f"network connection attempted: {args}")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
import hsam_core
import hsam_core.systems.wind_tunnel as wt
d = wt.make_data("train", 8)
assert d.x.shape == (8, 3)
import sys
assert "causalchamber.datasets" not in sys.modules, "causalchamber.datasets was imported"
print("ok")
"""


def test_import_opens_no_network_connection():
    out = subprocess.run(
        [sys.executable, "-c", NO_NETWORK], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
