"""The Generate tab's layout: Step, Run, Stop, force a token, rewind, restart; the sampling
settings; each step's next-token distribution, where the new token looked, and a confidence
timeline. Its events are in generate_events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from explorer.model.generation import DEFAULT_SAMPLING
from explorer.ui.common import I18N, empty_note, placeholder, plot_click_bridge, static
from explorer.ui.state import Limits

EMPTY_TEXT = "Press Step to add one token to the prompt, or Run to add several."
DEFAULTS_NOTE = (
    "Defaults: temperature 1, top-k 50, top-p 1 — transformers' `generate` defaults. Top-k 50 stops a "
    "rare tail token (p ≈ 1e-7) from derailing the small demo model; tick **Greedy** for the single "
    "most likely token."
)
# Tokens per second for Run; 0 is as fast as the model goes (the page is drawn at most 20 times a second).
SPEEDS = [("as fast as possible", 0), ("20 tokens/s", 20), ("10 tokens/s", 10), ("5 tokens/s", 5)]
SPEEDS += [("2 tokens/s", 2), ("1 token/s", 1)]
MEAN_OVER_HEADS = "mean over heads"


@dataclass(frozen=True)
class GenerateTab:
    step: gr.Button
    run: gr.Button
    api_run: gr.Button  # hidden: the API's "run", with its parameters as they were (see wire_generate_tab)
    stop: gr.Button
    rewind: gr.Button
    restart: gr.Button
    text: gr.HTML
    step_md: gr.Markdown
    dist: gr.Plot
    force_text: gr.Textbox
    force: gr.Button
    timeline: gr.Plot
    greedy: gr.Checkbox
    temperature: gr.Slider
    top_k: gr.Slider
    top_p: gr.Slider
    seed: gr.Number
    n: gr.Slider
    attn_layer: gr.Slider
    attn_head: gr.Dropdown
    attn: gr.Plot
    speed: gr.Dropdown
    reset: gr.Button
    stream: gr.HTML  # a Run's updates, drawn in place by static/run_stream.js
    run_of: gr.Textbox  # hidden: "page:<run number>" from the page's script, "" from API callers
    typed: gr.JSON  # hidden: settings typed out of their widget's range, from settings_check.js
    bar_click: gr.HTML  # a bridge: fires click with the token_id of a clicked bar
    timeline_click: gr.HTML  # a bridge: fires click with the step of a clicked point

    @property
    def settings(self) -> list[Any]:
        return [self.greedy, self.temperature, self.top_k, self.top_p, self.seed]


def build_generate_tab(limits: Limits) -> GenerateTab:
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=420):
            with gr.Row(elem_id="ae-gen-buttons"):
                step = gr.Button(I18N("Step"), variant="primary", elem_id="ae-step", min_width=80)
                run = gr.Button(I18N("Run"), variant="primary", elem_id="ae-run", min_width=80)
                api_run = gr.Button("Run (API)", visible=False)
                stop = gr.Button(I18N("Stop"), variant="stop", elem_id="ae-stop", min_width=80)
                rewind = gr.Button(I18N("⟲ Rewind"), elem_id="ae-rewind", min_width=100)
                restart = gr.Button(I18N("↺ Restart"), elem_id="ae-restart", min_width=100)
            text = gr.HTML(empty_note(EMPTY_TEXT), elem_id="ae-gen-text", padding=True)
            stream = gr.HTML(
                "",
                html_template="<div class='ae-run-line' aria-live='polite'></div>",
                js_on_load=static("run_stream.js"),
                elem_id="ae-run-stream",
            )
            step_md = gr.Markdown("", elem_id="ae-gen-step")
            dist = gr.Plot(
                placeholder("The next-token distribution appears here."), show_label=False, elem_id="ae-dist"
            )
            gr.Markdown(
                I18N(
                    "**Click a bar** to take that token instead of the chosen one, or type a token to add next:"
                ),
                elem_classes=["ae-help"],
            )
            with gr.Row(equal_height=True):
                force_text = gr.Textbox(
                    label=I18N("Force a token"),
                    show_label=False,
                    placeholder=I18N("a token to add next, e.g. ␣Paris"),
                    scale=4,
                    elem_id="ae-force-text",
                )
                force = gr.Button(I18N("Force"), scale=1, min_width=90, elem_id="ae-force")
            timeline = gr.Plot(
                placeholder("Confidence per step appears here."), show_label=False, elem_id="ae-timeline"
            )
            gr.Markdown(
                I18N("**Click a point** of the timeline to go back to that step."), elem_classes=["ae-help"]
            )
        with gr.Column(scale=2, min_width=340):
            greedy, temperature, top_k, top_p, seed, n, speed, reset = _settings_panel(limits)
            gr.Markdown(I18N("**Where the new token looked**"), elem_classes=["ae-subhead"])
            with gr.Group(), gr.Row():
                attn_layer = gr.Slider(0, 1, value=0, step=1, label=I18N("Layer"), elem_id="ae-gen-layer")
                attn_head = gr.Dropdown(
                    choices=[(I18N(MEAN_OVER_HEADS), -1)],
                    value=-1,
                    label=I18N("Head"),
                    elem_id="ae-gen-head",
                    min_width=140,
                )
            attn = gr.Plot(
                placeholder("Where the new token looked."), show_label=False, elem_id="ae-gen-attn"
            )
    return GenerateTab(
        step=step,
        run=run,
        api_run=api_run,
        stop=stop,
        rewind=rewind,
        restart=restart,
        text=text,
        step_md=step_md,
        dist=dist,
        force_text=force_text,
        force=force,
        timeline=timeline,
        greedy=greedy,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        n=n,
        attn_layer=attn_layer,
        attn_head=attn_head,
        attn=attn,
        speed=speed,
        reset=reset,
        stream=stream,
        run_of=gr.Textbox("", visible=False),
        typed=gr.JSON(None, visible=False),
        bar_click=plot_click_bridge("#ae-dist", "token_id: p.customdata"),
        timeline_click=plot_click_bridge("#ae-timeline", "step: p.x"),
    )


def _settings_panel(limits: Limits) -> tuple[Any, ...]:
    """The sampling settings, from DEFAULT_SAMPLING. Checked by the engine, not by the widgets'
    ranges alone: the page refuses a typed value out of range in the page (run_stream.js), so
    that the chart stays and the message is readable."""
    d = DEFAULT_SAMPLING
    with gr.Group():
        greedy = gr.Checkbox(
            value=d.greedy, label=I18N("Greedy (always the most likely token)"), elem_id="ae-greedy"
        )
        temperature = gr.Slider(
            0,
            2,
            value=d.temperature,
            step=0.05,
            label=I18N("Temperature"),
            info=I18N("< 1 sharpens, > 1 flattens; 0 is greedy"),
            elem_id="ae-temp",
        )
        top_k = gr.Slider(
            0,
            100,
            value=d.top_k,
            step=1,
            label=I18N("Top-k"),
            info=I18N("keep the k likeliest; 0 = off; default 50, as transformers' generate"),
            elem_id="ae-topk",
        )
        top_p = gr.Slider(
            0.05,
            1,
            value=d.top_p,
            step=0.05,
            label=I18N("Top-p"),
            info=I18N("keep the likeliest until they sum to p; 1 = off"),
            elem_id="ae-topp",
        )
        with gr.Row():
            seed = gr.Number(value=d.seed, precision=0, label=I18N("Seed"), minimum=0, elem_id="ae-seed")
            n = gr.Slider(
                1,
                limits.max_run_tokens,
                value=min(20, limits.max_run_tokens),
                step=1,
                label=I18N("Run length"),
                info=I18N("tokens per Run"),
                elem_id="ae-n",
            )
        with gr.Row(equal_height=True):
            speed = gr.Dropdown(
                choices=[(I18N(name), value) for name, value in SPEEDS],
                value=0,
                label=I18N("Run speed"),
                info=I18N("slow it down to watch the distribution change"),
                elem_id="ae-speed",
                scale=3,
            )
            reset = gr.Button(I18N("Reset to defaults"), elem_id="ae-reset-sampling", scale=1, min_width=120)
    gr.Markdown(I18N(DEFAULTS_NOTE), elem_classes=["ae-help"], elem_id="ae-sampling-note")
    return greedy, temperature, top_k, top_p, seed, n, speed, reset
