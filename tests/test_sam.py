"""The SAM contract (DESIGN.md §2.1): hand computations, ρ = 0, per-group ρ, state, errors."""

import copy

import pytest
import torch

from hsam_core import SAM, LookSAM


def quadratic_loss(w: torch.Tensor) -> torch.Tensor:
    """L(w) = Σ a_i w_i² + Σ b_i w_i, gradient 2 a w + b."""
    a = torch.tensor([1.0, 3.0, 0.5])
    b = torch.tensor([0.2, -0.1, 0.4])
    return (a * w**2).sum() + (b * w).sum()


def grad_of(w: torch.Tensor) -> torch.Tensor:
    return 2 * torch.tensor([1.0, 3.0, 0.5]) * w + torch.tensor([0.2, -0.1, 0.4])


def closure_for(opt, w):
    def closure():
        opt.zero_grad()
        loss = quadratic_loss(w)
        loss.backward()
        return loss

    return closure


@pytest.mark.parametrize("adaptive", [False, True])
def test_one_step_equals_hand_computation(adaptive):
    w0 = torch.tensor([0.7, -1.2, 2.0], dtype=torch.float64)
    w = torch.nn.Parameter(w0.clone())
    rho, lr, eta = 0.3, 0.1, 0.01
    opt = SAM([w], torch.optim.SGD, rho=rho, adaptive=adaptive, eta=eta, lr=lr)
    loss = opt.step(closure_for(opt, w))
    g = grad_of(w0)
    t = (w0.abs() + eta) if adaptive else torch.ones_like(w0)
    eps = rho * t**2 * g / (t * g).norm()
    expected = w0 - lr * grad_of(w0 + eps)
    torch.testing.assert_close(w.detach(), expected)
    torch.testing.assert_close(loss.detach(), quadratic_loss(w0))


def test_rho_zero_is_the_base_optimizer():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    ref = copy.deepcopy(net)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    opt = SAM(net.parameters(), torch.optim.Adam, rho=0.0, lr=1e-2)
    base = torch.optim.Adam(ref.parameters(), lr=1e-2)
    for _ in range(5):

        def closure(model=net, o=opt):
            o.zero_grad()
            loss = (model(x) - y).pow(2).mean()
            loss.backward()
            return loss

        opt.step(closure)
        base.zero_grad()
        (ref(x) - y).pow(2).mean().backward()
        base.step()
    for p, q in zip(net.parameters(), ref.parameters()):
        assert torch.equal(p, q)


def test_group_with_rho_zero_is_not_perturbed_and_norm_excludes_it():
    nn_w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    theta = torch.nn.Parameter(torch.tensor([3.0]))
    opt = SAM(
        [{"params": [nn_w]}, {"params": [theta], "rho": 0.0}], torch.optim.SGD, rho=0.5, lr=0.1
    )
    loss = (nn_w**2).sum() * theta.squeeze() ** 2
    loss.backward()
    g = nn_w.grad.clone()
    opt.first_step()
    assert torch.equal(theta.detach(), torch.tensor([3.0]))
    # the norm covers the perturbed group only: ε = ρ g / ‖g_nn‖, exactly of length ρ
    torch.testing.assert_close(nn_w.detach(), torch.tensor([1.0, 2.0]) + 0.5 * g / g.norm())
    opt.zero_grad()
    ((nn_w**2).sum() * theta.squeeze() ** 2).backward()
    opt.second_step()
    assert theta.detach().item() != 3.0  # θ is still updated


