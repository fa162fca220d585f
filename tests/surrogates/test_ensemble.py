"""Deep ensemble: batched members, t-batches of any size, and a 1-D BO step (regression)."""

from __future__ import annotations

import numpy as np
import torch

from bocli.engine import suggest
from problems import get_problem
from surrogates import make_surrogate
from surrogates.ensemble import batched_mlp, init_batched_mlp

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
