"""The GP family's fit paths, each forced: a failed first fit (jitter retry) and a fit that never
succeeds (prior fallback). Neither aborts a proposal; both say so in one ``warning:`` line."""

from __future__ import annotations

import pytest
import torch
from botorch.exceptions.errors import ModelFittingError
from click.testing import CliRunner

import surrogates.gp as gp_module
from surrogates import make_surrogate


def _data(n: int = 12, d: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    X = torch.rand(n, d, generator=g, dtype=torch.float64)
    Y = torch.sin(6 * X).sum(-1, keepdim=True)
    return X, (Y - Y.mean()) / Y.std()


def _failing(monkeypatch: pytest.MonkeyPatch, failures: int) -> list[int]:
    real = gp_module.fit_gpytorch_mll
    calls: list[int] = []

    def fit(mll, *args, **kwargs):
        calls.append(1)
        if len(calls) <= failures:
            for p in mll.model.parameters():  # a failed attempt leaves junk behind
                p.data.fill_(float("nan"))
            raise ModelFittingError("forced failure")
        return real(mll, *args, **kwargs)

    monkeypatch.setattr(gp_module, "fit_gpytorch_mll", fit)
    return calls


@pytest.mark.parametrize("name", ["gp", "ibnn"])
def test_a_failed_first_fit_retries_with_jitter(monkeypatch, name) -> None:
    calls = _failing(monkeypatch, failures=1)
    sur = make_surrogate(name, {})
    X, Y = _data()
    model = sur.fit(X, Y)
    assert len(calls) == 2
    assert sur.diagnostics["fit_status"] == "jitter"
    assert "jitter 1e-06" in sur.diagnostics["warning"]
    post = model.posterior(torch.rand(5, 2, dtype=torch.float64))
    assert torch.isfinite(post.mean).all() and (post.variance > 0).all()


@pytest.mark.parametrize("name", ["gp", "ibnn"])
def test_a_fit_that_never_succeeds_falls_back_to_the_prior(monkeypatch, name) -> None:
    _failing(monkeypatch, failures=99)
    sur = make_surrogate(name, {})
    X, Y = _data()
    fresh = make_surrogate(name, {})
    monkeypatch.setattr(gp_module, "fit_gpytorch_mll", lambda mll, *a, **k: None)
    untuned = fresh.fit(X, Y)  # the same model with its initial hyperparameters
    _failing(monkeypatch, failures=99)
    model = sur.fit(X, Y)
    assert sur.diagnostics["fit_status"] == "prior"
    assert "failed 3 times" in sur.diagnostics["warning"]
    for (k, a), (_, b) in zip(
        model.state_dict().items(), untuned.state_dict().items(), strict=True
    ):
        assert torch.allclose(a, b, equal_nan=False), k  # the initial values, not the junk
    Xt = torch.rand(5, 2, dtype=torch.float64)
    assert torch.isfinite(model.posterior(Xt).mean).all()


def test_ask_prints_one_warning_line_and_stores_it(monkeypatch, tmp_path) -> None:
    from bocli.cli import cli
    from bocli.study import export_rows

    study = tmp_path / "s.db"
    runner = CliRunner()
    assert (
        runner.invoke(cli, ["init", str(study), "--problem", "branin", "--init", "4"]).exit_code
        == 0
    )
    res = runner.invoke(cli, ["ask", str(study), "-n", "4", "-o", str(tmp_path / "b.csv")])
    assert res.exit_code == 0, res.output
    rows = (tmp_path / "b.csv").read_text().split("\n")
    filled = [rows[0]] + [r + str(1.0 + i) for i, r in enumerate(rows[1:5])]
    (tmp_path / "b.csv").write_text("\n".join(filled) + "\n")
    assert runner.invoke(cli, ["tell", str(study), str(tmp_path / "b.csv")]).exit_code == 0
    _failing(monkeypatch, failures=99)
    res = runner.invoke(cli, ["ask", str(study), "--format", "json"])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stderr.split("\n") if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: gp: the marginal-likelihood fit")
    _, exported = export_rows(study)
    assert exported[-1]["diagnostics"]["fit_status"] == "prior"