def test_matches_pytorch_optimizer_sam():
    pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    ref = copy.deepcopy(net)
    x, y = torch.randn(64, 4), torch.randn(64, 2)
    for adaptive in (False, True):
        ours = SAM(net.parameters(), torch.optim.SGD, rho=0.2, adaptive=adaptive, eta=0.0, lr=0.05)
        theirs = pytorch_optimizer.SAM(
            ref.parameters(), torch.optim.SGD, rho=0.2, adaptive=adaptive, lr=0.05
        )
        for _ in range(4):
            for model, opt in ((net, ours), (ref, theirs)):
                opt.zero_grad()
                (model(x) - y).pow(2).mean().backward()
                opt.first_step(zero_grad=True)
                (model(x) - y).pow(2).mean().backward()
                opt.second_step(zero_grad=True)
        for p, q in zip(net.parameters(), ref.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def _train(model, opt, x, y, steps):
    """``steps`` optimizer steps on the mean squared error of ``model(x)`` against ``y``."""
    for _ in range(steps):

        def closure():
            opt.zero_grad()
            loss = (model(x) - y).pow(2).mean()
            loss.backward()
            return loss

        opt.step(closure)


def test_state_dict_round_trip_continues_identically():
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x, y = torch.randn(16, 3), torch.randn(16, 1)

    def train(model, opt, steps):
        _train(model, opt, x, y, steps)

    opt = SAM(net.parameters(), torch.optim.Adam, rho=0.1, lr=1e-2)
    train(net, opt, 3)
    saved_model, saved_opt = copy.deepcopy(net.state_dict()), copy.deepcopy(opt.state_dict())
    assert saved_opt["state"], "the base optimizer's moments must be in the state dict"
    train(net, opt, 3)

    clone = copy.deepcopy(net)
    clone.load_state_dict(saved_model)
    opt2 = SAM(clone.parameters(), torch.optim.Adam, rho=0.1, lr=1e-2)
    opt2.load_state_dict(saved_opt)
    assert opt2.param_groups is opt2.base_optimizer.param_groups
    train(clone, opt2, 3)
    for p, q in zip(net.parameters(), clone.parameters()):
        assert torch.equal(p, q)


def test_zero_gradient_gives_no_nan():
    w = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
    opt = SAM([w], torch.optim.SGD, rho=0.1, lr=0.1)
    w.grad = torch.zeros(2)
    opt.first_step()
    assert torch.equal(w.detach(), torch.tensor([1.0, -1.0]))
    opt.second_step()
    assert torch.isfinite(w).all()


def test_non_finite_gradient_is_an_error():
    w = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
    opt = SAM([w], torch.optim.SGD, rho=0.1, lr=0.1)
    w.grad = torch.tensor([float("nan"), 0.0])
    with pytest.raises(FloatingPointError, match="not finite"):
        opt.first_step()


@pytest.mark.parametrize("rho", [-0.1, float("nan"), float("inf")])
def test_bad_rho_is_refused(rho):
    w = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="rho"):
        SAM([w], torch.optim.SGD, rho=rho, lr=0.1)
    with pytest.raises(ValueError, match="param group 1"):
        SAM(
            [{"params": [w]}, {"params": [torch.nn.Parameter(torch.zeros(1))], "rho": rho}],
            torch.optim.SGD,
            lr=0.1,
        )


def test_misuse_is_explained():
    w = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(TypeError, match="optimizer class"):
        SAM([w], torch.optim.SGD([w], lr=0.1), lr=0.1)
    opt = SAM([w], torch.optim.SGD, lr=0.1)
    with pytest.raises(ValueError, match="closure"):
        opt.step()
    with pytest.raises(RuntimeError, match="first_step"):
        opt.second_step()


def test_member_dim_takes_one_norm_per_member():
    """Stacked members along dim 0 are perturbed as if each had its own SAM."""
    torch.manual_seed(3)
    w = torch.randn(3, 5)
    grads = torch.randn(3, 5)
    stacked = torch.nn.Parameter(w.clone())
    stacked.grad = grads.clone()
    SAM([stacked], torch.optim.SGD, rho=0.2, member_dim=0, lr=0.1).first_step()
    for k in range(3):
        single = torch.nn.Parameter(w[k].clone())
        single.grad = grads[k].clone()
        SAM([single], torch.optim.SGD, rho=0.2, lr=0.1).first_step()
        torch.testing.assert_close(stacked[k].detach(), single.detach())


def test_copied_alone_into_an_empty_folder(tmp_path):
    """sam.py depends on torch only: copy it alone and use it."""
    import pathlib
    import shutil
    import subprocess
    import sys

    import hsam_core

    shutil.copy(pathlib.Path(hsam_core.__file__).parent / "sam.py", tmp_path / "sam.py")
    script = (
        "import torch\nfrom sam import SAM\n"
        "w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))\n"
        "opt = SAM([w], torch.optim.Adam, rho=0.05, lr=0.1)\n"
        "def closure():\n    opt.zero_grad(); loss = (w**2).sum(); loss.backward(); return loss\n"
        "for _ in range(3): opt.step(closure)\n"
        "import sys\nassert not any(m.startswith('hsam_core') for m in sys.modules)\n"
        "print('ok', w.tolist())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "", "PYTHONNOUSERSITE": "1"},
        check=True,
    )
    assert out.stdout.startswith("ok")


# --- LookSAM: the amortised variant -------------------------------------------------------


def _net_and_data(seed=4):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    return net, torch.randn(32, 3), torch.randn(32, 2)


@pytest.mark.parametrize("adaptive", [False, True])
def test_looksam_every_step_is_sam_exactly(adaptive):
    net, x, y = _net_and_data()
    ref = copy.deepcopy(net)
    groups = lambda m: [  # noqa: E731 - per-group ρ: the last layer is updated, never perturbed
        {"params": list(m[0].parameters())},
        {"params": list(m[2].parameters()), "rho": 0.0},
    ]
    look = LookSAM(groups(net), torch.optim.Adam, rho=0.2, k=1, adaptive=adaptive, lr=1e-2)
    sam = SAM(groups(ref), torch.optim.Adam, rho=0.2, adaptive=adaptive, lr=1e-2)
    _train(net, look, x, y, 6)
    _train(ref, sam, x, y, 6)
    for p, q in zip(net.parameters(), ref.parameters()):
        assert torch.equal(p, q)


