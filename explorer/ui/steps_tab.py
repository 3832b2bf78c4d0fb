"""The Q/K/V step-by-step tab: one card, table and picture per step of the attention arithmetic,
for the selected layer, head and query. Filled when it shows (see state.Session.shown_tab)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from explorer import views
from explorer.analysis.arithmetic import STEPS, Breakdown, breakdown
from explorer.figures.steps import STEP_FIGURES
from explorer.ui.common import I18N, Context, clamp, current_analysis, guarded, localized
from explorer.ui.state import CONCURRENCY, STEPS_TAB, Session


@dataclass(frozen=True)
class StepPanel:
    name: str
    card: gr.HTML
    table: gr.HTML
    plot: gr.Plot | None

    @property
    def components(self) -> list[Any]:
        return [self.card, self.table] + ([self.plot] if self.plot is not None else [])


@dataclass(frozen=True)
class StepsTab:
    selection: gr.Markdown  # one line naming the layer, head and query shown
    steps: tuple[StepPanel, ...]

    @property
    def step_components(self) -> list[Any]:
        return [c for step in self.steps for c in step.components]


def build_steps_tab() -> StepsTab:
    selection = gr.Markdown(
        I18N("Analyze a prompt, then pick a layer, head and query token."),
        elem_id="ae-selection-line",
        elem_classes=["ae-selection-line"],
    )
    gr.HTML(views.steps_nav(), elem_id="ae-steps-nav")
    panels: list[StepPanel] = []
    for step in STEPS:
        with gr.Row(equal_height=False, elem_classes=["ae-step-row"], elem_id=f"ae-step-{step.name}"):
            with gr.Column(scale=2, min_width=300):
                card = gr.HTML(views.step_card(len(panels) + 1, step, None), elem_classes=["ae-card"])
            with gr.Column(scale=5, min_width=380):
                plot = None
                if step.name in STEP_FIGURES:
                    plot = gr.Plot(show_label=False, elem_classes=["ae-step-plot"])
                table = gr.HTML("", elem_classes=["ae-step-table"])
        panels.append(StepPanel(step.name, card, table, plot))
    return StepsTab(selection, tuple(panels))


def step_updates(panels: Sequence[StepPanel], bd: Breakdown, lang: str = "en") -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for number, panel in enumerate(panels, start=1):
        step = views.STEP_BY_NAME[panel.name]
        out[panel.card] = views.step_card(
            number, step, bd.deviation.get(panel.name), views.step_note(bd, panel.name, lang), lang
        )
        out[panel.table] = views.table_html(views.step_table(bd, panel.name), lang)
        if panel.plot is not None:
            out[panel.plot] = localized(STEP_FIGURES[panel.name](bd), lang)
    return out


def wire_steps_tab(ctx: Context, tab: StepsTab, tabs: gr.Tabs) -> None:
    """Record which tab shows, and fill the Q/K/V tab when it opens."""

    @guarded(ctx.status)
    def on_tab(session: Session, layer: Any, head: Any, query: Any, evt: gr.SelectData) -> dict[Any, Any]:
        session.shown_tab = str(getattr(evt, "id", None))
        out: dict[Any, Any] = {ctx.session: session}
        analysis = current_analysis(ctx, session)
        if session.shown_tab != STEPS_TAB or analysis is None:
            return out
        layer, head = clamp(layer, analysis.n_layer), clamp(head, analysis.n_head)
        bd = breakdown(analysis, layer, head, clamp(query, analysis.n_pos))
        return out | step_updates(tab.steps, bd, session.lang)

    tabs.select(
        on_tab,
        [ctx.session, ctx.layer, ctx.head, ctx.query],
        [ctx.status, ctx.session, *tab.step_components],
        api_visibility="private",
        concurrency_limit=CONCURRENCY,
        show_progress="hidden",
    )
