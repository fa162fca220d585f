"""The PFN's numerical parts: bar distribution, GP prior, transformer, training loop, checkpoint files."""

from __future__ import annotations

import math

import pytest
import torch

from surrogates.pfn_net import bar
from surrogates.pfn_net.io import CheckpointError, load_checkpoint, read_config, save_checkpoint
from surrogates.pfn_net.model import PFNConfig, PFNTransformer
from surrogates.pfn_net.prior import PriorConfig, exact_gp_nll, sample_gp_batch
from surrogates.pfn_net.train import TrainConfig, evaluate_vs_gp, prior_borders, train

DT = torch.float64


@pytest.fixture
def dist() -> tuple[torch.Tensor, torch.Tensor]:
    """Borders of 12 buckets and 5 random logit vectors."""
    g = torch.Generator().manual_seed(0)
    inner = torch.linspace(-2, 2, 11) + 0.1 * torch.rand(11, generator=g)
    borders = torch.cat([torch.tensor([-3.0]), inner, torch.tensor([3.0])])
    logits = torch.randn(5, 12, generator=g, dtype=DT) * 1.5
    return borders.to(DT), logits


def _grid(lo: float = -40.0, hi: float = 40.0, n: int = 160_001) -> torch.Tensor:
    return torch.linspace(lo, hi, n, dtype=DT)


def test_density_integrates_to_one_and_matches_moments(dist):
    borders, logits = dist
    y = _grid()
    dens = bar.log_prob(borders, logits.unsqueeze(1), y.unsqueeze(0)).exp()  # 5 x G
    dy = y[1] - y[0]
    mass = torch.trapezoid(dens, dx=dy, dim=-1)
    assert torch.allclose(mass, torch.ones(5, dtype=DT), atol=2e-3)  # jumps at the borders
    m = torch.trapezoid(dens * y, dx=dy, dim=-1)
    v = torch.trapezoid(dens * y.square(), dx=dy, dim=-1) - m.square()
    assert torch.allclose(bar.mean(borders, logits), m, atol=5e-3)
    assert torch.allclose(bar.variance(borders, logits), v, rtol=5e-3)


def test_cdf_and_icdf_are_inverse(dist):
    borders, logits = dist
    u = torch.tensor([1e-4, 0.01, 0.2, 0.5, 0.77, 0.99, 0.9999], dtype=DT).view(-1, 1)
    y = bar.icdf(borders, logits, u)  # 7 x 5
    assert torch.allclose(bar.cdf(borders, logits, y), u.expand(7, 5), atol=1e-8)
    assert (y[1:] >= y[:-1]).all()


@pytest.mark.parametrize("f", [-5.0, -2.5, -0.3, 0.0, 1.1, 2.9, 4.0, 8.0])
def test_closed_form_ei_matches_quadrature(dist, f):
    borders, logits = dist
    y = _grid()
    dens = bar.log_prob(borders, logits.unsqueeze(1), y.unsqueeze(0)).exp()
    ei_num = torch.trapezoid(dens * (y - f).clamp_min(0), dx=y[1] - y[0], dim=-1)
    ei = bar.expected_improvement(borders, logits, f)
    assert torch.allclose(ei, ei_num, rtol=2e-3, atol=2e-4)


def test_log_ei_far_in_the_right_tail_is_finite_with_gradients(dist):
    borders, logits = dist
    logits = logits.clone().requires_grad_(True)
    lei = bar.log_expected_improvement(borders, logits, 40.0)
    assert torch.isfinite(lei).all() and (lei < -50).all()
    lei.sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_borders_fit_tails_to_the_median_excess():
    s = torch.randn(200_000, dtype=DT)
    b = bar.bucket_borders(s, 50)
    assert len(b) == 51 and (b[1:] > b[:-1]).all()
    # half-normal tails: half their mass within the outer bucket
    excess = s[s > b[-2]] - b[-2]
    assert (excess < b[-1] - b[-2]).double().mean() == pytest.approx(0.5, abs=0.02)


def test_prior_batch_shapes_and_unused_inputs():
    prior = PriorConfig(max_dim=4)
    g = torch.Generator().manual_seed(1)
    batch = sample_gp_batch(16, 30, prior, generator=g)
    assert batch.x.shape == (16, 30, 4) and batch.y.shape == (16, 30)
    for i in range(16):
        d = int(batch.dims[i])
        assert (batch.x[i, :, d:] == 0).all()
        assert torch.isinf(batch.lengthscale[i, d:]).all()
        assert torch.isfinite(batch.lengthscale[i, :d]).any()  # at least one input is used


