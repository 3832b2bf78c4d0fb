"""Downloads: the analysis and the generation history as CSV, NPZ and JSON, and one offline report.

Pure functions from engine results to bytes (or a written file); no gradio here.

    head_csv(analysis, layer, head)       one head's attention (head None: the mean over the layer's
                                          heads), one row per (query, key ≤ query)
    attention_npz(analysis)               every head's pattern [layer, head, query, key] and the tokens
    write_attention_npz(analysis, path)   the same, written as it is made (one layer in memory at a time)
    breakdown_csv(bd, analysis) / breakdown_json(bd, analysis)  the Q/K/V arithmetic of one layer,
                                          head and query
    history_csv(items, tokenizer) / history_json(items, tokenizer, ...)  the generated tokens, one
                                          row per step
    export_report(analysis, path, ...)    one self-contained HTML file that opens with no network

Tokens are written twice. `token` (and `query_token`, `key_token`) is the token's exact text: its
bytes decoded as UTF-8, so " cat" is " cat" (a token holding only part of a character reads
U+FFFD, as the tokenizer decodes it alone). `display` (and `query_display`, `key_display`) is the
form the app shows: "␣cat", "↵" for a newline, "\\xe2\\x80" for part of a character. The columns:

    head CSV       layer, head, query, query_token, query_display, query_token_id,
                   key, key_token, key_display, key_token_id, weight
                   head is the head's number, or "mean" for the mean over the layer's heads; weight
                   is the model's float32 value, or for the mean the float64 mean of the heads' ones
    breakdown CSV  key, token, display, token_id, score, scaled, weight
    history CSV    position, token_id, token, display, prob, warped_prob, entropy_bits, forced

The breakdown JSON has `tokens` (exact), `displays` and `token_ids`, and its top-k `logits` rows a
token and a display each; the history JSON's steps have a token and a display each.

CSV text stays safe to open in a spreadsheet: a cell that would start a formula (=, +, -, @, a tab
or a carriage return, after any number of ') is written with one ' in front, as OWASP advises for
CSV injection. `cell_text` takes it off again: `pd.read_csv(f, converters={"token": cell_text})`
reads every token back exactly.

The report inlines plotly.js from the installed plotly package, so it draws its figures offline.
Every piece of user text in it goes through `views.esc`; figure JSON is escaped by Plotly itself.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from explorer import __version__, figures, views
from explorer.analysis import arithmetic
from explorer.analysis.arithmetic import STEPS, Breakdown
from explorer.model.capture import Analysis, token_bytes
from explorer.model.generation import HistoryItem

REPORT_MAX_POS = 256  # beyond this the report's head figure shows a window of query rows

HEAD_COLUMNS = (
    *("layer", "head"),
    *("query", "query_token", "query_display", "query_token_id"),
    *("key", "key_token", "key_display", "key_token_id"),
    "weight",
)
BREAKDOWN_COLUMNS = ("key", "token", "display", "token_id", "score", "scaled", "weight")
HISTORY_COLUMNS = (
    *("position", "token_id", "token", "display"),
    *("prob", "warped_prob", "entropy_bits", "forced"),
)
MEAN = "mean"  # the head column, and the name, of the mean over a layer's heads
NO_MEAN_STEPS = "a mean over heads has no steps of its own"

# What a spreadsheet reads as the start of a formula, after any ' (see spreadsheet_safe).
_FORMULA = re.compile(r"'*[=+\-@\t\r]")


def spreadsheet_safe(text: str) -> str:
    """`text` as a CSV cell no spreadsheet runs as a formula: one ' in front where it would."""
    return "'" + text if _FORMULA.match(text) else text


def cell_text(cell: str) -> str:
    """The exact text of a CSV cell written by `spreadsheet_safe`."""
    return cell[1:] if cell.startswith("'") and _FORMULA.match(cell) else cell


def token_texts(tokenizer: Any, ids: Any) -> tuple[str, ...]:
    """Each token's exact text: its bytes as UTF-8 (U+FFFD where they hold part of a character)."""
    return tuple(token_bytes(tokenizer, int(i)).decode("utf-8", "replace") for i in ids)


# --- tables ------------------------------------------------------------------------------


def head_pattern(analysis: Analysis, layer: int, head: int | None) -> np.ndarray:
    """[query, key]: one head's pattern as the model computed it (float32), or for head None the
    mean over the layer's heads of those patterns (float64)."""
    if head is None:
        return analysis.exact_pattern(layer).mean(axis=0, dtype=np.float64)
    return analysis.exact_pattern(layer, head)


