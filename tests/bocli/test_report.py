"""The comparison report: statistics on hand-made results, and the rendered HTML and Markdown."""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bocli.compare import Cell, CellResult, CompareConfig, _Store, load_results
from bocli.report import (
    calibration_table,
    curves,
    final_table,
    markdown_rank_table,
    rank_table,
    timing_table,
    write_report,
)

# final regrets per (problem, method) over three seeds; "b/ei" is best on p1, "a/ei" on p2
FINAL = {
    ("p1", "a", "ei"): [1.0, 2.0, 3.0],
    ("p1", "b", "ei"): [0.1, 0.2, 0.3],
    ("p2", "a", "ei"): [1e-4, 1e-3, 1e-2],
    ("p2", "b", "ei"): [0.5, 0.5, 0.5],
}
BUDGET = 6


def _cell_result(problem, surrogate, acquisition, seed, final) -> CellResult:
    """A cell whose regret falls geometrically from 10 to ``final``; evaluation 2 failed."""
    rows, cal = [], []
    regrets = np.geomspace(10.0, final, BUDGET)
    for t in range(BUDGET):
        failed = t == 2
        rows.append(
            {
                "problem": problem, "surrogate": surrogate, "acquisition": acquisition,
                "seed": seed, "trial": t, "phase": "init" if t < 3 else "model",
                "status": "failed" if failed else "complete",
                "value": None if failed else float(regrets[t]),
                "best_so_far": None if failed else float(regrets[t]),
                "regret": None if failed else float(regrets[t]),
                "fit_seconds": 0.0 if t < 3 else (0.5 if surrogate == "a" else 2.0),
                "acq_seconds": 0.0 if t < 3 else 1.0, "eval_seconds": 0.0,
                "error": "boom" if failed else "", "params": "{}",
            }
        )  # fmt: skip
        if t >= 3:
            cal.append(
                {
                    "problem": problem, "surrogate": surrogate, "acquisition": acquisition,
                    "seed": seed, "refit": t - 3, "n_train": t,
                    "loglik": -1.0 if surrogate == "a" else -3.0 + t,
                    "coverage": 0.9 if surrogate == "a" else 0.5, "rmse": 0.3, "scale": 1.0,
                }
            )  # fmt: skip
    return CellResult(
        Cell(problem, surrogate, acquisition, seed), "ok", seconds=1.0, worker="w",
        cpu_seconds=0.9, evaluations=rows, calibration=cal,
    )  # fmt: skip


def make_results(out: Path, failed_cell: bool = True) -> Path:
    """A results directory written through the real store, without running any BO."""
    config = CompareConfig(
        problems=["p1", "p2"], surrogates=["a", "b"], acquisitions=["ei"], seeds=[0, 1, 2],
        budget=BUDGET, n_init=3, calibration_points=16,
    )  # fmt: skip
    info = {p: {"dim": 2, "direction": "minimize", "optimum": 0.0} for p in ("p1", "p2")}
    store = _Store.open(out, config, ["bocli", "compare", "--fake"], info, False)
    for (p, s, a), finals in FINAL.items():
        for seed, f in enumerate(finals):
            store.record(_cell_result(p, s, a, seed, f))
    if failed_cell:
        store.record(CellResult(Cell("p2", "c", "ei", 0), "failed", "RuntimeError: no luck", 0.1))
    return out


@pytest.fixture
def results(tmp_path):
    return load_results(make_results(tmp_path / "r"))


def test_curves_give_median_and_quartiles_over_seeds(results):
    data = curves(results["evaluations"], "p1", "regret")
    assert set(data) == {"a/ei", "b/ei"}
    d = data["a/ei"]
    assert list(d["x"]) == list(range(1, BUDGET + 1)) and int(d["seeds"]) == 3
    assert d["median"][-1] == pytest.approx(2.0)
    assert d["q25"][-1] == pytest.approx(1.5) and d["q75"][-1] == pytest.approx(2.5)
    # the failed evaluation 2 carries the best so far forward
    assert d["median"][2] == pytest.approx(d["median"][1])
    assert np.all(np.diff(d["median"]) <= 1e-12)


