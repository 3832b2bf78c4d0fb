"""The heads tab's canvas heatmaps in Chromium: a deep model's layer ranges, zoom in the head
detail, and titles, axes and hover in the page's language."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser_util import click_heatmap, expect, heatmap_point, screenshot, serve

pytestmark = pytest.mark.browser
T = 120_000


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from conftest import make_tiny_checkpoint

    # Deeper than one range of layers (12): the overview offers L0–11 and L12–13.
    folder = make_tiny_checkpoint(tmp_path_factory.mktemp("deep-gpt2"), n_layer=14, n_head=3, n_embd=12)
    with serve(str(folder)) as (_, url):
        yield url


@pytest.fixture
def page(browser: Any, app_url: str) -> Iterator[Any]:
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app_url)
    expect()(page.locator("#ae-status")).to_contain_text("Analyzed", timeout=T)
    expect()(page.locator("#ae-detail .ae-hm[data-kind='head'] canvas")).to_be_visible(timeout=T)
    yield page
    page.context.close()
    assert not errors, errors


def test_a_deep_models_overview_shows_a_range_of_layers_alone(page: Any) -> None:
    x = expect()
    buttons = page.locator("#ae-overview .ae-hm-ranges button")
    x(buttons).to_have_text(["All layers", "L0–11", "L12–13"], timeout=T)
    x(buttons.nth(0)).to_have_attribute("aria-pressed", "true")
    tall = float(page.locator("#ae-overview .ae-hm").get_attribute("data-height") or 0)
    buttons.nth(2).click()
    x(buttons.nth(2)).to_have_attribute("aria-pressed", "true", timeout=T)
    assert float(page.locator("#ae-overview .ae-hm").get_attribute("data-height") or 0) < tall
    click_heatmap(page, "#ae-overview", 13, 2)  # the tiles are laid out from layer 12 now
    x(page.locator("#ae-detail .ae-hm-title")).to_have_text("Layer 13, head 2", timeout=T)
    x(page.locator("#ae-overview .ae-hm")).to_have_attribute("data-outline", "13,2", timeout=T)
    screenshot(page, "heatmap-layer-range", full_page=False)
    buttons.nth(0).click()
    x(buttons.nth(0)).to_have_attribute("aria-pressed", "true", timeout=T)


def test_drag_zooms_the_head_detail_and_double_click_zooms_out(page: Any) -> None:
    x = expect()
    reset = page.locator("#ae-detail .ae-hm-reset")
    x(reset).to_be_hidden()
    (x0, y0), (x1, y1) = heatmap_point(page, "#ae-detail", 4, 0), heatmap_point(page, "#ae-detail", 8, 4)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=6)
    page.mouse.up()
    x(reset).to_be_visible()
    # Zoomed to queries 4–8 and keys 0–4: key 0 of query 4 is now where the window starts.
    zx, zy = heatmap_point(page, "#ae-detail", 4, 0)
    page.mouse.move(zx, zy)
    x(page.locator("#ae-detail .ae-hm-tip")).to_contain_text(re.compile(r"^query 4 '.*' → key 0 "))
    page.mouse.dblclick(zx, zy)
    x(reset).to_be_hidden()


def test_titles_axes_and_hover_follow_the_pages_language(page: Any) -> None:
    x = expect()
    page.evaluate("() => document.documentElement.setAttribute('lang', 'zh-CN')")
    x(page.locator("#ae-detail .ae-hm-title")).to_have_text(
        re.compile(r"^第 \d+ 层，注意力头 \d+$"), timeout=T
    )
    x(page.locator("#ae-overview .ae-hm-title")).to_contain_text("所有注意力头")
    x(page.locator("#ae-overview .ae-hm-ranges button").first).to_have_text("全部层")
    page.mouse.move(*heatmap_point(page, "#ae-detail", 3, 1))
    x(page.locator("#ae-detail .ae-hm-tip")).to_contain_text(
        re.compile(r"^查询 3 '.*' → 键 1 '.*'：0\.\d{4}$")
    )
    screenshot(page, "heatmap-zh", full_page=False)
    page.evaluate("() => document.documentElement.setAttribute('lang', 'en')")
    x(page.locator("#ae-detail .ae-hm-title")).to_have_text(re.compile(r"^Layer \d+, head \d+$"), timeout=T)
