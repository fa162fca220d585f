"""Mixed float/int/categorical problems."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bocli.space import CategoricalParam, IntParam
from problems import get_problem


def _point(x: float, n: int, c: str, dim: int = 4) -> dict:
    return {**{f"x{i}": x for i in range(dim)}, "n": n, "c": c}


def test_space():
    p = get_problem("mixed-ackley")
    assert p.space.names == ["x0", "x1", "x2", "x3", "n", "c"]
    assert isinstance(p.space.parameters[4], IntParam)
    assert isinstance(p.space.parameters[5], CategoricalParam)
    assert not p.space.is_continuous
    assert p.optimum == 0.0


def test_known_optimum():
    p = get_problem("mixed-ackley")
    assert p.evaluate(_point(1.0, 3, "green")) == pytest.approx(0.0, abs=1e-12)
    # every category has its own optimum, offset above the global one
    assert p.evaluate(_point(0.0, 3, "red")) == pytest.approx(1.0, abs=1e-12)
    assert p.evaluate(_point(-1.5, 3, "blue")) == pytest.approx(0.5, abs=1e-12)
    # the right x with the wrong category (or n) is far from optimal
    assert p.evaluate(_point(1.0, 3, "red")) > 3
    assert p.evaluate(_point(1.0, 4, "green")) > 1.5


def test_nothing_beats_the_optimum():
    p = get_problem("mixed-ackley:dim=2")
    rng = np.random.default_rng(0)
    grid = np.linspace(-5, 10, 61)
    values = [
        p.evaluate({"x0": a, "x1": b, "n": n, "c": c})
        for a, b in rng.choice(grid, size=(300, 2))
        for n, c in itertools.product(range(11), ["red", "green", "blue"])
    ]
    assert min(values) >= p.optimum
    assert min(values) < 3  # the grid contains the optimizer's neighbourhood


def test_agrees_with_botorch_ackley():
    torch = pytest.importorskip("torch")
    from botorch.test_functions.synthetic import Ackley

    p = get_problem("mixed-ackley")
    reference = Ackley(dim=5, dtype=torch.float64)
    x = np.array([2.0, -3.0, 0.5, 7.0])
    z = torch.tensor([*(x + 1.5), 6 - 3], dtype=torch.float64)  # blue: shift -1.5, offset 0.5
    got = p.evaluate({**{f"x{i}": v for i, v in enumerate(x)}, "n": 6, "c": "blue"})
    assert got == pytest.approx(float(reference.evaluate_true(z[None])[0]) + 0.5, rel=1e-12)
