"""Deep ensemble: batched members, t-batches of any size, and a 1-D BO step (regression)."""

from __future__ import annotations

import numpy as np
import torch

from bocli.engine import suggest
from problems import get_problem
from surrogates import make_surrogate
from surrogates.ensemble import batched_mlp, init_batched_mlp, out_of_bag_noise

SMALL = {"num_members": 3, "width": 16, "steps": 60}


def test_batched_mlp_matches_member_loop():
    layers = init_batched_mlp(4, [2, 8, 1], dtype=torch.float64)
    X = torch.rand(5, 7, 2, dtype=torch.float64)
    out = batched_mlp(X, layers)  # 5 x 4 x 7
    assert out.shape == (5, 4, 7)
    for k in range(4):
        member = [(W[k], b[k]) for W, b in layers]
        h = 2 * X - 1
        for i, (W, b) in enumerate(member):
            h = h @ W + b
            if i < len(member) - 1:
                h = torch.tanh(h)
        assert torch.allclose(out[:, k], h.squeeze(-1))


def test_t_batch_equal_to_member_count_keeps_its_dimension():
    # a t-batch of size s (= number of members) was once mistaken for the member dimension
    X = torch.rand(6, 1, dtype=torch.float64)
    Y = torch.sin(6 * X)
    model = make_surrogate("ensemble", SMALL).fit(X, (Y - Y.mean()) / Y.std())
    for b in (1, 2, 3, 4):
        post = model.posterior(torch.rand(b, 2, 1, dtype=torch.float64))
        assert post.mean.shape == (b, 2, 1)


def test_one_dimensional_bo_step():
    p = get_problem("forrester")
    X = p.space.sobol(3, seed=1)
    y = np.array([p.evaluate(x) for x in p.space.decode(X)])
    s = suggest(p.space, X, y, surrogate="ensemble", surrogate_options=SMALL, seed=1, n_init=3)
    assert s.X.shape == (1, 1) and 0 <= s.X[0, 0] <= 1


def test_out_of_bag_noise_recovers_the_error_the_members_do_not_see():
    g = torch.Generator().manual_seed(0)
    s, n = 10, 400
    truth = torch.randn(n, generator=g, dtype=torch.float64)
    f = truth + 0.1 * torch.randn(s, n, generator=g, dtype=torch.float64)  # members agree...
    y = truth + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)  # ...but miss by sd 0.5
    held_out = torch.rand(s, n, generator=g) < 0.3
    v = out_of_bag_noise(f, y, held_out, torch.full((s,), 1e-3, dtype=torch.float64))
    assert v is not None and 0.2 < v < 0.3  # 0.25 minus the members' own spread (0.01)
    # no out-of-bag points (every member saw every point): nothing to calibrate
    assert out_of_bag_noise(f, y, torch.zeros(s, n, dtype=torch.bool), torch.ones(s)) is None


def test_calibrated_on_a_rough_objective():
    """Ackley at n = 60: the members' own noise said 0.08 and covered 61% of held-out values at 90%
    (NLL 4.1 vs 2.5 for a constant); out-of-bag calibration restores honest intervals."""
    import math

    p = get_problem("ackley")
    rng = np.random.default_rng(0)
    X = rng.random((560, p.space.dim))
    y = p.space.objective.sign * np.array([p.evaluate(prm) for prm in p.space.decode(X)])
    y = (y - y[:60].mean()) / y[:60].std()
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    torch.manual_seed(0)
    model = make_surrogate("ensemble").fit(X[:60], y[:60, None])
    with torch.no_grad():
        post = model.posterior(X[60:], observation_noise=True)
        m, v = post.mean.squeeze(-1), post.variance.squeeze(-1)
    yt = y[60:]
    nll = float((0.5 * torch.log(2 * math.pi * v) + 0.5 * (yt - m) ** 2 / v).mean())
    const = float((0.5 * math.log(2 * math.pi) + 0.5 * yt**2).mean())
    coverage = float(((yt - m).abs() <= 1.6449 * v.sqrt()).double().mean())
    assert nll < const and 0.75 <= coverage <= 0.99, (nll, const, coverage)
