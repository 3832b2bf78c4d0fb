"""The first impression, as a new user meets it in Chromium (a fresh browser context each time, the
server warm with its model loaded): page open → the example's first analysis drawn; Analyze →
the overview and the head detail drawn; a tile click and a token click → the head redrawn.

For each path: the median time, the server events it fired (queue joins), the bytes the page
received, the longest main-thread task (Long Tasks API) and a breakdown: until the page's
script ran, until its first queue join, until the reply was in, until drawn.

    python -m bench --only firstlook      (or python -m bench.firstlook for the table alone)
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

from bench.browser import EXPLORER_DRAWN, IDLE, MARK_DRAWN, NOT_LOCAL, chromium
from bench.common import Row, Settings, fmt_bytes, fmt_s, prompt

OPEN_GOAL_S = 3.0
ANALYZE_GOAL_S = 0.6  # bundled model, 32 tokens
CLICK_GOAL_S = 0.3
FORWARD_MARGIN_S = 0.4  # a GPT-2-small-sized model: Analyze within the forward pass + this

# Every main-thread task over 50 ms, from before the page's own scripts run.
LONG_TASKS = """
window.__aeLong = [];
new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__aeLong.push(e.duration); })
  .observe({type: 'longtask', buffered: true});
"""
DETAIL_DRAWN = """() => {
  const r = document.querySelector('#ae-detail .ae-hm');
  return !!r && Number(r.dataset.drawn || 0) > (window.__aeBefore || [])[1];
}"""
# A click at the centre of the tile of layer 1, head 1, where the page shows it.
CLICK_TILE = """() => {
  const r = document.querySelector('#ae-overview .ae-hm'), [x, y] = r.aePoint(1, 1);
  r.querySelector('canvas').dispatchEvent(new MouseEvent('click', {clientX: x, clientY: y, bubbles: true}));
}"""


# Click → drawn, timed in the page (performance.now()): `act` (a function's source) runs at t0, then
# each animation frame checks `drawn`, and one more frame lets it paint. Playwright's own round
# trips (its click's actionability checks, each wait's polling) are not a user's wait.
TIMED = """async ({act, drawn}) => {
  const fn = (src) => new Function('return (\\n' + src + '\\n)()');
  const isDrawn = fn(drawn), frame = () => new Promise((r) => requestAnimationFrame(r));
  const t0 = performance.now();
  fn(act)();
  while (!isDrawn()) await frame();
  await frame(); await frame();
  return (performance.now() - t0) / 1000;
}"""
# Page open, timed in the page too: from navigation start (performance's time origin) to the
# frame after both figures are first drawn, polled each animation frame from the first script.
OPEN_TIMER = """
window.__aeBefore = [];
(() => { const poll = () => { try { if ((%s)()) { requestAnimationFrame(() => requestAnimationFrame(() => {
  window.__aeOpenDrawn = performance.now() / 1000; })); return; } } catch (e) {} requestAnimationFrame(poll); };
  requestAnimationFrame(poll); })();
"""


class Traffic:
    """Queue joins and bytes received by one page, counted from a mark.

    Bytes come from Chromium's own network events (DevTools Network.dataReceived, the encoded
    length of each chunk as it arrives): Gradio streams every reply of a page down one
    long-lived /queue/data response, whose size Playwright reports only when it ends."""

    def __init__(self, page: Any) -> None:
        self.joins: list[float] = []
        self.bytes = 0
        self.first_reply: float | None = None
        self._streams: set[str] = set()
        page.on("request", self._request)
        cdp = page.context.new_cdp_session(page)
        cdp.on("Network.requestWillBeSent", self._sent)
        cdp.on("Network.dataReceived", self._data)
        cdp.send("Network.enable")
        self._cdp = cdp

    def mark(self) -> None:
        self.joins, self.bytes, self.first_reply = [], 0, None

    def _request(self, request: Any) -> None:
        if "/gradio_api/queue/join" in request.url:
            self.joins.append(time.perf_counter())

    def _sent(self, event: dict[str, Any]) -> None:
        if "/queue/data" in event.get("request", {}).get("url", ""):
            self._streams.add(event["requestId"])

    def _data(self, event: dict[str, Any]) -> None:
        self.bytes += int(event.get("encodedDataLength") or event.get("dataLength") or 0)
        if event.get("requestId") in self._streams and self.first_reply is None and self.joins:
            self.first_reply = time.perf_counter()


def longest_task(page: Any) -> float:
    return float(page.evaluate("() => Math.max(0, ...(window.__aeLong || []))")) / 1000


def settle(page: Any, timeout_s: float) -> None:
    page.wait_for_function(IDLE, polling="raf", timeout=timeout_s * 1000)
    page.wait_for_timeout(600)  # events chained after the drawn ones (a hidden tab's, say)
    page.wait_for_function(IDLE, polling="raf", timeout=timeout_s * 1000)


def open_page(browser: Any, url: str, timeout_s: float = 120) -> dict[str, Any]:
    """A fresh context: navigation → the example prompt's overview and head detail drawn."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_init_script(LONG_TASKS)
    page = context.new_page()
    page.route(NOT_LOCAL, lambda route: route.abort())
    traffic = Traffic(page)
    page.add_init_script(OPEN_TIMER % EXPLORER_DRAWN)
    start = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_function(
        "() => window.__aeOpenDrawn !== undefined", polling="raf", timeout=timeout_s * 1000
    )
    drawn = float(page.evaluate("() => window.__aeOpenDrawn"))
    first_join = traffic.joins[0] - start if traffic.joins else None
    settle(page, timeout_s)
    return {
        "context": context,
        "page": page,
        "traffic": traffic,
        "seconds": drawn,
        "first_join": first_join,
        "events": len(traffic.joins),
        "bytes": traffic.bytes,
        "long": longest_task(page),
    }


