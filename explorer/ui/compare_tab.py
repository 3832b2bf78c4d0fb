"""The Compare tab: prompt A (the prompt above) and prompt B position by position: which heads
moved their attention, and how the next-token guess moved."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

import gradio as gr

from explorer import views
from explorer.analysis.ablation import head_name
from explorer.analysis.comparison import Comparison, compare
from explorer.errors import ExplorerError
from explorer.figures.insights import compare_figure
from explorer.i18n import say, translate
from explorer.insight_views import IOI, compare_heads_table, next_token_diff_table, parse_heads, swap_names
from explorer.model.capture import analyze, clean_text
from explorer.ui.common import (
    I18N,
    Context,
    clamp_or_last,
    current_analysis,
    guarded,
    localized,
    placeholder,
    progress_callback,
    tab_listener,
)
from explorer.ui.state import CONCURRENCY, Session

COMPARE_TAB = "compare"


def _head_choices(comparison: Comparison, lang: str = "en") -> list[tuple[str, str]]:
    return [
        (
            say(
                lang,
                "{head} · {share} moved",
                head=head_name(int(r.layer), int(r.head)),
                share=f"{r.total_variation:.0%}",
            ),
            head_name(int(r.layer), int(r.head)),
        )
        for r in comparison.heads.itertuples(index=False)
    ]


@dataclass(frozen=True)
class CompareTab:
    prompt_b: gr.Textbox
    run: gr.Button
    swap: gr.Button
    alignment: gr.Markdown
    heads_table: gr.HTML
    head: gr.Dropdown
    next_table: gr.HTML
    plot: gr.Plot
    state: gr.State  # the Comparison shown
    compared: gr.State  # the analysis (ctx.analyzed's count) that A was when compared


def add_compare_tab(ctx: Context, tabs: gr.Tabs) -> None:
    t = build_compare_tab()
    _wire_run(ctx, t)
    _wire_view(ctx, t)
    _wire_stale(ctx, tabs, t)


def build_compare_tab() -> CompareTab:
    with gr.Tab(I18N("Compare"), id=COMPARE_TAB, elem_id="ae-compare-tab"):
        gr.Markdown(
            I18N(
                "**Two prompts, position by position.** A is the prompt above; change a word in B (swap the "
                "names, say) and see which heads shift their attention and how the next-token guess moves."
            ),
            elem_classes=["ae-help"],
        )
        with gr.Row(equal_height=True):
            prompt_b = gr.Textbox(
                value=swap_names(IOI),
                label=I18N("Prompt B"),
                lines=2,
                max_lines=4,
                scale=6,
                elem_id="ae-prompt-b",
            )
            with gr.Column(scale=1, min_width=180):
                run = gr.Button(I18N("Compare"), variant="primary", elem_id="ae-compare-run")
                swap = gr.Button(I18N("Swap the names in A"), size="sm", elem_id="ae-swap")
        alignment = gr.Markdown("", elem_id="ae-compare-alignment")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                gr.Markdown(
                    I18N("**Heads whose attention moved most** (share of attention that moved)"),
                    elem_classes=["ae-help"],
                )
                heads_table = gr.HTML("", elem_id="ae-compare-heads")
                head = gr.Dropdown(
                    choices=[],
                    value=None,
                    label=I18N("Show head"),
                    elem_id="ae-compare-head",
                    allow_custom_value=True,
                )
                gr.Markdown(I18N("**Next token: A vs B**"), elem_classes=["ae-help", "ae-subhead"])
                next_table = gr.HTML("", elem_id="ae-compare-next")
            with gr.Column(scale=3, min_width=420):
                plot = gr.Plot(
                    placeholder("Press Compare to see where attention moved."),
                    show_label=False,
                    elem_id="ae-compare-diff",
                )
        state = gr.State(None)
        compared = gr.State(-1)
    return CompareTab(prompt_b, run, swap, alignment, heads_table, head, next_table, plot, state, compared)


def _wire_run(ctx: Context, t: CompareTab) -> None:
    status = ctx.status
    prompt_b, run, swap, alignment, heads_table, head, next_table, plot, state, compared = (
        getattr(t, f.name) for f in fields(t)
    )

    @guarded(status)
    def run_compare(
        prompt: str, session: Session, text_b: str, progress: gr.Progress = gr.Progress()
    ) -> dict[Any, Any]:
        lang = session.lang
        loaded = ctx.models.get(session.model, progress_callback(progress, lang))
        limit = ctx.limits.max_prompt_tokens
        a = current_analysis(ctx, session)
        progress(0.5, desc=say(lang, "Running the model on both prompts …"))
        with ctx.models.lock(loaded):
            if a is None or a.model_name != loaded.name or a.text != clean_text(prompt or ""):
                a = analyze(loaded, prompt, max_tokens=limit)
            b = analyze(loaded, text_b, max_tokens=limit)
        comparison = compare(a, b)
        top = comparison.heads.iloc[0]
        layer, head_i = int(top["layer"]), int(top["head"])
        differing = len(comparison.differing)
        if differing:
            template = "{n} position differs." if differing == 1 else "{n} positions differ."
            words = say(lang, template, n=differing)
        else:
            words = say(lang, "The tokens are the same.")
        return {
            status: "",
            state: comparison,
            alignment: f"{views.esc(translate(comparison.alignment, lang))} {words}",
            heads_table: compare_heads_table(comparison, lang=lang),
            head: gr.update(choices=_head_choices(comparison, lang), value=head_name(layer, head_i)),
            next_table: next_token_diff_table(comparison, lang=lang),
            plot: localized(compare_figure(comparison, layer, head_i), lang),
        }

    run.click(
        run_compare,
        [ctx.prompt, ctx.session, prompt_b],
        [status, state, alignment, heads_table, head, next_table, plot],
        api_name="compare",
        show_progress_on=[plot],
        concurrency_limit=CONCURRENCY,
        concurrency_id="compare",
    ).success(
        lambda analyzed: analyzed,
        [ctx.analyzed],
        [compared],
        api_visibility="private",
        show_progress="hidden",
    )


def _wire_view(ctx: Context, t: CompareTab) -> None:
    status, guard = ctx.status, guarded(ctx.status)
    prompt_b, run, swap, alignment, heads_table, head, next_table, plot, state, compared = (
        getattr(t, f.name) for f in fields(t)
    )

    @guard
    def show_head(session: Session, comparison: Comparison | None, name: Any) -> dict[Any, Any]:
        if comparison is None:
            raise ExplorerError("Press Compare first.")
        (found,) = parse_heads(name) or ["L0H0"]
        layer, head_i = (int(x) for x in re.findall(r"\d+", found))
        n_layer, n_head = comparison.diff.shape[:2]
        fig = compare_figure(comparison, clamp_or_last(layer, n_layer), clamp_or_last(head_i, n_head))
        return {status: "", plot: localized(fig, session.lang)}

    head.input(
        show_head,
        [ctx.session, state, head],
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


def _wire_stale(ctx: Context, tabs: gr.Tabs, t: CompareTab) -> None:
    prompt_b, run, swap, alignment, heads_table, head, next_table, plot, state, compared = (
        getattr(t, f.name) for f in fields(t)
    )

    def stale(session: Session, comparison: Comparison | None, analyzed: int, compared: int) -> Any:
        """Say so when the prompt was analyzed again after the comparison shown."""
        if comparison is None or analyzed == compared:
            return gr.skip()
        return say(session.lang, "*The prompt changed: press **Compare** to compare it with B.*")

    tab_listener(
        ctx,
        tabs,
        COMPARE_TAB,
        "ae-compare-tab",
        [ctx.analyzed.change],
        stale,
        [ctx.session, state, ctx.analyzed, compared],
        [alignment],
        api_visibility="private",
        show_progress="hidden",
    )
