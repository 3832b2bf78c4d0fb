"""Chromium: the offline report, links that restore a view, lecture mode, keys, figure downloads.

Screenshots (projector 1280×720 and phone 390×844) go to test-output/screenshots/.
Run with `python -m pytest -m browser tests/test_browser_extras.py -q`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import pytest
from browser_util import expect, screenshot, serve

from explorer.walkthrough import STAGES

pytestmark = pytest.mark.browser
T = 60_000  # ms
PROMPT = "When Mary and John went to the store, John gave a drink to"
RUNNING = 'html[data-ae-running="1"], #ae-gen-text .generating, #ae-gen-text .pending'  # a run streams (as page.js tells)
XSS = "<img src=x onerror=alert(1)> <script>console.log('XSS-MARKER')</script> went"


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from conftest import make_tiny_checkpoint

    folder = make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-gpt2-extras"), n_positions=256)
    with serve(str(folder)) as (_, url):
        yield url


class Page:
    """A page with what it logged: dialogs, console messages and uncaught errors."""

    def __init__(self, browser: Any, width: int = 1280, height: int = 720, **context: Any) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height}, **context)
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.console: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def close(self) -> None:
        self.context.close()
        assert not self.errors, self.errors


def open_app(browser: Any, url: str, query: str = "", **kwargs: Any) -> Page:
    p = Page(browser, **kwargs)
    p.page.goto(url + query)
    expect()(p.page.locator("#ae-status")).to_contain_text(re.compile("Analyzed|已分析"), timeout=T)
    return p


def number(page: Any, elem_id: str) -> str:
    return page.locator(f"#{elem_id} input[type=number]").input_value()


def url_params(page: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def font_px(page: Any, selector: str) -> float:
    return float(
        page.evaluate(f"() => parseFloat(getComputedStyle(document.querySelector('{selector}')).fontSize)")
    )


def generated(page: Any) -> int:
    return page.locator("#ae-gen-text .ae-gen").count()


# --- the offline report ----------------------------------------------------------------------


def test_report_renders_offline_and_runs_no_injected_script(browser: Any, tiny, tmp_path: Path) -> None:
    from explorer import analyze
    from explorer.model.generation import GenerationSession
    from explorer.report import export_report

    analysis = analyze(tiny, XSS)
    gen = GenerationSession(tiny, XSS, seed=1)
    for _ in range(3):
        gen.step()
    path = export_report(analysis, tmp_path / "report.html", layer=1, head=2, history=gen.history)

    p = Page(browser, offline=True)
    requested: list[str] = []

    def refuse(route: Any) -> None:
        requested.append(route.request.url)
        route.abort()

    p.context.route(re.compile(r"^(https?|wss?|ftp)://"), refuse)  # and the context is offline
    p.page.on("request", lambda r: requested.append(r.url))
    p.page.goto(path.as_uri(), timeout=T)
    x = expect()
    x(p.page.locator(".js-plotly-plot")).to_have_count(4, timeout=T)  # overview, head, scores, timeline
    x(p.page.locator("#ae-report-detail .heatmaplayer .hm")).to_have_count(1, timeout=T)
    x(p.page.locator("#ae-report-timeline .scatterlayer .trace")).to_have_count(2, timeout=T)
    assert p.page.locator(".js-plotly-plot .main-svg").count() >= 8  # every plot drawn
    assert p.page.locator(".ae-step").count() == 16
    assert "<img src=x onerror=alert(1)>" in p.page.locator(".prompt").inner_text()  # shown as text
    injected = p.page.evaluate("() => document.querySelectorAll('img[src=\"x\"]').length")
    screenshot(p.page, "extras-01-offline-report")
    p.close()
    assert [u for u in requested if not u.startswith("file:")] == []
    assert injected == 0 and p.dialogs == []
    assert not [text for kind, text in p.console if kind == "error" or "XSS-MARKER" in text]


# --- a link restores the view ------------------------------------------------------------------


def test_a_link_restores_prompt_selection_and_settings(browser: Any, app_url: str) -> None:
    x = expect()
    link = f"?prompt={quote(PROMPT)}&layer=1&head=2&query=3&temperature=0.7&top_k=5"
    p = open_app(browser, app_url, link, permissions=["clipboard-read", "clipboard-write"])
    page = p.page
    x(page.locator("#ae-prompt textarea")).to_have_value(PROMPT)
    x(page.locator("#ae-query input")).to_have_value(re.compile(r"^3 · "), timeout=T)
    assert (number(page, "ae-layer"), number(page, "ae-head")) == ("1", "2")
    x(page.locator("#ae-detail")).to_contain_text("Layer 1, head 2", timeout=T)
    x(page.locator("#ae-detail")).to_contain_text("query 3", timeout=T)
    x(page.locator("#ae-tokens [data-pos='3']")).to_have_class(re.compile("ae-sel"))
    screenshot(page, "extras-02-restored-from-link", full_page=False)

    # Keys move the selection (not while typing), and the URL follows every change.
    page.locator("#ae-prompt textarea").press("l")
    page.locator("body").click(position={"x": 2, "y": 2})
    page.keyboard.press("l")  # head + 1
    page.keyboard.press("]")  # query + 1
    x(page.locator("#ae-head input[type=number]")).to_have_value("3", timeout=T)
    x(page.locator("#ae-query input")).to_have_value(re.compile(r"^4 · "), timeout=T)
    x(page.locator("#ae-detail")).to_contain_text("Layer 1, head 3", timeout=T)
    x(page.locator("#ae-prompt textarea")).to_have_value(PROMPT + "l")
    page.wait_for_function(
        "() => { const p = new URL(location.href).searchParams; return p.get('head') === '3' && p.get('query') === '4'; }",
        timeout=T,
    )
    params = url_params(page)
    assert params["prompt"] == PROMPT + "l" and params["layer"] == "1" and params["query"] == "4"
    assert params["temperature"] == "0.7" and params["top_k"] == "5" and "seed" not in params

    page.reload()  # the same view again
    x(page.locator("#ae-status")).to_contain_text("Analyzed", timeout=T)
    x(page.locator("#ae-query input")).to_have_value(re.compile(r"^4 · "), timeout=T)
    assert (number(page, "ae-layer"), number(page, "ae-head")) == ("1", "3")
    x(page.locator("#ae-prompt textarea")).to_have_value(PROMPT + "l")
    page.locator("#ae-copy-link").click()
    page.wait_for_function("async () => (await navigator.clipboard.readText()) === location.href", timeout=T)
    page.get_by_role("tab", name="Generate").click()
    x(page.locator("#ae-temp input[type=number]")).to_have_value("0.7", timeout=T)
    assert number(page, "ae-topk") == "5"
    p.close()


# --- lecture mode and keys --------------------------------------------------------------------


def test_lecture_mode_walkthrough_and_keys_at_projector_size(browser: Any, app_url: str) -> None:
    x = expect()
    p = open_app(browser, app_url, f"?prompt={quote(PROMPT)}&query=9")
    page = p.page
    x(page.locator("#ae-query input")).to_have_value(re.compile(r"^9 · "), timeout=T)
    page.get_by_role("tab", name="Walk-through").click()
    x(page.locator(".ae-walk .ae-stage")).to_have_count(len(STAGES), timeout=T)
    x(page.locator(".ae-walk-head")).to_contain_text("query token 9")
    before = {sel: font_px(page, sel) for sel in (".ae-walk-head", "#ae-prompt textarea", "#ae-status")}

    page.locator("#ae-lecture input").check()
    page.wait_for_function("() => document.body.classList.contains('ae-lecture')")
    for selector, size in before.items():
        assert font_px(page, selector) >= 1.2 * size, selector
    assert url_params(page).get("lecture") == "1"
    page.locator(".ae-walk-head").scroll_into_view_if_needed()
    screenshot(page, "extras-03-lecture-walkthrough-1280x720", full_page=False)

    page.locator("#ae-lang label").filter(has_text="中文").click()
    x(page.locator(".ae-walk")).to_have_attribute("lang", "zh", timeout=T)
    x(page.locator(".ae-walk-head")).to_contain_text("查询位置 9")
    page.locator("body").click(position={"x": 2, "y": 2})
    for _ in range(3):
        page.keyboard.press("n")  # the walk-through's next stage, outlined
    x(page.locator(".ae-stage.ae-focus")).to_have_attribute("data-stage", "query_key")
    page.keyboard.press("p")
    x(page.locator(".ae-stage.ae-focus")).to_have_attribute("data-stage", "embeddings")
    page.locator("#ae-dark input").check()
    page.wait_for_function("() => document.body.classList.contains('dark')")
    page.locator(".ae-stage[data-stage='scores']").scroll_into_view_if_needed()
    screenshot(page, "extras-04-lecture-dark-zh-1280x720", full_page=False)

    # → steps (switching to Generate), ← takes back, neither fires while typing.
    page.locator("body").click(position={"x": 2, "y": 2})
    page.keyboard.press("ArrowRight")
    x(page.locator("#ae-gen-text .ae-gen")).to_have_count(1, timeout=T)
    page.keyboard.press("ArrowRight")
    x(page.locator("#ae-gen-text .ae-gen")).to_have_count(2, timeout=T)
    page.keyboard.press("ArrowLeft")
    x(page.locator("#ae-gen-text .ae-gen")).to_have_count(1, timeout=T)
    page.locator("#ae-force-text input, #ae-force-text textarea").first.press("ArrowRight")
    page.locator("#ae-force-text input, #ae-force-text textarea").first.press(" ")
    page.wait_for_timeout(800)
    assert generated(page) == 1
    page.locator("#ae-n input[type=number]").fill("10")
    page.locator("#ae-n input[type=number]").press("Enter")
    page.locator("body").click(position={"x": 2, "y": 2})
    page.keyboard.press(" ")  # Run
    page.wait_for_function("() => document.querySelectorAll('#ae-gen-text .ae-gen').length >= 3", timeout=T)
    assert page.evaluate("() => document.documentElement.dataset.aePressed") == "ae-run"
    running = page.evaluate(f"() => !!document.querySelector('{RUNNING}')")
    page.evaluate("() => { delete document.documentElement.dataset.aePressed; }")
    page.keyboard.press(" ")  # Stop, while the run streams (unless it has finished already)
    page.wait_for_function("() => !!document.documentElement.dataset.aePressed", timeout=T)
    pressed = page.evaluate("() => document.documentElement.dataset.aePressed")
    # Space stops a streaming Run; a Run that ended between the check and the key starts anew.
    assert pressed == "ae-stop" or not running or generated(page) >= 11, (pressed, running)
    page.wait_for_function(f"() => !document.querySelector('{RUNNING}')", timeout=T)
    screenshot(page, "extras-05-lecture-generate-1280x720", full_page=False)
    p.close()


def test_figures_download_as_png_named_by_what_they_show(browser: Any, app_url: str) -> None:
    p = open_app(browser, app_url, accept_downloads=True)
    page = p.page
    expect()(page.locator("#ae-detail .ae-hm[data-kind='head'] canvas")).to_be_visible(timeout=T)
    names = {}
    for panel in ("#ae-detail", "#ae-overview"):
        with page.expect_download(timeout=T) as download:
            page.locator(f"{panel} .ae-hm-png").click()
        names[panel] = download.value.suggested_filename
        assert Path(download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert names == {"#ae-detail": "attention-L0-H0.png", "#ae-overview": "attention-overview.png"}
    # Lecture mode draws the heatmaps' labels larger.
    lecture = float(page.locator("#ae-detail .ae-hm").get_attribute("data-font") or 0)
    page.locator("#ae-lecture input").check()
    page.wait_for_function(
        f"() => Number(document.querySelector('#ae-detail .ae-hm').dataset.font) > {lecture}"
    )
    p.close()


def test_phone_and_chinese_browser(browser: Any, app_url: str) -> None:
    x = expect()
    p = open_app(browser, app_url, width=390, height=844, locale="zh-CN", is_mobile=True, has_touch=True)
    page = p.page
    x(page.locator("#ae-lang input[value='zh']")).to_be_checked(timeout=T)  # from Accept-Language
    x(page.locator("#ae-lecture")).to_contain_text("讲课模式")  # gr.I18n, by the browser's language
    screenshot(page, "extras-06-phone-390x844", full_page=False)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    page.goto(page.url.split("?")[0] + "?lang=zh&lecture=1")
    x(page.locator("#ae-status")).to_contain_text("已分析", timeout=T)  # the status line in Chinese too
    walk_tab = page.get_by_role("tab", name="逐步讲解")
    if not walk_tab.is_visible():  # a narrow tab bar folds tabs into a menu
        page.get_by_role("button", name="More tabs").click()
        walk_tab = page.get_by_role("button", name="逐步讲解")
    walk_tab.click()
    x(page.locator(".ae-walk .ae-stage")).to_have_count(len(STAGES), timeout=T)
    page.locator(".ae-walk").scroll_into_view_if_needed()
    screenshot(page, "extras-07-phone-walkthrough-zh-390x844", full_page=False)
    width = page.evaluate("() => document.querySelector('.ae-stage').getBoundingClientRect().width")
    overflow = max(overflow, page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth"))
    p.close()
    assert overflow <= 1, f"the page scrolls sideways by {overflow}px"
    assert width <= 390


def test_a_page_opened_while_the_model_loads_waits_and_then_draws(
    browser: Any, tiny_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`attention-explorer` serves the page before torch and the weights load (#5: the page
    answered after ~7 s): the header names the model at once, the figures show that it loads,
    and the example prompt is analyzed when it is ready."""
    import threading

    import explorer.ui.shell as app_module

    x = expect()
    loaded = threading.Event()
    real = app_module.load_model

    def slow_load(source: Any, device: Any = None, progress: Any = None) -> Any:
        loaded.wait(60)  # held until the page has shown what it shows meanwhile
        return real(source, device=device, progress=progress)

    monkeypatch.setattr(app_module, "load_model", slow_load)
    with serve(str(tiny_path), load_in_background=True) as (_, url):
        p = Page(browser)
        try:
            p.page.goto(url)
            model = p.page.locator("#ae-model")
            x(model).to_contain_text(f"Model: {tiny_path.name}", timeout=T)
            x(model).to_contain_text("loading …")
            x(p.page.locator("#ae-overview")).to_contain_text("Loading the model", timeout=T)
            screenshot(p.page, "cold-start-loading", full_page=False)
            loaded.set()
            x(p.page.locator("#ae-status")).to_contain_text("Analyzed", timeout=T)
            x(model).to_contain_text("· cpu")
            x(model).not_to_contain_text("loading")
            x(p.page.locator("#ae-overview .ae-hm[data-kind='overview'] canvas")).to_be_visible(timeout=T)
        finally:
            loaded.set()
            p.close()


def test_a_model_that_fails_to_load_after_the_server_answers_says_so(
    browser: Any, tiny_path: Path, tmp_path: Path
) -> None:
    import shutil

    folder = Path(shutil.copytree(tiny_path, tmp_path / "broken"))
    (folder / "model.safetensors").write_bytes(b"\x00not a safetensors file" * 64)  # looks complete
    with serve(str(folder), load_in_background=True) as (_, url):
        p = Page(browser)
        try:
            p.page.goto(url)
            expect()(p.page.locator("#ae-status")).to_contain_text("could not be read", timeout=T)
            expect()(p.page.locator("#ae-model")).to_contain_text("could not be loaded")
            expect()(p.page.locator("#ae-prompt textarea")).to_have_value(PROMPT)  # nothing typed is lost
        finally:
            p.close()
