"""The 'Why this token?' tab's pure pieces: the tokens offered to explain, the one-line summary,
the three figures sized for the app, and what a click on them names. Tested without a server."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go

from explorer.analysis.arithmetic import softmax
from explorer.analysis.attribution import Attribution
from explorer.figures.attribution import (
    attribution_bars_figure,
    attribution_flow_figure,
    attribution_heads_figure,
)
from explorer.i18n import say
from explorer.model.capture import Analysis, display_tokens
from explorer.views import esc

TOP_CHOICES = 5  # the model's top predictions offered as tokens to explain
TOP_BARS = 12
_HEAD = re.compile(r"L(\d+)H(\d+)")


def md_text(text: object) -> str:
    """`esc`, and the characters Markdown would read as emphasis or a link, for text in a gr.Markdown."""
    out = esc(text)
    for char, code in (("*", "&#42;"), ("_", "&#95;"), ("[", "&#91;"), ("]", "&#93;"), ("~", "&#126;")):
        out = out.replace(char, code)
    return out


def chip(token: str) -> str:
    return f"<span class='ae-chip'>{md_text(token)}</span>"


def _pct(p: float) -> str:
    return f"{p:.0%}" if p >= 0.1 else f"{p:.1%}" if p >= 0.001 else f"{p:.1e}"


def predictions(analysis: Analysis, position: int, n: int = TOP_CHOICES) -> list[tuple[str, int, float]]:
    """The model's `n` likeliest next tokens at `position`: (display string, id, probability)."""
    probs = softmax(analysis.logits_at(position).astype(np.float64))
    top = np.argsort(-probs, kind="stable")[:n]
    names = display_tokens(analysis.tokenizer, top)
    return [(name, int(i), float(probs[i])) for name, i in zip(names, top.tolist(), strict=True)]


def token_choices(top: Sequence[tuple[str, int, float]]) -> list[tuple[str, str]]:
    """Dropdown choices (label, value) for the top predictions; the value is the display string."""
    return [(f"{name} · {_pct(p)}", name) for name, _, p in top]


def resolve_token(analysis: Analysis, value: Any, top: Sequence[tuple[str, int, float]]) -> int | str | None:
    """What `logit_attribution` is asked to explain: None for a blank (the top prediction), the id
    of a top prediction or of a prompt token named by its display string (which need not tokenize
    back to it), else the text as typed."""
    if value is None or (isinstance(value, str) and not value.strip(" ")):
        return None
    text = str(value)
    known = [(name, token_id) for name, token_id, _ in top]
    known += list(zip(analysis.tokens, analysis.token_ids.tolist(), strict=True))
    return next((int(token_id) for name, token_id in known if name == text), text)


# The summary's words (explorer/texts "messages"): the English is the key.
EXACTLY, WITHIN = "exactly", "within {d}"
TOP_ONE, RANKED = "{token} (its top prediction, {p})", "{token} (p = {p}, rank {rank})"
MINUS = "{target} minus {versus}"
SUMMARY = (
    "At position {pos} {token}, the model's logit for {target} is **{logit}**; "
    "the parts below add up to it {within}."
)
SUMMARY_VERSUS = (
    "At position {pos} {token}, the model's logit difference for {target} is **{logit}**; "
    "the parts below add up to it {within}."
)


def _within(deviation: float, lang: str = "en") -> str:
    if deviation == 0:
        return say(lang, EXACTLY)
    return say(lang, WITHIN, d=f"{deviation:.0e}".replace("e-0", "e-").replace("e+0", "e"))


def attribution_summary(analysis: Analysis, attr: Attribution, note: str = "", lang: str = "en") -> str:
    """One line of Markdown: where, which token, the model's logit and how close the parts come to
    it, in `lang`; `note` (Markdown) goes in front. Tokens are shown as typed, escaped (`chip`)."""
    pos = attr.position
    probs = softmax(analysis.logits_at(pos).astype(np.float64))
    rank = int((probs > probs[attr.token_id]).sum()) + 1
    p = _pct(float(probs[attr.token_id]))
    token = chip(attr.token)
    target = (
        say(lang, TOP_ONE, token=token, p=p) if rank == 1 else say(lang, RANKED, token=token, p=p, rank=rank)
    )
    template = SUMMARY
    if attr.versus is not None:
        template, target = SUMMARY_VERSUS, say(lang, MINUS, target=target, versus=chip(attr.versus))
    line = say(
        lang,
        template,
        pos=pos,
        token=chip(analysis.tokens[pos]),
        target=target,
        logit=f"{attr.logit:.2f}",
        within=_within(attr.deviation, lang),
    )
    return f"{note}{line}"


@dataclass(frozen=True)
class WhyFigures:
    heads: go.Figure
    bars: go.Figure
    flow: go.Figure


def why_figures(analysis: Analysis, attr: Attribution, threshold: float) -> WhyFigures:
    """The heads grid, the top parts and the flow view, sized for the tab."""
    n_layer, n_head = analysis.n_layer, analysis.n_head
    heads = attribution_heads_figure(attr.parts, attr.token, versus=attr.versus)
    height = int(np.clip(170 + 440 * n_layer / max(n_head, 1), 320, 580))
    heads.update_layout(height=height)
    bars = attribution_bars_figure(attr.parts, attr.token, versus=attr.versus, top_n=TOP_BARS)
    bars.update_layout(height=max(height, int(bars.layout.height or 0)))  # side by side: one height
    flow = attribution_flow_figure(
        attr.sources,
        analysis.tokens,
        attr.position,
        parts=attr.parts,
        threshold=float(np.clip(threshold, 0.0, 1.0)),
        token=attr.token,
        versus=attr.versus,
    )
    flow.update_layout(height=int(np.clip(180 + 60 * (n_layer + 1), 380, 760)))
    return WhyFigures(heads, bars, flow)


def head_from_click(data: Any, n_layer: int, n_head: int) -> tuple[int, int] | None:
    """The (layer, head) a click names, if any, from the point's customdata: [layer, head] (a tile
    of the heads grid), [layer, head, key] (an edge of the flow view) or "L1H2" (a bar)."""
    hit = None
    if isinstance(data, str):
        match = _HEAD.fullmatch(data)
        hit = (int(match[1]), int(match[2])) if match else None
    elif isinstance(data, (list, tuple)) and len(data) in (2, 3):
        hit = (int(data[0]), int(data[1]))
    if hit is None or not (0 <= hit[0] < n_layer and 0 <= hit[1] < n_head):
        return None
    return hit


def token_from_click(data: Any, x: Any, n_pos: int) -> int | None:
    """The position a click on a token node of the flow view names (nodes carry no customdata)."""
    if data is not None or x is None:
        return None
    pos = round(float(x))
    return pos if 0 <= pos < n_pos else None


__all__ = [
    "WhyFigures",
    "attribution_summary",
    "head_from_click",
    "md_text",
    "predictions",
    "resolve_token",
    "token_choices",
    "token_from_click",
    "why_figures",
]
