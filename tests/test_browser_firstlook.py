"""The first impression (#21): on page open one server event restores the view and analyzes the
prompt, and a click costs one event; the tabs nobody looks at cost none. The link keeps the open tab."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_util import expect, serve

pytestmark = pytest.mark.browser
T = 60_000


@pytest.fixture(scope="module")
def app_url(tiny_path: Path) -> Iterator[str]:
    with serve(str(tiny_path)) as (_, url):
        yield url


class Joins:
    """The page's queue joins (one per server event)."""

    def __init__(self, page: Any) -> None:
        self.count = 0
        page.on("request", self._seen)

    def _seen(self, request: Any) -> None:
        if "/gradio_api/queue/join" in request.url:
            self.count += 1


def settled(page: Any) -> None:
    page.wait_for_function("() => !document.querySelector('.pending, .progress-bar, .eta-bar')", timeout=T)
    page.wait_for_timeout(800)  # anything chained after the drawn event would have joined by now


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, errors


def test_opening_the_page_is_one_server_event_and_a_click_is_one(page: Any, app_url: str) -> None:
    x = expect()
    joins = Joins(page)
    page.goto(app_url)
    x(page.locator("#ae-status")).to_contain_text("Analyzed", timeout=T)
    x(page.locator("#ae-overview .ae-hm[data-kind='overview'] canvas")).to_be_visible(timeout=T)
    settled(page)
    assert joins.count == 1  # restore the view, analyze, select: one event
    joins.count = 0
    page.locator("#ae-prompt textarea").fill("The cat sat on the mat because it was warm.")
    page.locator("#ae-analyze").click()
    x(page.locator("#ae-tokens")).to_contain_text("warm", timeout=T)
    settled(page)
    assert joins.count == 1  # the analysis; the hidden tabs wait, without a round trip
    joins.count = 0
    page.locator("#ae-tokens [data-pos]").nth(2).click()
    x(page.locator("#ae-tokens .ae-sel")).to_have_attribute("data-pos", "2", timeout=T)
    settled(page)
    assert joins.count == 1


def test_the_link_keeps_the_open_tab(page: Any, app_url: str) -> None:
    x = expect()
    page.goto(f"{app_url}?tab=lens")
    x(page.locator("#ae-lens .js-plotly-plot")).to_be_visible(timeout=T)  # opened and filled
    x(page.get_by_role("tab", name="Logit lens", exact=True)).to_have_attribute("aria-selected", "true")
    page.get_by_role("tab", name="Compare", exact=True).click()
    page.wait_for_function("() => location.search.includes('tab=compare')", timeout=T)
    page.get_by_role("tab", name="Attention heads", exact=True).click()
    page.wait_for_function("() => !location.search.includes('tab=')", timeout=T)  # the default
    page.goto(f"{app_url}?tab=nonsense")  # an unknown tab: the default, no error
    x(page.locator("#ae-overview .ae-hm[data-kind='overview'] canvas")).to_be_visible(timeout=T)
    x(page.get_by_role("tab", name="Attention heads", exact=True)).to_have_attribute("aria-selected", "true")
