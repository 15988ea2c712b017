"""The systems of Part II: Duffing, reaction–diffusion, pendulum images. Each test runs in a few
seconds on one CPU thread."""

import math

import pytest
import torch

import hsam_core as hc
from hsam_core import settings, studies
from hsam_core.systems import duffing, pendulum, pendulum_images, reaction_diffusion

rd = reaction_diffusion
img = pendulum_images


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def smoke_fit(task, seeds=(0, 1), batch_size=None):
    """Two epochs of ERM and of SAM on the task's default model, then the metrics of
    ``experiments.run``: everything stays finite and θ moves."""
    for method in (hc.Method.erm(), hc.Method.sam(0.1)):
        model = hc.Ensemble.from_seeds(task.make_model, list(seeds))
        before = {k: v.clone() for k, v in model.theta().items()}
        history = hc.fit(model, task.train, method, epochs=2, batch_size=batch_size)
        assert torch.isfinite(history.loss).all()
        assert any((model.theta()[k] != before[k]).all() for k in before)
        err = hc.theta_rel_error(model.theta(), task.truth)
        assert err.shape == (len(seeds),) and torch.isfinite(err).all()
    for metric in (hc.prediction_mse(model, task.test), hc.nn_contribution(model, task.test)):
        assert metric.shape == (len(seeds),) and torch.isfinite(metric).all()
    assert torch.isfinite(hc.sharpness_ascent(model, task.val, 0.05)).all()


# --- Duffing -----------------------------------------------------------------------------------


def test_duffing_data_deterministic_disjoint_and_nonlinear():
    data = duffing.make_data("train", 3)
    assert data.x.shape == (3, 50, 2) and torch.isfinite(data.x).all()
    assert torch.allclose(duffing.make_data("train", 2).x, data.x[:2], atol=1e-6)
    test = duffing.make_data("test", 3)
    assert torch.cdist(data.x[:, 0], test.x[:, 0]).min() > 1e-3
    # the cubic term is not a small correction: at the largest |x|, β x³ > α x
    assert (data.x[..., 0].abs().amax(1) > 1.0).any()


def test_duffing_physics_with_true_theta_is_the_linear_part():
    # seeded: the states must not depend on what other tests drew; θ is stored through a
    # softplus computed in float32, so the laws agree to float32 precision, not to 1e-12
    s = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    phys = duffing.DampedLinearOscillator(duffing.ALPHA, duffing.DELTA).double()
    cubic = torch.stack([torch.zeros(64), -duffing.BETA * s[:, 0] ** 3], -1).double()
    assert torch.allclose(phys(s) + cubic, duffing.true_vector_field(s), atol=1e-6)
    complete = duffing.DuffingPhysics(duffing.ALPHA, duffing.DELTA, duffing.BETA).double()
    assert torch.allclose(complete(s), duffing.true_vector_field(s), atol=1e-6)


def test_duffing_fit_smoke():
    smoke_fit(duffing.task(n_train=2, n_val=2, n_test=2, hidden=8), batch_size=40)


# --- reaction–diffusion ------------------------------------------------------------------------


def test_laplacian_is_the_periodic_five_point_stencil():
    x = -1 + torch.arange(rd.SIZE, dtype=torch.float64) * rd.MESH
    f = torch.sin(math.pi * x)[:, None] * torch.cos(math.pi * x)[None, :]
    exact = -2 * math.pi**2 * f
    assert torch.allclose(rd.laplacian(f), exact, atol=2e-2 * exact.abs().max())
    assert rd.laplacian(torch.ones(3, rd.SIZE, rd.SIZE)).abs().max() < 1e-6


def test_rd_physics_with_true_theta_is_the_diffusion_part():
    g = torch.Generator().manual_seed(0)
    fields = torch.rand(3, 2, rd.SIZE, rd.SIZE, dtype=torch.float64, generator=g)
    reaction = rd.true_vector_field(fields, a=0.0, b=0.0)
    diffusion = rd.true_vector_field(fields) - reaction
    phys = rd.Diffusion(rd.A, rd.B).double()
    assert torch.allclose(phys(fields.flatten(1)), diffusion.flatten(1), atol=1e-10)
    complete = rd.FitzHughNagumo(rd.A, rd.B, rd.K).double()
    # θ is stored as a float32 logit: a, b, k agree with the truth to ~1e-8 relative, times
    # Laplacians of order 10³ (an unseeded version of this test failed one run in three)
    expected = rd.true_vector_field(fields).flatten(1)
    assert torch.allclose(complete(fields.flatten(1)), expected, rtol=1e-6, atol=1e-6)


def test_rd_initial_states_deterministic_and_disjoint():
    train = rd.initial_states("train", 3)
    assert train.shape == (3, 2, rd.SIZE, rd.SIZE)
    assert 0 <= train.min() and train.max() < 1
    assert torch.equal(rd.initial_states("train", 2), train[:2])
    test = rd.initial_states("test", 3)
    assert torch.cdist(train.flatten(1), test.flatten(1)).min() > 1