def test_exact_gp_beats_a_constant_predictor():
    prior = PriorConfig(max_dim=2)
    g = torch.Generator().manual_seed(2)
    batch = sample_gp_batch(32, 60, prior, generator=g, dims=torch.full((32,), 2))
    nll_gp = exact_gp_nll(batch, 40).mean()
    # a normal with the true marginal variance (outputscale + noise), ignoring the context
    var = (batch.outputscale + batch.noise).view(-1, 1)
    nll_const = (0.5 * (math.log(2 * math.pi) + var.log() + batch.y[:, 40:].square() / var)).mean()
    assert nll_gp < nll_const - 0.3


def _tiny() -> PFNTransformer:
    torch.manual_seed(0)
    return PFNTransformer(
        PFNConfig(max_dim=3, max_context=10, emsize=16, nhead=2, nhid=32, nlayers=2, num_buckets=20)
    )


def test_transformer_is_context_permutation_invariant_and_queries_independent():
    net = _tiny()
    for p in net.parameters():  # zero-initialized residual branches would hide the attention
        torch.nn.init.normal_(p, std=0.3)
    xc, yc, xq = torch.rand(2, 7, 3), torch.randn(2, 7), torch.rand(2, 5, 3)
    out = net(xc, yc, xq, 3)
    perm = torch.randperm(7)
    assert torch.allclose(net(xc[:, perm], yc[:, perm], xq, 3), out, atol=1e-5)
    assert torch.allclose(net(xc, yc, xq[:, :2], 3), out[:, :2], atol=1e-5)
    assert not torch.allclose(net(xc, yc + 1, xq, 3), out, atol=1e-4)  # the context matters


def _tiny_cfg(**kw) -> TrainConfig:
    settings = {
        "steps": 6,
        "batch_size": 4,
        "border_batches": 5,
        "extra_points": 5,
        "eval_datasets": 4,
        "model": PFNConfig(
            max_dim=2, max_context=8, emsize=16, nhead=2, nhid=16, nlayers=1, num_buckets=16
        ),
        "prior": PriorConfig(max_dim=2),
    }
    return TrainConfig(**{**settings, **kw})


def test_training_writes_a_loadable_checkpoint_and_resumes(tmp_path):
    seen = []
    rec = train(_tiny_cfg(name="tiny"), tmp_path, callback=lambda i: seen.append(i["step"]))
    assert seen == list(range(1, 7)) and rec["steps_done"] == 6 and rec["finished"]
    assert {r["d"] for r in rec["heldout_nll_vs_gp"]} == {1, 2}
    raw = torch.load(tmp_path / "tiny.pt", weights_only=True)
    assert set(raw) == {"state_dict", "config"}
    net, cfg = load_checkpoint(tmp_path / "tiny.pt")
    assert cfg["model"]["max_context"] == 8 and not net.training
    assert (tmp_path / "tiny.json").is_file()
    # resume with a larger budget: keeps the saved run's settings, continues the step count
    cfg2 = _tiny_cfg(name="tiny")
    st = torch.load(tmp_path / "train_state.pt", weights_only=True)
    st["train_config"]["steps"] = 9
    torch.save(st, tmp_path / "train_state.pt")
    rec2 = train(cfg2, tmp_path, resume=True, evaluate=False)
    assert rec2["steps_done"] == 9


def test_training_reduces_the_heldout_nll(tmp_path):
    cfg = _tiny_cfg(steps=80, batch_size=16, lr=3e-3, eval_datasets=8)
    before = PFNTransformer(cfg.model, borders=prior_borders(cfg, torch.device("cpu")))
    nll0 = sum(r["pfn_nll"] for r in evaluate_vs_gp(before, cfg.prior, num_datasets=8))
    rec = train(cfg, tmp_path)
    nll1 = sum(r["pfn_nll"] for r in rec["heldout_nll_vs_gp"])
    assert nll1 < nll0 - 0.01  # deterministic: seeded data stream, one thread


def test_evaluate_vs_gp_reports_rows_within_limits():
    rows = evaluate_vs_gp(
        _tiny(), PriorConfig(max_dim=3), dims=(1, 3, 6), contexts=(5, 50), num_datasets=4
    )
    assert {(r["d"], r["n"]) for r in rows} == {(1, 5), (3, 5)}
    assert all(math.isfinite(r["gap"]) for r in rows)


def test_missing_and_corrupted_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not a bocli PFN checkpoint"):
        read_config(other)
    # truncated real checkpoint
    good = tmp_path / "good.pt"
    save_checkpoint(_tiny(), good, {"model": _tiny().config.to_dict()})
    data = good.read_bytes()
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(trunc)
    # config that does not match the weights
    mism = tmp_path / "mism.pt"
    torch.save(
        {
            "state_dict": _tiny().state_dict(),
            "config": {"model": {**_tiny().config.to_dict(), "emsize": 32}},
        },
        mism,
    )
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(mism)
