"""The tabs for issue #7: head types, ablation, the logit lens and prompt comparison.

    build_insights_tabs(ctx, tabs) adds four `gr.Tab`s to the app's tab bar and wires them.

Like app.py this module only lays out and wires: the numbers come from explorer.analysis.heads,
ablation, lens and compare, the pictures from explorer.figures. Each tab follows the shared
analysis through `ctx.analyzed`; head types are measured once per model and kept for every
session, the rest is per session.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explorer import figures, views
from explorer.analysis.ablation import MODES, ablate, head_importance, head_name
from explorer.analysis.comparison import MAX_SWAPPED, Comparison, compare
from explorer.analysis.heads import DESCRIPTIONS, LABELS, THRESHOLDS, head_scores, probe_for
from explorer.analysis.lens import LogitLens, logit_lens
from explorer.app import (
    CONCURRENCY,
    DETAIL_MAX_CELLS,
    DETAIL_TICK_LABELS,
    HEADS_TAB,
    Context,
    Session,
    guarded,
    placeholder,
    plot_click_bridge,
    tab_listener,
    thin_ticks,
)
from explorer.errors import ExplorerError
from explorer.model.capture import Analysis, analyze, clean_text
from explorer.model.loading import LoadedModel

log = logging.getLogger(__name__)

IOI = "When Mary and John went to the store, John gave a drink to"
LENS_TOP_K = 5
LENS_MAX_POS = 32  # positions the lens shows at once (cells wide enough to read); a long prompt gets a window
LENS_CELL_CHARS = 6  # characters of a guess written in its cell; the hover has it whole
LENS_CELLS = 600  # figures.logit_lens_figure writes the tokens into cells up to this many
IMPORTANCE_SHOWN = 15
COMPARE_HEADS_SHOWN = 10
NO_LAYER = -1
# Clicks the app's own Analyze button, so the probe runs through the app's full analysis.
ANALYZE_JS = "() => { document.querySelector('#ae-analyze')?.click(); }"


# --- head types, measured once per model ---------------------------------------------------


class HeadTypes:
    """head_scores by model key, shared by all sessions: they depend on the model alone."""

    def __init__(self, ctx: Context, capacity: int = 8) -> None:
        self._ctx = ctx
        self._capacity = capacity
        self._scores: OrderedDict[str, pd.DataFrame] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, loaded: LoadedModel) -> pd.DataFrame:
        with self._lock:  # one measurement at a time; a second asker waits and reads the first's
            if key not in self._scores:
                with self._ctx.models.lock(loaded):
                    self._scores[key] = head_scores(loaded)
                while len(self._scores) > self._capacity:
                    self._scores.popitem(last=False)
            self._scores.move_to_end(key)
            return self._scores[key]


def head_types_legend(scores: pd.DataFrame) -> str:
    """Every type: its colour in the grid, how many heads have it, what it means, how it is scored."""
    counts = Counter(scores["label"].astype(str))
    colours = figures.summaries._label_colours(list(counts))
    rows = []
    for label in LABELS:
        n = counts.get(label, 0)
        swatch = f"background:{colours[label]}" if n else "border:1px solid #94a3b8"
        rule = f" Label when ≥ {THRESHOLDS[label]:.1f}." if label in THRESHOLDS else ""
        rows.append(
            f"<div style='margin:.4rem 0;{'' if n else 'opacity:.65'}'>"
            "<span style='display:inline-block;width:.9em;height:.9em;border-radius:3px;"
            f"vertical-align:-.1em;margin-right:.4em;{swatch}'></span>"
            f"<b>{views.esc(label)}</b> <span class='ae-muted'>· "
            f"{f'{n} head' + 's' * (n != 1) if n else 'no heads in this model'}</span>"
            f"<div class='ae-help' style='margin-left:1.3em'>{views.esc(DESCRIPTIONS[label])}"
            f"<span class='ae-note'>{rule}</span></div></div>"
        )
    how = (
        "Each score is the share of attention (0–1) a head puts on the key its type looks for, "
        "averaged over the probe's tokens; a head is named for the strongest type that clears its "
        "threshold."
    )
    return f"<div class='ae-legend'>{''.join(rows)}<div class='ae-note'>{how}</div></div>"


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def head_card(row: pd.Series, probe: str) -> str:
    """What one head scored, and the probe text it was opened on."""
    label = str(row["label"])
    scores = " · ".join(f"{name} {float(row[name]):.2f}" for name in figures.HEAD_SCORES)
    return (
        f"**{head_name(int(row['layer']), int(row['head']))} is {article(label)} {views.esc(label)} head.** "
        f"{views.esc(DESCRIPTIONS[label])}  \nScores: {scores}.  \n"
        f"Opened in **Attention heads** on a probe where this pattern shows: "
        f"<span class='ae-chip'>{views.esc(probe[:80])}{'…' if len(probe) > 80 else ''}</span>"
    )


# --- ablation ------------------------------------------------------------------------------


def parse_heads(value: Any) -> list[str]:
    """Heads from a multi-select list, or from text like "L1H3, L2H0" (any separators)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    out: list[str] = []
    for item in items:
        if item is None:
            continue
        text = str(item).upper()
        found = re.findall(r"L\s*(\d+)\s*H\s*(\d+)", text)
        leftover = re.sub(r"L\s*\d+\s*H\s*\d+|[\s,;]+", "", text)
        if leftover:
            raise ExplorerError(f"Name heads like L1H3, separated by commas (could not read {str(item)!r}).")
        out += [f"L{layer}H{head}" for layer, head in found]
    return list(dict.fromkeys(out))


