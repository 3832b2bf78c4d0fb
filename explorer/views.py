"""Pure view helpers for the app: HTML snippets and pandas tables built from engine results.

No gradio here, so every builder can be tested without a server. Anything that came from a
user (prompt text, tokens, model names) goes through `esc` before it becomes HTML.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from explorer.analysis.arithmetic import STEPS, Breakdown, Step
from explorer.formulas import formula_html
from explorer.i18n import say, translate

DECIMALS = 4
VECTOR_DIMS = 12  # dims shown of a single vector
MATRIX_DIMS = 8  # dims shown per row of a [key, d_head] table
MATRIX_ROWS = 12  # keys shown of a [key, d_head] table
KEY_ROWS = 64  # keys shown of a per-key table (scores, weights)
MATCH_TOLERANCE = 1e-2  # |ours − model's| below this reads as "matches"
STEP_BY_NAME: Mapping[str, Step] = {step.name: step for step in STEPS}


# One pass over the text: HTML's characters, the ones template engines read ({ } $ `), the
# backslash (Markdown takes it as an escape) and Markdown's own syntax (links, images, emphasis,
# headings, tables) become entities, so that `![](//host/x)` in a link's model name cannot make
# every visitor's browser fetch an image.
_ENTITIES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"}
    | {c: f"&#{ord(c)};" for c in "{}$`\\[]()!*_#|~"}
)


def esc(text: object) -> str:
    """Text for HTML or Markdown, shown exactly as typed (see _ENTITIES)."""
    return str(text).translate(_ENTITIES)


# --- tokens ------------------------------------------------------------------------------


def tokens_html(
    tokens: Sequence[str],
    token_ids: Sequence[int],
    selected: int | None = None,
    truncated: int = 0,
    lang: str = "en",
) -> str:
    """The prompt's tokens as clickable chips (`data-pos`), whitespace visible, ids beneath."""
    # Terse markup: a 1024-token prompt is 1024 chips, resent when the selection moves.
    chips = [
        f'<button class="ae-tok{" ae-sel" if pos == selected else ""}" data-pos="{pos}">'
        f"<b>{esc(token)}</b><i>{pos}·{int(token_id)}</i></button>"
        for pos, (token, token_id) in enumerate(zip(tokens, token_ids, strict=True))
    ]
    note = ""
    if truncated:
        cut = say(
            lang, "The prompt was cut to {n} tokens: {cut} more did not fit.", n=len(tokens), cut=truncated
        )
        note = f'<div class="ae-note">{esc(cut)}</div>'
    words = say(lang, "{n} tokens · position·id beneath each · click one to make it the query", n=len(tokens))
    head = f'<div class="ae-tok-head">{esc(words)}</div>'
    return f'<div class="ae-tokens">{head}<div class="ae-tok-list">{"".join(chips)}</div>{note}</div>'


def empty_html(message: str, lang: str = "en") -> str:
    """A panel's message (an English text of explorer/texts) in `lang`."""
    return f'<div class="ae-empty">{esc(say(lang, message))}</div>'


def generation_html(prompt: str, pieces: Sequence[str], forced: Sequence[bool], lang: str = "en") -> str:
    """The text so far: the prompt muted, generated tokens marked, the newest highlighted."""
    spans = []
    last = len(pieces) - 1
    for i, (piece, was_forced) in enumerate(zip(pieces, forced, strict=True)):
        cls = "ae-gen" + (" ae-new" if i == last else "") + (" ae-forced" if was_forced else "")
        tip = say(lang, "forced by you" if was_forced else "chosen by sampling")
        title = esc(say(lang, "step {n}: {how}", n=i + 1, how=tip))
        spans.append(f'<span class="{cls}" title="{title}">{esc(piece)}</span>')
    body = f'<span class="ae-prompt">{esc(prompt)}</span>{"".join(spans)}'
    return f'<div class="ae-text">{body}</div>'


