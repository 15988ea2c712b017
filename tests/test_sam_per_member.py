"""Per-member radii (``member_dim`` with a tensor ρ): one SAM over K stacked members equals K
separate SAM optimizers with scalar radii ρ_k — the lever that trains several radii as one model."""

import copy

import pytest
import torch

from hsam_core import SAM, LookSAM

K = 4
RADII = [0.0, 0.05, 0.2, 1.0]  # member 0: updated, never perturbed (Adam's step)


def _problem(seed=0):
    """Stacked two-layer networks (K members) and per-member data."""
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(K, 3, 6, generator=g, dtype=torch.float64)
    w2 = torch.randn(K, 6, 2, generator=g, dtype=torch.float64)
    x = torch.randn(K, 16, 3, generator=g, dtype=torch.float64)
    y = torch.randn(K, 16, 2, generator=g, dtype=torch.float64)
    return w1, w2, x, y


def _member_loss(w1, w2, x, y):
    """Mean squared error of tanh(x W1) W2: (K,) for stacked weights, a scalar for one member."""
    return (torch.tanh(x @ w1) @ w2 - y).pow(2).mean(dim=(-2, -1))


def _run(opt, params, x, y, steps):
    for _ in range(steps):

        def closure():
            opt.zero_grad()
            loss = _member_loss(*params, x, y)
            loss.sum().backward()
            return loss

        opt.step(closure)


def _groups(w1, w2, rho):
    # the first layer is perturbed with ρ; the second is updated, never perturbed (as θ is)
    return [{"params": [w1], "rho": rho}, {"params": [w2], "rho": 0.0}]


@pytest.mark.parametrize("kind", ["SAM", "ASAM", "LookSAM"])
def test_per_member_rho_equals_separate_optimizers(kind):
    w1, w2, x, y = _problem()
    extra = {"adaptive": kind == "ASAM"}
    cls = SAM
    if kind == "LookSAM":
        cls, extra = LookSAM, {"k": 2}
    stacked = [torch.nn.Parameter(w1.clone()), torch.nn.Parameter(w2.clone())]
    radii = torch.tensor(RADII, dtype=torch.float64)
    opt = cls(_groups(*stacked, radii), torch.optim.Adam, member_dim=0, lr=1e-2, **extra)
    _run(opt, stacked, x, y, 5)
    for k, rho in enumerate(RADII):
        single = [torch.nn.Parameter(w1[k].clone()), torch.nn.Parameter(w2[k].clone())]
        alone = cls(_groups(*single, rho), torch.optim.Adam, lr=1e-2, **extra)
        _run(alone, single, x[k], y[k], 5)
        for p, q in zip(stacked, single):
            torch.testing.assert_close(p[k], q, rtol=1e-12, atol=1e-12, msg=f"{kind} ρ={rho}")


def test_a_list_of_radii_equals_a_tensor_and_first_step_moves_each_member_by_its_radius():
    torch.manual_seed(1)
    w, grad = torch.randn(K, 5), torch.randn(K, 5)
    moved = []
    for rho in (RADII, tuple(RADII), torch.tensor(RADII, dtype=torch.float64)):
        p = torch.nn.Parameter(w.clone())
        p.grad = grad.clone()
        SAM([p], torch.optim.SGD, rho=rho, member_dim=0, lr=0.1).first_step()
        moved.append(p.detach())
    assert torch.equal(moved[0], moved[1]) and torch.equal(moved[0], moved[2])
    # plain SAM: ‖ε_k‖ = ρ_k exactly, member by member
    lengths = (moved[0] - w).norm(dim=1)
    torch.testing.assert_close(lengths, torch.tensor(RADII))


def test_per_member_rho_survives_a_state_dict_round_trip():
    w1, w2, x, y = _problem(2)
    params = [torch.nn.Parameter(w1.clone()), torch.nn.Parameter(w2.clone())]
    opt = SAM(_groups(*params, RADII), torch.optim.Adam, member_dim=0, lr=1e-2)
    _run(opt, params, x, y, 2)
    saved_params, saved_opt = copy.deepcopy(params), copy.deepcopy(opt.state_dict())
    _run(opt, params, x, y, 2)
    again = [torch.nn.Parameter(p.detach().clone()) for p in saved_params]
    opt2 = SAM(_groups(*again, 0.5), torch.optim.Adam, member_dim=0, lr=1e-2)
    opt2.load_state_dict(saved_opt)
    assert opt2.param_groups[0]["rho"].tolist() == RADII
    _run(opt2, again, x, y, 2)
    for p, q in zip(params, again):
        assert torch.equal(p, q)


@pytest.mark.parametrize(
    "rho, member_dim, match",
    [
        (torch.tensor(RADII), None, "needs member_dim"),
        (RADII[:3], 0, "holds 3 per-member radii"),
        ([0.1, -0.1, 0.1, 0.1], 0, "finite number >= 0"),
        ([0.1, float("nan"), 0.1, 0.1], 0, "finite number >= 0"),
        (torch.ones(2, 2), 0, "1-D"),
        ([], 0, "non-empty"),
        (torch.ones(4, dtype=torch.bool), 0, "1-D"),
        ([0.1, "0.2", 0.1, 0.1], 0, "numbers"),
        (torch.tensor(0.1), 0, "1-D"),
    ],
)
def test_bad_per_member_radii_are_refused(rho, member_dim, match):
    w = torch.nn.Parameter(torch.zeros(K, 3))
    with pytest.raises(ValueError, match=match):
        SAM([{"params": [w], "rho": rho}], torch.optim.SGD, member_dim=member_dim, lr=0.1)
    with pytest.raises(ValueError, match=match):
        LookSAM([w], torch.optim.SGD, rho=rho, member_dim=member_dim, lr=0.1)


