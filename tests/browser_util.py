"""Serving the app on a free local port, reading its outputs, and driving Chromium through Playwright."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CHROMIUM = Path(os.environ.get("EXPLORER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-output" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def patient_url_ok(url: str, wait_s: float = 90.0) -> bool:
    """gradio's start-up check gives a busy machine 3 s; CI machines can be slower than that."""
    import httpx

    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            if httpx.head(url, timeout=15).status_code < 400:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


@contextmanager
def serve(model: str | None = None, **build: Any) -> Iterator[tuple[Any, str]]:
    """Build and launch the app in this process (its own server thread); yields (demo, url)."""
    import gradio.networking

    from explorer.ui import build_app, launch

    demo = build_app(model=model, device="cpu", **build)
    port = free_port()
    original, gradio.networking.url_ok = gradio.networking.url_ok, patient_url_ok
    try:
        launch(demo, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    finally:
        gradio.networking.url_ok = original
    try:
        yield demo, f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def plot(value: dict) -> dict:
    """A gr.Plot output as gradio_client returns it: {"type": "plotly", "plot": json} -> the figure."""
    assert value["type"] == "plotly"
    return dict(json.loads(value["plot"]))


def heatmap(value: dict) -> dict:
    """A canvas heatmap output (figures/grid.py payload) as gradio_client returns it, an update or the value."""
    payload = value.get("value", value) if value.get("__type__") == "update" else value
    assert payload.get("kind") in ("overview", "head"), payload
    return dict(payload)


def heatmap_drawn(page: Any, selector: str, timeout_ms: float = 60_000, after: int = 0) -> int:
    """Wait until the canvas heatmap under `selector` has drawn a payload (its draw count past `after`)."""
    page.wait_for_function(
        """([sel, after]) => { const r = document.querySelector(sel + ' .ae-hm');
            return !!r && !!r.dataset.kind && Number(r.dataset.drawn || 0) > after; }""",
        [selector, after],
        timeout=timeout_ms,
    )
    return int(page.evaluate(f"() => Number(document.querySelector('{selector} .ae-hm').dataset.drawn)"))


def heatmap_point(page: Any, selector: str, a: int, b: int) -> tuple[float, float]:
    """Viewport coordinates of tile (layer a, head b) of an overview, or cell (query a, key b) of a head."""
    page.locator(selector).scroll_into_view_if_needed()
    point = page.evaluate(f"([a, b]) => document.querySelector('{selector} .ae-hm').aePoint(a, b)", [a, b])
    assert point, f"{selector} has not drawn"
    return float(point[0]), float(point[1])


def click_heatmap(page: Any, selector: str, a: int, b: int) -> None:
    x, y = heatmap_point(page, selector, a, b)
    page.mouse.click(x, y)


def array(value: list | dict) -> np.ndarray:
    """A Plotly array: a plain (nested) list, or the base64 typed-array form {dtype, bdata, shape}."""
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = [int(n) for n in str(value.get("shape", len(flat))).split(",")]
        return flat.reshape(shape)
    return np.asarray(value, dtype=float)


def expect() -> Any:
    """Playwright's `expect`, or skip where Playwright is not installed."""
    return pytest.importorskip("playwright.sync_api").expect


def require_chromium() -> str:
    """The Chromium binary, or skip (fail under CI, where a missing browser is a broken setup)."""
    path = CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")
    if not path:
        message = f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return str(path)


def screenshot(page: Any, name: str, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def plot_point(page: Any, selector: str, x: float, y: float) -> tuple[float, float]:
    """Page pixel coordinates of data point (x, y) in the Plotly plot under `selector`."""
    return tuple(
        page.evaluate(
            """([sel, x, y]) => {
                const gd = document.querySelector(sel + ' .js-plotly-plot');
                const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
                const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
                return [box.left + xa.l2p(x), box.top + ya.l2p(y)];
            }""",
            [selector, x, y],
        )
    )


def click_at(page: Any, x: float, y: float) -> None:
    """Hover, then click: Plotly reports a click on the point it last hovered."""
    page.mouse.move(x, y)
    page.wait_for_timeout(250)
    page.mouse.down()
    page.mouse.up()


def click_plot(page: Any, selector: str, x: float, y: float) -> None:
    page.locator(selector).scroll_into_view_if_needed()
    px, py = plot_point(page, selector, x, y)
    click_at(page, px, py)


def plot_json(page: Any, selector: str) -> dict:
    """The data and layout Plotly drew, as plain JSON."""
    return page.evaluate(
        """(sel) => {
            const gd = document.querySelector(sel + ' .js-plotly-plot');
            if (!gd || !gd.data) return null;
            // _fullData: Plotly has decoded the base64 typed arrays there.
            return JSON.parse(JSON.stringify({data: gd._fullData.map(t => ({type: t.type, name: t.name,
                customdata: t.customdata ? Array.from(t.customdata) : null})),
                title: gd.layout.title && gd.layout.title.text}));
        }""",
        selector,
    )