def head_table(analysis: Analysis, layer: int, head: int | None) -> pd.DataFrame:
    """One head's attention (head None: the layer's mean) in long form: every (query, key) pair
    with key ≤ query."""
    pattern = head_pattern(analysis, layer, head)
    query, key = np.tril_indices(analysis.n_pos)
    texts = np.asarray(token_texts(analysis.tokenizer, analysis.token_ids), dtype=object)
    displays = np.asarray(analysis.tokens, dtype=object)
    return pd.DataFrame(
        {
            "layer": layer,
            "head": MEAN if head is None else head,
            "query": query,
            "query_token": texts[query],
            "query_display": displays[query],
            "query_token_id": analysis.token_ids[query],
            "key": key,
            "key_token": texts[key],
            "key_display": displays[key],
            "key_token_id": analysis.token_ids[key],
            "weight": pattern[query, key],
        },
        columns=list(HEAD_COLUMNS),
    )


def breakdown_table(bd: Breakdown, analysis: Analysis) -> pd.DataFrame:
    """The attention row of one query (Breakdown.table), each key's token as text and as shown."""
    _check_same(bd, analysis)
    n = bd.query + 1
    ids = analysis.token_ids[:n]
    table = bd.table().rename(columns={"token": "display"})
    table.insert(1, "token", token_texts(analysis.tokenizer, ids))
    table.insert(3, "token_id", ids)
    return table[list(BREAKDOWN_COLUMNS)]


def _check_same(bd: Breakdown, analysis: Analysis) -> None:
    if bd.tokens != analysis.tokens:
        raise ValueError("The breakdown was not made from this analysis: their tokens differ.")


def history_table(items: Sequence[HistoryItem], tokenizer: Any | None = None) -> pd.DataFrame:
    """The generated tokens, one row per step: position, id, token, display, model p, p after the
    sampling settings, entropy, forced; without a tokenizer, no exact token text (the report shows
    the display). The numbers are GenerationSession's float64 ones; CSV and JSON write each in full
    (the shortest repr that reads back to the same float)."""
    ids = [h.token_id for h in items]
    columns = {
        "position": [h.position for h in items],
        "token_id": ids,
        "token": None if tokenizer is None else list(token_texts(tokenizer, ids)),
        "display": [h.display for h in items],
        "prob": [h.prob for h in items],
        "warped_prob": [h.warped_prob for h in items],
        "entropy_bits": [h.entropy for h in items],
        "forced": [h.forced for h in items],
    }
    return pd.DataFrame({name: values for name, values in columns.items() if values is not None})


def _csv(table: pd.DataFrame) -> bytes:
    text = {c: _safe_cells(table[c]) for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])}
    return table.assign(**text).to_csv(index=False, lineterminator="\n").encode("utf-8")


def _safe_cells(cells: pd.Series) -> pd.Series:
    """`spreadsheet_safe` on every text cell, each distinct text once (a head CSV of 1,024 tokens
    has 525k rows)."""
    changed = {v: spreadsheet_safe(v) for v in cells.unique() if isinstance(v, str) and _FORMULA.match(v)}
    return cells.mask(cells.isin(list(changed)), cells.map(changed)) if changed else cells


def head_csv(analysis: Analysis, layer: int, head: int | None) -> bytes:
    return _csv(head_table(analysis, layer, head))


def breakdown_csv(bd: Breakdown, analysis: Analysis) -> bytes:
    """The attention row of one query (see breakdown_table); `analysis` is the one `bd` was made from."""
    return _csv(breakdown_table(bd, analysis))


def history_csv(items: Sequence[HistoryItem], tokenizer: Any) -> bytes:
    return _csv(history_table(items, tokenizer))


# --- arrays and JSON -----------------------------------------------------------------------


def attention_npz(analysis: Analysis) -> bytes:
    """Every head's attention as a compressed NPZ (see write_attention_npz)."""
    buffer = io.BytesIO()
    write_attention_npz(analysis, buffer)
    return buffer.getvalue()


def write_attention_npz(analysis: Analysis, target: str | Path | BinaryIO) -> None:
    """Every head's attention as a compressed NPZ, written to a file or a binary stream.

    pattern [layer, head, query, key] float32, token_ids [pos], tokens [pos] (display strings),
    text and model_name (0-d strings). Loads with `np.load(f)`, no pickle needed. What
    `np.savez_compressed` writes, but the pattern goes out one layer at a time: the whole square
    is 604 MB for gpt2 at 1024 tokens, a layer 50 MB (the analysis keeps only the triangle), each
    layer the model's float32 values even where the analysis keeps a quantized copy.
    """
    pattern = analysis.pattern
    exact = analysis.exact_pattern  # a layer's float32 values, computed again if kept quantized
    others = {
        "token_ids": analysis.token_ids,
        "tokens": np.asarray(analysis.tokens, dtype=str),
        "text": np.asarray(analysis.text, dtype=str),
        "model_name": np.asarray(analysis.model_name, dtype=str),
    }
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        with archive.open("pattern.npy", "w", force_zip64=True) as out:
            header = {"descr": "<f4", "fortran_order": False, "shape": tuple(pattern.shape)}
            np.lib.format.write_array_header_1_0(out, header)
            for layer in range(pattern.shape[0]):
                out.write(np.ascontiguousarray(exact(layer), dtype="<f4").data)
        for name, array in others.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as out:
                np.lib.format.write_array(out, array, allow_pickle=False)


