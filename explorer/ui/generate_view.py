"""The Generate tab's view of a step: the text so far, the next-token distribution, where the new
token looked and the timeline, in the session's language; and the tab before its first step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr

from explorer import views
from explorer.figures import live
from explorer.i18n import say
from explorer.model.capture import display_tokens
from explorer.model.generation import GenerationSession, StepResult
from explorer.ui.common import clamp, localized, placeholder
from explorer.ui.generate_tab import EMPTY_TEXT, MEAN_OVER_HEADS, GenerateTab
from explorer.ui.state import Session


def token_names(session: Session, gen: GenerationSession, ids: Sequence[int]) -> list[str]:
    """Display strings of token ids, remembered per id: a step names up to n_ctx tokens."""
    known = session.token_text
    missing = [i for i in dict.fromkeys(ids) if i not in known]
    if missing:
        known.update(zip(missing, display_tokens(gen.tokenizer, missing), strict=True))
    return [known[i] for i in ids]


def attention_parts(
    session: Session, gen: GenerationSession, result: StepResult, layer: Any, head: Any
) -> tuple[Any, list[str], StepResult, int, int | None]:
    """What the attention row of the step shown is drawn from (always the newest token, see
    state.remember): the pattern [layer, head, key], the key tokens' names, the step, the layer
    and the head (None: the mean over heads)."""
    pattern = gen.last_pattern  # [layer, head, key]
    layer = clamp(layer, pattern.shape[0])
    head_i = None if head in (None, -1, "-1") else clamp(head, pattern.shape[1])
    names = token_names(session, gen, gen.ids[: result.position + 1])
    return pattern, names, result, layer, head_i


def attention_figure(
    session: Session, gen: GenerationSession, result: StepResult, layer: Any, head: Any
) -> Any:
    return localized(
        live.new_token_attention(*attention_parts(session, gen, result, layer, head)), session.lang
    )


def generation_view(
    tab: GenerateTab,
    session: Session,
    gen: GenerationSession,
    result: StepResult | None,
    layer: Any,
    head: Any,
) -> dict[Any, Any]:
    """The text, the timeline, and the distribution and attention of `result` (None: the next token's)."""
    prompt_text = gen.tokenizer.decode(gen.ids[: gen.prompt_len])
    pieces = [gen.tokenizer.decode([i]) for i in gen.generated]
    forced = [h.forced for h in gen.history]
    lang = session.lang
    out: dict[Any, Any] = {
        tab.text: views.generation_html(prompt_text, pieces, forced, lang),
        tab.timeline: localized(live.timeline(gen), lang),
    }
    if result is None:
        out[tab.dist] = localized(live.preview_figure(gen), lang)
        out[tab.attn] = placeholder("Step to see where the new token looks.", 300, lang)
        out[tab.step_md] = say(
            lang,
            "{n} tokens generated. The chart shows the distribution for the next token; "
            "press **Step** to choose it.",
            n=len(gen.generated),
        )
        return out
    out[tab.dist] = localized(live.step_distribution(result, len(gen.generated)), lang)
    out[tab.attn] = attention_figure(session, gen, result, layer, head)
    out[tab.step_md] = views.step_summary(
        result.position,
        result.display,
        result.prob,
        result.warped_prob,
        result.entropy,
        result.forced,
        result.finished,
        greedy=gen.greedy,
        lang=lang,
    )
    return out


def head_choices(n_head: int, lang: str) -> list[tuple[str, int]]:
    """The new token's attention: the mean over heads (-1), or one head."""
    return [(say(lang, MEAN_OVER_HEADS), -1), *((say(lang, "head {head}", head=h), h) for h in range(n_head))]


def generation_placeholders(tab: GenerateTab, lang: str) -> dict[Any, Any]:
    """The Generate tab before its first step, in `lang`."""
    return {
        tab.dist: placeholder("The next-token distribution appears here.", lang=lang),
        tab.timeline: placeholder("Confidence per step appears here.", lang=lang),
        tab.attn: placeholder("Where the new token looked.", lang=lang),
    }


def generation_again(tab: GenerateTab, session: Session, layer: Any, head: Any) -> dict[Any, Any]:
    """The Generate tab as it shows now, made again (in the session's language, after a switch)."""
    gen = session.generation
    if gen is None:
        return generation_placeholders(tab, session.lang) | {
            tab.text: views.empty_html(EMPTY_TEXT, session.lang)
        }
    shown = session.shown_position  # a kept step, or the next token's distribution (None)
    result = session.steps.get(shown) if shown is not None and shown < len(gen.ids) else None
    choices = gr.update(choices=head_choices(gen.loaded.n_head, session.lang), value=head)
    return generation_view(tab, session, gen, result, layer, head) | {tab.attn_head: choices}
