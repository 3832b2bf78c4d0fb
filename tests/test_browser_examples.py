"""Examples open on the head they exist to show (#18): the induction example on the bundled model's
induction head, in Chromium, while one's own prompt and Analyze keep the selection.

Screenshots go to test-output/screenshots/examples-*.png.
Run with `python -m pytest tests/test_browser_examples.py -q`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_util import expect, screenshot, serve
from conftest import needs_bundled

from explorer.analysis.heads import head_scores
from explorer.model.capture import tokenize
from explorer.ui.prompt import example_heads, load_examples

T = 120_000  # ms
INDUCTION = "Repeated sequence (induction)"
OWN = "A prompt of my own, typed in the box."


def example(label: str) -> dict[str, Any]:
    return next(e for e in load_examples() if e["label"] == label)


@needs_bundled
def test_every_example_head_is_a_head_of_the_bundled_model(bundled: Any) -> None:
    named = [e for e in load_examples() if "layer" in e or "head" in e]
    assert named, "the induction example names its head"
    for e in named:
        assert 0 <= e["layer"] < bundled.n_layer and 0 <= e["head"] < bundled.n_head, e["label"]
    assert set(example_heads(load_examples())) == {e["prompt"] for e in named}
    # The head it names is the one the Head types tab finds strongest at induction.
    scores = head_scores(bundled)
    top = scores.loc[scores["induction"].idxmax()]
    assert (example(INDUCTION)["layer"], example(INDUCTION)["head"]) == (int(top["layer"]), int(top["head"]))
    assert top["label"] == "induction"


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    with serve("bundled") as (_, url):
        yield url


def n_tokens(bundled: Any, prompt: str) -> int:
    return len(tokenize(bundled, prompt)[0])


def number(page: Any, elem_id: str) -> Any:
    return page.locator(f"#{elem_id} input[type=number]")


def drawn(page: Any, *plots: str) -> None:
    """Wait until each heatmap is in the page (a Plotly heatmap's image, or a canvas panel's
    drawn payload), and the page has painted it."""
    page.wait_for_function(
        "(sels) => sels.every(s => document.querySelector(s + ' .heatmaplayer image[*|href^=\"data:\"]')"
        " || document.querySelector(s + ' .ae-hm[data-meta^=attention]'))",
        arg=list(plots),
        timeout=T,
    )
    page.wait_for_timeout(2000)  # a headless full-page screenshot can miss an image not yet decoded


@pytest.mark.browser
@needs_bundled
def test_the_induction_example_opens_its_induction_head(browser: Any, app_url: str, bundled: Any) -> None:
    x = expect()
    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    page.set_default_timeout(T)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app_url)
    x(page.locator("#ae-status")).to_contain_text("Analyzed", timeout=T)
    number(page, "ae-head").fill("3")  # a head of the lecturer's own, which the example replaces
    number(page, "ae-head").press("Enter")
    x(page.locator("#ae-detail")).to_contain_text("Layer 0, head 3", timeout=T)

    induction = example(INDUCTION)
    page.get_by_role("button", name=INDUCTION).click()
    x(page.locator("#ae-status")).to_contain_text(
        f"Analyzed {n_tokens(bundled, induction['prompt'])} tokens", timeout=T
    )
    x(number(page, "ae-layer")).to_have_value(str(induction["layer"]), timeout=T)
    x(number(page, "ae-head")).to_have_value(str(induction["head"]), timeout=T)
    x(page.locator("#ae-mean input")).not_to_be_checked()
    x(page.locator("#ae-detail")).to_contain_text(
        f"Layer {induction['layer']}, head {induction['head']}", timeout=T
    )
    drawn(page, "#ae-detail", "#ae-overview")
    screenshot(page, "examples-induction-opened")

    # One's own prompt, Analyze, and an example that names no head keep the head one picked.
    number(page, "ae-head").fill("1")
    number(page, "ae-head").press("Enter")
    x(page.locator("#ae-detail")).to_contain_text("Layer 1, head 1", timeout=T)
    page.locator("#ae-prompt textarea").fill(OWN)
    page.get_by_role("button", name="Analyze", exact=True).click()
    x(page.locator("#ae-status")).to_contain_text(f"Analyzed {n_tokens(bundled, OWN)} tokens", timeout=T)
    ioi = example("Indirect object")
    assert "layer" not in ioi and n_tokens(bundled, ioi["prompt"]) != n_tokens(bundled, OWN)
    page.get_by_role("button", name="Indirect object").click()
    x(page.locator("#ae-status")).to_contain_text(
        f"Analyzed {n_tokens(bundled, ioi['prompt'])} tokens", timeout=T
    )
    x(page.locator("#ae-detail")).to_contain_text("Layer 1, head 1", timeout=T)
    assert (number(page, "ae-layer").input_value(), number(page, "ae-head").input_value()) == ("1", "1")

    # The Head types tab names the types as people read them, not by their data keys.
    page.get_by_role("tab", name="Head types").click()
    drawn(page, "#ae-types")
    x(page.locator(".ae-legend")).to_contain_text("previous token", timeout=T)
    x(page.locator("#ae-types")).to_contain_text("induction", timeout=T)
    for where in ("#ae-types", ".ae-legend"):
        assert "_token" not in page.locator(where).inner_text(), where
    screenshot(page, "examples-head-types")
    page.context.close()
    assert not errors, errors