def timed_path(
    page: Any, traffic: Traffic, act: str, drawn_js: str, timeout_s: float = 120
) -> dict[str, Any]:
    page.evaluate("() => { window.__aeLong = []; }")
    page.evaluate(MARK_DRAWN)
    traffic.mark()
    start = time.perf_counter()
    seconds = float(page.evaluate(TIMED, {"act": act, "drawn": drawn_js}))
    reply = traffic.first_reply - start if traffic.first_reply else None
    settle(page, timeout_s)
    return {
        "seconds": seconds,
        "reply": reply,
        "events": len(traffic.joins),
        "bytes": traffic.bytes,
        "long": longest_task(page),
    }


# The first Plotly tab: plotly.js loads (and is evaluated) only now, when a tab needs it.
OPEN_STEPS = """() => [...document.querySelectorAll('[role=tab]')].find(t => t.textContent.includes('Q/K/V')).click()"""
STEPS_DRAWN = """() => document.querySelectorAll('.ae-step-plot .js-plotly-plot .main-svg').length >= 5"""


def user_paths(page: Any, traffic: Traffic, text: str) -> dict[str, dict[str, Any]]:
    """On an opened, settled page: Analyze, then a tile click, then a token click, then the
    first open of a tab drawn with Plotly (Q/K/V step by step)."""

    page.locator("#ae-prompt textarea").fill(text)  # typing is the user's time, not the wait
    settle(page, 120)
    click = "() => document.querySelector('%s').click()"
    return {
        "analyze": timed_path(page, traffic, click % "#ae-analyze", EXPLORER_DRAWN),
        "tile": timed_path(page, traffic, CLICK_TILE, DETAIL_DRAWN),
        "token": timed_path(page, traffic, click % '#ae-tokens [data-pos="2"]', DETAIL_DRAWN),
        "steps": timed_path(page, traffic, OPEN_STEPS, STEPS_DRAWN),
    }


def measure(url: str, text: str, repeats: int) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"open": [], "analyze": [], "tile": [], "token": [], "steps": []}
    with chromium() as browser:
        for _ in range(repeats):
            opened = open_page(browser, url)
            out["open"].append({k: v for k, v in opened.items() if k not in ("context", "page", "traffic")})
            for key, run in user_paths(opened["page"], opened["traffic"], text).items():
                out[key].append(run)
            opened["context"].close()
    return out


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def path_rows(
    label: str, runs: dict[str, list[dict[str, Any]]], goals: dict[str, float], model: str
) -> list[Row]:
    names = {
        "open": "page open (fresh context, warm server) → first analysis drawn",
        "analyze": f"Analyze ({label}) → overview + head detail drawn",
        "tile": "overview tile click → head redrawn",
        "token": "token click → head redrawn",
        "steps": "first open of a Plotly tab (Q/K/V step by step) → its figures drawn (info)",
    }
    rows = []
    for key, name in names.items():
        if not runs[key]:
            continue
        seconds = _median(runs[key], "seconds")
        split = (
            f"first server event at {fmt_s(_median(runs[key], 'first_join'))}"
            if key == "open"
            else f"reply starts at {fmt_s(_median(runs[key], 'reply'))}"
        )
        note = (
            f"{model}; {_median(runs[key], 'events'):.0f} server events, "
            f"{fmt_bytes(_median(runs[key], 'bytes'))} received, longest main-thread task "
            f"{fmt_s(_median(runs[key], 'long'))}; {split}"
        )
        goal = goals.get(key)
        rows.append(
            Row(
                name,
                label,
                fmt_s(seconds),
                "—",
                "—",
                f"≤ {fmt_s(goal)}" if goal else "—",
                None if goal is None or seconds is None else seconds <= goal,
                note,
            )
        )
    return rows


def rows(settings: Settings, small: Any | None = None) -> list[Row]:
    """The bundled model at 32 tokens, and (given) the GPT-2-small-sized one at 32 and 128."""
    from bench.browser import bare_forward_s
    from bench.wire import served
    from explorer import load_model

    repeats = 2 if settings.quick else 3
    out: list[Row] = []
    bundled = load_model("bundled", device="cpu")
    with served(bundled) as app:
        runs = measure(app.url, prompt(bundled.tokenizer, 32), repeats)
        goals = {"open": OPEN_GOAL_S, "analyze": ANALYZE_GOAL_S, "tile": CLICK_GOAL_S, "token": CLICK_GOAL_S}
        out += path_rows("32 tokens", runs, goals, "bundled model")
    if small is not None:
        with served(small) as app:
            for n in (32, 128):
                text = prompt(small.tokenizer, n)
                forward = bare_forward_s(small, text)
                runs = measure(app.url, text, repeats)
                runs = {"analyze": runs["analyze"], "open": [], "tile": [], "token": [], "steps": []}
                goal = {"analyze": forward + FORWARD_MARGIN_S}
                out += path_rows(f"{n} tokens", runs, goal, f"GPT-2-small-sized, forward {fmt_s(forward)}")
    return out


if __name__ == "__main__":
    from bench.common import markdown

    print(markdown(rows(Settings(quick="--quick" in sys.argv))))
