"""Chromium: lecture-ready at 1280×720, 1400×900 and 390×844 (#18): a figure on the first screen,
nothing cut or covered, the lecturer's prompt kept, legible text, the interface in Chinese.

Screenshots go to test-output/screenshots/lecture-*.png.
Run with `python -m pytest -m browser tests/test_browser_lecture.py -q`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser_util import expect, screenshot, serve
from conftest import needs_bundled

pytestmark = [pytest.mark.browser, needs_bundled]
T = 90_000  # ms
SIZES = {"projector": (1280, 720), "laptop": (1400, 900), "phone": (390, 844)}


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    with serve("bundled") as (_, url):
        yield url


def open_page(browser: Any, url: str, size: str, query: str = "", **context: Any) -> Any:
    width, height = SIZES[size]
    if size == "phone":
        context |= {"is_mobile": True, "has_touch": True}
    page = browser.new_context(viewport={"width": width, "height": height}, **context).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + query)
    expect()(page.locator("#ae-status")).to_contain_text(re.compile("Analyzed|已分析"), timeout=T)
    page.wait_for_function("() => document.querySelectorAll('#ae-overview .heatmaplayer').length > 0")
    page.ae_errors = errors
    return page


def close(page: Any) -> None:
    errors = page.ae_errors
    page.context.close()
    assert not errors, errors


def box(page: Any, selector: str) -> dict[str, float]:
    return page.evaluate(
        "(s) => { const r = document.querySelector(s).getBoundingClientRect();"
        " return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, height: r.height}; }",
        selector,
    )


# --- (1) the first screen ------------------------------------------------------------------------


@pytest.mark.parametrize("size, query", [("projector", "?lecture=1"), ("laptop", "")])
def test_a_figure_is_on_the_first_screen(browser: Any, app_url: str, size: str, query: str) -> None:
    page = open_page(browser, app_url, size, query)
    height = SIZES[size][1]
    shot = screenshot(page, f"lecture-first-screen-{size}", full_page=False)
    overview = box(page, "#ae-overview .js-plotly-plot")
    # Its title and at least two rows of tiles show without scrolling.
    assert overview["top"] <= height - 220, (overview, shot)
    assert page.evaluate("() => window.scrollY") == 0
    close(page)


def test_while_generating_the_distribution_shows_with_the_text(browser: Any, app_url: str) -> None:
    page = open_page(browser, app_url, "projector", "?lecture=1")
    page.get_by_role("tab", name="Generate").click()
    page.locator("#ae-step").click()
    expect()(page.locator("#ae-gen-text .ae-gen")).to_have_count(1, timeout=T)
    page.wait_for_function("() => !!document.querySelector('#ae-dist .js-plotly-plot .barlayer')")
    screenshot(page, "lecture-generate-projector", full_page=False)
    text, dist = box(page, "#ae-gen-text"), box(page, "#ae-dist .js-plotly-plot")
    assert 0 <= text["top"] and text["bottom"] <= 720
    assert dist["top"] <= 720 - 200, dist  # its title and the top bars
    close(page)
