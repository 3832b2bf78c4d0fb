"""Pure text for the Head types, Ablation, Logit lens and Compare tabs: HTML and Markdown pieces
and the inputs those tabs parse. No gradio here; user text goes through `esc`.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from explorer import figures
from explorer.analysis.ablation import head_name
from explorer.analysis.comparison import MAX_SWAPPED, Comparison
from explorer.analysis.heads import DESCRIPTIONS, LABELS, THRESHOLDS, display_name
from explorer.analysis.lens import LogitLens, logit_lens
from explorer.errors import ExplorerError
from explorer.i18n import say, sentences
from explorer.model.capture import Analysis
from explorer.model.loading import Progress
from explorer.views import esc, table_html

IOI = "When Mary and John went to the store, John gave a drink to"
LENS_TOP_K = 5
LENS_MAX_POS = 32  # positions the lens shows at once (cells wide enough to read); a long prompt gets a window
LENS_CELLS = 600  # figures.logit_lens_figure writes the tokens into cells up to this many
IMPORTANCE_SHOWN = 15
COMPARE_HEADS_SHOWN = 10


# --- head types ------------------------------------------------------------------------------


def head_types_legend(scores: pd.DataFrame, lang: str = "en") -> str:
    """Every type: its colour in the grid, how many heads have it, what it means, how it is scored."""
    counts = Counter(scores["label"].astype(str))
    colours = figures.label_colours(list(counts))
    rows = []
    for label in LABELS:
        n = counts.get(label, 0)
        swatch = f"background:{colours[label]}" if n else "border:1px solid #94a3b8"
        rule = say(lang, RULE, threshold=f"{THRESHOLDS[label]:.1f}") if label in THRESHOLDS else ""
        rule = ("" if lang == "zh" else " ") + rule if rule else ""
        count = say(lang, ONE_HEAD) if n == 1 else say(lang, N_HEADS, n=n) if n else say(lang, NO_HEADS)
        rows.append(
            f"<div style='margin:.4rem 0;{'' if n else 'opacity:.65'}'>"
            "<span style='display:inline-block;width:.9em;height:.9em;border-radius:3px;"
            f"vertical-align:-.1em;margin-right:.4em;{swatch}'></span>"
            f"<b>{esc(say(lang, display_name(label)))}</b> <span class='ae-muted'>{esc(count)}</span>"
            f"<div class='ae-help' style='margin-left:1.3em'>{esc(say(lang, DESCRIPTIONS[label]))}"
            f"<span class='ae-note'>{esc(rule)}</span></div></div>"
        )
    return (
        f"<div class='ae-legend'>{''.join(rows)}<div class='ae-note'>{esc(say(lang, HOW_SCORED))}</div></div>"
    )


# The words of the legend and the head card (explorer/texts: "messages" and "ui").
RULE = "Label when ≥ {threshold}."
ONE_HEAD, N_HEADS, NO_HEADS = "· 1 head", "· {n} heads", "· no heads in this model"
HOW_SCORED = (
    "Each score is the share of attention (0–1) a head puts on the key its type looks for, "
    "averaged over the probe's tokens; a head is named for the strongest type that clears its "
    "threshold."
)
IS_A, IS_AN = "**{head} is a {name} head.**", "**{head} is an {name} head.**"
SCORES = "Scores: {scores}."
OPENED_ON = "Opened in **Attention heads** on a probe where this pattern shows: {probe}"


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def head_card(row: pd.Series, probe: str, lang: str = "en") -> str:
    """What one head scored, and the probe text it was opened on."""
    label = str(row["label"])
    name = display_name(label)
    scores = " · ".join(
        f"{say(lang, display_name(key))} {float(row[key]):.2f}" for key in figures.HEAD_SCORES
    )
    head = head_name(int(row["layer"]), int(row["head"]))
    title = say(lang, IS_AN if article(name) == "an" else IS_A, head=head, name=esc(say(lang, name)))
    shown = f"<span class='ae-chip'>{esc(probe[:80])}{'…' if len(probe) > 80 else ''}</span>"
    described = sentences(lang, title, esc(say(lang, DESCRIPTIONS[label])))
    return f"{described}  \n{say(lang, SCORES, scores=esc(scores))}  \n{say(lang, OPENED_ON, probe=shown)}"


# --- ablation --------------------------------------------------------------------------------


def parse_heads(value: Any) -> list[str]:
    """Heads from a multi-select list, or from text like "L1H3, L2H0" (any separators)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    out: list[str] = []
    for item in items:
        if item is None:
            continue
        text = str(item).upper()
        found = re.findall(r"L\s*(\d+)\s*H\s*(\d+)", text)
        leftover = re.sub(r"L\s*\d+\s*H\s*\d+|[\s,;]+", "", text)
        if leftover:
            raise ExplorerError(f"Name heads like L1H3, separated by commas (could not read {str(item)!r}).")
        out += [f"L{layer}H{head}" for layer, head in found]
    return list(dict.fromkeys(out))