def _layer(value: Any) -> int | None:
    try:
        layer = int(value)
    except (TypeError, ValueError):
        return None
    return None if layer == NO_LAYER else layer


def _target(text: Any) -> str | None:
    return text if isinstance(text, str) and text.strip() else None


def _rows_for(before: pd.DataFrame, after: pd.DataFrame, ids: list[int]) -> pd.DataFrame:
    """before's rows for `ids`, in that order; a token outside its table gets probability 0."""
    prob = dict(zip(before["token_id"].astype(int), before["prob"], strict=True))
    name = dict(zip(after["token_id"].astype(int), after["token"], strict=True))
    name |= dict(zip(before["token_id"].astype(int), before["token"], strict=True))
    return views.top_table(
        [name[i] for i in ids], np.asarray(ids), np.asarray([prob.get(i, 0.0) for i in ids])
    )


def ablation_figure(result: Any, shown: int = 8) -> go.Figure:
    """Before and after bars for the top tokens of either side, the followed token outlined."""
    ids = list(
        dict.fromkeys(
            [*result.before["token_id"][:shown].astype(int), *result.after["token_id"][:shown].astype(int)]
        )
    )
    ids = sorted(ids, key=lambda i: -max(_prob(result.before, i), _prob(result.after, i)))
    before = _rows_for(result.before, result.after, ids)
    after = _rows_for(result.after, result.before, ids)
    fig = figures.distribution_figure(before, after, result.target_id, title="Next token: before and after")
    fig.data[0].name, fig.data[1].name = "full model", "heads removed"
    for annotation in fig.layout.annotations:
        annotation.text = annotation.text.replace("chosen", "followed")
    fig.update_layout(height=140 + 20 * len(ids) * 2)
    fig.update_xaxes(tickformat=".0%" if max(before["prob"].max(), after["prob"].max()) >= 0.1 else ".1%")
    return fig


def _prob(table: pd.DataFrame, token_id: int) -> float:
    hit = table.loc[table["token_id"] == token_id, "prob"]
    return float(hit.iloc[0]) if len(hit) else 0.0


def importance_figure(ranked: pd.DataFrame, shown: int = IMPORTANCE_SHOWN) -> go.Figure:
    """The heads whose removal moves the target most, largest at top; blue where the head helped."""
    top = ranked.head(shown)
    delta = top["delta"].to_numpy(dtype=np.float32)
    target = figures.base._esc_text(str(ranked["target"].iloc[0]))
    fig = go.Figure(
        go.Bar(
            x=delta,
            y=np.arange(len(top)),
            orientation="h",
            customdata=top["name"].tolist(),
            marker={"color": [figures.OKABE_ITO[0] if d < 0 else figures.OKABE_ITO[1] for d in delta]},
            text=[f"{p:.1%}" for p in top["prob_after"]],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{customdata}: Δ log p = %{x:+.3f}<br>p after = %{text}<extra></extra>",
        )
    )
    fig.update_yaxes(
        tickmode="array",
        tickvals=list(range(len(top))),
        ticktext=top["name"].tolist(),
        autorange="reversed",
        showgrid=False,
        automargin=True,
    )
    lo, hi = min(0.0, float(delta.min())), max(0.0, float(delta.max()))
    pad = 0.18 * (hi - lo or 1.0)  # room for the labels beside the bars
    fig.update_xaxes(
        title=f"change in log p('{target}') when removed alone",
        range=[lo - pad * (lo < 0), hi + pad * (hi > 0 or lo == 0)],
        zeroline=True,
        zerolinecolor="#64748b",
        automargin=True,
    )
    p_before = float(ranked["prob_before"].iloc[0])
    fig.update_layout(
        template="plotly_white",
        title={
            "text": f"Which heads matter for '{target}' (now {p_before:.1%})?<br>"
            "<sup>blue: removing it lowers the token (the head helped) · labels: p after</sup>",
            "x": 0.01,
        },
        height=150 + 26 * len(top),
        margin={"l": 10, "r": 40, "t": 70, "b": 10},
        font={"size": 13},
        meta="head-importance",
    )
    return fig


