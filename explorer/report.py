"""One offline report: the overview of every head, the chosen head, its Q/K/V steps and the
generation history in one self-contained HTML file.

It inlines plotly.js from the installed plotly package, so it draws its figures offline, and its
formulas are MathML (explorer/formulas.py), which the browser typesets itself. Every piece of user
text in it goes through `views.esc`; figure JSON is escaped by Plotly itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from explorer import __version__, figures, views
from explorer.analysis import arithmetic
from explorer.analysis.arithmetic import STEPS, Breakdown
from explorer.export import (
    NO_MEAN_STEPS,
    head_pattern,
    history_table,
)
from explorer.model.capture import Analysis
from explorer.model.generation import HistoryItem

REPORT_MAX_POS = 256  # beyond this the report's head figure shows a window of query rows

# --- the offline report ----------------------------------------------------------------------

REPORT_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #0f172a;
  background: #f8fafc; line-height: 1.5; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
h1 { font-size: 1.8rem; margin: 0 0 .3rem; } h2 { margin-top: 2rem; border-bottom: 2px solid #e2e8f0; }
.meta { color: #475569; }
.prompt { white-space: pre-wrap; background: white; border: 1px solid #e2e8f0; border-radius: 8px;
  padding: .6rem .8rem; }
.toks { display: flex; flex-wrap: wrap; gap: 4px; }
.tok { font-family: ui-monospace, Menlo, Consolas, monospace; white-space: pre; border: 1px solid #cbd5e1;
  border-radius: 5px; padding: 0 5px; background: white; }
.tok.sel { background: #B84D00; color: white; border-color: #B84D00; }  /* 5.1:1, as the app's chip */
.tok small { color: #475569; margin-left: 3px; } .tok.sel small { color: #fff3ea; }
.fig { background: white; border: 1px solid #e2e8f0; border-radius: 8px; margin: .8rem 0; }
.ae-step { margin-top: 1.2rem; }
.ae-step-title { font-weight: 700; font-size: 1.1rem; }
.ae-step-n { display: inline-block; min-width: 1.6em; text-align: center; border-radius: 999px;
  background: #4f46e5; color: white; margin-right: .4em; font-size: .85rem; }
.ae-formula { display: block; background: #eef2ff; border-radius: 6px; padding: .3rem .5rem; margin: .3rem 0; }
math.ae-math { display: block; text-align: left; font-size: 1.2em; margin: .3rem 0; }
.ae-badge { display: inline-block; font-size: .8rem; padding: 0 .5rem; border-radius: 999px; background: #e2e8f0; }
.ae-badge.ae-ok { background: #d1fae5; color: #065f46; } .ae-badge.ae-bad { background: #fee2e2; color: #991b1b; }
.ae-step-note { font-size: .85rem; color: #475569; }
table { border-collapse: collapse; font-size: .85rem; margin: .4rem 0; background: white; }
th, td { border: 1px solid #e2e8f0; padding: 2px 8px; text-align: right; }
td:nth-child(2) { font-family: ui-monospace, Menlo, Consolas, monospace; white-space: pre; }
.scroll { overflow-x: auto; }
footer { margin-top: 2rem; color: #64748b; font-size: .85rem; }
"""


def _figure_html(fig: go.Figure, div_id: str) -> str:
    """A figure's div and script; plotly.js itself is inlined once in the page head."""
    html = pio.to_html(
        fig,
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={
            "responsive": True,
            "displaylogo": False,
            "toImageButtonOptions": {"filename": str(fig.layout.meta or div_id)},
        },
    )
    return f'<div class="fig">{html}</div>'


def _table_html(table: pd.DataFrame) -> str:
    return f'<div class="scroll">{table.to_html(index=False, escape=True, border=0)}</div>'


def _tokens_html(analysis: Analysis, query: int) -> str:
    chips = [
        f'<span class="tok{" sel" if i == query else ""}">{views.esc(tok)}<small>{i}</small></span>'
        for i, tok in enumerate(analysis.tokens)
    ]
    return f'<div class="toks">{"".join(chips)}</div>'