def importance_table(ranked: pd.DataFrame, shown: int = IMPORTANCE_SHOWN, lang: str = "en") -> str:
    top = ranked.head(shown)
    table = pd.DataFrame(
        {
            "rank": np.arange(1, len(top) + 1),
            "head": top["name"],
            "Δ log p": top["delta"],
            "p after": top["prob_after"],
        }
    )
    return table_html(table, lang).replace('class="ae-table"', 'class="ae-table" style="max-height:none"', 1)


# --- the logit lens ---------------------------------------------------------------------------


def lens_window(n_rows: int, n_pos: int, pos: int) -> tuple[int, int]:
    """The positions [lo, hi) the lens shows: all of a short prompt, else a window holding `pos`."""
    width = int(np.clip(LENS_CELLS // max(1, n_rows), 16, LENS_MAX_POS))
    if n_pos <= width:
        return 0, n_pos
    hi = int(np.clip(pos + 1 + width // 4, width, n_pos))
    return hi - width, hi


@dataclass(frozen=True, eq=False)
class LensView:
    """The lens of one window of one analysis: `lens` positions are `lo + i` of the prompt."""

    key: tuple[Any, ...]
    lo: int
    n_pos: int  # the whole prompt's positions
    lens: LogitLens


NEXT_P = "p(next = {token})"


def lens_for(analysis: Analysis, lo: int, hi: int, progress: Progress | None = None) -> LogitLens:
    """The logit lens of positions lo..hi−1 only: decoding every position of a long prompt is slow."""
    window = dataclasses.replace(
        analysis,
        resid=analysis.resid[:, lo:hi],
        token_ids=analysis.token_ids[lo:hi],
        tokens=analysis.tokens[lo:hi],
    )
    return logit_lens(window, top_k=LENS_TOP_K, progress=progress)


def lens_table(view: LensView, pos: int, lang: str = "en") -> str:
    """Top-k per layer at one position, one row per layer, and the actual next token's probability."""
    lens = view.lens
    i = pos - view.lo
    df = lens.at(i)
    k = int(df["rank"].max()) + 1
    next_p = lens.next_probs[:, i]
    has_next = bool(np.isfinite(next_p).any())
    head = f"<th>{esc(say(lang, 'layer'))}</th>" + "".join(
        f"<th class='ae-tokcell'>#{r + 1}</th>" for r in range(k)
    )
    if has_next:
        head += f"<th>{say(lang, NEXT_P, token=esc(lens.tokens[i + 1]))}</th>"
    body = []
    for layer_i, (name, rows) in enumerate(df.groupby("layer", sort=False)):
        cells = "".join(
            f"<td class='ae-tokcell'>{esc(t)} <span class='ae-muted'>{p:.1%}</span></td>"
            for t, p in zip(rows["token"], rows["prob"], strict=True)
        )
        if has_next:
            cells += f"<td class='ae-num'>{next_p[layer_i]:.2%}</td>"
        body.append(f"<tr><td class='ae-num'>{esc(name)}</td>{cells}</tr>")
    return (
        f"<div class='ae-table'><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


# --- comparison ---------------------------------------------------------------------------


def swap_names(text: str) -> str:
    """The text with its first two names (capitalised words not starting a sentence) swapped."""
    names: list[str] = []
    for match in re.finditer(r"\b[A-Z][a-z]+\b", text):
        before = text[: match.start()].rstrip()
        if before and before[-1] not in ".!?" and match.group() not in names:
            names.append(match.group())
    if len(names) < 2:
        raise ExplorerError("Prompt A needs two names to swap, like 'Mary' and 'John'.")
    a, b = names[:2]
    return re.sub(rf"\b({a}|{b})\b", lambda m: b if m.group() == a else a, text)


def compare_heads_table(comparison: Comparison, shown: int = COMPARE_HEADS_SHOWN, lang: str = "en") -> str:
    top = comparison.heads.head(shown)
    table = pd.DataFrame(
        {
            "head": [head_name(int(a), int(b)) for a, b in zip(top["layer"], top["head"], strict=True)],
            "attention moved": top["total_variation"],
            "largest change": top["max_abs"],
        }
    )
    return table_html(table, lang)


def next_token_diff_table(comparison: Comparison, shown: int = 10, lang: str = "en") -> str:
    """The tokens whose probability moved most, and always the tokens swapped between A and B."""
    swapped = {part for i in comparison.differing[:MAX_SWAPPED] for part in comparison.labels[i].split(" → ")}
    df = comparison.next_tokens
    df = df[(df.index < shown) | df["token"].isin(swapped)]
    df = df.rename(columns={"prob_a": "p in A", "prob_b": "p in B", "delta": "B − A"})
    return table_html(df[["token", "p in A", "p in B", "B − A"]], lang)