# --- model line ----------------------------------------------------------------------------


TAGLINE = (
    "Watch GPT-2 read your prompt: every head, the attention arithmetic with the model's own numbers, "
    "and generation token by token."
)


def model_markdown(
    name: str,
    reason: str,
    n_layer: int,
    n_head: int,
    n_ctx: int,
    device: str,
    is_bundled: bool,
    hosted: bool,
    lang: str = "en",
) -> str:
    """The model in one line; where it came from, and how to pick another, fold out beneath it."""
    shape = say(
        lang,
        "{n_layer} layers × {n_head} heads · context {n_ctx} tokens · {device}",
        n_layer=n_layer,
        n_head=n_head,
        n_ctx=n_ctx,
        device=esc(device),
    )
    picker = say(
        lang, "Loading takes a moment." if hosted else "Pick one, or type a hub id or folder + Enter."
    )
    more = [
        esc(say(lang, TAGLINE)),
        esc(translate(reason, lang)),
        say(lang, "Model picker (beside): {how}", how=picker),
    ]
    if is_bundled:
        choose = say(lang, "choose {model} in the model picker", model="<b>gpt2</b>")
        if not hosted:
            choose = say(
                lang,
                "{choose} (it needs the Hugging Face Hub or a local copy) or start with {command}",
                choose=choose,
                command="<code>attention-explorer --model gpt2</code>",
            )
        demo = "This is a small demo model trained for this app, so its heads are simpler than GPT-2's. "
        more.append(say(lang, demo + "For the real GPT-2, {how}.", how=choose))
    body = "".join(f"<p class='ae-muted'>{line}</p>" for line in more)
    summary = f"<b>{say(lang, 'Model: {name}', name=esc(name))}</b><span class='ae-shape'> · {shape}</span>"
    return f"<details class='ae-more'><summary>{summary}</summary>{body}</details>"


def deviation_text(deviation: float | None, lang: str = "en") -> str:
    if deviation is None:
        return say(lang, "— no model tensor to compare with")
    if not math.isfinite(deviation):
        return say(lang, "✗ differs from the model (max |Δ| = {d})", d=deviation)
    if deviation <= MATCH_TOLERANCE:
        return say(lang, "✓ matches the model (max |Δ| = {d})", d=f"{deviation:.1g}")
    return say(lang, "✗ differs from the model (max |Δ| = {d})", d=f"{deviation:.1g}")


def steps_nav() -> str:
    """A row of links, one per step, to jump down the step-by-step view (the page names them in
    its language: static/language.js)."""
    links = [
        f'<a href="#ae-step-{esc(step.name)}"><b>{n}</b> {esc(step.title)}</a>'
        for n, step in enumerate(STEPS, start=1)
    ]
    return f'<nav class="ae-nav">{"<span class=ae-arrow>→</span>".join(links)}</nav>'


def step_card(number: int, step: Step, deviation: float | None, note: str = "", lang: str = "en") -> str:
    ok = deviation is not None and math.isfinite(deviation) and deviation <= MATCH_TOLERANCE
    badge_cls = "ae-badge ae-ok" if ok else ("ae-badge" if deviation is None else "ae-badge ae-bad")
    extra = f'<div class="ae-step-note">{esc(note)}</div>' if note else ""
    return (
        f'<div class="ae-step">'
        f'<div class="ae-step-title"><span class="ae-step-n">{number}</span>{esc(say(lang, step.title))}</div>'
        f"{formula_html(step.formula)}"
        f'<div class="ae-step-why">{esc(say(lang, step.explanation))}</div>'
        f'<div class="{badge_cls}">{esc(deviation_text(deviation, lang))}</div>{extra}</div>'
    )


def _round(values: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(values, dtype=np.float64), DECIMALS)


def _fmt(value: float) -> str:
    if value == -math.inf:
        return "−∞"
    return f"{value:.{DECIMALS}f}"