def test_rd_data_and_cache_hit(tmp_path, monkeypatch):
    data = rd.make_data("train", 2, horizon=0.3, cache_dir=tmp_path)
    assert data.x.shape == (2, 4, rd.STATE_DIM) and data.t.shape == (4,)
    assert torch.isfinite(data.x).all() and torch.allclose(data.t, torch.tensor([0, 0.1, 0.2, 0.3]))
    assert len(list((tmp_path / "data").glob("*.pt"))) == 1

    def no_simulation(*args, **kwargs):
        raise AssertionError("the cached trajectories were simulated again")

    monkeypatch.setattr(rd, "simulate", no_simulation)
    # a cache hit is the simulator not being called (a wall-clock ratio was flaky on shared CPUs)
    again = rd.make_data("train", 2, horizon=0.3, cache_dir=tmp_path)
    assert torch.equal(again.x, data.x)
    # other settings are another file
    with pytest.raises(AssertionError, match="simulated again"):
        rd.make_data("train", 3, horizon=0.3, cache_dir=tmp_path)


def test_rd_hybrid_accepts_flat_fields_and_refuses_others():
    model = rd.make_hybrid()
    phys, net = model(torch.rand(5, rd.STATE_DIM))
    assert phys.shape == net.shape == (5, rd.STATE_DIM)
    assert net.abs().max() == 0  # zero-initialised last layer: training starts from physics
    with pytest.raises(ValueError, match="expects inputs"):
        model(torch.rand(5, 2, rd.SIZE, rd.SIZE))


def test_rd_fit_smoke(tmp_path):
    task = rd.task(n_train=2, n_val=1, n_test=1, horizon=0.2, cache_dir=tmp_path)
    smoke_fit(task, seeds=(0,), batch_size=2)


# --- pendulum images ---------------------------------------------------------------------------


@pytest.mark.parametrize("q", [0.0, 0.7, -1.9, math.pi])
def test_renderer_puts_the_bob_at_sin_q_minus_cos_q(q):
    frame = img.render(torch.tensor(q, dtype=torch.float64))
    x, y = img.pixel_grid(dtype=torch.float64)
    w = frame / frame.sum()
    centre = torch.stack([(w * x).sum(), (w * y).sum()])
    assert torch.allclose(centre, torch.tensor([math.sin(q), -math.cos(q)]).double(), atol=0.02)
    row, col = divmod(int(frame.argmax()), img.SIZE)
    pixel = 2 * img.EXTENT / (img.SIZE - 1)
    assert abs(x[row, col] - math.sin(q)) <= pixel and abs(y[row, col] + math.cos(q)) <= pixel
    assert 0 <= frame.min() and frame.max() <= 1


def test_renderer_q0_is_bottom_centre_and_differentiable():
    q = torch.tensor(0.0, requires_grad=True)
    frame = img.render(q)
    row, col = divmod(int(frame.argmax()), img.SIZE)
    assert row > 3 * img.SIZE // 4 and abs(col - (img.SIZE - 1) / 2) <= 1
    frame[row, col + 2].backward()  # a pixel right of the bob brightens as q grows
    assert q.grad > 0
    with_rod = img.render(torch.tensor(0.0), rod=0.5)
    centre = img.SIZE // 2
    assert with_rod[centre + 4, centre] > 0.3 > frame.detach()[centre + 4, centre]


def test_image_data_shapes_determinism_and_windows():
    data = img.make_data("train", 2, horizon=5.0)
    assert data.frames.shape == (2, 10, img.SIZE, img.SIZE) and data.states.shape == (2, 10, 2)
    assert torch.allclose(data.frames, img.render(data.states[..., 0]), atol=1e-5)
    # dopri5 shares its adaptive steps over a batch: trajectory i changes with N at ~1e-10 only
    assert torch.allclose(img.make_data("train", 1, horizon=5.0).frames, data.frames[:1], atol=1e-6)
    noisy = img.make_data("train", 2, horizon=5.0, noise=0.05)
    assert 0.03 < (noisy.frames - data.frames).std() < 0.07
    w = data.windows(4)
    assert w.frames.shape == (2 * 6, 5, img.SIZE, img.SIZE) and w.states.shape == (12, 5, 2)
    assert torch.equal(w.frames[7], data.frames[1, 1:6]) and torch.equal(
        w.states[7], data.states[1, 1:6]
    )


def test_image_hybrid_parameters_and_perfect_latent_loss():
    model = img.make_hybrid(hidden=8)
    ml = {id(p) for p in model.ml_parameters()}
    assert {id(p) for p in model.encoder.parameters()} <= ml
    assert {id(p) for p in model.physics_parameters()}.isdisjoint(ml)
    assert model.theta().keys() == {"omega2"}
    # the complete pendulum at the true θ, given the true first state, reproduces the frames
    data = img.make_data("val", 2, horizon=5.0)
    complete = pendulum.make_hybrid(physics="complete", network=False)
    with torch.no_grad():
        complete.physics.raw_omega2.fill_(math.log(math.expm1(pendulum.OMEGA2)))
        complete.physics.raw_alpha.fill_(math.log(math.expm1(pendulum.ALPHA)))
        z = complete.integrate(data.states[:, 0], data.t).transpose(0, 1)
    assert (img.render(z[..., 0]) - data.frames).pow(2).mean() < 1e-4


