"""Run in Chromium: tokens per second drawn against the server's, the longest main-thread task
while the Run streams (Long Tasks API), and Stop latency (the click → the last token drawn, and
how many tokens the server made after the click), at 32 and 512 tokens of context, on the
bundled model and on the GPT-2-small-sized one. Each figure is from one page per model.

"Drawn" is the page's own count of the tokens it put on screen (run_stream.js): frames carry
every token since the last, so a token is drawn or deliberately coalesced, never dropped.
"""

from __future__ import annotations

import re
import time
from typing import Any

from bench.browser import NOT_LOCAL
from bench.common import Row, Settings, fmt_s, prompt

RUN_TOKENS = 100  # a Run's length for the rate and the longest task
STOP_RUN = 200  # a Run's length for Stop, stopped a second in
LONG_TASK_GOAL_MS = 100
STOP_GOAL_S = 0.5
RATE_GOAL = 0.95
T = 600_000  # ms

OBSERVE = """() => { window.__aeLong = [];
  new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__aeLong.push([e.startTime, e.duration]); })
    .observe({type: 'longtask'}); }"""
ENDED = "() => !document.documentElement.dataset.aeRunning"
# The Run's end drawn too: its last figures in their plots, the canvases gone.
SETTLED = "() => !document.documentElement.dataset.aeRunning && !document.querySelector('canvas.ae-live')"
DRAWN = "() => Number(document.documentElement.dataset.aeRunDrawn || 0)"
# The click, and then the moment the page's token count last changed, in page time.
STOP = """async () => {
  const count = () => document.querySelectorAll('#ae-gen-text .ae-gen').length;
  const clickAt = performance.now(), clickWall = Date.now();
  document.getElementById('ae-stop').click();
  let last = count(), lastAt = clickAt;
  while (document.documentElement.dataset.aeRunning) {
    await new Promise((r) => requestAnimationFrame(r));
    if (count() !== last) { last = count(); lastAt = performance.now(); }
  }
  const end = performance.now() + 1500;
  while (performance.now() < end) {
    await new Promise((r) => requestAnimationFrame(r));
    if (count() !== last) { last = count(); lastAt = performance.now(); }
  }
  return {seconds: (lastAt - clickAt) / 1000, atStop: window.aeRun.drawnAtStop, shown: last,
          stopHandled: (window.aeRun.stopAt - clickAt) / 1000, clickWall: clickWall / 1000};
}"""


def _session(demo: Any, text: str) -> Any:
    for state in list(demo.state_holder.session_data.values()):
        for value in list(state.state_data.values()):
            if getattr(value, "gen_prompt", None) == text and getattr(value, "generation", None) is not None:
                return value
    return None


def _server_count(demo: Any, text: str) -> int:
    session = _session(demo, text)
    return len(session.generation.generated) if session is not None else 0


def _open(page: Any, url: str, text: str, n: int) -> None:
    page.goto(url)
    page.wait_for_selector("#ae-status:has-text('Analyzed')", timeout=T)
    page.locator("#ae-prompt textarea").fill(text)
    page.get_by_role("tab", name="Generate").click()
    box = page.locator("#ae-n input[type=number]")
    box.fill(str(n))
    box.press("Enter")
    page.locator("#ae-step").click()  # the plots exist before the Run: it updates them in place
    page.wait_for_selector("#ae-dist:has-text('Step 1:')", timeout=T)


