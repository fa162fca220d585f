"""The HTML report in a real headless Chromium: no console errors, every image decoded and shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bocli.compare import load_results
from bocli.report import write_report
from tests.bocli.test_report import make_results

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    # CI sets BOCLI_REQUIRE_BROWSER=1 (after installing chromium): there a missing browser fails
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and not os.environ.get("BOCLI_REQUIRE_BROWSER"),
        reason="needs Debian's chromium package",
    ),
]


def open_page(path: Path) -> dict:
    """Load an HTML file in headless Chromium, offline: what went wrong (console errors and
    warnings, page errors, failed requests), every URL requested, each image's state, and the
    ``h2`` headings and number of body rows of each table."""
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            # offline: any request that leaves the file would fail the page
            context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
            page = context.new_page()
            problems: list[str] = []
            requests: list[str] = []
            page.on(
                "console",
                lambda m: (
                    problems.append(f"{m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.as_uri(), wait_until="load")
            images = page.evaluate(
                """() => Array.from(document.images).map(img => {
                    const r = img.getBoundingClientRect();
                    return {complete: img.complete, natural: [img.naturalWidth, img.naturalHeight],
                            shown: [r.width, r.height], alt: img.alt};
                })"""
            )
            headings = page.locator("h2").all_inner_texts()
            tables = page.evaluate(
                "() => Array.from(document.querySelectorAll('table')).map(t => t.tBodies[0].rows.length)"
            )
        finally:
            browser.close()
    return {
        "problems": problems,
        "requests": requests,
        "images": images,
        "headings": headings,
        "table_rows": tables,
    }


def test_report_opens_offline_without_errors_and_shows_its_images(tmp_path):
    results = load_results(make_results(tmp_path / "r"))
    path = Path(tmp_path / "report.html")
    write_report(results, path, "html")
    page = open_page(path)
    problems, requests, images = page["problems"], page["requests"], page["images"]
    headings, rank_rows = page["headings"], page["table_rows"][0]

    assert problems == []
    # the page itself, then only its embedded data: URIs (nothing fetched from anywhere)
    assert all(u.startswith(("file://", "data:")) for u in requests), requests
    assert len(images) == 3
    for img in images:
        assert img["complete"], img
        assert img["natural"][0] > 300 and img["natural"][1] > 150, img
        assert img["shown"][0] > 300 and img["shown"][1] > 150, img
        assert img["alt"]
    assert headings[:4] == [
        "Best-so-far regret",
        "Final regret and ranks",
        "Time per iteration",
        "Calibration on held-out points",
    ]
    assert rank_rows == 3
