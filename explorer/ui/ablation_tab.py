"""The Ablation tab: remove heads (zero or mean) and watch the next-token guess change; rank every
head by how far removing it alone moves the token followed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from explorer import views
from explorer.analysis.ablation import MODES, ablate, head_importance_steps, head_name
from explorer.errors import ExplorerError
from explorer.figures.insights import ablation_figure, importance_figure
from explorer.i18n import say, sentences, translate
from explorer.insight_views import importance_table, parse_heads
from explorer.ui.common import (
    I18N,
    Context,
    current_analysis,
    guarded,
    guarded_stream,
    localized,
    placeholder,
    plot_click_bridge,
    require_analysis,
    tab_listener,
)
from explorer.ui.state import CONCURRENCY, Session

NO_LAYER = -1
ABLATION_TAB = "ablation"
RANK_FIRST = "Press “Which heads matter here?” to rank every head."


def _layer(value: Any) -> int | None:
    try:
        layer = int(value)
    except (TypeError, ValueError):
        return None
    return None if layer == NO_LAYER else layer


def _target(text: Any) -> str | None:
    return text if isinstance(text, str) and text.strip() else None


@dataclass(frozen=True)
class AblationTab:
    heads: gr.Dropdown  # the heads to remove
    layer: gr.Dropdown  # …or a whole layer
    mode: gr.Radio
    target: gr.Textbox  # the token to follow
    run: gr.Button
    summary: gr.Markdown
    dist: gr.Plot
    rank: gr.Button
    stop_rank: gr.Button  # shown while the ranking runs
    importance: gr.Plot
    ranked: gr.HTML
    bar_click: gr.HTML  # a bridge: a bar of the ranking puts that head in the list and runs
    seen: gr.State  # the analysis (ctx.analyzed's count) the choices were made for


def add_ablation_tab(ctx: Context, tabs: gr.Tabs) -> None:
    tab = build_ablation_tab()
    _wire_reset(ctx, tabs, tab)
    _wire_run(ctx, tab)
    _wire_rank(ctx, tab)


def build_ablation_tab() -> AblationTab:
    with gr.Tab(I18N("Ablation"), id=ABLATION_TAB, elem_id="ae-ablation-tab"):
        gr.Markdown(
            I18N(
                "**Remove heads and watch the next-token guess change.** A removed head's output is set to "
                "zero, or to its average over this prompt (mean), before it joins the residual stream."
            ),
            elem_classes=["ae-help"],
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=340):
                with gr.Group():
                    heads = gr.Dropdown(
                        choices=[],
                        value=[],
                        multiselect=True,
                        allow_custom_value=True,
                        label=I18N("Heads to remove"),
                        info=I18N("pick, or type like L1H3"),
                        elem_id="ae-abl-heads",
                    )
                    with gr.Row():
                        layer = gr.Dropdown(
                            choices=[(I18N("none"), NO_LAYER)],
                            value=NO_LAYER,
                            label=I18N("…or a whole layer"),
                            allow_custom_value=True,  # API clients may pass any layer; run() checks it
                            elem_id="ae-abl-layer",
                            min_width=140,
                        )
                        mode = gr.Radio(
                            [(I18N(m), m) for m in MODES],  # "zero", "mean", in the page's language
                            value="zero",
                            label=I18N("Replace with"),
                            elem_id="ae-abl-mode",
                            min_width=140,
                        )
                    target = gr.Textbox(
                        label=I18N("Token to follow"),
                        placeholder=I18N("blank: the model's top guess; e.g. ␣Mary"),
                        elem_id="ae-abl-target",
                    )
                run = gr.Button(I18N("Remove and compare"), variant="primary", elem_id="ae-abl-run")
                summary = gr.Markdown("", elem_id="ae-abl-summary")
            with gr.Column(scale=3, min_width=420):
                dist = gr.Plot(
                    placeholder("Before and after appear here."), show_label=False, elem_id="ae-abl-dist"
                )
        with gr.Row(equal_height=True, elem_classes=["ae-step-row"]):
            gr.Markdown(
                I18N(
                    "**Rank every head:** remove each one alone and see how far the token to follow moves "
                    "(same mode and token as above). Click a bar to remove that head above."
                ),
                elem_classes=["ae-help"],
            )
            rank = gr.Button(I18N("Which heads matter here?"), scale=0, min_width=300, elem_id="ae-abl-rank")
            stop_rank = gr.Button(I18N("Stop"), variant="stop", scale=0, min_width=80, elem_id="ae-abl-stop")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=420):
                importance = gr.Plot(
                    placeholder(RANK_FIRST, height=200),
                    show_label=False,
                    elem_id="ae-importance",
                )
            with gr.Column(scale=2, min_width=320):
                ranked = gr.HTML("", elem_id="ae-importance-table")
        # A bar of the ranking puts that head in the list to remove and runs the ablation.
        bar_click = plot_click_bridge("#ae-importance", "name: p.customdata")
        seen = gr.State(-1)  # the analysis (ctx.analyzed's count) the choices were made for
    return AblationTab(
        heads, layer, mode, target, run, summary, dist, rank, stop_rank, importance, ranked, bar_click, seen
    )


def _wire_reset(ctx: Context, tabs: gr.Tabs, c: AblationTab) -> None:
    status, guard = ctx.status, guarded(ctx.status)

    @guard
    def reset(session: Session, analyzed: int, seen: int) -> Any:
        """New choices and empty results for a new analysis (once: reopening the tab keeps them).
        Choices only: the values stay as the user left them (run() names a head or layer that
        this model lacks), so typing while this runs loses nothing."""
        analysis = current_analysis(ctx, session)
        if analysis is None or analyzed == seen:
            return gr.skip()
        lang = session.lang
        names = [head_name(a, b) for a in range(analysis.n_layer) for b in range(analysis.n_head)]
        layers = [(say(lang, "none"), NO_LAYER)]
        layers += [(say(lang, "layer {layer}", layer=i), i) for i in range(analysis.n_layer)]
        return {
            c.heads: gr.update(choices=names),
            c.layer: gr.update(choices=layers),
            c.summary: "",
            c.dist: placeholder("Pick heads and press “Remove and compare”.", lang=lang),
            c.importance: placeholder(RANK_FIRST, height=200, lang=lang),
            c.ranked: "",
            c.seen: analyzed,
        }

    tab_listener(
        ctx,
        tabs,
        ABLATION_TAB,
        "ae-ablation-tab",
        [ctx.analyzed.change],
        reset,
        [ctx.session, ctx.analyzed, c.seen],
        [status, c.heads, c.layer, c.summary, c.dist, c.importance, c.ranked, c.seen],
        api_visibility="private",
        show_progress="hidden",
    )


def _wire_run(ctx: Context, c: AblationTab) -> None:
    status, guard = ctx.status, guarded(ctx.status)

    @guard
    def run(session: Session, heads: Any, layer: Any, mode: str, target: Any) -> dict[Any, Any]:
        analysis = require_analysis(ctx, session)
        chosen, layer_i = parse_heads(heads), _layer(layer)
        if not chosen and layer_i is None:
            raise ExplorerError("Pick the heads to remove (like L1H3), or a whole layer.")
        loaded = ctx.models.get(session.model)
        with ctx.models.lock(loaded):
            result = ablate(loaded, analysis.text, chosen, layer_i, mode, _target(target), top_k=200)
        lang = session.lang
        how = say(
            lang,
            "Heads zeroed; everything else is the full model on this prompt."
            if mode == "zero"
            else "Heads replaced by their mean output; everything else is the full model on this prompt.",
        )
        return {
            status: "",
            c.summary: f"### {views.esc(translate(result.summary, lang))}\n<span class='ae-note'>{how}</span>",
            c.dist: localized(ablation_figure(result), lang),
        }

    c.run.click(
        run,
        [ctx.session, c.heads, c.layer, c.mode, c.target],
        [status, c.summary, c.dist],
        api_name="ablate",
        show_progress_on=[c.dist],
        concurrency_limit=CONCURRENCY,
        concurrency_id="ablation",
    )

    def pick(heads: Any, evt: gr.EventData) -> Any:
        name = getattr(evt, "name", None)
        return [name] if isinstance(name, str) else heads

    c.bar_click.click(pick, [c.heads], [c.heads], api_visibility="private").then(
        run,
        [ctx.session, c.heads, c.layer, c.mode, c.target],
        [status, c.summary, c.dist],
        api_name="ablate_picked",  # not the default "run", which would push the Generate tab's /run aside
        api_visibility="private",
        show_progress_on=[c.dist],
        concurrency_limit=CONCURRENCY,
        concurrency_id="ablation",
    )


REDRAW_SECONDS = 3.0  # the chart of the ranking so far is drawn again at most this often


def ranking_progress(share: float, line: str) -> str:
    """The ranking's own progress bar above its table (Gradio's hides once a generator yields)."""
    return (
        f"<div class='ae-rank-progress' role='status'><progress max='1' value='{share:.3f}'></progress> "
        f"<span>{views.esc(line)}</span></div>"
    )


def time_left(lang: str, seconds: float) -> str:
    """'about 40 s left' / 'about 3 min left', for a progress bar."""
    if seconds < 90:
        return say(lang, "about {seconds} s left", seconds=max(1, round(seconds)))
    return say(lang, "about {minutes} min left", minutes=round(seconds / 60))


def _wire_rank(ctx: Context, c: AblationTab) -> None:
    status = ctx.status

    @guarded_stream(status)
    def rank(session: Session, mode: str, target: Any) -> Iterator[dict[Any, Any]]:
        analysis = require_analysis(ctx, session)
        loaded = ctx.models.get(session.model)
        n, lang = loaded.n_layer * loaded.n_head, session.lang
        template = (
            "Removing each of the {n} heads alone on {tokens} tokens (a long prompt: this takes a while) …"
            if analysis.n_pos > 256
            else "Removing each of the {n} heads alone on {tokens} tokens …"
        )
        # Its own bar at once (Gradio's would hide at the first yield), before the first pass.
        yield {c.ranked: ranking_progress(0.0, say(lang, template, n=n, tokens=analysis.n_pos))}
        steps = head_importance_steps(loaded, analysis.text, _target(target), mode)
        started = drawn = time.monotonic()
        while True:
            # The model is held a forward pass at a time: an analysis or a generation step of
            # another tab waits for one pass, not for the whole ranking (minutes on gpt2-xl).
            with ctx.models.lock(loaded):
                step = next(steps, None)
            if step is None:
                break
            ranked, now = step.ranked, time.monotonic()
            if step.measured == step.total:
                continue  # the whole ranking follows at once
            left = (now - started) * (1 - step.share) / max(step.share, 1e-9)
            said = say(lang, "{n} of {total} heads removed one by one …", n=step.measured, total=step.total)
            line = sentences(lang, said, time_left(lang, left))
            out: dict[Any, Any] = {
                c.ranked: ranking_progress(step.share, line) + importance_table(ranked, lang=lang)
            }
            if now - drawn >= REDRAW_SECONDS:
                drawn = now  # the chart so far: drawn less often than the table, Plotly is slower
                out[c.importance] = localized(importance_figure(ranked), lang)
            yield out  # also a point where Stop can end the ranking
        figure = localized(importance_figure(ranked), lang)
        yield {
            status: "",
            c.importance: figure,
            c.ranked: importance_table(ranked, lang=lang),
        }

    # Stop shows while the ranking runs (app.css: html[data-ae-ranking]), set in the page at the
    # click: on the event itself, as a listener of its own would run only after it.
    ranking_js = "() => { document.documentElement.dataset.aeRanking = '%s'; }"
    ranking = c.rank.click(
        rank,
        [ctx.session, c.mode, c.target],
        [status, c.importance, c.ranked],
        js="(...inputs) => { document.documentElement.dataset.aeRanking = '1'; return inputs; }",
        api_name="head_importance",
        show_progress_on=[c.importance],
        concurrency_limit=1 if ctx.limits.hosted else 2,
        concurrency_id="importance",
    )

    ranking.then(None, None, None, js=ranking_js % "0", api_visibility="private")
    # Stopped, the table keeps the heads so far, without the bar that would say time is left.
    stop_js = "() => { document.querySelector('#ae-importance-table .ae-rank-progress')?.remove(); }"
    c.stop_rank.click(None, None, None, js=ranking_js % "0", api_visibility="private")
    c.stop_rank.click(None, None, None, js=stop_js, api_visibility="private")

    def stopped(session: Session) -> dict[Any, Any]:
        note = "Ranking stopped: the chart keeps the heads measured so far."
        return {status: say(session.lang, note)}

    c.stop_rank.click(stopped, [ctx.session], [status], cancels=[ranking], api_visibility="private")
