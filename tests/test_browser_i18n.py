"""Chromium: the whole interface switches between English and Chinese (#18): tabs, buttons,
labels, the status line, the server's messages and the figures' titles; a Chinese browser, or a
link with ?lang=zh, starts in Chinese.

Screenshots go to test-output/screenshots/i18n-*.png.
Run with `python -m pytest -m browser tests/test_browser_i18n.py -q`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser_util import expect, plot_json, screenshot, serve
from conftest import needs_bundled

pytestmark = [pytest.mark.browser, needs_bundled]
T = 90_000  # ms
TABS_EN = ["Attention heads", "Q/K/V step by step", "Generate", "Head types", "Ablation", "Logit lens"]
TABS_EN += ["Compare", "Why this token?", "Walk-through", "Export"]
TABS_ZH = ["注意力头", "Q/K/V 逐步计算", "生成", "注意力头类型", "消融", "Logit 透镜"]
TABS_ZH += ["对比", "为什么是这个词元？", "逐步讲解", "导出"]
CHINESE = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    with serve("bundled") as (_, url):
        yield url


def open_page(browser: Any, url: str, query: str = "", locale: str = "en-US", size=(1400, 900)) -> Any:
    page = browser.new_context(viewport={"width": size[0], "height": size[1]}, locale=locale).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + query)
    expect()(page.locator("#ae-status")).to_contain_text(re.compile("Analyzed|已分析"), timeout=T)
    page.ae_errors = errors
    return page


def close(page: Any) -> None:
    errors = page.ae_errors
    page.context.close()
    assert not errors, errors


def tab_names(page: Any) -> list[str]:
    return page.evaluate(
        "() => [...document.querySelectorAll('#ae-tabs button[role=tab]')].map(b => b.innerText.trim())"
    )


def assert_chinese(page: Any) -> None:
    x = expect()
    x(page.locator("html")).to_have_attribute("lang", re.compile("^zh"), timeout=T)
    page.wait_for_function(
        f"() => document.querySelectorAll('#ae-tabs button[role=tab]').length >= {len(TABS_ZH)}"
    )
    page.wait_for_function(
        "(names) => { const shown = [...document.querySelectorAll('#ae-tabs button[role=tab]')].map(b => b.innerText.trim());"
        " return names.every((n, i) => shown[i] === n); }",
        arg=TABS_ZH,
        timeout=T,
    )
    x(page.locator("#ae-analyze")).to_have_text("分析")
    x(page.locator("#ae-layer")).to_contain_text("层")
    x(page.locator("#ae-head")).to_contain_text("注意力头")
    x(page.locator("#ae-query")).to_contain_text("查询词元")
    x(page.locator("#ae-prompt")).to_contain_text("提示词")
    x(page.locator("#ae-status")).to_contain_text("已分析", timeout=T)
    x(page.locator("#ae-status")).to_contain_text("个注意力头")
    x(page.locator("#ae-tokens .ae-tok-head")).to_contain_text("个词元", timeout=T)
    x(page.locator("#ae-model")).to_contain_text("模型：")
    x(page.locator("#ae-lecture")).to_contain_text("讲课模式")
    x(page.locator("#ae-examples")).to_contain_text("间接宾语", timeout=T)


def assert_english(page: Any) -> None:
    x = expect()
    x(page.locator("html")).to_have_attribute("lang", re.compile("^en"), timeout=T)
    page.wait_for_function(
        "(names) => { const shown = [...document.querySelectorAll('#ae-tabs button[role=tab]')].map(b => b.innerText.trim());"
        " return names.every((n, i) => shown[i] === n); }",
        arg=TABS_EN,
        timeout=T,
    )
    x(page.locator("#ae-analyze")).to_have_text("Analyze")
    x(page.locator("#ae-layer")).to_contain_text("Layer")
    x(page.locator("#ae-head")).to_contain_text("Head")
    x(page.locator("#ae-status")).to_contain_text("Analyzed", timeout=T)
    x(page.locator("#ae-tokens .ae-tok-head")).to_contain_text("tokens · position·id", timeout=T)
    x(page.locator("#ae-examples")).to_contain_text("Indirect object")


def test_the_language_switch_turns_the_whole_interface_chinese_and_back(browser: Any, app_url: str) -> None:
    x = expect()
    page = open_page(browser, app_url)
    assert_english(page)
    assert tab_names(page) == TABS_EN
    page.locator("#ae-lang label").filter(has_text="中文").click()
    assert_chinese(page)
    assert "lang=zh" in page.url  # the link carries the language
    screenshot(page, "i18n-01-heads-zh-1400x900", full_page=False)

    # Q/K/V: the step cards, the selection line, a table's headings and the figures' titles.
    page.get_by_role("tab", name="Q/K/V 逐步计算").click()
    page.wait_for_function(
        "() => document.querySelectorAll('.ae-step-plot .main-svg').length >= 5", timeout=T
    )
    x(page.locator("#ae-selection-line")).to_contain_text("查询词元", timeout=T)
    x(page.locator("#ae-step-q .ae-step-title")).to_contain_text("查询向量 Q_i")
    x(page.locator("#ae-step-k .ae-step-title")).to_contain_text("键向量 K_j")
    x(page.locator("#ae-steps-nav")).to_contain_text("值向量 V_j")
    x(page.locator("#ae-step-pattern .ae-step-table th").nth(0)).to_have_text("键")
    titles = page.evaluate(
        "() => [...document.querySelectorAll('.ae-step-plot .js-plotly-plot')].map(g => g.layout && g.layout.title && g.layout.title.text)"
    )
    assert titles and all(t and CHINESE.search(t) for t in titles), titles
    page.locator("#ae-step-ln_1").scroll_into_view_if_needed()
    screenshot(page, "i18n-02-steps-zh-1400x900", full_page=False)

    # Generate: buttons, settings, a step's line and figures, in Chinese.
    page.get_by_role("tab", name="生成").click()
    x(page.locator("#ae-step")).to_have_text("单步")
    x(page.locator("#ae-temp")).to_contain_text("温度")
    x(page.locator("#ae-greedy")).to_contain_text("贪心解码")
    page.locator("#ae-step").click()
    x(page.locator("#ae-gen-text .ae-gen")).to_have_count(1, timeout=T)
    x(page.locator("#ae-gen-step")).to_contain_text("位置", timeout=T)
    x(page.locator("#ae-status")).to_contain_text("从提示词", timeout=T)
    page.wait_for_function("() => !!document.querySelector('#ae-dist .js-plotly-plot .barlayer')", timeout=T)
    dist = plot_json(page, "#ae-dist")
    assert dist["title"].startswith("第 1 步：下一个词元的概率分布"), dist["title"]
    assert [t["name"] for t in dist["data"]] == ["模型", "经采样设置后"]
    page.wait_for_timeout(500)
    screenshot(page, "i18n-03-generate-zh-1400x900", full_page=True)

    # And back: the same panels in English again, the step's line and figures too.
    page.locator("#ae-lang label").filter(has_text="English").click()
    x(page.locator("html")).to_have_attribute("lang", re.compile("^en"), timeout=T)
    x(page.locator("#ae-gen-step")).to_contain_text("Step at position", timeout=T)
    x(page.locator("#ae-status")).to_contain_text("Generating from the prompt", timeout=T)
    page.wait_for_function(
        "() => { const g = document.querySelector('#ae-dist .js-plotly-plot');"
        " return g && g.layout.title.text.startsWith('Step 1: the next-token distribution'); }",
        timeout=T,
    )
    x(page.locator("#ae-step")).to_have_text("Step")
    page.get_by_role("tab", name="Attention heads").click()
    page.locator("#ae-analyze").click()
    assert_english(page)
    assert "lang=zh" not in page.url
    screenshot(page, "i18n-04-heads-en-again-1400x900", full_page=False)
    close(page)


def test_a_chinese_browser_starts_in_chinese(browser: Any, app_url: str) -> None:
    page = open_page(browser, app_url, "?lecture=1", locale="zh-CN", size=(1280, 720))
    assert_chinese(page)
    expect()(page.locator("#ae-lang input[value='zh']")).to_be_checked()
    screenshot(page, "i18n-05-zh-browser-lecture-1280x720", full_page=False)
    # An error from the engine, said in Chinese in the status line.
    page.get_by_role("tab", name="消融").click()
    page.locator("#ae-abl-run").click()
    expect()(page.locator("#ae-status")).to_contain_text("请选择要移除的注意力头", timeout=T)
    close(page)


def test_a_link_in_chinese_starts_in_chinese_in_an_english_browser(browser: Any, app_url: str) -> None:
    page = open_page(browser, app_url, "?lang=zh", locale="en-US")
    assert_chinese(page)
    page.get_by_role("tab", name="逐步讲解").click()
    expect()(page.locator(".ae-walk")).to_have_attribute("lang", "zh", timeout=T)
    expect()(page.locator(".ae-walk")).to_contain_text("键向量", timeout=T)
    screenshot(page, "i18n-06-link-zh-walkthrough-1400x900", full_page=False)
    close(page)
