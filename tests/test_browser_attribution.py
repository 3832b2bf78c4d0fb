"""The 'Why this token?' tab (#19) in Chromium, on the bundled model: the three figures drawn,
a head tile opening that head in Attention heads, a token node of the flow view selecting that
token, a typed 'versus' token, and the last generated token explained.

Screenshots go to /tmp/why-*.png (1400 × 900). Run with `python -m pytest -m browser -q`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_util import click_at, click_plot, expect, plot_point, serve
from conftest import needs_bundled

pytestmark = [pytest.mark.browser, needs_bundled]
T = 240_000  # ms: generous, the machine may be very busy
IOI = "When Mary and John went to the store, John gave a drink to"
SHOTS = Path("/tmp")


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    with serve("bundled") as (_, url):
        yield url


@pytest.fixture
def page(browser: Any, app_url: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app_url)
    expect()(page.locator("#ae-status")).to_contain_text("Analyzed", timeout=T)  # the example, on load
    expect()(page.locator("#ae-prompt textarea")).to_have_value(IOI)
    yield page
    context.close()
    assert not errors, errors


def open_why(page: Any) -> None:
    x = expect()
    page.get_by_role("tab", name="Why this token?", exact=True).click()
    x(page.locator("#ae-why-heads .js-plotly-plot .heatmaplayer")).to_have_count(1, timeout=T)
    x(page.locator("#ae-why-bars .js-plotly-plot .barlayer")).to_have_count(1, timeout=T)
    x(page.locator("#ae-why-flow .js-plotly-plot .scatterlayer")).to_have_count(1, timeout=T)


def shot(page: Any, name: str, full_page: bool = False) -> None:
    """The tab from its top (or the whole page), once the figures have settled."""
    page.evaluate("() => document.querySelector('#ae-why-tab').scrollIntoView()")
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / f"why-{name}.png"), full_page=full_page)


def token_node(page: Any, not_at: int) -> tuple[float, float]:
    """(x, y) of a source-token node of the flow view (grey, no customdata) away from `not_at`."""
    return tuple(
        page.evaluate(
            """(notAt) => {
                const gd = document.querySelector('#ae-why-flow .js-plotly-plot');
                const read = gd._fullData.find(t => t.hovertext && t.hovertext.length
                    && String(t.hovertext[0]).includes('read at layer'));
                const i = Array.from(read.x).findIndex(v => v !== notAt);
                return [read.x[i], read.y[i]];
            }""",
            not_at,
        )
    )


def test_why_tab_draws_and_a_head_tile_opens_the_head(page: Any) -> None:
    x = expect()
    open_why(page)
    summary = page.locator("#ae-why-summary")
    x(summary).to_contain_text("At position 13 ␣to, the model's logit for", timeout=T)
    x(summary).to_contain_text(re.compile(r"add up to it (within \de-\d+|exactly)"))
    grid = page.evaluate(
        "() => { const d = document.querySelector('#ae-why-heads .js-plotly-plot')._fullData[0];"
        " return [d.z.length, d.z[0].length]; }"
    )
    assert grid == [4, 8]  # the bundled model: 4 layers × 8 heads
    assert int(page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")) <= 1
    shot(page, "1-tab")
    shot(page, "2-full", full_page=True)

    click_plot(page, "#ae-why-heads", 5, 2)  # layer 2, head 5
    x(page.locator("#ae-detail")).to_be_visible(timeout=T)
    x(page.locator("#ae-layer input[type=number]")).to_have_value("2", timeout=T)
    x(page.locator("#ae-head input[type=number]")).to_have_value("5", timeout=T)
    x(page.locator("#ae-detail")).to_contain_text("Layer 2, head 5", timeout=T)
    x(page.locator("#ae-query input")).to_have_value(re.compile(r"^13 · "))  # the query is kept
    x(page.locator("#ae-mean input")).not_to_be_checked()


def test_a_token_node_selects_that_token(page: Any) -> None:
    x = expect()
    open_why(page)
    x(page.locator("#ae-why-summary")).to_contain_text("At position 13", timeout=T)
    key, layer = token_node(page, 13)
    page.locator("#ae-why-flow").scroll_into_view_if_needed()
    click_at(page, *plot_point(page, "#ae-why-flow", key, layer))
    pos = int(key)
    x(page.locator("#ae-query input")).to_have_value(re.compile(rf"^{pos} · "), timeout=T)
    x(page.locator(f"#ae-tokens [data-pos='{pos}']")).to_have_class(re.compile(r"ae-sel"), timeout=T)
    # the tab follows the new query
    x(page.locator("#ae-why-summary")).to_contain_text(f"At position {pos} ", timeout=T)


def test_versus_and_the_last_generated_token(page: Any) -> None:
    x = expect()
    open_why(page)
    versus = page.locator("#ae-why-versus input")
    versus.click()
    versus.fill(" John")
    versus.press("Enter")
    x(page.locator("#ae-why-summary")).to_contain_text("logit difference", timeout=T)
    x(page.locator("#ae-why-summary")).to_contain_text("minus ␣John", timeout=T)
    shot(page, "3-versus")

    page.locator("#ae-why-last").click()
    x(page.locator("#ae-why-summary")).to_contain_text("Nothing is generated yet", timeout=T)
    page.get_by_role("tab", name="Generate", exact=True).click()
    page.get_by_role("button", name="Step", exact=True).click()
    x(page.locator("#ae-status")).to_contain_text("Generating", timeout=T)
    page.get_by_role("tab", name="Why this token?", exact=True).click()
    page.locator("#ae-why-last").click()
    x(page.locator("#ae-why-summary")).to_contain_text("The last generated token.", timeout=T)
    x(page.locator("#ae-why-summary")).to_contain_text("At position 13 ␣to", timeout=T)
    x(page.locator("#ae-query input")).to_have_value(re.compile(r"^13 · "), timeout=T)
    x(page.locator("#ae-prompt textarea")).to_have_value(IOI)  # the prompt box keeps the user's
    shot(page, "4-generated")
