"""``bocli report`` of one study (a study file or a run folder): the self-contained HTML page (its
plots, best trials, space and settings), its Markdown form, one-line errors, and the page in a
real headless Chromium (the browser helpers of test_report_browser)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from bocli.report import write_study_report
from tests.bocli.test_plot import make_branincurrin, make_mixed, run, trials_of
from tests.bocli.test_report_browser import pytestmark as browser_marks


def _images(text: str) -> list[bytes]:
    refs = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]+)""", text)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs), refs
    return [base64.b64decode(r.split(",", 1)[1]) for r in refs]


def _table_after(text: str, heading: str) -> list[list[str]]:
    """The body rows of the first table after ``heading`` (cells as text)."""
    part = text[text.index(heading) :]
    body = part[part.index("<tbody>") : part.index("</tbody>")]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in body.split("<tr>")[1:]]


def test_html_page_of_an_ask_tell_study(tmp_path: Path) -> None:
    study = make_mixed(tmp_path)
    res = run("report", study, "-o", tmp_path / "s.html")
    assert res.output.strip() == f"wrote {tmp_path / 's.html'}"
    text = (tmp_path / "s.html").read_text()
    assert "<script" not in text.lower() and "http://" not in text and "https://" not in text
    pngs = _images(text)
    assert len(pngs) == 3 and all(p[:8] == b"\x89PNG\r\n\x1a\n" and len(p) > 5000 for p in pngs)
    for heading in (
        "Progress", "Measured vs predicted", "Objective against each parameter", "Best trials",
        "Search space", "Settings",
    ):  # fmt: skip
        assert f"<h2>{heading}</h2>" in text, heading
    # best trials: the told values, best (maximize) first, with their parameters
    told = sorted(
        (t for t in trials_of(study) if t.state == "complete"), key=lambda t: -(t.value or 0)
    )
    rows = _table_after(text, "<h2>Best trials</h2>")
    assert [int(r[0]) for r in rows] == [t.trial_id for t in told]
    assert [r[4] for r in rows] == [t.params["solvent"] for t in told]
    assert [float(r[5]) for r in rows] == pytest.approx([t.value for t in told], rel=1e-3)
    # the space: types, ranges, the log scale, the choices; the study's own settings
    space = dict((r[0], r[1:]) for r in _table_after(text, "<h3>Parameters</h3>"))
    assert space["conc"] == ["float", "[0.001, 1]", "log"]
    assert space["solvent"] == ["categorical", "water, ethanol, dmso", "unordered"]
    assert space["cycles"] == ["int", "[1, 10]", "linear"]
    settings = dict(_table_after(text, "<h2>Settings</h2>"))
    assert settings["surrogate"] == "gp" and settings["seed"] == "2"
    counts = dict(_table_after(text, "<table>"))
    assert counts == {"complete": "5", "pending": "1", "failed": "1", "abandoned": "0"}


def test_run_folder_page_shows_the_run_settings(tmp_path: Path) -> None:
    out = tmp_path / "r"
    run("run", "branin", "--budget", 4, "--init", 4, "--out", out)
    res = run("report", out)
    assert res.output.strip() == f"wrote {out / 'report.html'}"
    text = (out / "report.html").read_text()
    settings = dict(_table_after(text, "<h2>Settings</h2>"))
    assert settings["budget"] == "4" and settings["problem"] == "branin"
    assert "bocli run" in settings["source"]
    # a study file next to it: STUDY.html by default
    res = run("report", out / "study.db")
    assert (out / "study.html").is_file()


