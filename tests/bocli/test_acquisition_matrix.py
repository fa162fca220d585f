"""Every surrogate x acquisition pair either proposes valid points or is refused at once."""

from __future__ import annotations

import numpy as np
import pytest

from bocli.acquisition import IncompatiblePairError, acquisition_names, check_compatible
from bocli.engine import suggest
from problems import get_problem

# small, fast settings: the point here is that every pair runs, not model quality
FAST = {
    "ibnn": {},
    "ibnn-t": {},
    "dkl": {"steps": 30},
    "ensemble": {"steps": 60, "num_members": 6},
}


@pytest.fixture(scope="module")
def data():
    p = get_problem("branin")
    rng = np.random.default_rng(0)
    X = rng.random((10, p.space.dim))
    y = np.array([p.evaluate(prm) for prm in p.space.decode(X)])
    return p.space, X, y


@pytest.mark.parametrize(
    "acquisition", [a for a in acquisition_names() if a not in ("random", "parego")]
)
@pytest.mark.parametrize("surrogate", list(FAST))
def test_pair_runs_or_is_refused(data, surrogate: str, acquisition: str) -> None:
    space, X, y = data
    try:
        check_compatible(surrogate, acquisition)
    except IncompatiblePairError as e:
        assert "works with" in str(e)
        return
    s = suggest(
        space,
        X,
        y,
        q=2,
        pending=X[:0] + 0.5,
        surrogate=surrogate,
        acquisition=acquisition,
        surrogate_options=FAST[surrogate],
        seed=1,
        n_init=4,
        n_issued=len(X),
        num_restarts=2,
        raw_samples=16,
    )
    assert s.X.shape == (2, space.dim)
    assert np.isfinite(s.X).all() and (s.X >= 0).all() and (s.X <= 1).all()
    assert s.info["phase"] != "init"


def test_ensemble_supports_the_promised_acquisitions() -> None:
    for acquisition in ("ei", "kg", "mes", "jes", "ts", "ucb"):
        check_compatible("ensemble", acquisition)
    with pytest.raises(IncompatiblePairError, match="gibbon"):
        check_compatible("ensemble", "gibbon")