def _head_window(n_pos: int, query: int, rows: int = REPORT_MAX_POS) -> tuple[int, int]:
    """Query rows [lo, hi) of the head figure: all of them, or a window around the query."""
    if n_pos <= rows:
        return 0, n_pos
    lo = int(np.clip(query - rows // 2, 0, n_pos - rows))
    return lo, lo + rows


def _analysis_section(analysis: Analysis, layer: int, head: int | None, query: int) -> list[str]:
    """The overview and one head (None: the layer's mean over heads) around the query."""
    lo, hi = _head_window(analysis.n_pos, query)
    if head is None:
        pattern = head_pattern(analysis, layer, None)[lo:hi, :hi]
    else:
        pattern = analysis.pattern[layer, head, lo:hi, :hi]
    detail = figures.head_figure(pattern, list(analysis.tokens[:hi]), layer, head, query)
    detail.update_layout(height=640)
    overview = figures.overview_figure(analysis.pattern)
    overview.update_layout(
        title_text="All heads: layer rows × head columns (each tile: query ↓, key →)",
        height=int(np.clip(150 + 42 * analysis.n_layer, 380, 660)),
    )
    window = "" if (lo, hi) == (0, analysis.n_pos) else f" (query rows {lo}–{hi - 1} of {analysis.n_pos})"
    which = "mean over heads" if head is None else f"head {head}"
    return [
        "<h2>Every head</h2>",
        _figure_html(overview, "ae-report-overview"),
        f"<h2>Layer {layer}, {which}{window}</h2>",
        _figure_html(detail, "ae-report-detail"),
    ]


def _steps_section(bd: Breakdown, mean: bool) -> list[str]:
    n = bd.query + 1
    scores = figures.scores_figure(
        {"scores": bd.scores[:n], "scaled": bd.scaled[:n], "pattern": bd.pattern[:n]},
        list(bd.tokens),
        bd.query,
    )
    out = [
        f"<h2>Q/K/V step by step: layer {bd.layer}, head {bd.head}, query {bd.query} "
        f"<span class='tok'>{views.esc(bd.tokens[bd.query])}</span></h2>",
        "<p>Every number is recomputed from the model's weights; the badge says how far it is from "
        "the tensor the model itself produced.</p>",
        *([f"<p>These are the steps of one head, head {bd.head}: {NO_MEAN_STEPS}.</p>"] if mean else []),
        _figure_html(scores, "ae-report-scores"),
    ]
    for number, step in enumerate(STEPS, start=1):
        note = views.step_note(bd, step.name)
        out.append(views.step_card(number, step, bd.deviation.get(step.name), note))
        out.append(_table_html(views.step_table(bd, step.name)))
    return out


def _history_section(items: Sequence[HistoryItem]) -> list[str]:
    chips = "".join(
        f'<span class="tok{" sel" if h.forced else ""}">{views.esc(h.display)}</span>' for h in items
    )
    timeline = figures.timeline_figure(
        [h.prob for h in items], [h.entropy for h in items], [h.display for h in items]
    )
    timeline.update_layout(height=340)
    return [
        f"<h2>Generation: {len(items)} tokens</h2>",
        f"<p>Generated tokens (forced ones highlighted):</p><div class='toks'>{chips}</div>",
        _figure_html(timeline, "ae-report-timeline"),
        _table_html(history_table(items)),  # as shown: the analysis' tokenizer need not be the generation's
    ]


def report_html(
    analysis: Analysis,
    *,
    layer: int = 0,
    head: int = 0,
    query: int | None = None,
    breakdown: Breakdown | None = None,
    history: Sequence[HistoryItem] | None = None,
    mean: bool = False,
) -> str:
    """The report as one HTML string; see `export_report`."""
    from plotly.offline import get_plotlyjs

    query = analysis.n_pos - 1 if query is None else query
    bd = breakdown or arithmetic.breakdown(analysis, layer, head, query)
    layer, head, query = bd.layer, bd.head, bd.query
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = [
        "<h1>Attention Explorer report</h1>",
        f"<p class='meta'>Model <b>{views.esc(analysis.model_name)}</b> · {analysis.n_layer} layers × "
        f"{analysis.n_head} heads · {analysis.n_pos} tokens · {when}</p>",
        "<h2>Prompt</h2>",
        f"<div class='prompt'>{views.esc(analysis.text)}</div>",
        f"<p>{analysis.n_pos} tokens (position beneath each; the query is highlighted):</p>",
        _tokens_html(analysis, query),
    ]
    if analysis.truncated:
        body.append(f"<p class='meta'>The prompt was cut: {analysis.truncated} tokens did not fit.</p>")
    body += _analysis_section(analysis, layer, None if mean else head, query)
    body += _steps_section(bd, mean)
    if history:
        body += _history_section(history)
    body.append(
        f"<footer>Made with Attention Explorer {views.esc(__version__)}. This file needs no network: "
        "plotly.js is included.</footer>"
    )
    title = f"Attention Explorer: {analysis.text[:60]}"
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{views.esc(title)}</title><style>{REPORT_CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def export_report(
    analysis: Analysis,
    path: Path | str,
    *,
    layer: int = 0,
    head: int = 0,
    query: int | None = None,
    breakdown: Breakdown | None = None,
    history: Sequence[HistoryItem] | None = None,
    mean: bool = False,
) -> Path:
    """Write one self-contained HTML report: the overview of every head, the chosen head (with
    `mean`, the mean over the layer's heads), the Q/K/V steps of the chosen head for the chosen
    query (the last token by default) and the generation history.

    `breakdown`, when given, is used instead of recomputing it (its layer, head and query win).
    """
    html = report_html(
        analysis, layer=layer, head=head, query=query, breakdown=breakdown, history=history, mean=mean
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path


__all__ = ["REPORT_MAX_POS", "export_report", "report_html"]
