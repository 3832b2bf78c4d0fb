"""Two prompts side by side: how each head's attention and the next-token guess change.

Positions are compared one to one. Prompts of different lengths are compared over the shorter
one's positions: attention is causal, so the first n rows of a pattern only see the first n
tokens and the cut square is still a whole pattern.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from explorer.errors import ExplorerError
from explorer.model.capture import Analysis, display_tokens

MAX_SWAPPED = 10


@dataclass(frozen=True, eq=False)
class Comparison:
    n_aligned: int  # positions compared: both lengths when equal, else the shorter
    same_length: bool
    alignment: str  # how the positions were matched, in words
    labels: tuple[str, ...]  # [pos] the token, or "a → b" where the prompts differ there
    differing: tuple[int, ...]  # aligned positions whose tokens differ
    diff: np.ndarray  # [layer, head, query, key] float32, pattern_b − pattern_a
    heads: pd.DataFrame  # layer, head, total_variation, max_abs: sorted by total_variation
    next_tokens: pd.DataFrame  # token, token_id, prob_a, prob_b, delta (b − a): sorted by |delta|


def _probs(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


def _alignment(a: Analysis, b: Analysis, n: int) -> str:
    if a.n_pos == b.n_pos:
        return f"Both prompts have {n} tokens: compared position by position."
    longer, extra = ("B", b.n_pos) if b.n_pos > a.n_pos else ("A", a.n_pos)
    return (
        f"A has {a.n_pos} tokens and B {b.n_pos}: compared over the first {n} positions; "
        f"positions {n}–{extra - 1} of {longer} have no partner. The next-token guesses are each "
        "prompt's own, after its last token."
    )


def next_token_table(a: Analysis, b: Analysis, top_k: int = 10, extra: Iterable[int] = ()) -> pd.DataFrame:
    """The union of both top-k next tokens, plus `extra` ids: token, token_id, prob_a, prob_b, delta."""
    pa, pb = _probs(a.last_logits), _probs(b.last_logits)
    ids = np.concatenate([np.argsort(-pa)[:top_k], np.argsort(-pb)[:top_k], np.fromiter(extra, np.int64)])
    ids = np.unique(ids.astype(np.int64))
    delta = pb[ids] - pa[ids]
    df = pd.DataFrame(
        {
            "token": list(display_tokens(a.tokenizer, ids)),
            "token_id": ids,
            "prob_a": pa[ids].astype(np.float32),
            "prob_b": pb[ids].astype(np.float32),
            "delta": delta.astype(np.float32),
        }
    )
    return df.iloc[np.argsort(-np.abs(delta), kind="stable")].reset_index(drop=True)


def compare(analysis_a: Analysis, analysis_b: Analysis, top_k: int = 10) -> Comparison:
    """How attention and the next-token distribution change from prompt A to prompt B.

    The tokens at positions where the prompts differ are always in `next_tokens`: swapping
    a name asks how the prediction of that name moves, even when it is not in either top-k
    (the first `MAX_SWAPPED` such positions, so unrelated prompts do not flood the table).
    """
    a, b = analysis_a, analysis_b
    if a.pattern.shape[:2] != b.pattern.shape[:2] or a.last_logits.shape[-1] != b.last_logits.shape[-1]:
        raise ExplorerError("The two analyses come from different models: run both prompts on one model.")
    n = min(a.n_pos, b.n_pos)
    ids_a, ids_b = a.token_ids[:n], b.token_ids[:n]
    differing = np.flatnonzero(ids_a != ids_b)
    labels = tuple(
        ta if ia == ib else f"{ta} → {tb}"
        for ta, tb, ia, ib in zip(a.tokens[:n], b.tokens[:n], ids_a, ids_b, strict=True)
    )
    diff = np.empty((*a.pattern.shape[:2], n, n), dtype=np.float32)
    for i in range(len(diff)):  # a layer at a time: the patterns are kept as triangles
        diff[i] = b.pattern[i, :, :n, :n] - a.pattern[i, :, :n, :n]
    # Half the L1 distance between two attention rows: the share of attention that moved, 0..1.
    total_variation = 0.5 * np.abs(diff).sum(-1, dtype=np.float64).mean(-1)
    n_layer, n_head = diff.shape[:2]
    layer, head = np.divmod(np.arange(n_layer * n_head), n_head)
    heads = pd.DataFrame(
        {
            "layer": layer,
            "head": head,
            "total_variation": total_variation.ravel().astype(np.float32),
            "max_abs": np.abs(diff).max(axis=(-2, -1)).ravel(),
        }
    )
    heads = heads.iloc[np.argsort(-heads["total_variation"].to_numpy(), kind="stable")].reset_index(drop=True)
    shown = differing[:MAX_SWAPPED]
    swapped = np.concatenate([ids_a[shown], ids_b[shown]])
    return Comparison(
        n_aligned=n,
        same_length=a.n_pos == b.n_pos,
        alignment=_alignment(a, b, n),
        labels=labels,
        differing=tuple(int(i) for i in differing),
        diff=diff.astype(np.float32),
        heads=heads,
        next_tokens=next_token_table(a, b, top_k, swapped),
    )


__all__ = ["Comparison", "compare", "next_token_table"]