def vector_table(vector: np.ndarray, label: str, dims: int = VECTOR_DIMS) -> pd.DataFrame:
    """One vector as a one-row table of its first `dims` dimensions and its norm."""
    v = np.asarray(vector, dtype=np.float64)
    shown = min(dims, len(v))
    row: dict[str, Any] = {"": label, "‖·‖": round(float(np.linalg.norm(v)), DECIMALS)}
    row |= {str(d): round(float(v[d]), DECIMALS) for d in range(shown)}
    return pd.DataFrame([row])


def shown_keys(bd: Breakdown, rows: int = MATRIX_ROWS) -> np.ndarray:
    """Keys 0..query, or the `rows` with the largest attention weight (in key order)."""
    n = bd.query + 1
    if n <= rows:
        return np.arange(n)
    return np.sort(np.argsort(-bd.pattern[:n], kind="stable")[:rows])


def matrix_table(bd: Breakdown, matrix: np.ndarray, dims: int = MATRIX_DIMS) -> pd.DataFrame:
    """[key, d_head] rows for the shown keys, with token and attention weight."""
    keys = shown_keys(bd)
    shown = min(dims, matrix.shape[1])
    table = pd.DataFrame(
        {
            "key": keys,
            "token": [bd.tokens[j] for j in keys],
            "weight": _round(bd.pattern[keys]),
        }
    )
    values = _round(matrix[keys, :shown])
    for d in range(shown):
        table[str(d)] = values[:, d]
    return table


def symbol(name: str) -> str:
    """A step's symbol, the left side of its formula (`Q_i`, `LN(x_i)`), else its title."""
    step = STEP_BY_NAME[name]
    left, sep, _ = step.formula.partition(" = ")
    return left if sep and len(left) <= 12 else step.title


def step_note(bd: Breakdown, name: str, lang: str = "en") -> str:
    """What part of a long step the table shows."""
    value = getattr(bd, name)
    if name == "logits":
        where = "the model's prediction" if bd.is_final else "a logit-lens guess (not the last layer)"
        return say(lang, "Top {n} next tokens: {where}.", n=len(value), where=say(lang, where))
    parts = []
    if isinstance(value, np.ndarray) and value.ndim == 2:
        n, keys, dims = bd.query + 1, len(shown_keys(bd)), value.shape[1]
        if keys != n:
            parts.append(
                say(lang, "the {keys} of {n} keys with the largest attention weight", keys=keys, n=n)
            )
        if dims > MATRIX_DIMS:
            parts.append(say(lang, "the first {shown} of {dims} dims", shown=MATRIX_DIMS, dims=dims))
    elif (
        isinstance(value, np.ndarray)
        and value.ndim == 1
        and name not in ("scores", "scaled", "masked", "pattern")
        and len(value) > VECTOR_DIMS
    ):
        parts.append(say(lang, "the first {shown} of {dims} dims", shown=VECTOR_DIMS, dims=len(value)))
    return say(lang, "Table: {parts}.", parts=say(lang, "; ").join(parts)) if parts else ""


def step_table(bd: Breakdown, name: str) -> pd.DataFrame:
    """The numbers of one step, rounded, as a small table."""
    if name == "logits":
        table = bd.logits.copy()
        for column in ("logit", "prob"):
            table[column] = _round(table[column].to_numpy())
        return table
    keys = shown_keys(bd, KEY_ROWS)
    rows = {"key": keys, "token": [bd.tokens[j] for j in keys]}
    if name == "scores":
        return pd.DataFrame(rows | {"Q_i·K_j": _round(bd.scores[keys])})
    if name == "scaled":
        return pd.DataFrame(
            rows | {"Q_i·K_j": _round(bd.scores[keys]), f"× {bd.scaling:.4g}": _round(bd.scaled[keys])}
        )
    if name == "masked":
        # A few masked keys after the query too: they are the point of this step.
        after = np.arange(bd.query + 1, min(len(bd.masked), bd.query + 4))
        keys = np.concatenate([keys, after])
        return pd.DataFrame(
            {
                "key": keys,
                "token": [bd.tokens[j] for j in keys],
                "masked score": [_fmt(float(s)) for s in bd.masked[keys]],
            }
        )
    if name == "pattern":
        return pd.DataFrame(rows | {"weight": _round(bd.pattern[keys])})
    value = np.asarray(getattr(bd, name))
    if value.ndim == 2:
        return matrix_table(bd, value)
    return vector_table(value, symbol(name))


