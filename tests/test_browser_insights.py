"""The #7 tabs in Chromium: head types, ablation, the logit lens and prompt comparison.

Screenshots go to test-output/screenshots/insights-*.png. Run with `python -m pytest -m browser -q`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_util import click_plot, expect, plot_json, screenshot, serve

pytestmark = pytest.mark.browser
T = 240_000  # ms: generous, the machine may be very busy
IOI = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture(scope="module")
def app_url(tiny_path: Path) -> Iterator[str]:
    with serve(str(tiny_path)) as (_, url):
        yield url


@pytest.fixture
def page(browser: Any, app_url: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app_url)
    expect()(page.locator("#ae-status")).to_contain_text("Analyzed", timeout=T)  # the example, on load
    expect()(page.locator("#ae-prompt textarea")).to_have_value(IOI)
    yield page
    context.close()
    assert not errors, errors


def open_tab(page: Any, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def sideways(page: Any) -> int:
    return int(page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth"))


def test_head_types_grid_opens_a_head_on_its_probe(page: Any) -> None:
    x = expect()
    open_tab(page, "Head types")
    x(page.locator("#ae-types .js-plotly-plot .heatmaplayer")).to_have_count(1, timeout=T)
    grid = page.evaluate(
        "() => { const d = document.querySelector('#ae-types .js-plotly-plot')._fullData[0];"
        " return {rows: d.z.length, cols: d.z[0].length, hover: d.hovertext[1][2]}; }"
    )
    assert (grid["rows"], grid["cols"]) == (2, 4)  # the tiny model: 2 layers × 4 heads
    label = grid["hover"]
    x(page.locator(".ae-legend")).to_contain_text(label)  # the legend explains every label shown
    assert sideways(page) <= 1
    screenshot(page, "insights-1-head-types")

    click_plot(page, "#ae-types", 2, 1)  # layer 1, head 2
    # The head opens in the attention tab, on a probe for its type, analyzed by the app itself.
    x(page.locator("#ae-detail")).to_be_visible(timeout=T)
    x(page.locator("#ae-layer input[type=number]")).to_have_value("1", timeout=T)
    x(page.locator("#ae-head input[type=number]")).to_have_value("2", timeout=T)
    x(page.locator("#ae-prompt textarea")).not_to_have_value(IOI, timeout=T)
    x(page.locator("#ae-detail")).to_contain_text("Layer 1, head 2", timeout=T)
    x(page.locator("#ae-status")).to_contain_text("Analyzed", timeout=T)
    probe = page.locator("#ae-prompt textarea").input_value()
    first = re.sub(r"\s+", "", probe.split()[0])
    x(page.locator("#ae-tokens [data-pos='0'] b")).to_contain_text(first[:3], timeout=T)
    screenshot(page, "insights-2-head-opened", full_page=False)
    open_tab(page, "Head types")
    an = "an" if label[0] in "aeiou" else "a"
    x(page.locator("#ae-types-card")).to_contain_text(f"L1H2 is {an} {label} head", timeout=T)


def test_ablation_summary_and_head_ranking(page: Any) -> None:
    x = expect()
    open_tab(page, "Ablation")
    x(page.locator("#ae-abl-dist")).to_contain_text("Pick heads", timeout=T)  # ready for this analysis
    heads = page.locator("#ae-abl-heads input")
    for name in ("L1H2", "L0H1"):
        heads.click()
        heads.fill(name)
        heads.press("Enter")
    page.get_by_role("button", name="Remove and compare").click()
    x(page.locator("#ae-abl-summary")).to_contain_text(
        re.compile(r"Removing L0H1 and L1H2 (drops|raises|leaves)"), timeout=T
    )
    x(page.locator("#ae-abl-dist .js-plotly-plot .barlayer")).to_have_count(1, timeout=T)
    names = [t["name"] for t in plot_json(page, "#ae-abl-dist")["data"]]
    assert names == ["full model", "heads removed"]

    page.get_by_role("button", name="Which heads matter here?").click()
    x(page.locator("#ae-importance-table tbody tr")).to_have_count(8, timeout=T)  # every head of 2 × 4
    bars = plot_json(page, "#ae-importance")["data"][0]["customdata"]
    assert sorted(bars) == sorted(f"L{a}H{b}" for a in range(2) for b in range(4))
    assert sideways(page) <= 1
    screenshot(page, "insights-3-ablation")

    # A bar of the ranking ablates that head alone.
    page.locator("#ae-importance").scroll_into_view_if_needed()
    box = page.locator("#ae-importance .barlayer .point").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_timeout(250)
    page.mouse.down()
    page.mouse.up()
    x(page.locator("#ae-abl-summary")).to_contain_text(f"Removing {bars[0]} ", timeout=T)


def test_logit_lens_and_a_picked_position(page: Any) -> None:
    x = expect()
    open_tab(page, "Logit lens")
    x(page.locator("#ae-lens .js-plotly-plot .heatmaplayer")).to_have_count(1, timeout=T)
    x(page.locator("#ae-lens-table tbody tr")).to_have_count(3, timeout=T)  # embed, L0, L1
    x(page.locator("#ae-lens-pos input")).to_have_value(re.compile(r"^13 · "), timeout=T)  # the last token
    screenshot(page, "insights-4-logit-lens")

    click_plot(page, "#ae-lens", 3, 1)
    x(page.locator("#ae-lens-pos input")).to_have_value(re.compile(r"^3 · "), timeout=T)
    x(page.locator("#ae-lens-table")).to_contain_text("p(next = ␣went)", timeout=T)

    page.locator("#ae-tokens [data-pos='5']").click()  # the shared query token moves the lens too
    x(page.locator("#ae-lens-pos input")).to_have_value(re.compile(r"^5 · "), timeout=T)


def test_compare_swapped_names(page: Any) -> None:
    x = expect()
    open_tab(page, "Compare")
    x(page.locator("#ae-prompt-b textarea")).to_have_value(
        "When John and Mary went to the store, Mary gave a drink to"
    )
    page.get_by_role("button", name="Compare", exact=True).click()
    x(page.locator("#ae-compare-alignment")).to_contain_text("3 positions differ", timeout=T)
    x(page.locator("#ae-compare-diff .js-plotly-plot .heatmaplayer")).to_have_count(1, timeout=T)
    x(page.locator("#ae-compare-next")).to_contain_text("␣Mary")
    x(page.locator("#ae-compare-next")).to_contain_text("␣John")
    title = plot_json(page, "#ae-compare-diff")["title"]
    top = page.locator("#ae-compare-heads tbody tr").first.locator("td").first.inner_text()
    assert title.startswith(top)  # the figure opens on the head whose attention moved most
    assert sideways(page) <= 1
    screenshot(page, "insights-5-compare")


def test_tokens_in_the_new_tabs_are_shown_as_text(page: Any) -> None:
    x = expect()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    xss = "<img src=x onerror=alert(1)> and <b>Mary</b> met <i>John</i>"
    page.locator("#ae-prompt textarea").fill(xss)
    page.get_by_role("button", name="Analyze", exact=True).click()
    x(page.locator("#ae-tokens [data-pos='0'] b")).to_have_text("<", timeout=T)
    open_tab(page, "Logit lens")
    page.locator("#ae-tokens [data-pos='0']").click()
    x(page.locator("#ae-lens-table")).to_contain_text("p(next = im", timeout=T)
    open_tab(page, "Compare")
    page.get_by_role("button", name="Swap the names in A").click()
    x(page.locator("#ae-prompt-b textarea")).to_have_value(
        xss.replace("Mary", "X").replace("John", "Mary").replace("X", "John")
    )
    page.get_by_role("button", name="Compare", exact=True).click()
    x(page.locator("#ae-compare-alignment")).to_contain_text("positions differ", timeout=T)
    open_tab(page, "Ablation")
    page.locator("#ae-abl-target textarea, #ae-abl-target input").first.fill("<b>")
    page.get_by_role("button", name="Which heads matter here?").click()
    x(page.locator("#ae-status")).to_contain_text("'<b>' is", timeout=T)  # an error, as text
    injected = page.evaluate(
        "() => document.querySelectorAll('img[src=\"x\"], #ae-tabs b b, #ae-tabs i i').length"
    )
    assert injected == 0 and dialogs == []


def test_hidden_tabs_fill_as_they_open_and_follow_while_shown(page: Any) -> None:
    """The logit lens and the walk-through are computed for the tab that shows (#5: they were a third
    of the time from a click to the figures): an analysis made on another tab reaches them when they
    open, and while one shows it follows every analysis."""
    x = expect()

    def analyze(text: str) -> int:
        """The number of tokens, once the token strip shows the new prompt (each has another length)."""
        before = page.locator("#ae-tokens [data-pos]").count()
        page.locator("#ae-prompt textarea").fill(text)
        page.get_by_role("button", name="Analyze", exact=True).click()
        page.wait_for_function(
            "(n) => document.querySelectorAll('#ae-tokens [data-pos]').length !== n", arg=before, timeout=T
        )
        return page.locator("#ae-tokens [data-pos]").count()

    n = analyze("The cat sat on the mat.")
    open_tab(page, "Logit lens")
    x(page.locator("#ae-lens-pos input")).to_have_value(re.compile(rf"^{n - 1} · "), timeout=T)
    m = analyze("A longer prompt this time, with a good many more words than the one before it had.")
    assert m != n
    x(page.locator("#ae-lens-pos input")).to_have_value(re.compile(rf"^{m - 1} · "), timeout=T)
    open_tab(page, "Walk-through")
    x(page.locator(".ae-walk-head")).to_contain_text(f"query token {m - 1}", timeout=T)
    open_tab(page, "Attention heads")
    n = analyze("The cat sat on the mat.")
    open_tab(page, "Walk-through")
    x(page.locator(".ae-walk-head")).to_contain_text(f"query token {n - 1}", timeout=T)


def test_head_ranking_grows_as_it_runs_and_stop_keeps_it(page: Any, monkeypatch: Any) -> None:
    """A ranking that takes a while (gpt2-xl's 1,200 heads): its bar counts the heads and the time
    left, the chart fills in as it goes, and Stop ends it keeping what was measured."""
    import time

    import explorer.analysis.ablation as ablation

    passes = ablation.ablated_passes

    def slow(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for done in passes(*args, **kwargs):
            time.sleep(1.2)
            yield done

    monkeypatch.setattr(ablation, "rows_per_pass", lambda *shape: 1)  # 8 passes of one head
    monkeypatch.setattr(ablation, "ablated_passes", slow)
    x = expect()
    open_tab(page, "Ablation")
    x(page.locator("#ae-abl-dist")).to_contain_text("Pick heads", timeout=T)
    page.get_by_role("button", name="Which heads matter here?").click()
    stop = page.locator("#ae-abl-stop")
    x(stop).to_be_visible(timeout=T)
    bar = page.locator("#ae-importance-table .ae-rank-progress")
    # At once, before the first pass ends (on gpt2-xl that pass alone takes a while).
    x(bar).to_contain_text(re.compile(r"Removing each of the 8 heads alone on \d+ tokens"), timeout=T)
    x(bar).to_contain_text(re.compile(r"[1-7] of 8 heads removed one by one … about \d+ s left"), timeout=T)
    assert 0 < float(bar.locator("progress").get_attribute("value")) < 1
    x(page.locator("#ae-importance-table tbody tr").first).to_be_visible(timeout=T)
    x(page.locator("#ae-importance .js-plotly-plot .barlayer")).to_have_count(
        1, timeout=T
    )  # the chart so far
    screenshot(page, "insights-3b-ranking-so-far")
    stop.click()
    x(page.locator("#ae-status")).to_contain_text("Ranking stopped", timeout=T)
    x(stop).to_be_hidden(timeout=T)
    x(bar).to_have_count(0, timeout=T)
    kept = page.locator("#ae-importance-table tbody tr").count()
    assert 1 <= kept < 8
    page.wait_for_timeout(3000)  # nothing more arrives once stopped
    assert page.locator("#ae-importance-table tbody tr").count() == kept
    # The model is free again: an ablation runs at once.
    monkeypatch.setattr(ablation, "ablated_passes", passes)
    heads = page.locator("#ae-abl-heads input")
    heads.click()
    heads.fill("L0H1")
    heads.press("Enter")
    page.get_by_role("button", name="Remove and compare").click()
    x(page.locator("#ae-abl-summary")).to_contain_text("Removing L0H1", timeout=T)
