"""What a person sees and does, in Chromium: analyze, click heads and tokens, generate, force, rewind.

Screenshots go to test-output/screenshots/. Run with `python -m pytest -m browser -q`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser_util import (
    click_at,
    click_heatmap,
    click_plot,
    expect,
    heatmap_point,
    plot_json,
    screenshot,
    serve,
)

pytestmark = pytest.mark.browser
T = 120_000  # ms: generous, the CI machine may be busy
XSS = (
    "<img src=x onerror=alert(1)> <script>console.log('XSS-MARKER')</script> "
    "<img src=y onerror=\"console.log('XSS-MARKER')\"> ${alert(2)} {{constructor.constructor('alert(3)')()}}"
)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from conftest import make_tiny_checkpoint

    # A longer context than the shared tiny model, so that long prompts still leave room to generate.
    folder = make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-gpt2-256"), n_positions=256)
    with serve(str(folder)) as (_, url):
        yield url


def open_page(browser: Any, url: str, width: int = 1440, height: int = 900) -> tuple[Any, dict]:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(T)
    seen: dict[str, list[str]] = {"dialogs": [], "console": [], "errors": []}
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.on("console", lambda m: seen["console"].append(m.text))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.goto(url)
    # The example prompt is analyzed on page load; wait for it so that it cannot race a test's own.
    expect()(page.locator("#ae-status")).to_contain_text("Analyzed", timeout=T)
    return page, seen


@pytest.fixture(scope="module", autouse=True)
def _patient_expect() -> None:
    expect().set_options(timeout=T)  # every expectation in this module waits up to T


@pytest.fixture
def page(browser: Any, app_url: str) -> Iterator[Any]:
    page, seen = open_page(browser, app_url)
    yield page
    page.context.close()
    assert not seen["errors"], seen["errors"]


def analyze(page: Any, prompt: str, first_token: str) -> None:
    page.locator("#ae-prompt textarea").fill(prompt)
    page.get_by_role("button", name="Analyze", exact=True).click()
    expect()(page.locator("#ae-tokens [data-pos='0'] b")).to_have_text(first_token, timeout=T)
    expect()(page.locator("#ae-overview .ae-hm[data-kind='overview'] canvas")).to_be_visible(timeout=T)


def slider_value(page: Any, elem_id: str) -> str:
    return page.locator(f"#{elem_id} input[type=number]").input_value()


def generated(page: Any) -> int:
    return page.locator("#ae-gen-text .ae-gen").count()


def test_analyze_an_example_open_a_head_pick_a_query_and_read_the_steps(page: Any) -> None:
    x = expect()
    page.get_by_role("button", name="Indirect object").click()  # an example analyzes at once
    x(page.locator("#ae-status")).to_contain_text("Analyzed", timeout=T)
    x(page.locator("#ae-prompt textarea")).to_have_value(re.compile("Mary and John"))
    x(page.locator("#ae-detail .ae-hm[data-kind='head'] canvas")).to_be_visible(timeout=T)
    x(page.locator("#ae-overview .ae-hm[data-kind='overview'] canvas")).to_be_visible(timeout=T)
    x(page.locator("#ae-detail .ae-hm-title")).to_have_text("Layer 0, head 0")
    x(page.locator("#ae-overview .ae-hm")).to_have_attribute("data-outline", "0,0")
    assert page.evaluate("() => !window.Plotly")  # the first view draws without Plotly's bundle
    n_tokens = page.locator("#ae-tokens [data-pos]").count()
    assert n_tokens > 10
    screenshot(page, "01-analyzed")

    page.mouse.move(*heatmap_point(page, "#ae-overview", 1, 2))  # hover names the tile
    x(page.locator("#ae-overview .ae-hm-tip")).to_contain_text("layer 1, head 2 · block max 0.")
    click_heatmap(page, "#ae-overview", 1, 2)  # the tile of layer 1, head 2
    x(page.locator("#ae-head input[type=number]")).to_have_value("2", timeout=T)
    assert slider_value(page, "ae-layer") == "1"
    x(page.locator("#ae-detail")).to_contain_text("Layer 1, head 2", timeout=T)
    x(page.locator("#ae-overview .ae-hm")).to_have_attribute("data-outline", "1,2", timeout=T)

    # The head detail: hover reads a weight, a click on a row makes that token the query.
    page.mouse.move(*heatmap_point(page, "#ae-detail", 6, 2))
    x(page.locator("#ae-detail .ae-hm-tip")).to_contain_text(
        re.compile(r"^query 6 '.+' → key 2 '.+': 0\.\d{4}$")
    )
    click_heatmap(page, "#ae-detail", 6, 2)
    x(page.locator("#ae-query input")).to_have_value(re.compile(r"^6 · "), timeout=T)
    x(page.locator("#ae-detail")).to_contain_text("query 6", timeout=T)

    page.locator("#ae-tokens [data-pos='3']").click()
    x(page.locator("#ae-query input")).to_have_value(re.compile(r"^3 · "), timeout=T)
    x(page.locator("#ae-tokens [data-pos='3']")).to_have_class(re.compile("ae-sel"))
    x(page.locator("#ae-detail")).to_contain_text("query 3", timeout=T)
    screenshot(page, "02-head-and-query")

    page.get_by_role("tab", name="Q/K/V step by step").click()
    x(page.locator("#ae-selection-line")).to_contain_text("Layer 1 · head 2 · query token 3", timeout=T)
    x(page.locator(".ae-step")).to_have_count(16)
    # The tab is filled as it opens (not with every click elsewhere): wait for its checks.
    x(page.locator(".ae-badge.ae-ok").nth(7)).to_be_visible(timeout=T)  # recomputed steps match the model
    assert page.locator(".ae-badge.ae-bad").count() == 0
    x(page.locator(".ae-step-plot .js-plotly-plot").first).to_be_visible(timeout=T)
    screenshot(page, "03-qkv-steps")

    # A query picked while another tab shows reaches the steps when the tab opens again.
    scores = page.locator("#ae-step-scores .prose.ae-step-table")
    before = scores.inner_text()
    page.get_by_role("tab", name="Attention heads").click()
    page.locator("#ae-tokens [data-pos='5']").click()
    x(page.locator("#ae-detail")).to_contain_text("query 5", timeout=T)
    page.get_by_role("tab", name="Q/K/V step by step").click()
    x(page.locator("#ae-selection-line")).to_contain_text("query token 5", timeout=T)
    x(scores).not_to_have_text(before, timeout=T)
    assert page.locator(".ae-badge.ae-bad").count() == 0
    # Gradio's run history (every reply, figures included, kept in localStorage) is off.
    assert page.evaluate("() => Object.keys(localStorage).filter(k => k.includes('run-history'))") == []


def test_generate_five_tokens_force_one_and_rewind(page: Any) -> None:
    x = expect()
    page.get_by_role("tab", name="Generate").click()
    x(page.locator("#ae-selection").first).to_be_hidden()  # the analysis selectors belong to other tabs
    titles, bars = [], []
    for step in range(1, 6):
        page.get_by_role("button", name="Step", exact=True).click()
        x(page.locator("#ae-dist")).to_contain_text(f"Step {step}:", timeout=T)
        dist = plot_json(page, "#ae-dist")
        titles.append(dist["title"])
        bars.append(dist["data"][0]["customdata"])
    assert generated(page) == 5
    assert len(set(titles)) == 5 and bars[0] != bars[-1]  # the distribution changes as text grows
    x(page.locator("#ae-gen-attn .js-plotly-plot .barlayer")).to_have_count(1)
    screenshot(page, "04-generated")

    forced_id = plot_json(page, "#ae-dist")["data"][0]["customdata"][2]  # the third likeliest token
    page.locator("#ae-dist").scroll_into_view_if_needed()
    bar = page.locator("#ae-dist .barlayer .trace").first.locator(".point").nth(2).bounding_box()
    click_at(page, bar["x"] + bar["width"] * 0.5, bar["y"] + bar["height"] / 2)
    x(page.locator("#ae-gen-step")).to_contain_text("forced by you", timeout=T)
    # The bar replaces the token drawn from that distribution: still five, the last one forced.
    assert generated(page) == 5 and page.locator("#ae-gen-text .ae-forced").count() == 1
    assert page.locator("#ae-gen-text .ae-gen").last.get_attribute("class").endswith("ae-forced")
    assert (
        "chosen" in page.locator("#ae-dist").inner_text()
        and f"(id {forced_id})" not in page.locator("#ae-dist").inner_text()
    )  # the same distribution, the clicked bar now marked chosen
    screenshot(page, "05-forced")

    page.get_by_role("button", name="⟲ Rewind").click()
    x(page.locator("#ae-status")).to_contain_text("4 generated tokens remain", timeout=T)
    assert generated(page) == 4 and page.locator("#ae-gen-text .ae-forced").count() == 0

    page.locator("#ae-n input[type=number]").fill("3")
    page.locator("#ae-n input[type=number]").press("Enter")
    page.get_by_role("button", name="Run", exact=True).click()
    x(page.locator("#ae-gen-text .ae-gen")).to_have_count(7, timeout=T)
    x(page.locator("canvas.ae-live")).to_have_count(0, timeout=T)  # the Run's last figures are drawn
    page.wait_for_function(
        "() => document.querySelector('#ae-timeline .js-plotly-plot')._fullData[0].x.length === 7", timeout=T
    )
    x(page.locator("#ae-timeline .js-plotly-plot .scatterlayer").first).to_be_visible()
    assert [t["type"] for t in plot_json(page, "#ae-timeline")["data"]] == ["scatter", "scatter"]

    p_step2 = page.evaluate("() => document.querySelector('#ae-timeline .js-plotly-plot')._fullData[0].y[2]")
    click_plot(page, "#ae-timeline", 2, p_step2)  # back to step 2 (the third token)
    x(page.locator("#ae-status")).to_contain_text("3 generated tokens remain")
    assert generated(page) == 3
    screenshot(page, "06-run-and-timeline")


def test_settings_reshape_the_next_token_distribution(page: Any) -> None:
    x = expect()
    page.get_by_role("tab", name="Generate").click()
    page.get_by_role("button", name="Step", exact=True).click()
    x(page.locator("#ae-dist")).to_contain_text("Step 1:", timeout=T)
    page.locator("#ae-topk input[type=number]").fill("2")
    page.locator("#ae-topk input[type=number]").press("Enter")
    x(page.locator("#ae-dist")).to_contain_text("not chosen yet", timeout=T)
    warped = plot_json(page, "#ae-dist")["data"][1]["customdata"]
    assert len(warped) == 2


def test_user_text_never_runs_as_script(browser: Any, app_url: str) -> None:
    x = expect()
    page, seen = open_page(browser, app_url)
    analyze(page, XSS, "<")
    shown = "".join(page.locator("#ae-tokens .ae-tok b").all_inner_texts())
    assert shown.startswith("<img␣src=x␣onerror=alert(1)>␣<script>")  # shown as text
    page.locator("#ae-tokens [data-pos='1']").click()
    x(page.locator("#ae-query input")).to_have_value(re.compile(r"^1 · "), timeout=T)
    page.get_by_role("tab", name="Q/K/V step by step").click()
    x(page.locator(".ae-step")).to_have_count(16)
    page.get_by_role("tab", name="Generate").click()
    page.get_by_role("button", name="Step", exact=True).click()
    x(page.locator("#ae-gen-text .ae-gen")).to_have_count(1, timeout=T)
    x(page.locator("#ae-gen-text")).to_contain_text("<img src=x onerror=alert(1)>")
    page.locator("#ae-force-text textarea, #ae-force-text input").first.fill("<b>")
    page.get_by_role("button", name="Force", exact=True).click()
    x(page.locator("#ae-status")).to_contain_text("not one", timeout=T)  # an error, shown as text
    page.wait_for_timeout(500)
    screenshot(page, "07-xss-prompt")
    injected = page.evaluate('() => document.querySelectorAll(\'img[src="x"], img[src="y"]\').length')
    page.context.close()
    assert injected == 0
    assert seen["dialogs"] == []
    assert not [m for m in seen["console"] if "XSS-MARKER" in m]


@pytest.mark.parametrize(("width", "height"), [(1440, 900), (1280, 720)])
def test_layout_fits_the_viewport(browser: Any, app_url: str, width: int, height: int) -> None:
    page, _ = open_page(browser, app_url, width, height)
    analyze(page, "The cat sat on the mat. The cat sat on the mat.", "The")
    screenshot(page, f"08-viewport-{width}x{height}", full_page=False)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    for tab in ("Q/K/V step by step", "Generate"):
        page.get_by_role("tab", name=tab).click()
        page.wait_for_timeout(300)
        overflow = max(
            overflow, page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        )
    page.context.close()
    assert overflow <= 1, f"the page scrolls sideways by {overflow}px"


def test_pick_another_model_and_see_the_prompt_analyzed_again(
    browser: Any, app_url: str, tiny_path: Any
) -> None:
    x = expect()
    page, _ = open_page(browser, app_url)
    picker = page.locator("#ae-model-picker input")
    picker.fill(str(tiny_path))
    picker.press("Enter")
    x(page.locator("#ae-model")).to_contain_text(f"Model: {tiny_path.name}")
    x(page.locator("#ae-status")).to_contain_text(f"with {tiny_path.name}")  # analyzed again
    picker.fill(str(tiny_path / "missing"))
    picker.press("Enter")
    x(page.locator("#ae-status")).to_contain_text("previous model keeps serving")
    x(page.locator("#ae-model")).to_contain_text(f"Model: {tiny_path.name}")
    screenshot(page, "09-model-error", full_page=False)
    page.context.close()
