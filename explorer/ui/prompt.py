"""The prompt, its examples, and the selection bar under it: the token strip (click a token to
make it the query), layer, head, mean over heads and the query token."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from explorer.model.loading import assets_dir
from explorer.ui.common import I18N, empty_note, static

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromptPanel:
    prompt: gr.Textbox
    analyze: gr.Button
    back: gr.Button  # hidden until a probe (Head types) replaces the prompt: restores the lecturer's
    examples: Any  # gr.Examples, or None when assets/examples.json is missing
    # The (layer, head) an example exists to show, by its prompt: clicking it opens that head.
    example_heads: Mapping[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class SelectionBar:
    tokens: gr.HTML
    layer: gr.Slider
    head: gr.Slider
    mean: gr.Checkbox
    query: gr.Dropdown


def load_examples() -> list[dict[str, Any]]:
    """assets/examples.json: each a label and a prompt, and optionally the layer and head it shows."""
    path = assets_dir() / "examples.json"
    try:
        return [e for e in json.loads(path.read_text()) if e.get("prompt")]
    except (OSError, ValueError):
        log.warning("no examples at %s", path)
        return []


def example_heads(examples: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """The (layer, head) of each example that names both, by its prompt."""
    return {
        e["prompt"].strip(): (int(e["layer"]), int(e["head"]))
        for e in examples
        if e.get("layer") is not None and e.get("head") is not None
    }


def build_prompt_panel() -> PromptPanel:
    examples = load_examples()
    with gr.Row(elem_id="ae-prompt-row", equal_height=True):
        prompt = gr.Textbox(
            value=examples[2]["prompt"] if len(examples) > 2 else "",
            label=I18N("Prompt"),
            placeholder=I18N("Type some text for GPT-2 to read …"),
            lines=1,
            max_lines=4,
            scale=6,
            elem_id="ae-prompt",
        )
        with gr.Column(scale=1, min_width=140):
            analyze = gr.Button(I18N("Analyze"), variant="primary", min_width=140, elem_id="ae-analyze")
            back = gr.Button(
                I18N("↩ Back to my prompt"), visible=False, size="sm", elem_id="ae-back-prompt", min_width=140
            )
    ex = None
    if examples:
        ex = gr.Examples(
            examples=[[e["prompt"]] for e in examples],
            inputs=[prompt],
            # Plain labels (gr.Examples shows no gr.I18n): the page names them (static/language.js).
            example_labels=[e.get("label", e["prompt"][:30]) for e in examples],
            label=I18N("Examples"),
            elem_id="ae-examples",
        )
    return PromptPanel(prompt, analyze, back, ex, example_heads(examples))


def build_selection_bar() -> SelectionBar:
    with gr.Group(elem_id="ae-selection"):
        tokens = gr.HTML(
            empty_note("Analyzing the prompt … (or type one and press Analyze)"),
            elem_id="ae-tokens",
            js_on_load=static("token_click.js"),
            padding=True,
        )
        with gr.Row(equal_height=True):
            layer = gr.Slider(0, 1, value=0, step=1, label=I18N("Layer"), elem_id="ae-layer", min_width=200)
            head = gr.Slider(0, 1, value=0, step=1, label=I18N("Head"), elem_id="ae-head", min_width=200)
            mean = gr.Checkbox(
                value=False, label=I18N("Mean over the layer's heads"), elem_id="ae-mean", min_width=180
            )
            # Custom values let API clients pass any position; handlers clamp it to the prompt.
            query = gr.Dropdown(
                choices=[],
                value=None,
                label=I18N("Query token (the one doing the looking)"),
                elem_id="ae-query",
                min_width=240,
                scale=2,
                allow_custom_value=True,
            )
    return SelectionBar(tokens, layer, head, mean, query)