def table_html(table: pd.DataFrame, lang: str = "en") -> str:
    """A compact HTML table: numbers right-aligned to 4 decimals, token text escaped and monospaced;
    the column names in `lang` (the table's own stay English, as the exports write them)."""
    head = "".join(
        f'<th class="ae-tokcell">{esc(say(lang, c))}</th>'
        if c in ("token", "")
        else f"<th>{esc(say(lang, c))}</th>"
        for c in table.columns
    )
    body = "".join(
        "<tr>"
        + "".join(_cell(column, value) for column, value in zip(table.columns, row, strict=True))
        + "</tr>"
        for row in table.itertuples(index=False)
    )
    return f'<div class="ae-table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _cell(column: str, value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return f'<td class="ae-num">{_fmt(float(value))}</td>'
    if isinstance(value, (int, np.integer)):
        return f'<td class="ae-num">{int(value)}</td>'
    cls = "ae-tokcell" if column in ("token", "") else "ae-num"
    return f'<td class="{cls}">{esc(value)}</td>'


def selection_markdown(bd: Breakdown, lang: str = "en") -> str:
    token = f"<span class='ae-chip'>{esc(bd.tokens[bd.query])}</span>"
    where = say(
        lang,
        "Layer {layer} · head {head} · query token {query}",
        layer=bd.layer,
        head=bd.head,
        query=bd.query,
    )
    rest = say(
        lang,
        "every step below uses the model's own weights and this prompt's numbers; the badge says how "
        "far our recomputation is from the tensor the model produced.",
    )
    return f"**{where} {token}** — {rest}"


def top_table(tokens: Sequence[str], token_ids: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """token, token_id, prob for already chosen ids (largest first), as distribution_figure takes;
    prob kept in float64, as GenerationSession computes it."""
    return pd.DataFrame(
        {
            "token": list(tokens),
            "token_id": np.asarray(token_ids, dtype=np.int64),
            "prob": np.asarray(probs, dtype=np.float64),
        }
    )


def percent(p: float) -> str:
    """p as a percentage: two decimals, or two significant digits below 0.01% (a token from the
    tail at p = 8.6e-8 reads 0.0000086%, not 0.00%); below 1e-10, as 1.2e-15."""
    if not 0 < p < 1e-4:
        return f"{p:.2%}"
    if p < 1e-10:
        return f"{p:.1e}"
    return f"{p:.{1 - math.floor(math.log10(p * 100))}%}"


def step_summary(
    position: int,
    display: str,
    prob: float,
    warped_prob: float,
    entropy: float,
    forced: bool,
    finished: str | None,
    greedy: bool = False,
    lang: str = "en",
) -> str:
    how = say(lang, "forced by you" if forced else "the most likely (greedy)" if greedy else "sampled")
    where = say(lang, "Step at position {position}:", position=position)
    numbers = say(
        lang,
        "model p = {p} · after settings p = {warped} · entropy {entropy} bits",
        p=percent(prob),
        warped=percent(warped_prob),
        entropy=f"{entropy:.2f}",
    )
    text = f"**{where}** <span class='ae-chip'>{esc(display)}</span> {how} · {numbers}"
    if finished:
        text += "  \n" + say(lang, "Generation has stopped: {reason}.", reason=esc(translate(finished, lang)))
    return text
