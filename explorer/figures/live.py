"""The Generate tab's figures, from a GenerationSession and its steps (engine objects in, figure out)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from explorer import views
from explorer.figures.base import message_figure
from explorer.figures.generation import distribution_figure, timeline_figure
from explorer.figures.heads import attention_row_figure
from explorer.model.capture import display_tokens
from explorer.model.generation import TOP_K_SHOWN, GenerationSession, StepResult

GEN_TICK_LABELS = 18  # the generation panels are narrower
GEN_HOVER_KEYS = 256  # longer attention rows of a generated token hover without token text


def distribution(
    raw: Any, warped: Any, chosen: int | None, title: str, chosen_label: str | None = None
) -> go.Figure:
    """distribution_figure, a little shorter, with ticks fine enough for small probabilities;
    `chosen_label` names the chosen token when it is not among the bars."""
    top = max(
        float(raw["prob"].max()) if len(raw) else 0.0, float(warped["prob"].max()) if len(warped) else 0.0
    )
    rows = len(set(raw["token_id"]) | set(warped["token_id"]))
    return distribution_figure(
        raw,
        warped,
        chosen,
        title=title,
        chosen_label=chosen_label,
        xaxis={"tickformat": ".0%" if top >= 0.1 else ".1%" if top >= 0.01 else ".2%"},
        height=130 + 21 * rows * 2,
    )


def preview_figure(gen: GenerationSession) -> go.Figure:
    """The next token's distribution before it is chosen, raw and with the settings."""
    raw, warped = gen.distributions()
    frames = []
    for probs in (raw, warped):
        top = np.argpartition(-probs, TOP_K_SHOWN)[:TOP_K_SHOWN]  # no full sort of the vocabulary
        top = top[np.argsort(-probs[top])]
        top = top[probs[top] > 0]
        frames.append(views.top_table(display_tokens(gen.tokenizer, top), top, probs[top]))
    return distribution(frames[0], frames[1], None, "Next token: not chosen yet")


def step_distribution(result: StepResult, step_no: int) -> go.Figure:
    return distribution(
        result.raw_top,
        result.warped_top,
        result.token_id,
        f"Step {step_no}: the next-token distribution",
        chosen_label=result.display,
    )


def timeline(gen: GenerationSession) -> go.Figure:
    if not gen.history:
        return message_figure("Confidence per step appears here.", height=300)
    items = gen.history
    return timeline_figure(
        [h.prob for h in items],
        [h.entropy for h in items],
        [h.display for h in items],
        max_labels=GEN_TICK_LABELS,
        height=300,
    )


# --- what a Run's frames carry: compact data that static/run_stream.js draws on a canvas ------
# Plotly redraws of these panels cost 90–210 ms each in Chromium on a 2-core machine (its text
# measurements force layout over and over); a canvas draws them in a few milliseconds. Text is
# raw (canvas text is never parsed as HTML); values are rounded only as far as a bar can show.


def _ticks(tokens: Sequence[str], max_labels: int) -> list[list[Any]]:
    """[position, token] for every k-th token, at most `max_labels` of them."""
    step = max(1, -(-len(tokens) // max_labels))
    return [[i, str(tokens[i])] for i in range(0, len(tokens), step)]


def _rounded(values: Any, digits: int = 5) -> list[float]:
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


def live_distribution(result: StepResult, step_no: int) -> dict[str, Any]:
    """The step's distribution in the figure's rows (step_distribution): [token, p from the model,
    p after the settings (None where a token is in one list only), chosen]."""
    raw, warped = result.raw_top, result.warped_top
    p_raw = dict(zip(raw["token_id"].tolist(), raw["prob"].tolist(), strict=True))
    p_warped = dict(zip(warped["token_id"].tolist(), warped["prob"].tolist(), strict=True))
    names = dict(zip(raw["token_id"].tolist(), raw["token"].astype(str).tolist(), strict=True))
    names |= dict(zip(warped["token_id"].tolist(), warped["token"].astype(str).tolist(), strict=True))
    ids = list(dict.fromkeys([*p_raw, *p_warped]))
    rows = [[names[i], _r(p_raw.get(i)), _r(p_warped.get(i)), i == result.token_id] for i in ids]
    note = (
        ""
        if result.token_id in names
        else f"chosen '{result.display}' (id {result.token_id}) is not among these bars"
    )
    return {"title": f"Step {step_no}: the next-token distribution", "note": note, "rows": rows}


def _r(p: float | None) -> float | None:
    return None if p is None else round(float(p), 6)


def live_attention(
    pattern: np.ndarray, tokens: Sequence[str], result: StepResult, layer: int, head: int | None
) -> dict[str, Any]:
    """new_token_attention's data: the newest token's attention row over its keys."""
    row = pattern[layer].mean(0) if head is None else pattern[layer, head]
    n = result.position + 1
    which = "mean over heads" if head is None else f"head {head}"
    return {
        "title": f"New token '{result.display}'",
        "subtitle": f"its attention in layer {layer}, {which}",
        "values": _rounded(row[:n]),
        "ticks": _ticks(list(tokens)[:n], GEN_TICK_LABELS),
    }


def live_timeline(gen: GenerationSession) -> dict[str, Any]:
    """timeline's data: p(chosen) and entropy (bits) per step, and the token ticks."""
    items = gen.history
    return {
        "p": _rounded([h.prob for h in items]),
        "h": _rounded([h.entropy for h in items], 4),
        "ticks": _ticks([h.display for h in items], GEN_TICK_LABELS),
    }


def new_token_attention(
    pattern: np.ndarray, tokens: Sequence[str], result: StepResult, layer: int, head: int | None
) -> go.Figure:
    """Where the newest token looked: its attention row ([layer, head, key] `pattern`) in one
    layer, one head or the mean over heads (None)."""
    row = pattern[layer].mean(0) if head is None else pattern[layer, head]
    which = "mean over heads" if head is None else f"head {head}"
    return attention_row_figure(
        row,
        list(tokens),
        result.position,
        title=f"New token '{result.display}'",
        subtitle=f"its attention in layer {layer}, {which}",
        max_labels=GEN_TICK_LABELS,
        hover_tokens=GEN_HOVER_KEYS,  # per-bar token hover text would dominate a long step's update
        height=300,
    )
