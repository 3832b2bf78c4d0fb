"""The page: every panel laid out in order, then the wiring that crosses panels. Read it as the
app's table of contents; each panel's own layout and events live in its module."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gradio as gr

from explorer.errors import ModelLoadError
from explorer.model.loading import LoadedModel, ModelPlan, load_model, plan_model
from explorer.ui import (
    ablation_tab,
    analysis,
    attribution_tab,
    compare_tab,
    export_tab,
    generate_events,
    generate_tab,
    head_types_tab,
    header,
    heads_tab,
    language,
    lecture_bar,
    lens_tab,
    prompt,
    serving,
    steps_tab,
    view_state,
    walkthrough_tab,
)
from explorer.ui.common import I18N, Context, static
from explorer.ui.state import (
    HEADS_TAB,
    HOSTED_MODELS,
    STEPS_TAB,
    AnalysisStore,
    Limits,
    ModelCache,
    Session,
    idle_seconds,
    model_key,
)

FOOTER = (
    "Attention weights are the model's own, captured with hooks; every number in the step-by-step "
    "view is recomputed from the weights and checked against the model's tensors."
)


def build_app(
    model: str | None = None,
    device: str | None = None,
    hosted: bool = False,
    *,
    loaded: LoadedModel | None = None,
    cache_size: int = 2,
    extra_tabs: Sequence[Callable[[Context], None]] = (),
    load_in_background: bool = False,
    analysis_budget: int | None = None,
) -> gr.Blocks:
    """The app, with `model` (see load_model) loaded and serving.

    `loaded` reuses an already loaded model; `extra_tabs` are called with the Context inside
    the tab bar, after the built-in tabs, to add their own `gr.Tab`s. `load_in_background`
    (a local model on the CPU or the automatic device) checks the model's folder now and loads
    it once `launch` has the server answering: importing torch and transformers and reading the
    weights take longer than building and serving the page, and a request that needs the model
    waits for it. `analysis_budget` bounds, in bytes, the analyses all sessions hold together
    (default: EXPLORER_ANALYSIS_BUDGET_MB, else from the machine's memory; see AnalysisStore).
    """
    limits = Limits.for_mode(hosted)
    if hosted and model not in (None, *HOSTED_MODELS):
        raise ModelLoadError(f"In hosted mode only these models can be loaded: {', '.join(HOSTED_MODELS)}.")
    models = ModelCache(device, capacity=cache_size, loader=load_model)
    plan = plan_model(model) if load_in_background and loaded is None else None
    first: LoadedModel | ModelPlan
    # A device named outright may not exist here (only torch can tell): that load fails now.
    if plan is not None and plan.is_local and device in (None, "auto", "cpu"):
        first = plan
        key = model_key(plan, model)
    else:
        first = loaded or load_model(model, device=device)
        key = model_key(first, model)
        models.put(key, first)

    # delete_cache: files Gradio keeps for the page (an hour old, checked hourly); downloads are
    # bounded by export_tab.export_folder.
    with gr.Blocks(title="Attention Explorer", fill_width=True, delete_cache=(3600, 3600)) as demo:
        # --- layout, top to bottom ---
        # Released when its tab closes (serving.free_on_close) or after this long untouched.
        session = gr.State(Session(model=key), time_to_live=idle_seconds())
        analyzed = gr.State(0)
        with gr.Row(elem_id="ae-top", equal_height=True):  # one line: name, model, lecture controls
            top = header.build_header(first, key, limits)
            bar = lecture_bar.build_lecture_bar()
        entry = prompt.build_prompt_panel()
        status = gr.Markdown("", elem_id="ae-status", elem_classes=["ae-status"])
        bridges = gr.Column(elem_id="ae-bridges")  # hidden helpers of the page's scripts (app.css)
        selected = prompt.build_selection_bar()
        ctx = Context(
            session=session,
            analyzed=analyzed,
            prompt=entry.prompt,
            status=status,
            layer=selected.layer,
            head=selected.head,
            mean=selected.mean,
            query=selected.query,
            models=models,
            analyses=AnalysisStore(analysis_budget),
            limits=limits,
            page_tab=gr.Textbox("", visible=False),
            bridges=bridges,
        )
        with gr.Tabs(elem_id="ae-tabs") as tabs:
            with gr.Tab(I18N("Attention heads"), id=HEADS_TAB):
                heads = heads_tab.build_heads_tab()
            with gr.Tab(I18N("Q/K/V step by step"), id=STEPS_TAB):
                steps = steps_tab.build_steps_tab()
            with gr.Tab(I18N("Generate"), id="generate", elem_id="ae-gen-tab"):
                gen = generate_tab.build_generate_tab(limits)
            head_types_tab.add_head_types_tab(ctx, tabs, head_types_tab.HeadTypes(ctx), entry.back)
            ablation_tab.add_ablation_tab(ctx, tabs)
            lens_tab.add_lens_tab(ctx, tabs)
            compare_tab.add_compare_tab(ctx, tabs)
            why = attribution_tab.build_why_tab()
            walk = walkthrough_tab.build_walkthrough_tab()
            exports = export_tab.build_export_tab()
            for extra in extra_tabs:
                extra(ctx)
        gr.Markdown(I18N(FOOTER), elem_classes=["ae-footer"])

        # --- wiring: one analysis feeds every tab; the selection redraws the detail and the steps ---
        tabs.select(None, js=static("selection_visibility.js"))
        selection = analysis.Selection(ctx, heads.overview, heads.detail, heads.detail_note, steps)
        analyzed_event = analysis.wire_analysis(ctx, entry, selected, selection)
        analysis.wire_selection(ctx, selected, selection)
        heads_tab.wire_overview_click(ctx, heads, selection)
        steps_tab.wire_steps_tab(ctx, steps, tabs)
        generate_events.wire_generate_tab(ctx, gen)
        header.wire_model_picker(ctx, top, analyzed_event, gen.text, gen.step_md)
        export_tab.wire_export_tab(ctx, exports)
        attribution_tab.wire_why_tab(ctx, why, tabs, selection, selected, analyzed_event)
        walkthrough_tab.wire_walkthrough(ctx, walk, bar.lang, gen, tabs)
        with bridges:
            open_tab = gr.Textbox(HEADS_TAB, elem_id="ae-open-tab")  # the open tab's id, for the link
        tab_ids = tuple(str(child.id) for child in tabs.children)
        view = view_state.ViewPanels(top, selected, gen, bar, selection, tabs, tab_ids, open_tab)
        view_state.wire_view_state(demo, ctx, view, analyzed_event)
        lecture_bar.wire_lecture_bar(bar)
        language.wire_language(demo, ctx, bar, top, selected, selection, gen)
        serving.free_on_close(demo)
    if not models.ready(key):
        serving.PRELOADS[demo] = lambda: models.preload(key, model)
    return demo