def test_looksam_reuses_the_orthogonal_sharpness_direction():
    """Step 0 is a SAM step; step 1 adds α ‖g‖/‖g_v‖ g_v to the plain gradient (hand computed)."""
    w0 = torch.tensor([0.7, -1.2, 2.0], dtype=torch.float64)
    w = torch.nn.Parameter(w0.clone())
    rho, lr, alpha = 0.3, 0.1, 0.7
    opt = LookSAM([w], torch.optim.SGD, rho=rho, k=3, alpha=alpha, lr=lr)
    opt.step(closure_for(opt, w))
    g = grad_of(w0)
    g_s = grad_of(w0 + rho * g / g.norm())
    w1 = w0 - lr * g_s
    torch.testing.assert_close(w.detach(), w1)
    g_v = g_s - (g_s @ g) / (g @ g) * g
    opt.step(closure_for(opt, w))
    g1 = grad_of(w1)
    w2 = w1 - lr * (g1 + alpha * g1.norm() / g_v.norm() * g_v)
    torch.testing.assert_close(w.detach(), w2)
    # and with α = 0 the step in between is the base optimizer's plain step
    w = torch.nn.Parameter(w0.clone())
    opt = LookSAM([w], torch.optim.SGD, rho=rho, k=3, alpha=0.0, lr=lr)
    opt.step(closure_for(opt, w))
    opt.step(closure_for(opt, w))
    torch.testing.assert_close(w.detach(), w1 - lr * grad_of(w1))


def test_looksam_member_dim_equals_separate_optimizers():
    torch.manual_seed(5)
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    stacked = torch.nn.Parameter(torch.randn(3, 4))
    singles = [torch.nn.Parameter(stacked[k].detach().clone()) for k in range(3)]

    def loss_of(w):
        return (a * w.pow(2) + b * w).sum(dim=-1)

    opt = LookSAM([stacked], torch.optim.SGD, rho=0.1, k=2, member_dim=0, lr=0.05)
    opts = [LookSAM([s], torch.optim.SGD, rho=0.1, k=2, lr=0.05) for s in singles]
    for _ in range(5):

        def closure():
            opt.zero_grad()
            loss = loss_of(stacked)
            loss.sum().backward()
            return loss

        opt.step(closure)
        for k, (s, o) in enumerate(zip(singles, opts)):

            def single_closure(s=s, o=o, k=k):
                o.zero_grad()
                loss = (a[k] * s.pow(2) + b[k] * s).sum()
                loss.backward()
                return loss

            o.step(single_closure)
    for k in range(3):
        torch.testing.assert_close(stacked[k].detach(), singles[k].detach())


def test_looksam_state_dict_round_trip_continues_identically():
    net, x, y = _net_and_data(6)
    opt = LookSAM(net.parameters(), torch.optim.Adam, rho=0.1, k=3, lr=1e-2)
    _train(net, opt, x, y, 4)  # mid-cycle: the next step reuses g_v
    saved_model, saved_opt = copy.deepcopy(net.state_dict()), copy.deepcopy(opt.state_dict())
    assert saved_opt["looksam"]["steps"] == 4 and saved_opt["looksam"]["g_v"]
    _train(net, opt, x, y, 4)
    clone = copy.deepcopy(net)
    clone.load_state_dict(saved_model)
    opt2 = LookSAM(clone.parameters(), torch.optim.Adam, rho=0.1, k=3, lr=1e-2)
    opt2.load_state_dict(saved_opt)
    _train(clone, opt2, x, y, 4)
    for p, q in zip(net.parameters(), clone.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="looksam"):
        opt2.load_state_dict(SAM(clone.parameters(), torch.optim.Adam, lr=1e-2).state_dict())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"k": 0}, "k must be an int >= 1"),
        ({"k": 2.5}, "k must be an int >= 1"),
        ({"k": True}, "k must be an int >= 1"),
        ({"alpha": -0.1}, "alpha must be"),
        ({"alpha": float("nan")}, "alpha must be"),
        ({"rho": -1.0}, "rho"),
    ],
)
def test_looksam_bad_settings_are_refused(kwargs, match):
    w = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match=match):
        LookSAM([w], torch.optim.SGD, lr=0.1, **kwargs)
    with pytest.raises(ValueError, match="closure"):
        LookSAM([w], torch.optim.SGD, lr=0.1).step()