def test_pareto_set_table_of_two_objectives(tmp_path: Path) -> None:
    study = make_branincurrin(tmp_path)
    text = write_study_report(study, None)
    rows = _table_after(text, "<h2>Pareto set</h2>")
    trials = trials_of(study)
    from bocli.pareto import pareto_mask

    Y = np.array([[t.outcomes["branin"], t.outcomes["currin"]] for t in trials])
    front = [t.trial_id for t, f in zip(trials, pareto_mask(Y, ["minimize"] * 2), strict=True) if f]
    assert [int(r[0]) for r in rows] == front
    objectives = _table_after(text, "<h3>Objectives</h3>")
    assert [r[:3] for r in objectives] == [
        ["branin", "minimize", "18"],
        ["currin", "minimize", "6"],
    ]
    assert objectives[0][3] == "18 (the thresholds)"


def test_markdown_of_a_study_has_the_tables(tmp_path: Path) -> None:
    study = make_mixed(tmp_path)
    text = run("report", study, "--format", "md").output
    assert text.startswith(f"# Study {study.name}")
    assert "## Best trials" in text and "| conc | float | [0.001, 1] | log |" in text
    assert "data:image" not in text
    run("report", study, "--format", "md", "-o", tmp_path / "s.md")
    assert (tmp_path / "s.md").read_text() == text


def test_space_extras_appear_when_the_space_has_them(tmp_path: Path) -> None:
    """Parameter constraints and metadata columns get their own tables (the report reads them
    with getattr, so it also works with spaces that predate them)."""
    from bocli.space import Space, SpaceError
    from bocli.study import init_study

    spec = {
        "parameters": [
            {"name": "water", "type": "float", "low": 0, "high": 1},
            {"name": "ethanol", "type": "float", "low": 0, "high": 1},
        ],
        "parameter_constraints": ["water + ethanol <= 1"],
        "metadata": ["operator"],
        "objective": {"name": "yield", "direction": "maximize"},
    }
    try:
        space = Space.from_dict(spec)
    except SpaceError:
        pytest.skip("this Space has no parameter_constraints / metadata yet")
    study = tmp_path / "x.db"
    init_study(study, space=space, check_models=False)
    text = write_study_report(study, None)
    assert _table_after(text, "<h3>Parameter constraints</h3>") == [["water + ethanol &lt;= 1"]]
    assert _table_after(text, "<h3>Metadata columns</h3>") == [["operator"]]
    plain = make_mixed(tmp_path)  # a space without either: no such tables
    text = write_study_report(plain, None)
    assert "Parameter constraints" not in text and "Metadata columns" not in text


def test_empty_study_page_and_bad_input(tmp_path: Path) -> None:
    study = tmp_path / "e.db"
    run("init", study, "--problem", "branin")
    text = write_study_report(study, None)
    assert "No complete feasible trials yet" in text and len(_images(text)) == 3
    for args, named in (
        (["report", tmp_path / "none.db"], "none.db"),
        (["report", tmp_path], "no compare.json and no study.db"),
        (["report", study, "-o", study], "study itself"),
        (["report", study, "-o", tmp_path / "nope" / "r.html"], "--output"),
    ):
        res = run(*args, ok=False)
        lines = res.output.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1 and named in lines[0], res.output
    assert json.loads(run("status", study, "--format", "json").output)["trials"] == 0


@pytest.mark.browser
@browser_marks[1]
def test_study_page_in_a_real_browser(tmp_path: Path) -> None:
    from tests.bocli.test_report_browser import open_page

    path = tmp_path / "s.html"
    run("report", make_branincurrin(tmp_path), "-o", path)
    page = open_page(path)
    assert page["problems"] == []
    assert all(u.startswith(("file://", "data:")) for u in page["requests"]), page["requests"]
    assert len(page["images"]) == 3
    for img in page["images"]:
        assert img["complete"] and img["alt"], img
        assert img["natural"][0] > 300 and img["natural"][1] > 150, img
        assert img["shown"][0] > 300 and img["shown"][1] > 150, img
    assert page["headings"] == [
        "Progress", "Measured vs predicted", "Objective against each parameter", "Pareto set",
        "Search space", "Settings",
    ]  # fmt: skip
    assert page["table_rows"][0] == 5  # trial counts by state, and feasible