def test_rank_table_ranks_per_problem_and_averages(results):
    final = final_table(results["evaluations"], results["cells"], results["meta"])
    failed = final[final["method"] == "c/ei"]
    assert len(failed) == 1 and math.isnan(failed["final"].iloc[0])
    ranks = rank_table(final, results["meta"])
    assert ranks.loc["a/ei", "p1"] == pytest.approx(2.0)
    assert ranks.loc["b/ei", "p1 rank"] == 1 and ranks.loc["a/ei", "p1 rank"] == 2
    assert ranks.loc["a/ei", "p2 rank"] == 1 and ranks.loc["b/ei", "p2 rank"] == 2
    # a method without results on a problem ranks last there, and last on one it never ran
    assert ranks.loc["c/ei", "p2 rank"] == 3 and ranks.loc["c/ei", "p1 rank"] == 3
    assert ranks.loc["a/ei", "mean rank"] == 1.5 and list(ranks.index)[-1] == "c/ei"


def test_rank_ties_share_the_average_rank():
    final = pd.DataFrame(
        {"problem": "p", "method": ["x", "y", "z"], "seed": 0, "final": [1.0, 1.0, 0.5],
         "metric": "regret"}
    )  # fmt: skip
    meta = {"problems_info": {"p": {"optimum": 0.0}}}
    ranks = rank_table(final, meta)
    assert list(ranks["p rank"]) == [1.0, 2.5, 2.5]


def test_maximized_problem_without_optimum_ranks_by_best_value():
    final = pd.DataFrame(
        {"problem": "q", "method": ["lo", "hi"], "seed": 0, "final": [0.7, 0.9],
         "metric": "best_so_far"}
    )  # fmt: skip
    meta = {"problems_info": {"q": {"optimum": None, "direction": "maximize"}}}
    ranks = rank_table(final, meta)
    assert ranks.loc["hi", "q rank"] == 1 and list(ranks.index) == ["hi", "lo"]


def test_timing_and_calibration_tables(results):
    t = timing_table(results["evaluations"]).set_index(["problem", "method"])
    assert t.loc[("p1", "a/ei"), "fit"] == pytest.approx(0.5)
    assert t.loc[("p1", "b/ei"), "total"] == pytest.approx(3.0)
    assert t.loc[("p1", "a/ei"), "iterations"] == 3 * 3
    c = calibration_table(results["calibration"]).set_index(["problem", "method"])
    assert c.loc[("p1", "a/ei"), "coverage"] == pytest.approx(0.9)
    assert c.loc[("p1", "b/ei"), "loglik"] == pytest.approx(1.0)  # mean of -3+3, -3+4, -3+5
    assert c.loc[("p1", "b/ei"), "loglik (last refit)"] == pytest.approx(2.0)
    assert c.loc[("p1", "b/ei"), "refits"] == 9


def test_markdown_rank_table(results):
    text = write_report(results, None, "md")
    lines = [x for x in text.splitlines() if x.startswith("|")]
    assert lines[0] == "| method | p1 (regret) | p2 (regret) | mean rank |"
    assert lines[2].startswith("| a/ei | 2 (2) | 0.001 (1) | 1.50 |")
    assert lines[3].startswith("| b/ei | 0.2 (1) | 0.5 (2) | 1.50 |")
    assert lines[4] == "| c/ei | – (3) | – (3) | 3.00 |"
    assert "1 of 13 cells failed" in text
    assert markdown_rank_table(rank_table(pd.DataFrame(
        {"problem": ["p"], "method": ["m"], "seed": [0], "final": [0.5], "metric": ["regret"]}),
        {}), ["p"], {}).count("\n") == 3  # fmt: skip


def test_html_report_is_self_contained(results, tmp_path):
    path = tmp_path / "report.html"
    html = write_report(results, path, "html")
    assert path.read_text() == html
    # no external resources: every src/href is a data URI, no scripts
    refs = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]+)""", html)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
    assert "<script" not in html.lower() and "http://" not in html and "https://" not in html
    # 2 regret plots + 1 timing plot, each a real PNG
    assert len(refs) == 3
    for r in refs:
        png = base64.b64decode(r.split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    for text in (
        "Best-so-far regret", "Final regret and ranks", "Time per iteration",
        "Calibration on held-out points", "RuntimeError: no luck", "bocli compare --fake",
        "botorch", "gpytorch", "numpyro", "python",
    ):  # fmt: skip
        assert text in html, text


def test_report_of_an_empty_grid(tmp_path):
    config = CompareConfig(problems=["p1"], surrogates=["a"], seeds=[0])
    _Store.open(tmp_path, config, None, {"p1": {"optimum": 0.0}}, False)
    res = load_results(tmp_path)
    assert "No finished cells" in write_report(res, None, "md")
    assert "<h1>" in write_report(res, None, "html")
