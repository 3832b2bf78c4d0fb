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
    page.wait_for_function("() => !!document.querySelector('#ae-overview .ae-hm[data-kind=overview]')")
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
    overview = box(page, "#ae-overview .ae-hm")
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
    assert text["top"] >= 0 and text["bottom"] <= 720
    assert dist["top"] <= 720 - 200, dist  # its title and the top bars
    close(page)


# --- (2) nothing cut or covered ------------------------------------------------------------------

# Every drawn figure's title, subtitle, legend and colour bar inside its plot, the title below the
# mode bar's band, and the legend and colour bar clear of the title.
FIGURE_BOXES_JS = """() => [...document.querySelectorAll('.js-plotly-plot, .ae-hm[data-meta^=attention]')]
  .filter(gd => gd.offsetParent && (gd._fullLayout || gd.classList.contains('ae-hm')))
  .map(gd => {
    if (gd.classList.contains('ae-hm')) {  // a canvas heatmap: its titles are text above the canvas
      const r = gd.getBoundingClientRect(), c = gd.querySelector('canvas').getBoundingClientRect();
      const rel = (el) => { const b = el.getBoundingClientRect();
        return {l: b.left - r.left, r: b.right - r.left, t: b.top - r.top, b: b.bottom - r.top}; };
      return {id: (gd.closest('[id]') || {}).id, w: r.width, h: r.height, title: null, subtitle: null,
        legend: null, colorbar: null, canvas: {l: c.left - r.left, r: c.right - r.left, t: c.top - r.top, b: c.bottom - r.top},
        heading: [rel(gd.querySelector('.ae-hm-title')), rel(gd.querySelector('.ae-hm-sub'))]};
    }
    const r = gd.getBoundingClientRect();
    const rel = (el) => { if (!el) return null; const b = el.getBoundingClientRect();
      return b.width ? {l: b.left - r.left, r: b.right - r.left, t: b.top - r.top, b: b.bottom - r.top} : null; };
    return {id: (gd.closest('[id]') || {}).id, w: r.width, h: r.height,
      title: rel(gd.querySelector('.g-gtitle .gtitle')), subtitle: rel(gd.querySelector('.g-gtitle .gtitle-subtitle')),
      legend: rel(gd.querySelector('.legend')), colorbar: rel(gd.querySelector('.colorbar'))};
  })"""


def overlaps(a: dict | None, b: dict | None) -> bool:
    return bool(a and b and a["l"] < b["r"] and b["l"] < a["r"] and a["t"] < b["b"] and b["t"] < a["b"])


def assert_nothing_cut(page: Any) -> list[dict]:
    figures = page.evaluate(FIGURE_BOXES_JS)
    assert figures
    for fig in figures:
        for b in [fig.get("canvas"), *fig.get("heading", [])]:  # canvas heatmaps: inside their panel
            if b:
                assert b["l"] >= -1 and b["r"] <= fig["w"] + 1 and b["t"] >= -1 and b["b"] <= fig["h"] + 1, (
                    fig
                )
        for part in ("title", "subtitle", "legend", "colorbar"):
            b = fig[part]
            if b:
                assert b["l"] >= -1 and b["r"] <= fig["w"] + 1 and b["t"] >= -1 and b["b"] <= fig["h"] + 1, (
                    part,
                    fig,
                )
        if fig["title"]:
            assert fig["title"]["t"] >= 24, fig  # below the mode bar's band
        for part in ("legend", "colorbar"):
            assert not overlaps(fig["title"], fig[part]) and not overlaps(fig["subtitle"], fig[part]), (
                part,
                fig,
            )
    return figures


def open_tab(page: Any, name: str) -> None:
    tab = page.get_by_role("tab", name=name)
    if not tab.is_visible():  # a narrow tab bar folds tabs into a menu
        page.locator("#ae-tabs .overflow-menu button, #ae-tabs button.overflow-menu").first.click()
        tab = page.get_by_role("button", name=name)
    tab.click()


EN_TABS, ZH_TABS = ("Q/K/V step by step", "Generate"), ("Q/K/V 逐步计算", "生成")


@pytest.mark.parametrize(
    "size, query, tabs",
    [
        ("projector", "?lecture=1", EN_TABS),
        ("laptop", "", EN_TABS),
        ("phone", "", EN_TABS),
        ("projector", "?lecture=1&lang=zh", ZH_TABS),
        ("phone", "?lang=zh", ZH_TABS),
    ],
)
def test_no_title_legend_or_colour_bar_is_cut_or_covered(
    browser: Any, app_url: str, size: str, query: str, tabs: tuple[str, str]
) -> None:
    page = open_page(browser, app_url, size, query)
    page.wait_for_timeout(500)  # the page fits titles after the draw
    assert_nothing_cut(page)
    assert page.evaluate(
        "() => document.documentElement.scrollWidth <= window.innerWidth + 1"
    )  # no sideways scroll
    lang = "-zh" if "lang=zh" in query else ""
    screenshot(page, f"lecture-heads-{size}{lang}")
    open_tab(page, tabs[0])
    page.wait_for_function(
        "() => document.querySelectorAll('.ae-step-plot .main-svg').length >= 5", timeout=T
    )
    page.wait_for_timeout(800)
    figures = assert_nothing_cut(page)
    bars = [f["colorbar"] for f in figures if f["colorbar"]]
    assert bars and all(b["b"] - b["t"] >= 80 for b in bars), bars  # no squashed colour bar
    screenshot(page, f"lecture-steps-{size}{lang}")
    open_tab(page, tabs[1])
    page.locator("#ae-step").click()
    expect()(page.locator("#ae-gen-text .ae-gen")).to_have_count(1, timeout=T)
    page.wait_for_timeout(800)
    assert_nothing_cut(page)
    tokens = (
        box(page, "#ae-tokens .ae-tok-list") if page.locator("#ae-tokens .ae-tok-list").is_visible() else None
    )
    close(page)
    assert tokens is None or tokens["height"] > 0


