"""Comparison grids on problems with several objectives: hypervolume per evaluation, ranks by
hypervolume, Pareto-front figures in the report, and results written before these columns."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bocli.compare import (
    EVAL_FIELDS,
    LEGACY_EVAL_FIELDS,
    CompareConfig,
    load_results,
    run_grid,
)
from bocli.report import (
    _metric,
    build_report,
    curves,
    final_table,
    pareto_data,
    rank_table,
    write_report,
)
from problems import get_problem

SEEDS = [0, 1]


@pytest.fixture(scope="module")
def bc_grid(tmp_path_factory) -> Path:
    """branincurrin: gp with EI (two model iterations) and random search, two seeds."""
    out = tmp_path_factory.mktemp("mo") / "bc"
    config = CompareConfig(
        problems=["branincurrin"],
        surrogates=["gp"],
        acquisitions=["ei", "random"],
        seeds=SEEDS,
        budget=8,
        n_init=6,
        calibration_points=32,
    )
    summary = run_grid(config, out)
    assert (summary.ok, summary.failed) == (4, 0)
    return out


def _botorch_hv(Y: np.ndarray, thresholds: list[float]) -> float:
    """Hypervolume of minimized outcomes by botorch: negate (botorch maximizes), ref = -threshold."""
    import torch
    from botorch.utils.multi_objective.hypervolume import Hypervolume
    from botorch.utils.multi_objective.pareto import is_non_dominated

    Z = -torch.as_tensor(Y, dtype=torch.float64)
    ref = -torch.as_tensor(thresholds, dtype=torch.float64)
    Z = Z[(ref < Z).all(dim=-1)]
    if Z.shape[0] == 0:
        return 0.0
    return float(Hypervolume(ref).compute(Z[is_non_dominated(Z)]))


def test_every_evaluation_records_hypervolume_equal_to_botorchs(bc_grid):
    problem = get_problem("branincurrin")
    thresholds = [o.threshold for o in problem.space.objectives]
    names = problem.space.outcome_names
    ev = load_results(bc_grid)["evaluations"]
    assert len(ev) == 4 * 8
    assert ev["hypervolume"].max() > 0  # some cell got inside the reference box
    for _, g in ev.groupby(["surrogate", "acquisition", "seed"]):
        g = g.sort_values("trial")
        Y = np.array([[json.loads(t)[n] for n in names] for t in g["outcomes"]])
        assert (g["feasible"] == 1).all()
        for k in range(len(g)):
            hv = _botorch_hv(Y[: k + 1], thresholds)
            assert g["hypervolume"].iloc[k] == pytest.approx(hv, rel=1e-9, abs=1e-9)
            # best_so_far is the same number (as in bocli.run.Trial)
            assert g["best_so_far"].iloc[k] == pytest.approx(g["hypervolume"].iloc[k])
            regret = np.log10(max(problem.max_hv - hv, 1e-12))
            assert g["log_hv_regret"].iloc[k] == pytest.approx(regret, rel=1e-9)
        assert np.all(np.diff(g["hypervolume"].to_numpy()) >= 0)
        # value stays the first objective's
        assert g["value"].to_numpy() == pytest.approx(Y[:, 0])


def test_multiobjective_cells_are_not_calibrated_and_the_meta_names_the_objectives(bc_grid):
    res = load_results(bc_grid)
    assert res["calibration"].empty
    info = res["meta"]["problems_info"]["branincurrin"]
    assert [o["name"] for o in info["objectives"]] == ["branin", "currin"]
    assert [o["threshold"] for o in info["objectives"]] == [18.0, 6.0]
    assert info["max_hv"] == pytest.approx(59.36011874867746)


def test_ranks_prefer_the_higher_hypervolume(bc_grid):
    res = load_results(bc_grid)
    meta = res["meta"]
    assert _metric("branincurrin", meta) == ("log_hv_regret", 1.0)
    final = final_table(res["evaluations"], res["cells"], meta)
    hv = (res["evaluations"].sort_values("trial").groupby(["surrogate", "acquisition", "seed"]))[
        "hypervolume"
    ].last()
    assert sorted(final["final"]) == pytest.approx(
        sorted(np.log10(np.maximum(meta["problems_info"]["branincurrin"]["max_hv"] - hv, 1e-12)))
    )
    # without a known maximum: the hypervolume itself, higher is better
    meta_unknown = json.loads(json.dumps(meta))
    meta_unknown["problems_info"]["branincurrin"]["max_hv"] = None
    assert _metric("branincurrin", meta_unknown) == ("hypervolume", -1.0)
    final_hv = final_table(res["evaluations"], res["cells"], meta_unknown)
    ranks = rank_table(final_hv, meta_unknown)
    med = ranks["branincurrin"]
    assert list(ranks.index) == list(med.sort_values(ascending=False, kind="stable").index)
    ranks_regret = rank_table(final, meta)
    if med.nunique() == len(med):  # the two orders agree (log regret falls as hypervolume rises)
        assert list(ranks_regret.index) == list(ranks.index)


def test_rank_table_orders_by_hypervolume_on_made_up_finals():
    meta = {
        "problems_info": {
            "mo": {
                "direction": "minimize",
                "optimum": None,
                "objectives": [{"name": "a"}, {"name": "b"}],
                "max_hv": None,
            }
        }
    }
    final = pd.DataFrame(
        {
            "problem": ["mo"] * 4,
            "method": ["low/ei", "low/ei", "high/ei", "high/ei"],
            "seed": [0, 1, 0, 1],
            "final": [1.0, 2.0, 5.0, 6.0],
            "metric": ["hypervolume"] * 4,
        }
    )
    ranks = rank_table(final, meta)
    assert list(ranks.index) == ["high/ei", "low/ei"]
    assert ranks.loc["high/ei", "mo rank"] == 1.0


def _images(text: str) -> dict[str, bytes]:
    return {
        alt: base64.b64decode(data)
        for data, alt in re.findall(
            r"src='data:image/png;base64,([A-Za-z0-9+/=]+)' alt='([^']*)'", text
        )
    }


def _size(png: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        return im.size


def test_report_draws_hypervolume_curves_and_the_pareto_front(bc_grid, tmp_path):
    res = load_results(bc_grid)
    text = write_report(res, tmp_path / "r.html", "html")
    assert "<h2>Pareto fronts</h2>" in text
    images = _images(text)
    assert "Pareto front on branincurrin" in images
    assert "best-so-far log_hv_regret on branincurrin" in images
    for png in images.values():
        w, h = _size(png)
        assert w > 300 and h > 150
    # one panel per method, side by side
    w, h = _size(images["Pareto front on branincurrin"])
    assert w > 1.5 * h
    assert "log10 HV regret" in text and "all seeds pooled" in text
    data = pareto_data(
        res["evaluations"],
        "branincurrin",
        res["meta"]["problems_info"]["branincurrin"]["objectives"],
    )
    assert set(data) == {"gp/ei", "gp/random"}
    for d in data.values():
        assert d["Y"].shape == (16, 2) and d["pareto"].any() and int(d["seeds"]) == 2
    md = write_report(res, None, "md")
    assert "branincurrin (log10 HV regret)" in md
    c = curves(res["evaluations"], "branincurrin", "log_hv_regret")
    assert np.all(np.diff(c["gp/ei"]["median"]) <= 1e-12)
    tables = build_report(res)
    assert tables["ranks"] is not None


def test_three_objectives_get_a_pairwise_view(tmp_path):
    out = tmp_path / "d3"
    config = CompareConfig(
        problems=["dtlz2_4_3"],
        surrogates=["gp"],
        acquisitions=["random"],
        seeds=SEEDS,
        budget=10,
        n_init=4,
        calibration_points=0,
    )
    assert run_grid(config, out).ok == 2
    res = load_results(out)
    assert len(res["meta"]["problems_info"]["dtlz2_4_3"]["objectives"]) == 3
    ev = res["evaluations"]
    assert ev["hypervolume"].notna().all() and ev["log_hv_regret"].notna().all()
    text = write_report(res, tmp_path / "r.html", "html")
    images = _images(text)
    assert "Pareto front on dtlz2_4_3" in images
    assert "one panel per pair of objectives" in text
    w, h = _size(images["Pareto front on dtlz2_4_3"])
    assert w > 2.2 * h  # three panels in a row (one method)


def test_single_objective_rows_leave_the_new_columns_empty(tmp_path):
    out = tmp_path / "so"
    config = CompareConfig(
        problems=["forrester"],
        surrogates=["gp"],
        acquisitions=["random"],
        seeds=[0],
        budget=3,
        n_init=3,
        calibration_points=0,
    )
    run_grid(config, out)
    with (out / "evaluations.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == EVAL_FIELDS
    for r in rows:
        assert r["hypervolume"] == r["log_hv_regret"] == r["outcomes"] == r["feasible"] == ""
    text = write_report(load_results(out), None, "html")
    assert "Pareto fronts" not in text


def test_results_written_before_the_new_columns_load_and_resume(tmp_path):
    out = tmp_path / "old"
    config = CompareConfig(
        problems=["forrester"],
        surrogates=["gp"],
        acquisitions=["random"],
        seeds=[0],
        budget=3,
        n_init=3,
        calibration_points=0,
    )
    run_grid(config, out)
    path = out / "evaluations.csv"
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    with path.open("w", newline="") as f:  # as an older bocli wrote it
        w = csv.DictWriter(f, fieldnames=LEGACY_EVAL_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    res = load_results(out)
    assert len(res["evaluations"]) == 3 and res["evaluations"]["hypervolume"].isna().all()
    assert "Best-so-far regret" in write_report(res, None, "html")
    # growing the grid upgrades the file's header, then appends rows of every column
    config.seeds = [0, 1]
    assert run_grid(config, out).ok == 1
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == EVAL_FIELDS
        assert len(list(reader)) == 6
    assert len(load_results(out)["evaluations"]) == 6


@pytest.mark.browser
def test_multiobjective_report_opens_in_a_browser_with_every_image_shown(tmp_path):
    """As tests/bocli/test_report_browser.py, for a report with a Pareto-front section."""
    import os

    from tests.bocli.test_report_browser import ARGS, CHROMIUM

    if not os.path.exists(CHROMIUM):
        if os.environ.get("BOCLI_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing")
        pytest.skip("needs Debian's chromium package")
    from playwright import sync_api

    out = tmp_path / "mo"
    config = CompareConfig(
        problems=["constrainedbranincurrin"],
        surrogates=["gp"],
        acquisitions=["random"],
        seeds=SEEDS,
        budget=8,
        n_init=4,
        calibration_points=0,
    )
    run_grid(config, out)
    path = tmp_path / "report.html"
    write_report(load_results(out), path, "html")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
            page = page.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
            page.on(
                "console",
                lambda m: problems.append(m.text) if m.type in ("error", "warning") else None,
            )
            page.goto(path.as_uri(), wait_until="load")
            images = page.evaluate(
                """() => Array.from(document.images).map(img => ({
                    complete: img.complete, natural: [img.naturalWidth, img.naturalHeight],
                    alt: img.alt}))"""
            )
            headings = page.locator("h2").all_inner_texts()
        finally:
            browser.close()
    assert problems == []
    assert headings[:3] == ["Best-so-far regret", "Pareto fronts", "Final regret and ranks"]
    alts = [img["alt"] for img in images]
    assert "Pareto front on constrainedbranincurrin" in alts
    for img in images:
        assert img["complete"] and img["natural"][0] > 300 and img["natural"][1] > 150, img


def test_an_acquisition_without_a_multiobjective_form_fails_its_cells_up_front(tmp_path):
    config = CompareConfig(
        problems=["branincurrin"],
        surrogates=["gp"],
        acquisitions=["gibbon"],
        seeds=[0],
        budget=4,
        n_init=3,
        calibration_points=0,
    )
    summary = run_grid(config, tmp_path / "g")
    assert (summary.ok, summary.failed) == (0, 1)
    with (tmp_path / "g" / "cells.csv").open(newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["error"].startswith("IncompatiblePairError") and row["worker"] == ""
