"""Chromium: the formulas of the Q/K/V steps and the walk-through are typeset (MathML, drawn by
the browser itself), in both languages, and read as their plain text to a screen reader.

Screenshots go to test-output/screenshots/formulas-*.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser_util import expect, screenshot, serve
from conftest import needs_bundled

from explorer.analysis.arithmetic import STEPS

pytestmark = [pytest.mark.browser, needs_bundled]
T = 90_000  # ms
# Each formula's box, and whether the browser laid out MathML (a fraction is taller than a line).
BOXES = """(sel) => Array.from(document.querySelectorAll(sel + ' math.ae-math')).map((m) => {
  const r = m.getBoundingClientRect();
  return {label: m.getAttribute('aria-label'), h: r.height, w: r.width, frac: !!m.querySelector('mfrac')};
})"""


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    with serve("bundled") as (_, url):
        yield url


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_formulas_are_typeset_in_the_steps_and_the_walkthrough(browser: Any, app_url: str, lang: str) -> None:
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    page.goto(f"{app_url}?lang={lang}")
    expect()(page.locator("#ae-status")).to_contain_text(re.compile("Analyzed|已分析"), timeout=T)
    page.locator("button[role=tab]").nth(1).click()  # Q/K/V step by step
    page.wait_for_function("() => document.querySelectorAll('math.ae-math').length >= 16", timeout=T)
    steps = [b for b in page.evaluate(BOXES, "body") if b["w"] > 0]
    assert [b["label"] for b in steps] == [s.formula for s in STEPS]
    fractions = [b for b in steps if b["frac"]]
    # Laid out as math: a fraction stands taller than a line of text (~19 px here).
    assert fractions and all(b["h"] > 20 for b in fractions) and max(b["h"] for b in fractions) > 30
    screenshot(page, f"formulas-steps-{lang}", full_page=False)
    page.locator("button[role=tab]").nth(8).click()  # Walk-through
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.ae-stage math.ae-math')).some((m) => m.getBoundingClientRect().width > 0)",
        timeout=T,
    )
    stages = [b for b in page.evaluate(BOXES, ".ae-stage") if b["w"] > 0]
    assert len(stages) >= 8 and any(b["frac"] and b["h"] > 24 for b in stages)
    screenshot(page, f"formulas-walkthrough-{lang}", full_page=False)
    page.context.close()
