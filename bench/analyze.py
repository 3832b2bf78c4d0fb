"""Analyze: server time against the bare forward pass, and the bytes the browser is sent
against bertviz's model_view.

The goal's candidate is the issue's list, done with the app's own code in this process:
tokenize, the forward pass with capture (`analyze`), the overview and one head's canvas payload
(`explorer.figures.grid.analysis_overview_grid` and `head_detail_grid`, as the Analyze event builds
them) and their JSON. The app's whole `analyze` event over HTTP, which also fills the
step-by-step panels and goes through Gradio's queue and event stream, is timed alongside as
information. The baseline is `model(ids, output_attentions=True)` on the same model and tokens,
in the same process; the three alternate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.bertviz_ref import model_view_html
from bench.common import (
    RESULTS_DIR,
    Row,
    Settings,
    fmt_bytes,
    fmt_ratio,
    fmt_s,
    interleave,
    prompt,
)
from bench.wire import Browserlike, Reply, Served, plot_of

ANALYZE_GOAL = 1.3
BERTVIZ_SIZES = (32, 128, 256)  # larger pages take GBs: extrapolated ∝ tokens² instead
BYTES_SIZES = (32, 128, 256, 512, 1024)


def overview_goal(n_tokens: int) -> float:
    return 1e6 if n_tokens <= 256 else 2e6


def time_rows(settings: Settings, loaded: Any, served: Served) -> tuple[list[Row], dict[int, Reply]]:
    import json

    import torch

    from explorer.figures.grid import analysis_overview_grid as overview
    from explorer.figures.grid import head_detail_grid as detail
    from explorer.model.capture import analyze

    tab = Browserlike(served.url)
    replies: dict[int, Reply] = {}
    rows = []
    for n in settings.sizes:
        text = prompt(loaded.tokenizer, n)
        ids = torch.tensor([loaded.tokenizer(text)["input_ids"]])

        def bare(ids: Any = ids) -> None:
            with torch.inference_mode():
                loaded.model(ids, output_attentions=True)

        def server(text: str = text) -> None:
            analysis = analyze(loaded, text)
            json.dumps(overview(analysis))
            json.dumps(detail(analysis, 0, 0, analysis.n_pos - 1)[0])

        def http(n: int = n, text: str = text) -> None:
            replies[n] = tab.call("analyze", {"ae-prompt": text})

        runs: dict[str, Callable[[], object]] = {"bare": bare, "server": server, "http": http}
        t = interleave(runs, settings.repeats(n), warmup=1 if n <= 128 else 0)
        ratio = t["server"].cpu / t["bare"].cpu
        size = f"{n} tokens"
        rows += [
            Row(
                "analyze, server side: tokenize, forward + capture, overview, one head (CPU time)",
                size,
                fmt_s(t["server"].cpu),
                fmt_s(t["bare"].cpu),
                fmt_ratio(ratio),
                f"≤ {ANALYZE_GOAL}×",
                ratio <= ANALYZE_GOAL,
                f"wall clock {fmt_s(t['server'].wall)} vs {fmt_s(t['bare'].wall)}: "
                f"{fmt_ratio(t['server'].wall / t['bare'].wall)}",
            ),
            Row(
                "analyze event over HTTP, every panel, wall clock (info)",
                size,
                fmt_s(t["http"].wall),
                fmt_s(t["bare"].wall),
                fmt_ratio(t["http"].wall / t["bare"].wall),
                "—",
                None,
            ),
        ]
    tab.close()
    return rows, replies


def bytes_rows(settings: Settings, loaded: Any, served: Served, replies: dict[int, Reply]) -> list[Row]:
    tab = Browserlike(served.url)
    sizes = sorted(set(BYTES_SIZES) | set(settings.sizes))
    bertviz: dict[int, int] = {}
    html_dir = RESULTS_DIR / "cache" / "bertviz-html"
    html_dir.mkdir(parents=True, exist_ok=True)
    largest = max(n for n in BERTVIZ_SIZES if not settings.quick or n <= 128)
    for n in sizes:
        if n <= largest:
            html = model_view_html(loaded, prompt(loaded.tokenizer, n))
            bertviz[n] = len(html.encode())
            (html_dir / f"model_view-{n}.html").write_text(html)
            del html
    rows = []
    for n in sizes:
        reply = replies.get(n) or tab.call("analyze", {"ae-prompt": prompt(loaded.tokenizer, n)})
        found = plot_of(reply, "attention-overview")
        ours = found[1] if found else None
        measured = n in bertviz
        base = bertviz[n] if measured else bertviz[largest] * (n / largest) ** 2
        goal = overview_goal(n)
        note = (
            ""
            if measured
            else f"bertviz not run (too big): {fmt_bytes(base)} extrapolated ∝ tokens² from {largest}"
        )
        rows.append(
            Row(
                "overview bytes sent to the browser",
                f"{n} tokens",
                fmt_bytes(ours),
                fmt_bytes(base) + ("" if measured else " (est.)"),
                fmt_ratio(ours / base) if ours else "—",
                f"≤ {fmt_bytes(goal)}",
                None if ours is None else ours <= goal,
                note if ours else "no overview figure in the analyze reply",
            )
        )
        rows.append(
            Row(
                "analyze reply, every panel (info)",
                f"{n} tokens",
                fmt_bytes(reply.stream_bytes),
                fmt_bytes(base) + ("" if measured else " (est.)"),
                fmt_ratio(reply.stream_bytes / base),
                "—",
                None,
            )
        )
    tab.close()
    return rows
