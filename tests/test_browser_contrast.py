"""Chromium: every text the app shows reaches WCAG AA contrast (#18), in light, Dark, Lecture and
Lecture + Dark, on the Attention heads tab and on the Generate tab after a step.

Each visible element with a text node of its own (and each text box's value or placeholder) is
measured against its effective background: the first ancestor with an opaque background, the
translucent ones above it composited on top. Normal text needs 4.5:1, large text 3:1.
Screenshots go to test-output/screenshots/contrast-*.png.
Run with `python -m pytest -m browser tests/test_browser_contrast.py -q`.
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
AA_NORMAL, AA_LARGE = 4.5, 3.0
MODES = {
    "light": (),
    "dark": ("#ae-dark",),
    "lecture": ("#ae-lecture",),
    "lecture-dark": ("#ae-lecture", "#ae-dark"),
}

# One record per text the page shows: its colours, the ratio and whether it is large (WCAG: 24 px,
# or 18.66 px bold). Not measured: Plotly's SVG text (drawn on the figure's own paper, not the
# page's), hidden elements, and those of no size (a 1 px box is a visually hidden label).
CONTRAST_JS = r"""() => {
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 1;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const cache = new Map();
  const rgba = (css) => {  // any CSS colour as [r, g, b, a], through the canvas (oklch, color() too)
    if (!cache.has(css)) {
      ctx.clearRect(0, 0, 1, 1);
      ctx.fillStyle = '#000';
      ctx.fillStyle = css;
      ctx.fillRect(0, 0, 1, 1);
      const d = ctx.getImageData(0, 0, 1, 1).data;
      cache.set(css, [d[0], d[1], d[2], d[3] / 255]);
    }
    return cache.get(css);
  };
  const over = (top, below) => {  // `top` composited on an opaque `below`
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + below[i] * (1 - a)).concat(1);
  };
  const channel = (c) => { c /= 255; return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const luminance = (c) => 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2]);
  const ratio = (a, b) => { const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x); return (hi + 0.05) / (lo + 0.05); };
  const GRADIENT_STOP = /(rgba?\([^)]*\)|color\([^)]*\)|oklch\([^)]*\)|oklab\([^)]*\)|#[0-9a-f]{3,8}\b)/gi;
  // The colours a text may sit on: one, or each stop of a gradient, with what lies above composited on.
  const backgrounds = (el) => {
    const layers = [];
    for (let n = el; n; n = n.parentElement) {
      const cs = getComputedStyle(n);
      const stops = cs.backgroundImage.includes('gradient') ? cs.backgroundImage.match(GRADIENT_STOP) || [] : [];
      const color = rgba(cs.backgroundColor);
      if (stops.length) { layers.push({stops: stops.map(rgba), color}); if (stops.every((s) => rgba(s)[3] >= 1)) break; }
      else if (color[3] > 0) { layers.push({stops: [color]}); if (color[3] >= 1) break; }
    }
    let below = [[255, 255, 255, 1]];  // the canvas under a page with no background of its own
    for (const layer of layers.reverse()) below = below.flatMap((b) => layer.stops.map((s) => over(s, b)));
    return below;
  };
  const opacity = (el) => { let o = 1; for (let n = el; n; n = n.parentElement) o *= Number(getComputedStyle(n).opacity); return o; };
  const shown = (el) => {
    if (!el.checkVisibility({opacityProperty: true, visibilityProperty: true})) return false;
    const r = el.getBoundingClientRect();
    return r.width > 1 && r.height > 1;
  };
  const name = (el) => {
    const parts = [];
    for (let n = el; n && parts.length < 4; n = n.parentElement) {
      parts.unshift(n.tagName.toLowerCase() + (n.id ? '#' + n.id : '') + [...n.classList].slice(0, 2).map((c) => '.' + c).join(''));
      if (n.id) break;
    }
    return parts.join(' > ');
  };
  const measure = (el, text, color, cs) => {
    const fg = rgba(color);
    const size = parseFloat(cs.fontSize), bold = Number(cs.fontWeight) >= 700;
    const bgs = backgrounds(el);
    const worst = Math.min(...bgs.map((bg) => ratio(over([fg[0], fg[1], fg[2], fg[3] * opacity(el)], bg), bg)));
    const large = size >= 24 || (bold && size >= 18.66);
    return {text: text.trim().replace(/\s+/g, ' ').slice(0, 40), where: name(el), color, size,
      background: bgs.map((b) => `rgb(${b.slice(0, 3).map(Math.round).join(',')})`).join(' | '),
      ratio: Math.round(worst * 100) / 100, need: large ? 3.0 : 4.5};
  };
  const root = document.querySelector('.gradio-container') || document.body;
  const out = [];
  for (const el of root.querySelectorAll('*')) {
    if (el.closest('.js-plotly-plot') || !shown(el)) continue;
    const cs = getComputedStyle(el);
    const own = [...el.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim()).map((n) => n.textContent).join(' ');
    if (own) out.push(measure(el, own, cs.color, cs));
    if (el.matches('textarea, input:not([type=checkbox], [type=radio], [type=range], [type=color], [type=file])')) {
      if (el.value.trim()) out.push(measure(el, el.value, cs.color, cs));
      else if (el.placeholder) out.push(measure(el, el.placeholder, getComputedStyle(el, '::placeholder').color, cs));
    }
  }
  return out;
}"""


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    with serve("bundled") as (_, url):
        yield url


def open_page(browser: Any, url: str) -> Any:
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    expect()(page.locator("#ae-status")).to_contain_text(re.compile("Analyzed"), timeout=T)
    page.wait_for_function("() => !!document.querySelector('#ae-overview .ae-hm[data-kind=overview]')")
    page.ae_errors = errors
    return page


def switch_on(page: Any, toggles: tuple[str, ...]) -> None:
    """Tick the lecture bar's checkboxes, as a person does, and wait for the page to follow."""
    for toggle in toggles:
        page.locator(f"{toggle} input").check()
    page.wait_for_function(
        "([dark, lecture]) => document.body.classList.contains('dark') === dark"
        " && document.body.classList.contains('ae-lecture') === lecture"
        " && document.documentElement.classList.contains('ae-lecture') === lecture",
        arg=["#ae-dark" in toggles, "#ae-lecture" in toggles],
    )
    page.wait_for_timeout(300)  # transitions (Gradio's colours ease in) have settled