def test_image_fit_smoke():
    smoke_fit(img.task(n_train=2, n_val=1, n_test=1, hidden=8, window=6), batch_size=16)


def test_aphynity_convnet_is_its_authors_network_and_trains_in_an_ensemble(tmp_path):
    """APHYNITY's ConvNet: zero padding (a field's border sees zeros, not the opposite border),
    BatchNorm on batch statistics only (no buffers, so an Ensemble accepts it), an output that
    depends on the batch it is evaluated with, and the study's two configurations."""
    net = rd.AphynityConvNet()
    assert all(m.padding_mode == "zeros" for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert not any(True for _ in net.buffers())
    x = torch.rand(3, rd.STATE_DIM)
    alone = net(x[:1])
    together = net(x)[:1]
    assert not torch.allclose(alone, together)  # batch statistics: the batch matters
    study = studies.get("reaction_diffusion_aphynity")
    model = hc.Ensemble.from_seeds(lambda: rd.make_hybrid(**study.configs[1].model), [0, 1])
    assert isinstance(rd.make_hybrid(**study.configs[1].model).network, rd.AphynityConvNet)
    task = rd.task(n_train=2, n_val=1, n_test=1, horizon=0.2, cache_dir=tmp_path)
    history = hc.fit(model, task.train, study.configs[1].method, epochs=1, batch_size=2)
    assert torch.isfinite(history.loss).all()
    assert [c.model_label for c in study.configs] == [
        "ERM [APHYNITY's ConvNet]",
        "APHYNITY [APHYNITY's ConvNet]",
    ]
    with pytest.raises(ValueError, match="convnet"):
        rd.make_hybrid(convnet="unet")


def test_reaction_diffusion_rho_is_the_rest_of_the_books_grids_with_the_chapters_settings():
    """The extra radii are exactly the SAM and ASAM radii of the book's grids that chapter 7's
    grid lacks, with its task, seeds and training: the same key a configuration of the chapter's
    own grid would have."""
    from hsam_core import experiments

    chapter, extra = studies.get("reaction_diffusion"), studies.get("reaction_diffusion_rho")
    ran = {(c.label, c.method.rho) for c in chapter.configs}
    rest = [(c.label, c.method.rho) for c in extra.configs]
    assert not ran & set(rest) and len(set(rest)) == len(rest)
    if not settings.get().quick:
        for label, rhos in [
            ("SAM (nn)", experiments.SAM_RHOS),
            ("ASAM (nn)", experiments.ASAM_RHOS),
        ]:
            assert {r for m, r in ran | set(rest) if m == label} == set(rhos)
    assert (extra.task, extra.seeds, extra.training) == (
        chapter.task,
        chapter.seeds,
        chapter.training,
    )


def test_the_twins_long_and_gpu_runs_are_the_twin_with_overrides():
    """The long twin: chapter 8b's configurations with a network at four times its epochs (twice
    in quick mode); the GPU rerun: the same configurations at chapter 8b's epochs, whose keys
    differ from the chapter's only because they ask for a GPU."""
    twin = studies.get("duffing_identifiable")
    long, gpu = studies.get("duffing_identifiable_long"), studies.get("duffing_identifiable_gpu")
    factor = 2 if settings.get().quick else 4
    assert long.training == {**twin.training, "epochs": factor * twin.training["epochs"]}
    assert [(c.label, c.method.rho) for c in long.configs] == [
        (c.label, c.method.rho) for c in twin.configs if not c.model
    ]
    assert gpu.training == twin.training and gpu.device == "cuda"
    for config in gpu.configs:
        ours, theirs = gpu.spec(config), twin.spec(config)
        assert ours != theirs and {**ours, "device": "any"} == theirs


def test_theta_paths_keep_first_last_and_evenly_spaced_epochs_per_seed():
    """The store keeps θ against epoch per seed at most PATH_POINTS epochs (the first and last
    always), not the whole history."""
    from hsam_core import store

    epochs = torch.arange(1.0, 201.0)[:, None]  # 200 epochs, three seeds
    theta = {"alpha": epochs * torch.tensor([1.0, 2.0, 4.0]), "beta": torch.ones(200, 3)}
    paths = store.path_rows("k", theta, [0, 1, 2])
    kept = paths[paths.seed == 0].epoch.tolist()
    assert kept[0] == 1 and kept[-1] == 200 and len(kept) == store.PATH_POINTS
    assert paths[paths.seed == 2].theta_alpha.tolist() == [4.0 * e for e in kept]
    assert (paths.theta_beta == 1.0).all() and set(paths.key) == {"k"}
    short = store.path_rows("k", {"alpha": torch.ones(5, 1)}, [7])
    assert short.epoch.tolist() == [1, 2, 3, 4, 5] and short.seed.tolist() == [7] * 5
