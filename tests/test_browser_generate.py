"""Run as a person watches it, in Chromium: Stop (button or Space) ends a Run within a token or two,
the server stops too, the page keeps up with bounded main-thread tasks, and a setting typed out of
range gets a readable message while the chart and the previous settings stay.

The tight figures (longest task ≤ 100 ms, Stop ≤ 0.5 s) belong to `python -m bench --only run`;
these bounds are generous, for a busy CI machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_util import expect, plot_json, screenshot, serve

pytestmark = pytest.mark.browser
T = 120_000  # ms
LONG_TASK_BOUND_MS = 600  # generous: the goal is 100 ms on a quiet machine (see bench/run.py)
# Pixels of the plots' first colour (#0072B2) on a panel's live canvas: its bars or line are drawn.
DRAWN_PIXELS = """(sel) => { const c = document.querySelector(sel + ' > canvas.ae-live'); if (!c) return -1;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] < 20 && Math.abs(d[i + 1] - 114) < 20 && Math.abs(d[i + 2] - 178) < 20) n++;
  return n; }"""
LONG_TASKS = """() => { window.__aeLong = [];
  new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__aeLong.push([e.startTime, e.duration]); })
    .observe({type: 'longtask'}); }"""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    from conftest import make_tiny_checkpoint

    folder = make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-gpt2-run"), n_positions=512)
    with serve(str(folder)) as served:
        yield served


@pytest.fixture
def page(browser: Any, app: tuple[Any, str]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(T)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app[1])
    expect()(page.locator("#ae-status")).to_contain_text("Analyzed", timeout=T)
    page.locator("#ae-prompt textarea").fill(f"A run of its own {id(page)}")
    page.get_by_role("tab", name="Generate").click()
    yield page
    context.close()
    assert not errors, errors


def server_count(demo: Any, prompt: str) -> int:
    sessions = [
        value
        for state in list(demo.state_holder.session_data.values())
        for value in list(state.state_data.values())
        if type(value).__name__ == "Session" and value.gen_prompt == prompt and value.generation
    ]
    assert len(sessions) == 1
    return len(sessions[0].generation.generated)


def set_number(page: Any, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(value)
    box.press("Enter")


def choose_speed(page: Any, label: str) -> None:
    page.locator("#ae-speed input").click()
    page.get_by_role("option", name=label, exact=True).click()


def wait_drawn(page: Any, n: int) -> None:
    page.wait_for_function(
        f"() => Number(document.documentElement.dataset.aeRunDrawn || 0) >= {n}", timeout=T
    )


def wait_run_end(page: Any) -> None:
    page.wait_for_function("() => !document.documentElement.dataset.aeRunning", timeout=T)


@pytest.mark.parametrize("how", ["button", "space"])
def test_stop_ends_a_run_of_100_within_two_tokens(page: Any, app: tuple[Any, str], how: str) -> None:
    demo, prompt = app[0], page.locator("#ae-prompt textarea").input_value()
    set_number(page, "ae-n", "100")
    choose_speed(page, "2 tokens/s")  # a lecture's pace: a busy machine's Stop still lands in a token
    page.locator("#ae-run").click()
    wait_drawn(page, 3)
    # While it streams, each panel is a canvas over its plot, with its bars (or lines) drawn.
    page.wait_for_function("() => document.querySelectorAll('canvas.ae-live').length === 3", timeout=T)
    for panel in ("#ae-dist", "#ae-gen-attn", "#ae-timeline"):
        assert page.evaluate(DRAWN_PIXELS, panel) > 50, panel
    before = server_count(demo, prompt)
    if how == "button":
        page.locator("#ae-stop").dispatch_event("click")  # no hit-testing: see test_reliability
    else:
        page.locator("body").press(" ")
    wait_run_end(page)
    assert page.evaluate("() => window.aeRun.drawnAtStop") >= 3
    after = server_count(demo, prompt)
    assert before <= after <= before + 2  # the server stopped too, within two tokens of the click
    page.wait_for_timeout(1500)
    assert server_count(demo, prompt) == after  # and nothing kept running
    # The Run's last reply is the full view: every token the server made, the step shown.
    tokens = page.locator("#ae-gen-text .ae-gen")
    expect()(tokens).to_have_count(after, timeout=T)
    expect()(page.locator("#ae-dist")).to_contain_text(f"Step {after}:", timeout=T)
    expect()(page.locator("canvas.ae-live")).to_have_count(0, timeout=T)  # the real figures again
    assert len(plot_json(page, "#ae-timeline")["data"]) == 2
    points = page.evaluate(
        "() => document.querySelector('#ae-timeline .js-plotly-plot')._fullData[0].x.length"
    )
    assert points == after
    screenshot(page, f"gen-run-stopped-{how}")


def test_a_fast_run_keeps_the_page_responsive_and_draws_every_token(page: Any, app: tuple[Any, str]) -> None:
    demo, prompt = app[0], page.locator("#ae-prompt textarea").input_value()
    set_number(page, "ae-n", "100")
    page.locator("#ae-step").click()  # the plots exist: a Run then updates them in place
    expect()(page.locator("#ae-dist")).to_contain_text("Step 1:", timeout=T)
    page.evaluate(LONG_TASKS)
    page.locator("#ae-run").click()
    wait_run_end(page)
    expect()(page.locator("#ae-gen-text .ae-gen")).to_have_count(101, timeout=T)
    assert server_count(demo, prompt) == 101
    run = page.evaluate("() => ({frames: window.aeRun.frames, log: window.aeRun.log})")
    seconds = (page.evaluate("() => performance.now() - window.aeRun.started")) / 1000
    assert 1 <= run["frames"] <= 20 * seconds + 2  # frames at the display's pace, not one per token
    assert {name for name, _, _ in run["log"]} <= {"dist", "attn", "timeline"}
    # While it streamed: up to the last frame drawn (the Run's last reply then draws the full view).
    long_tasks = page.evaluate(
        "() => window.__aeLong.filter(([t]) => t < window.aeRun.lastDrawn).map(([, d]) => d)"
    )
    assert max(long_tasks, default=0) < LONG_TASK_BOUND_MS, sorted(long_tasks)[-5:]
    line = page.locator("#ae-run-stream").inner_text()
    assert line.startswith("Run: 100 tokens in") and "updates" in line


def test_a_setting_out_of_range_is_refused_readably_and_the_chart_stays(page: Any) -> None:
    x = expect()
    assert page.locator("#ae-topk input[type=number]").input_value() == "50"  # generate's default
    x(page.locator("#ae-sampling-note")).to_contain_text("transformers' `generate` defaults".replace("`", ""))
    page.locator("#ae-step").click()
    x(page.locator("#ae-dist")).to_contain_text("Step 1:", timeout=T)
    set_number(page, "ae-temp", "-1")
    x(page.locator("#ae-status")).to_contain_text("Temperature must be a number ≥ 0", timeout=T)
    x(page.locator("#ae-status")).to_contain_text("The previous settings stay.")
    x(page.locator("#ae-temp input[type=number]")).to_have_value("1", timeout=T)
    assert "Step 1:" in page.locator("#ae-dist").inner_text()  # the chart is kept
    assert page.locator("#ae-dist .barlayer .point").count() > 0
    set_number(page, "ae-topk", "0")
    x(page.locator("#ae-dist")).to_contain_text("not chosen yet", timeout=T)
    page.locator("#ae-reset-sampling").click()
    x(page.locator("#ae-status")).to_contain_text("back to their defaults", timeout=T)
    x(page.locator("#ae-topk input[type=number]")).to_have_value("50", timeout=T)