def failures(page: Any) -> tuple[int, list[dict]]:
    texts = page.evaluate(CONTRAST_JS)
    bad = sorted((t for t in texts if t["ratio"] < t["need"]), key=lambda t: t["ratio"] / t["need"])
    return len(texts), bad


def report(bad: list[dict]) -> str:
    return "\n".join(
        f"{t['ratio']:5.2f} < {t['need']} {t['text']!r} at {t['where']}: {t['color']} on {t['background']}"
        f" ({t['size']:g}px)"
        for t in bad[:25]
    )


@pytest.mark.parametrize("mode", list(MODES))
def test_every_text_reaches_wcag_aa_contrast(browser: Any, app_url: str, mode: str) -> None:
    page = open_page(browser, app_url)
    page.locator("#ae-model summary").click()  # the model's note (grey text) unfolds
    expect()(page.locator("#ae-model details")).to_have_attribute("open", "")
    switch_on(page, MODES[mode])
    measured, bad = failures(page)
    screenshot(page, f"contrast-{mode}-heads", full_page=False)
    assert measured > 30 and not bad, (
        f"Attention heads, {mode}: {len(bad)} of {measured} texts\n{report(bad)}"
    )

    page.get_by_role("tab", name="Generate").click()
    page.locator("#ae-step").click()
    expect()(page.locator("#ae-gen-text .ae-gen")).to_have_count(1, timeout=T)
    page.wait_for_timeout(500)
    measured, bad = failures(page)
    screenshot(page, f"contrast-{mode}-generate", full_page=False)
    assert measured > 30 and not bad, f"Generate, {mode}: {len(bad)} of {measured} texts\n{report(bad)}"
    errors = page.ae_errors
    page.context.close()
    assert not errors, errors