def test_the_token_strip_shows_whole_rows(browser: Any, app_url: str) -> None:
    long = "The history of the printing press begins in the fifteenth century " * 6
    for size, query in (("laptop", ""), ("projector", "?lecture=1")):
        page = open_page(
            browser, app_url, size, query + ("&" if query else "?") + "prompt=" + long.replace(" ", "%20")
        )
        rows = page.evaluate(
            """() => { const el = document.querySelector('#ae-tokens .ae-tok-list'); el.scrollTop = 0;
              const list = el.getBoundingClientRect();
              const tops = [...document.querySelectorAll('#ae-tokens .ae-tok')].map(t => t.getBoundingClientRect())
                .filter(b => b.top < list.bottom && b.bottom > list.top);
              return tops.map(b => [b.top - list.top, b.bottom - list.top, list.height]); }"""
        )
        assert rows and all(bottom <= height + 0.5 for _, bottom, height in rows), rows  # no half row
        close(page)


# --- (3) a probe never loses the lecturer's prompt --------------------------------------------------


def test_a_head_types_click_keeps_the_prompt_to_go_back_to(browser: Any, app_url: str) -> None:
    x = expect()
    mine = "My own lecture prompt about a cat and a dog"
    page = open_page(browser, app_url, "laptop", "?prompt=" + mine.replace(" ", "%20"))
    open_tab(page, "Head types")
    page.wait_for_function(
        "() => !!document.querySelector('#ae-types .js-plotly-plot .heatmaplayer')", timeout=T
    )
    from browser_util import click_plot

    click_plot(page, "#ae-types", 0, 1)  # L1H0
    x(page.locator("#ae-back-prompt")).to_be_visible(timeout=T)
    x(page.locator("#ae-prompt textarea")).not_to_have_value(mine, timeout=T)
    x(page.locator("#ae-status")).to_contain_text("Analyzed", timeout=T)
    screenshot(page, "lecture-probe-with-back", full_page=False)
    page.locator("#ae-back-prompt").click()
    x(page.locator("#ae-prompt textarea")).to_have_value(mine, timeout=T)
    x(page.locator("#ae-back-prompt")).to_be_hidden(timeout=T)
    x(page.locator("#ae-tokens")).to_contain_text("␣prompt", timeout=T)  # analyzed again
    close(page)


# --- (5) the interface in Chinese, (6) dark figures and colour bars after every toggle -----------


def test_a_chinese_browser_gets_chinese_tabs_and_labels(browser: Any, app_url: str) -> None:
    x = expect()
    page = open_page(browser, app_url, "projector", "?lecture=1", locale="zh-CN")
    for name in ("注意力头", "Q/K/V 逐步计算", "生成", "逐步讲解"):
        x(page.get_by_role("tab", name=name, exact=True)).to_be_visible()
    x(page.locator("#ae-analyze")).to_have_text("分析")
    x(page.locator("#ae-layer")).to_contain_text("层")
    screenshot(page, "lecture-zh-projector", full_page=False)
    close(page)


GRADIENTS_JS = """() => [...document.querySelectorAll('.js-plotly-plot .colorbar [style*="url("]')]
  .map(el => el.style.fill).filter(Boolean)"""


INK_LIGHT = """(sel) => { const ink = (document.querySelector(sel + ' .ae-hm').dataset.ink || '').match(/\\d+/g);
  return !!ink && ink.slice(0, 3).reduce((a, b) => a + Number(b), 0) > 540; }"""


def test_colour_bars_keep_their_gradient_and_figures_follow_dark_mode(browser: Any, app_url: str) -> None:
    page = open_page(browser, app_url, "laptop")
    page.get_by_role("tab", name="Q/K/V step by step").click()  # Plotly figures with colour bars
    page.wait_for_function(f"() => ({GRADIENTS_JS})().length > 0", timeout=T)
    for toggle in ("#ae-lecture input", "#ae-dark input"):
        page.locator(toggle).check()
        page.wait_for_timeout(800)
        here = page.url.split("#")[0]
        fills = page.evaluate(GRADIENTS_JS)
        assert fills and all(here + "#" in f for f in fills), (here, fills)
    paper = page.evaluate(
        "() => [...document.querySelectorAll('.js-plotly-plot')].filter(g => g._fullLayout)"
        ".map(g => g._fullLayout.paper_bgcolor)"
    )
    assert paper and all(c == "#0f172a" for c in paper), paper
    # The heads tab's canvases draw their labels in the page's (light) text colour.
    page.get_by_role("tab", name="Attention heads").click()
    for panel in ("#ae-overview", "#ae-detail"):
        page.wait_for_function(INK_LIGHT, arg=panel, timeout=T)
    page.locator("#ae-head input[type=number]").fill("3")
    page.locator("#ae-head input[type=number]").press("Enter")  # a redraw stays dark
    expect()(page.locator("#ae-detail .ae-hm-title")).to_have_text("Layer 0, head 3", timeout=T)
    assert page.evaluate(INK_LIGHT, "#ae-detail")
    screenshot(page, "lecture-dark-laptop", full_page=False)
    page.locator("#ae-dark input").uncheck()
    page.wait_for_function(f"() => !({INK_LIGHT})('#ae-overview')", timeout=T)
    close(page)