def _jsonable(value: Any) -> Any:
    """Arrays as nested lists, with −∞ and NaN (a masked score) as None: JSON has no infinity."""
    if isinstance(value, pd.DataFrame):
        return [_jsonable(row) for row in value.to_dict(orient="records")]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def breakdown_dict(bd: Breakdown, analysis: Analysis) -> dict[str, Any]:
    """Every step of the breakdown by its name, plus where it is and how it was checked; tokens as
    exact text, as shown and as ids. `analysis` is the one `bd` was made from."""
    _check_same(bd, analysis)
    steps = {step.name: _jsonable(getattr(bd, step.name)) for step in STEPS}
    top = bd.logits
    texts = token_texts(analysis.tokenizer, top["token_id"])
    steps["logits"] = [
        {"token": text, "display": row.pop("token")} | row
        for text, row in zip(texts, _jsonable(top), strict=True)
    ]
    return {
        "layer": bd.layer,
        "head": bd.head,
        "query": bd.query,
        "tokens": list(token_texts(analysis.tokenizer, analysis.token_ids)),
        "displays": list(bd.tokens),
        "token_ids": analysis.token_ids.tolist(),
        "scaling": bd.scaling,
        "is_final": bd.is_final,
        "steps": steps,
        "deviation": _jsonable(dict(bd.deviation)),
        "dtype": bd.dtype,  # the model's weights, whose numbers the deviations are measured against
    }


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=1, allow_nan=False).encode("utf-8")


def breakdown_json(bd: Breakdown, analysis: Analysis) -> bytes:
    return _json(breakdown_dict(bd, analysis))


def history_json(
    items: Sequence[HistoryItem],
    tokenizer: Any,
    *,
    prompt: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> bytes:
    """The generated tokens (HistoryItem fields and each token's exact text), with the prompt and
    sampling settings if given."""
    texts = token_texts(tokenizer, [h.token_id for h in items])
    steps = [
        {"position": h.position, "token_id": h.token_id, "token": text} | _jsonable(asdict(h))
        for h, text in zip(items, texts, strict=True)
    ]
    return _json({"prompt": prompt, "settings": _jsonable(dict(settings or {})), "steps": steps})


def write(data: bytes | str, folder: Path | str, name: str) -> Path:
    """Write `data` to folder/name (folders made as needed); returns the path."""
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def file_stem(
    kind: str,
    layer: int | None = None,
    head: int | None = None,
    query: int | None = None,
    *,
    mean: bool = False,
) -> str:
    """A download's name without extension, saying what it holds: 'attention-L2-H3-q7', or with
    `mean` (the mean over the layer's heads, in place of the head) 'attention-L2-mean'."""
    parts = [kind]
    parts += [] if layer is None else [f"L{layer}"]
    parts += [MEAN] if mean else [] if head is None else [f"H{head}"]
    parts += [] if query is None else [f"q{query}"]
    return "-".join(parts)


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
.tok.sel { background: #D55E00; color: white; border-color: #D55E00; }
.tok small { color: #64748b; margin-left: 3px; } .tok.sel small { color: #ffe8d6; }
.fig { background: white; border: 1px solid #e2e8f0; border-radius: 8px; margin: .8rem 0; }
.ae-step { margin-top: 1.2rem; }
.ae-step-title { font-weight: 700; font-size: 1.1rem; }
.ae-step-n { display: inline-block; min-width: 1.6em; text-align: center; border-radius: 999px;
  background: #4f46e5; color: white; margin-right: .4em; font-size: .85rem; }
.ae-formula { display: block; background: #eef2ff; border-radius: 6px; padding: .3rem .5rem; margin: .3rem 0; }
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


__all__ = [
    "BREAKDOWN_COLUMNS",
    "HEAD_COLUMNS",
    "HISTORY_COLUMNS",
    "MEAN",
    "attention_npz",
    "breakdown_csv",
    "breakdown_dict",
    "breakdown_json",
    "breakdown_table",
    "cell_text",
    "export_report",
    "file_stem",
    "head_csv",
    "head_pattern",
    "head_table",
    "history_csv",
    "history_json",
    "history_table",
    "report_html",
    "spreadsheet_safe",
    "token_texts",
    "write",
    "write_attention_npz",
]
