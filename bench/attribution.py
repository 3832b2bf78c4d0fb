"""Direct logit attribution: `logit_attribution` at the last position against `analyze`, the
forward pass with capture it reads from, on the same model and prompt in the same process.

The attribution only reads the captured arrays for one position (plus one [vocab] row of
logits and each layer's W_O times one direction), so it should cost a small fraction of the
pass that captured them. The three figures a tab would draw from it are timed alongside as
information.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.common import Row, Settings, fmt_ratio, fmt_s, interleave, prompt

GOAL = 0.3
SIZES = (128, 1024)  # the lengths


def rows(settings: Settings, loaded: Any) -> list[Row]:
    from explorer.analysis.attribution import attribute
    from explorer.figures import attribution_bars_figure, attribution_flow_figure, attribution_heads_figure
    from explorer.model.capture import analyze

    out = []
    # The lengths among those asked for; any other --sizes (a quick check) as given.
    for n in [n for n in SIZES if n in settings.sizes] or list(settings.sizes):
        text = prompt(loaded.tokenizer, n)
        analysis = analyze(loaded, text)

        def attribution(analysis: Any = analysis) -> None:
            attribute(analysis)

        def with_figures(analysis: Any = analysis) -> None:
            r = attribute(analysis)
            attribution_heads_figure(r.parts, r.token).to_json()
            attribution_bars_figure(r.parts, r.token).to_json()
            attribution_flow_figure(r.sources, analysis.tokens, r.position, parts=r.parts).to_json()

        runs: dict[str, Callable[[], object]] = {
            "analyze": lambda text=text: analyze(loaded, text),
            "attribution": attribution,
            "figures": with_figures,
        }
        t = interleave(runs, settings.repeats(n), warmup=1 if n <= 128 else 0)
        ratio = t["attribution"].cpu / t["analyze"].cpu
        size = f"{n} tokens"
        out += [
            Row(
                "logit attribution at the last position vs analyze (CPU time)",
                size,
                fmt_s(t["attribution"].cpu),
                fmt_s(t["analyze"].cpu),
                fmt_ratio(ratio),
                f"≤ {GOAL}×",
                ratio <= GOAL,
                f"wall clock {fmt_s(t['attribution'].wall)} vs {fmt_s(t['analyze'].wall)}",
            ),
            Row(
                "logit attribution and its three figures as JSON vs analyze (info)",
                size,
                fmt_s(t["figures"].cpu),
                fmt_s(t["analyze"].cpu),
                fmt_ratio(t["figures"].cpu / t["analyze"].cpu),
                "—",
                None,
            ),
        ]
    return out