def _mlp_stack(members, seed=3):
    """A 3-layer network's six parameter tensors, stacked over ``members`` (float32)."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(2, 16), (16,), (16, 16), (16,), (16, 2), (2,)]
    return [torch.randn(members, *s, generator=g) / 4 for s in shapes]


def _mlp_loss(ws, x, y):
    h = x
    for i in range(0, len(ws), 2):
        h = h @ ws[i] + ws[i + 1].unsqueeze(-2)
        h = torch.tanh(h) if i < len(ws) - 2 else h
    return (h - y).pow(2).mean(dim=(-2, -1))


@pytest.mark.parametrize("cls", [SAM, LookSAM])
def test_member_blocks_give_one_optimizer_per_block_bit_for_bit(cls):
    """Two configurations of 5 members stacked (K = 10) with ``member_blocks=[5, 5]`` take
    exactly the steps of two stacked optimizers of 5 members with scalar radii."""
    radii, size = (0.05, 0.2), 5
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(size, 32, 2, generator=g), torch.randn(size, 32, 2, generator=g)
    init = _mlp_stack(size)
    extra = {"k": 2} if cls is LookSAM else {}

    def train(params, opt, xs, ys):
        for _ in range(4):

            def closure():
                opt.zero_grad()
                loss = _mlp_loss(params, xs, ys)
                loss.sum().backward()
                return loss

            opt.step(closure)

    together = [torch.nn.Parameter(torch.cat([w, w])) for w in init]
    rho = torch.tensor([r for r in radii for _ in range(size)], dtype=torch.float64)
    blocks = {"member_dim": 0, "member_blocks": [size, size]}
    opt = cls(together, torch.optim.Adam, rho=rho, lr=1e-2, **blocks, **extra)
    train(together, opt, torch.cat([x, x]), torch.cat([y, y]))
    for block, r in enumerate(radii):
        alone = [torch.nn.Parameter(w.clone()) for w in init]
        train(alone, cls(alone, torch.optim.Adam, rho=r, member_dim=0, lr=1e-2, **extra), x, y)
        for p, q in zip(together, alone):
            assert torch.equal(p[block * size : (block + 1) * size], q)


@pytest.mark.parametrize(
    "blocks, member_dim, match",
    [
        ([2, 2], None, "needs member_dim"),
        ([2, 1], 0, "add up to 3 members"),
        ([4, 0], 0, "ints >= 1"),
        (4, 0, "ints >= 1"),
        ([], 0, "ints >= 1"),
    ],
)
def test_bad_member_blocks_are_refused(blocks, member_dim, match):
    w = torch.nn.Parameter(torch.zeros(K, 3))
    with pytest.raises(ValueError, match=match):
        SAM([w], torch.optim.SGD, member_dim=member_dim, member_blocks=blocks, lr=0.1)


def test_per_member_adaptive_flags_perturb_each_member_as_its_own_sam_or_asam():
    """A stack of SAM and ASAM members (per-member ``adaptive`` and ρ) moves each member
    exactly as its own optimizer would, bit for bit."""
    torch.manual_seed(5)
    w, grads = torch.randn(4, 6), torch.randn(4, 6)
    flags, radii = [False, True, True, False], [0.1, 1.0, 0.5, 0.0]
    stacked = torch.nn.Parameter(w.clone())
    stacked.grad = grads.clone()
    opt = SAM([stacked], torch.optim.SGD, rho=radii, adaptive=flags, member_dim=0, lr=0.1)
    opt.first_step()
    for k in range(4):
        single = torch.nn.Parameter(w[k : k + 1].clone())
        single.grad = grads[k : k + 1].clone()
        own = SAM([single], torch.optim.SGD, rho=radii[k], adaptive=flags[k], member_dim=0, lr=0.1)
        own.first_step()
        assert torch.equal(stacked[k].detach(), single[0].detach()), k
    assert torch.equal(opt.param_groups[0]["adaptive"], torch.tensor(flags))
    opt.load_state_dict(opt.state_dict())  # the flags survive a round trip
    assert torch.equal(opt.param_groups[0]["adaptive"], torch.tensor(flags))


@pytest.mark.parametrize(
    "adaptive, member_dim, error, match",
    [
        ([True, False], None, ValueError, "per-member adaptive .* flags.* needs member_dim"),
        ([True, False, True], 0, ValueError, "adaptive holds 3 per-member flags"),
        ([1, 0], 0, TypeError, "adaptive must be True"),
        ("yes", None, TypeError, "adaptive must be True"),
        ([], 0, TypeError, "adaptive must be True"),
    ],
)
def test_bad_adaptive_flags_are_refused(adaptive, member_dim, error, match):
    w = torch.nn.Parameter(torch.zeros(2, 3))
    with pytest.raises(error, match=match):
        SAM([w], torch.optim.SGD, adaptive=adaptive, member_dim=member_dim, lr=0.1)