def importance_table(ranked: pd.DataFrame, shown: int = IMPORTANCE_SHOWN) -> str:
    top = ranked.head(shown)
    table = pd.DataFrame(
        {
            "rank": np.arange(1, len(top) + 1),
            "head": top["name"],
            "Δ log p": top["delta"],
            "p after": top["prob_after"],
        }
    )
    return views.table_html(table).replace('class="ae-table"', 'class="ae-table" style="max-height:none"', 1)


# --- the logit lens ------------------------------------------------------------------------


def lens_window(n_rows: int, n_pos: int, pos: int) -> tuple[int, int]:
    """The positions [lo, hi) the lens shows: all of a short prompt, else a window holding `pos`."""
    width = int(np.clip(LENS_CELLS // max(1, n_rows), 16, LENS_MAX_POS))
    if n_pos <= width:
        return 0, n_pos
    hi = int(np.clip(pos + 1 + width // 4, width, n_pos))
    return hi - width, hi


@dataclass(frozen=True, eq=False)
class LensView:
    """The lens of one window of one analysis: `lens` positions are `lo + i` of the prompt."""

    key: tuple[Any, ...]
    lo: int
    n_pos: int  # the whole prompt's positions
    lens: LogitLens


def lens_for(analysis: Analysis, lo: int, hi: int) -> LogitLens:
    """The logit lens of positions lo..hi−1 only: decoding every position of a long prompt is slow."""
    window = dataclasses.replace(
        analysis,
        resid=analysis.resid[:, lo:hi],
        token_ids=analysis.token_ids[lo:hi],
        tokens=analysis.tokens[lo:hi],
    )
    return logit_lens(window, top_k=LENS_TOP_K)


def lens_figure(view: LensView, pos: int) -> go.Figure:
    lens, lo = view.lens, view.lo
    n_rows, n_pos = lens.top_probs.shape[:2]
    guesses = lens.top_tokens[:, :, 0].tolist()
    fig = figures.logit_lens_figure(guesses, lens.top_probs[:, :, 0], list(lens.tokens))
    heat = fig.data[0]
    # Long guesses are cut in the cells (the hover has them whole); cut before escaping, not inside an entity.
    heat.text = [
        figures.base._esc([t if len(t) <= LENS_CELL_CHARS else t[: LENS_CELL_CHARS - 1] + "…" for t in row])
        for row in guesses
    ]
    heat.x = np.arange(lo, lo + n_pos)
    if lo:  # the figure numbers positions from 0: put the window's own positions back
        heat.hovertext = [
            [h.replace(f", pos {j} ", f", pos {j + lo} ", 1) for j, h in enumerate(row)]
            for row in heat.hovertext
        ]
        fig.layout.xaxis.tickvals = [v + lo for v in fig.layout.xaxis.tickvals]
    fig.add_shape(
        type="rect",
        x0=pos - 0.5,
        x1=pos + 0.5,
        y0=-0.5,
        y1=n_rows - 0.5,
        line={"color": figures.HIGHLIGHT, "width": 3},
    )
    total = view.n_pos
    if n_pos < total:
        fig.update_layout(
            title={
                "text": f"{fig.layout.title.text}<br><sup>positions {lo}–{lo + n_pos - 1} of {total}: "
                "pick a position to move the window</sup>"
            }
        )
    fig.update_layout(height=220 + 40 * n_rows, margin={"t": 80})
    return fig


def lens_table(view: LensView, pos: int) -> str:
    """Top-k per layer at one position, one row per layer, and the actual next token's probability."""
    lens = view.lens
    i = pos - view.lo
    df = lens.at(i)
    k = int(df["rank"].max()) + 1
    next_p = lens.next_probs[:, i]
    has_next = bool(np.isfinite(next_p).any())
    head = "<th>layer</th>" + "".join(f"<th class='ae-tokcell'>#{r + 1}</th>" for r in range(k))
    if has_next:
        head += f"<th>p(next = {views.esc(lens.tokens[i + 1])})</th>"
    body = []
    for layer_i, (name, rows) in enumerate(df.groupby("layer", sort=False)):
        cells = "".join(
            f"<td class='ae-tokcell'>{views.esc(t)} <span class='ae-muted'>{p:.1%}</span></td>"
            for t, p in zip(rows["token"], rows["prob"], strict=True)
        )
        if has_next:
            cells += f"<td class='ae-num'>{next_p[layer_i]:.2%}</td>"
        body.append(f"<tr><td class='ae-num'>{views.esc(name)}</td>{cells}</tr>")
    return (
        f"<div class='ae-table'><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


# --- comparison ----------------------------------------------------------------------------


def swap_names(text: str) -> str:
    """The text with its first two names (capitalised words not starting a sentence) swapped."""
    names: list[str] = []
    for match in re.finditer(r"\b[A-Z][a-z]+\b", text):
        before = text[: match.start()].rstrip()
        if before and before[-1] not in ".!?" and match.group() not in names:
            names.append(match.group())
    if len(names) < 2:
        raise ExplorerError("Prompt A needs two names to swap, like 'Mary' and 'John'.")
    a, b = names[:2]
    return re.sub(rf"\b({a}|{b})\b", lambda m: b if m.group() == a else a, text)


def compare_heads_table(comparison: Comparison, shown: int = COMPARE_HEADS_SHOWN) -> str:
    top = comparison.heads.head(shown)
    table = pd.DataFrame(
        {
            "head": [head_name(int(a), int(b)) for a, b in zip(top["layer"], top["head"], strict=True)],
            "attention moved": top["total_variation"],
            "largest change": top["max_abs"],
        }
    )
    return views.table_html(table)


def next_token_diff_table(comparison: Comparison, shown: int = 10) -> str:
    """The tokens whose probability moved most, and always the tokens swapped between A and B."""
    swapped = {part for i in comparison.differing[:MAX_SWAPPED] for part in comparison.labels[i].split(" → ")}
    df = comparison.next_tokens
    df = df[(df.index < shown) | df["token"].isin(swapped)]
    df = df.rename(columns={"prob_a": "p in A", "prob_b": "p in B", "delta": "B − A"})
    return views.table_html(df[["token", "p in A", "p in B", "B − A"]])


def compare_figure(comparison: Comparison, layer: int, head: int) -> go.Figure:
    diff = comparison.diff[layer, head]
    n = comparison.n_aligned
    lo = 0
    if n * n > DETAIL_MAX_CELLS:  # the last query rows, as the head detail does for long prompts
        lo = n - max(48, DETAIL_MAX_CELLS // n)
    title = f"{head_name(layer, head)}: attention in B minus attention in A"
    fig = figures.difference_figure(diff[lo:], list(comparison.labels), title)
    fig.update_layout(height=560)
    return thin_ticks(fig, DETAIL_TICK_LABELS)


def _head_choices(comparison: Comparison) -> list[tuple[str, str]]:
    return [
        (
            f"{head_name(int(r.layer), int(r.head))} · {r.total_variation:.0%} moved",
            head_name(int(r.layer), int(r.head)),
        )
        for r in comparison.heads.itertuples(index=False)
    ]


# --- layout and wiring ---------------------------------------------------------------------


def _analysis(session: Session) -> Analysis:
    if session.analysis is None:
        raise ExplorerError("Analyze a prompt first.")
    return session.analysis


def _clamp(value: Any, top: int) -> int:
    try:
        return int(np.clip(int(value), 0, max(0, top - 1)))
    except (TypeError, ValueError):
        return max(0, top - 1)


def _progress(progress: Any) -> Callable[[float, str], None]:
    return lambda fraction, message: progress(fraction, desc=message)


TYPES_TAB, LENS_TAB = "head-types", "lens"


def build_insights_tabs(ctx: Context, tabs: gr.Tabs) -> None:
    """Add the Head types, Ablation, Logit lens and Compare tabs (inside the app's gr.Tabs)."""
    types = HeadTypes(ctx)
    _head_types_tab(ctx, tabs, types)
    _ablation_tab(ctx)
    _lens_tab(ctx, tabs)
    _compare_tab(ctx)


def _head_types_tab(ctx: Context, tabs: gr.Tabs, types: HeadTypes) -> None:
    status = ctx.status
    with gr.Tab("Head types", id=TYPES_TAB, elem_id="ae-types-tab"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=420):
                gr.Markdown(
                    "**What each head mostly does**, measured once per model on probe texts (prose, and "
                    "random tokens repeated twice). Hover a tile for its scores; **click one** to open it "
                    "on a prompt where its pattern shows.",
                    elem_classes=["ae-help"],
                )
                plot = gr.Plot(placeholder("Head types appear here."), show_label=False, elem_id="ae-types")
            with gr.Column(scale=2, min_width=320):
                legend = gr.HTML(views.empty_html("The types and what they mean appear here."), padding=True)
                card = gr.Markdown("", elem_id="ae-types-card")
        click = plot_click_bridge("#ae-types", "x: p.x, y: p.y")

    def scores_for(session: Session, progress: Any = None) -> pd.DataFrame:
        loaded = ctx.models.get(session.model)
        if progress is not None:
            progress(0.2, desc="Measuring head types on probe texts (once per model) …")
        return types.get(session.model, loaded)

    @guarded(status)
    def draw(session: Session, progress: gr.Progress = gr.Progress()) -> dict[Any, Any]:
        scores = scores_for(session, progress)
        fig = figures.head_types_figure(scores)
        n_layer, n_head = int(scores["layer"].max()) + 1, int(scores["head"].max()) + 1
        fig.update_layout(height=int(np.clip(130 + 520 * n_layer / max(n_head, 1), 300, 640)))
        return {plot: fig, legend: head_types_legend(scores)}

    tab_listener(
        ctx,
        tabs,
        TYPES_TAB,
        "ae-types-tab",
        [ctx.analyzed.change],
        draw,
        [ctx.session],
        [status, plot, legend],
        progress=True,
        api_name="head_types",
        show_progress_on=[plot],
    )

    def open_head(session: Session, evt: gr.EventData) -> dict[Any, Any]:
        try:
            scores = scores_for(session)
            n_layer, n_head = int(scores["layer"].max()) + 1, int(scores["head"].max()) + 1
            layer = _clamp(round(float(evt.y)), n_layer)  # type: ignore[attr-defined]
            head = _clamp(round(float(evt.x)), n_head)  # type: ignore[attr-defined]
            row = scores[(scores["layer"] == layer) & (scores["head"] == head)].iloc[0]
            probe = probe_for(str(row["label"]), ctx.models.get(session.model))
        except Exception as err:  # noqa: BLE001 - an error stops the chain: no probe is analyzed
            if not isinstance(err, ExplorerError):
                log.exception("opening a head from the head-types grid failed")
            message = str(err) if isinstance(err, ExplorerError) else "That head could not be opened."
            raise gr.Error(views.esc(message)) from err
        session.shown_tab = HEADS_TAB  # selected from here, which fires no select event
        gr.Info(
            views.esc(
                f"{head_name(layer, head)} ({row['label']}) opened on a probe prompt: see Attention heads."
            )
        )
        return {
            ctx.prompt: probe,
            ctx.layer: layer,
            ctx.head: head,
            ctx.mean: False,
            card: head_card(row, probe),
            tabs: gr.Tabs(selected=HEADS_TAB),
        }

    click.click(
        open_head,
        [ctx.session],
        [ctx.prompt, ctx.layer, ctx.head, ctx.mean, card, tabs],
        api_visibility="private",
        show_progress="hidden",
        concurrency_limit=CONCURRENCY,
    ).success(None, js=ANALYZE_JS)


def _ablation_tab(ctx: Context) -> None:
    status = ctx.status
    c: dict[str, Any] = {}
    with gr.Tab("Ablation", id="ablation", elem_id="ae-ablation-tab"):
        gr.Markdown(
            "**Remove heads and watch the next-token guess change.** A removed head's output is set to "
            "zero, or to its average over this prompt (mean), before it joins the residual stream.",
            elem_classes=["ae-help"],
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=340):
                with gr.Group():
                    c["heads"] = gr.Dropdown(
                        choices=[],
                        value=[],
                        multiselect=True,
                        allow_custom_value=True,
                        label="Heads to remove",
                        info="pick, or type like L1H3",
                        elem_id="ae-abl-heads",
                    )
                    with gr.Row():
                        c["layer"] = gr.Dropdown(
                            choices=[("none", NO_LAYER)],
                            value=NO_LAYER,
                            label="…or a whole layer",
                            allow_custom_value=True,  # API clients may pass any layer; run() checks it
                            elem_id="ae-abl-layer",
                            min_width=140,
                        )
                        c["mode"] = gr.Radio(
                            list(MODES),
                            value="zero",
                            label="Replace with",
                            elem_id="ae-abl-mode",
                            min_width=140,
                        )
                    c["target"] = gr.Textbox(
                        label="Token to follow",
                        placeholder="blank: the model's top guess; e.g. ␣Mary",
                        elem_id="ae-abl-target",
                    )
                c["run"] = gr.Button("Remove and compare", variant="primary", elem_id="ae-abl-run")
                c["summary"] = gr.Markdown("", elem_id="ae-abl-summary")
            with gr.Column(scale=3, min_width=420):
                c["dist"] = gr.Plot(
                    placeholder("Before and after appear here."), show_label=False, elem_id="ae-abl-dist"
                )
        with gr.Row(equal_height=True, elem_classes=["ae-step-row"]):
            gr.Markdown(
                "**Rank every head:** remove each one alone and see how far the token to follow moves "
                "(same mode and token as above). Click a bar to remove that head above.",
                elem_classes=["ae-help"],
            )
            c["rank"] = gr.Button("Which heads matter here?", scale=0, min_width=300, elem_id="ae-abl-rank")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=420):
                c["importance"] = gr.Plot(
                    placeholder("Press “Which heads matter here?” to rank every head.", height=200),
                    show_label=False,
                    elem_id="ae-importance",
                )
            with gr.Column(scale=2, min_width=320):
                c["ranked"] = gr.HTML("", elem_id="ae-importance-table")
        # A bar of the ranking puts that head in the list to remove and runs the ablation.
        c["bar_click"] = plot_click_bridge("#ae-importance", "name: p.customdata")
    _wire_ablation(ctx, c, status)


def _wire_ablation(ctx: Context, c: dict[str, Any], status: gr.Markdown) -> None:
    guard = guarded(status)

    @guard
    def reset(session: Session) -> dict[Any, Any]:
        # Choices only: the values stay as the user left them (run() names a head or layer that
        # this model lacks), so typing while this runs loses nothing.
        analysis = _analysis(session)
        names = [head_name(a, b) for a in range(analysis.n_layer) for b in range(analysis.n_head)]
        layers = [("none", NO_LAYER)] + [(f"layer {i}", i) for i in range(analysis.n_layer)]
        return {
            c["heads"]: gr.update(choices=names),
            c["layer"]: gr.update(choices=layers),
            c["summary"]: "",
            c["dist"]: placeholder("Pick heads and press “Remove and compare”."),
            c["importance"]: placeholder("Press “Which heads matter here?” to rank every head.", height=200),
            c["ranked"]: "",
        }

    ctx.analyzed.change(
        reset,
        [ctx.session],
        [status, c["heads"], c["layer"], c["summary"], c["dist"], c["importance"], c["ranked"]],
        api_visibility="private",
        show_progress="hidden",
        trigger_mode="always_last",
    )

    @guard
    def run(session: Session, heads: Any, layer: Any, mode: str, target: Any) -> dict[Any, Any]:
        analysis = _analysis(session)
        chosen, layer_i = parse_heads(heads), _layer(layer)
        if not chosen and layer_i is None:
            raise ExplorerError("Pick the heads to remove (like L1H3), or a whole layer.")
        loaded = ctx.models.get(session.model)
        with ctx.models.lock(loaded):
            result = ablate(loaded, analysis.text, chosen, layer_i, mode, _target(target), top_k=200)
        how = "zeroed" if mode == "zero" else "replaced by their mean output"
        return {
            status: "",
            c["summary"]: f"### {views.esc(result.summary)}\n<span class='ae-note'>Heads {how}; "
            f"everything else is the full model on this prompt.</span>",
            c["dist"]: ablation_figure(result),
        }

    c["run"].click(
        run,
        [ctx.session, c["heads"], c["layer"], c["mode"], c["target"]],
        [status, c["summary"], c["dist"]],
        api_name="ablate",
        show_progress_on=[c["dist"]],
        concurrency_limit=CONCURRENCY,
        concurrency_id="ablation",
    )

    @guard
    def rank(
        session: Session, mode: str, target: Any, progress: gr.Progress = gr.Progress()
    ) -> dict[Any, Any]:
        analysis = _analysis(session)
        loaded = ctx.models.get(session.model)
        n = loaded.n_layer * loaded.n_head
        progress(
            0.1,
            desc=f"Removing each of the {n} heads alone on {analysis.n_pos} tokens"
            + (" (a long prompt: this takes a while) …" if analysis.n_pos > 256 else " …"),
        )
        with ctx.models.lock(loaded):
            ranked = head_importance(loaded, analysis.text, _target(target), mode)
        return {status: "", c["importance"]: importance_figure(ranked), c["ranked"]: importance_table(ranked)}

    c["rank"].click(
        rank,
        [ctx.session, c["mode"], c["target"]],
        [status, c["importance"], c["ranked"]],
        api_name="head_importance",
        show_progress_on=[c["importance"]],
        concurrency_limit=1 if ctx.limits.hosted else 2,
        concurrency_id="importance",
    )

    def pick(heads: Any, evt: gr.EventData) -> Any:
        name = getattr(evt, "name", None)
        return [name] if isinstance(name, str) else heads

    c["bar_click"].click(pick, [c["heads"]], [c["heads"]], api_visibility="private").then(
        run,
        [ctx.session, c["heads"], c["layer"], c["mode"], c["target"]],
        [status, c["summary"], c["dist"]],
        api_name="ablate_picked",  # not the default "run", which would push the Generate tab's /run aside
        api_visibility="private",
        show_progress_on=[c["dist"]],
        concurrency_limit=CONCURRENCY,
        concurrency_id="ablation",
    )


def _lens_tab(ctx: Context, tabs: gr.Tabs) -> None:
    status = ctx.status
    with gr.Tab("Logit lens", id=LENS_TAB, elem_id="ae-lens-tab"):
        gr.Markdown(
            "**What the model would predict if it stopped after each layer.** Each cell decodes the "
            "residual stream at that position with the final layer norm and the output matrix: its "
            "colour is the top guess's probability, its text the guess. **Click a column** (or pick a "
            "position) for the top 5 at every layer.",
            elem_classes=["ae-help"],
        )
        plot = gr.Plot(placeholder("The logit lens appears here."), show_label=False, elem_id="ae-lens")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=240):
                pos = gr.Dropdown(
                    choices=[], value=None, label="Position", elem_id="ae-lens-pos", allow_custom_value=True
                )
            with gr.Column(scale=4, min_width=420):
                table = gr.HTML("", elem_id="ae-lens-table")
        cache = gr.State(None)
        click = plot_click_bridge("#ae-lens", "x: p.x")

    @guarded(status)
    def show(session: Session, position: Any, view: LensView | None) -> dict[Any, Any]:
        analysis = _analysis(session)
        position = _clamp(position, analysis.n_pos)
        lo, hi = lens_window(analysis.n_layer + 1, analysis.n_pos, position)
        key = (analysis.model_name, analysis.tokens, lo, hi)
        if view is None or view.key != key:
            view = LensView(key, lo, analysis.n_pos, lens_for(analysis, lo, hi))
        return {
            cache: view,
            plot: lens_figure(view, position),
            table: lens_table(view, position),
            pos: gr.update(
                choices=[(f"{i} · {t}", i) for i, t in enumerate(analysis.tokens)], value=position
            ),
        }

    outputs = [status, cache, plot, table, pos]
    common: dict[str, Any] = {
        "trigger_mode": "always_last",
        "concurrency_limit": CONCURRENCY,
        "concurrency_id": "lens",
        "show_progress_on": [plot],
    }

    tab_listener(
        ctx,
        tabs,
        LENS_TAB,
        "ae-lens-tab",
        [ctx.analyzed.change, ctx.query.change],
        show,
        [ctx.session, ctx.query, cache],
        outputs,
        api_name="logit_lens",
        **common,
    )
    pos.input(show, [ctx.session, pos, cache], outputs, api_name="lens_position", **common)

    def clicked(session: Session, view: LensView | None, evt: gr.EventData) -> dict[Any, Any]:
        return show(session, getattr(evt, "x", None), view)

    click.click(clicked, [ctx.session, cache], outputs, api_visibility="private", **common)


def _compare_tab(ctx: Context) -> None:
    status = ctx.status
    with gr.Tab("Compare", id="compare", elem_id="ae-compare-tab"):
        gr.Markdown(
            "**Two prompts, position by position.** A is the prompt above; change a word in B (swap the "
            "names, say) and see which heads shift their attention and how the next-token guess moves.",
            elem_classes=["ae-help"],
        )
        with gr.Row(equal_height=True):
            prompt_b = gr.Textbox(
                value=swap_names(IOI),
                label="Prompt B",
                lines=2,
                max_lines=4,
                scale=6,
                elem_id="ae-prompt-b",
            )
            with gr.Column(scale=1, min_width=180):
                run = gr.Button("Compare", variant="primary", elem_id="ae-compare-run")
                swap = gr.Button("Swap the names in A", size="sm", elem_id="ae-swap")
        alignment = gr.Markdown("", elem_id="ae-compare-alignment")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                gr.Markdown(
                    "**Heads whose attention moved most** (share of attention that moved)",
                    elem_classes=["ae-help"],
                )
                heads_table = gr.HTML("", elem_id="ae-compare-heads")
                head = gr.Dropdown(
                    choices=[],
                    value=None,
                    label="Show head",
                    elem_id="ae-compare-head",
                    allow_custom_value=True,
                )
                gr.Markdown("**Next token: A vs B**", elem_classes=["ae-help", "ae-subhead"])
                next_table = gr.HTML("", elem_id="ae-compare-next")
            with gr.Column(scale=3, min_width=420):
                plot = gr.Plot(
                    placeholder("Press Compare to see where attention moved."),
                    show_label=False,
                    elem_id="ae-compare-diff",
                )
        state = gr.State(None)
    guard = guarded(status)

    @guard
    def run_compare(
        prompt: str, session: Session, text_b: str, progress: gr.Progress = gr.Progress()
    ) -> dict[Any, Any]:
        loaded = ctx.models.get(session.model, _progress(progress))
        limit = ctx.limits.max_prompt_tokens
        a = session.analysis
        progress(0.5, desc="Running the model on both prompts …")
        with ctx.models.lock(loaded):
            if a is None or a.model_name != loaded.name or a.text != clean_text(prompt or ""):
                a = analyze(loaded, prompt, max_tokens=limit)
            b = analyze(loaded, text_b, max_tokens=limit)
        comparison = compare(a, b)
        top = comparison.heads.iloc[0]
        layer, head_i = int(top["layer"]), int(top["head"])
        differing = len(comparison.differing)
        words = (
            f"{differing} position{'s' * (differing != 1)} differ."
            if differing
            else "The tokens are the same."
        )
        return {
            status: "",
            state: comparison,
            alignment: f"{views.esc(comparison.alignment)} {words}",
            heads_table: compare_heads_table(comparison),
            head: gr.update(choices=_head_choices(comparison), value=head_name(layer, head_i)),
            next_table: next_token_diff_table(comparison),
            plot: compare_figure(comparison, layer, head_i),
        }

    run.click(
        run_compare,
        [ctx.prompt, ctx.session, prompt_b],
        [status, state, alignment, heads_table, head, next_table, plot],
        api_name="compare",
        show_progress_on=[plot],
        concurrency_limit=CONCURRENCY,
        concurrency_id="compare",
    )

    @guard
    def show_head(comparison: Comparison | None, name: Any) -> dict[Any, Any]:
        if comparison is None:
            raise ExplorerError("Press Compare first.")
        (found,) = parse_heads(name) or ["L0H0"]
        layer, head_i = (int(x) for x in re.findall(r"\d+", found))
        n_layer, n_head = comparison.diff.shape[:2]
        return {status: "", plot: compare_figure(comparison, _clamp(layer, n_layer), _clamp(head_i, n_head))}

    head.input(
        show_head,
        [state, head],
        [status, plot],
        api_name="compare_head",
        trigger_mode="always_last",
        show_progress_on=[plot],
    )
    swap.click(
        guard(lambda prompt: {status: "", prompt_b: swap_names(prompt or "")}),
        [ctx.prompt],
        [status, prompt_b],
        api_visibility="private",
        show_progress="hidden",
    )

    def stale(comparison: Comparison | None) -> Any:
        if comparison is None:
            return gr.update()
        return "*The prompt changed: press **Compare** to compare it with B.*"

    ctx.analyzed.change(stale, [state], [alignment], api_visibility="private", show_progress="hidden")


__all__ = ["build_insights_tabs", "swap_names", "parse_heads", "lens_window"]