def measure(page: Any, demo: Any, url: str, text: str) -> dict[str, float]:
    """One Run of RUN_TOKENS to its end, then one of STOP_RUN stopped a second in."""
    _open(page, url, text, RUN_TOKENS)
    page.evaluate(OBSERVE)
    start, base = time.perf_counter(), _server_count(demo, text)
    page.locator("#ae-run").click()
    page.wait_for_function(SETTLED, timeout=T)
    made = _server_count(demo, text) - base
    run = page.evaluate(
        "() => ({seconds: (window.aeRun.lastDrawn - window.aeRun.started) / 1000, "
        "frames: window.aeRun.frames, drawn: window.aeRun.drawn})"
    )
    # The server's own rate, from its last frame's line ("Run: 100 tokens in 3.3 s (30.6 tokens/s), …").
    said = re.search(r"\(([\d.]+) tokens/s\)", page.locator("#ae-run-stream").inner_text())
    server_rate = float(said.group(1)) if said else made / (time.perf_counter() - start)
    # The click (Gradio's own dispatch of the event, before any frame), while it streamed (tasks
    # that ended after the first frame arrived and began before the last was drawn), and the Run's
    # end (its last reply, and the full figures drawn into the plots one per task).
    tasks = page.evaluate(
        "() => window.__aeLong.map(([t, d]) => [t + d < window.aeRun.firstDrawn ? 'click'"
        " : t <= window.aeRun.lastDrawn ? 'streaming' : 'end', d])"
    )
    longest = max((d for when, d in tasks if when == "streaming"), default=0.0)
    longest_end = max((d for when, d in tasks if when == "end"), default=0.0)
    longest_click = max((d for when, d in tasks if when == "click"), default=0.0)
    box = page.locator("#ae-n input[type=number]")
    box.fill(str(STOP_RUN))
    box.press("Enter")
    page.locator("#ae-run").click()
    page.wait_for_timeout(1000)
    before = _server_count(demo, text)
    stop = page.evaluate(STOP)
    after = _server_count(demo, text)
    seen = getattr(_session(demo, text), "app_run_marks", None)
    seen_at, seen_count = (
        seen.stop_seen if seen is not None and seen.stop_seen else (stop["clickWall"], before)
    )
    return {
        "server_rate": server_rate,
        "drawn_rate": run["drawn"] / max(run["seconds"], 1e-6),
        "drawn": run["drawn"],
        "made": made,
        "frames": run["frames"],
        "longest_ms": longest,
        "longest_end_ms": longest_end,
        "longest_click_ms": longest_click,
        "stop_s": stop["seconds"],
        "stop_handled_s": stop["stopHandled"],
        "after_click": after - before,
        "after_seen": after - seen_count,
        "seen_s": seen_at - stop["clickWall"],
        "coalesced": run["drawn"] + 8 >= made and run["frames"] <= 20 * run["seconds"] + 2,
    }


def rows(settings: Settings, models: dict[str, tuple[Any, Any, str]]) -> list[Row]:
    """`models`: name → (loaded, demo, url) of an app already serving it."""
    from bench.browser import chromium

    out = []
    with chromium() as browser:
        for name, (loaded, demo, url) in models.items():
            for n in (32, 512):
                if n + STOP_RUN + RUN_TOKENS + 2 > loaded.n_ctx:
                    continue
                context = browser.new_context(viewport={"width": 1440, "height": 900})
                page = context.new_page()
                page.route(NOT_LOCAL, lambda route: route.abort())
                m = measure(page, demo, url, prompt(loaded.tokenizer, n))
                context.close()
                out += _rows(name, n, m)
    return out


def _rows(name: str, n: int, m: dict[str, float]) -> list[Row]:
    size = f"{name}, {n} tokens"
    ratio = m["drawn_rate"] / m["server_rate"]
    coalesced = f"{m['made']:.0f} tokens in {m['frames']:.0f} updates"
    return [
        Row(
            "Run in Chromium: tokens/s drawn vs the server's",
            size,
            f"{m['drawn_rate']:.1f}/s",
            f"{m['server_rate']:.1f}/s",
            f"{ratio:.2f}×",
            f"≥ {RATE_GOAL:.2f}× (or coalesced)",
            ratio >= RATE_GOAL or bool(m["coalesced"]),
            f"{coalesced} (at most 20 a second, by design); {m['drawn']:.0f} drawn by the frames, "
            "the rest by the Run's last reply",
        ),
        Row(
            "Run in Chromium: longest main-thread task",
            size,
            f"{m['longest_ms']:.0f} ms" if m["longest_ms"] else "no task ≥ 50 ms",
            "—",
            "—",
            f"≤ {LONG_TASK_GOAL_MS} ms",
            m["longest_ms"] <= LONG_TASK_GOAL_MS,
            f"while it streamed (first frame to last); the click before it (Gradio's dispatch of "
            f"the event): {m['longest_click_ms']:.0f} ms; the Run's end (the last reply, then the "
            f"full figures drawn into the plots one per task): {m['longest_end_ms']:.0f} ms",
        ),
        Row(
            "Run in Chromium: Stop, click → last token drawn",
            size,
            fmt_s(m["stop_s"]),
            "—",
            "—",
            f"≤ {fmt_s(STOP_GOAL_S)}",
            m["stop_s"] <= STOP_GOAL_S,
            f"the Stop reached the server {fmt_s(m['seen_s'])} after the click and it made "
            f"{m['after_seen']:.0f} more tokens ({m['after_click']:.0f} counted from before the click); "
            f"the page stopped drawing {fmt_s(m['stop_handled_s'])} after",
        ),
    ]
