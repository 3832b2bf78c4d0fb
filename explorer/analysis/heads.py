"""Head types: which heads look at the previous token, do induction, find duplicates, or rest.

Each head gets a score per type from probe inputs this module makes itself, then a label:

- previous_token: attention from token i to token i − 1, on ordinary English prose.
- induction: on a random span repeated twice, attention from the second copy of a token to
  the token that followed its first copy (what lets a model continue a repeated sequence).
- duplicate_token: on the same repeated span, attention to the earlier copy of the token itself.
- first_token: attention on position 0, on prose. Many heads park attention there when their
  pattern does not apply (an "attention sink").
- entropy: how spread out each attention row is, on prose, normalised to 0..1 (see below).

Scores are raw attention mass on the target key, averaged over the queries that have one
(TransformerLens's detect_head "mul" measure). Queries whose target is key 0 are left out,
because key 0 is the sink and would swamp the score; this is why the first query scored for
previous_token is 2. With `prepend_bos`, `<|endoftext|>` is put first, as TransformerLens does,
and it becomes the sink.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd

from explorer.errors import ExplorerError
from explorer.model.capture import Analysis
from explorer.model.loading import LoadedModel, Progress
from explorer.model.pattern import CausalPattern

# A head's type is the one whose score clears its threshold; among previous_token, induction
# and duplicate_token the highest score wins. first_token is a label only when none of those
# clears, so a head that does something specific on the right input, and rests on the sink
# elsewhere, is named for what it does. Heads that clear nothing are "mixed".
THRESHOLDS = MappingProxyType(
    {"previous_token": 0.4, "induction": 0.3, "duplicate_token": 0.3, "first_token": 0.6}
)
CONTENT_TYPES = ("previous_token", "induction", "duplicate_token")
MIXED = "mixed"
SCORE_COLUMNS = ("previous_token", "induction", "duplicate_token", "first_token", "entropy")
LABELS = (*THRESHOLDS, MIXED)
DESCRIPTIONS = MappingProxyType(
    {
        "previous_token": "Looks at the token just before the current one.",
        "induction": "Finds an earlier copy of the current token and looks at the token that came after it, "
        "so the model can continue a repeated pattern.",
        "duplicate_token": "Looks at earlier copies of the current token.",
        "first_token": "Parks most of its attention on the first position (an 'attention sink'): "
        "it does little on this kind of text.",
        MIXED: "No single simple pattern: it does something else, or several things.",
    }
)
# What a person reads for each type and score; the keys stay the data's columns and labels.
NAMES = MappingProxyType(
    {
        "previous_token": "previous token",
        "induction": "induction",
        "duplicate_token": "duplicate token",
        "first_token": "first token",
        "entropy": "entropy",
        MIXED: "mixed",
    }
)


def display_name(key: str) -> str:
    """A type's or score's name as shown ("previous token"); an unknown label as it is."""
    return NAMES.get(key, key)


PROSE = (
    "The old lighthouse stood at the end of a narrow road that ran along the cliffs. Every evening "
    "the keeper climbed the stairs, checked the lamp, and wrote a few lines in a book about the "
    "weather and the ships he had seen. In the summer the village below was full of visitors who "
    "came for the beaches and the fresh fish, but in the winter the streets were quiet and most of "
    "the shops were closed. One night a storm came in from the sea. The wind pulled at the windows, "
    "the rain was loud on the roof, and far out on the water a small boat was trying to reach the "
    "harbour. The keeper watched its light for a long time, and when it finally passed the rocks "
    "he went down to the kitchen, made a pot of tea, and sat by the fire until morning."
)
SPAN = 50  # random tokens per copy, as in TransformerLens's induction demos
N_SEQS = 4


@dataclass(frozen=True, eq=False)
class Probes:
    """The token ids the scores are measured on."""

    prose: np.ndarray  # [batch, pos] ordinary text
    repeated: np.ndarray  # [batch, start + 2 * span]: optional BOS, then a random span twice
    span: int
    start: int  # positions before the repeated span: 1 with a prepended BOS, else 0


def _mass(pattern: np.ndarray, queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Mean attention from each query to its key: [..., layer, head, query, key] -> [layer, head]."""
    picked = pattern[..., queries, keys]  # [..., layer, head, n]
    return picked.reshape(-1, *picked.shape[-3:]).mean(axis=(0, -1), dtype=np.float64)


def _entropy(pattern: np.ndarray) -> np.ndarray:
    """Mean normalised row entropy over queries ≥ 1: [batch, head, query, key] -> [head].

    Row q can spread over q + 1 keys, so dividing by log2(q + 1) puts every row on 0..1:
    0 is all attention on one key, 1 is uniform. Row 0 has one key and says nothing.
    """
    rows = pattern[..., 1:, :].astype(np.float64)  # one layer at a time keeps this small
    safe = np.where(rows > 0, rows, 1.0)
    bits = -(rows * np.log2(safe)).sum(-1) / np.log2(np.arange(2, pattern.shape[-1] + 1))
    return bits.mean(axis=(0, -1))


def _batched(pattern: np.ndarray) -> np.ndarray:
    return pattern if pattern.ndim == 5 else pattern[None]


def _layer_of(prose: np.ndarray | CausalPattern, layer: int) -> np.ndarray:
    """[batch, 1, head, query, key]: one layer, so that a large analysis's pattern is expanded a
    layer at a time (every head of gpt2-xl at 1,024 tokens as one square would be 5 GB)."""
    if isinstance(prose, CausalPattern):
        return prose[layer][None, None]
    return _batched(np.asarray(prose))[:, layer : layer + 1]


def head_scores_from_patterns(
    prose: np.ndarray | CausalPattern, repeated: np.ndarray, span: int, start: int = 0
) -> pd.DataFrame:
    """Scores and labels from attention patterns: the pure core of `head_scores`.

    prose: [batch, layer, head, query, key] (or without batch) on ordinary text, ≥ 3 tokens.
    repeated: the same on `start` fixed tokens (a BOS, or none) then a span of `span` tokens
    twice. Returns one row per (layer, head): layer, head, previous_token, induction,
    duplicate_token, first_token, entropy, label. Every score is in 0..1.
    """
    repeated = _batched(np.asarray(repeated))
    n_pos, n_layer = prose.shape[-1], prose.shape[-4]
    if n_pos < 3:
        raise ExplorerError("Head types need a prose probe of at least 3 tokens.")
    if repeated.shape[-1] < start + 2 * span or span < 2:
        raise ExplorerError(
            f"The repeated probe needs {start + 2 * span} positions, it has {repeated.shape[-1]}."
        )

    after_two, after_one = np.arange(2, n_pos), np.arange(1, n_pos)
    previous, first, entropy = (np.empty((n_layer, repeated.shape[2])) for _ in range(3))
    for i in range(n_layer):
        pattern = _layer_of(prose, i)
        previous[i] = _mass(pattern, after_two, after_two - 1)[0]
        first[i] = _mass(pattern, after_one, np.zeros_like(after_one))[0]
        entropy[i] = _entropy(pattern[:, 0])
    second = np.arange(start + span, start + 2 * span)  # queries in the second copy
    induction = _mass(repeated, second, second - span + 1)
    dup_q = second[second - span >= 1]
    duplicate = _mass(repeated, dup_q, dup_q - span)

    n_layer, n_head = previous.shape
    layer, head = np.divmod(np.arange(n_layer * n_head), n_head)
    df = pd.DataFrame(
        {
            "layer": layer,
            "head": head,
            "previous_token": previous.ravel(),
            "induction": induction.ravel(),
            "duplicate_token": duplicate.ravel(),
            "first_token": first.ravel(),
            "entropy": entropy.ravel(),
        }
    )
    df[list(SCORE_COLUMNS)] = df[list(SCORE_COLUMNS)].astype(np.float32)
    df["label"] = label_heads(df)
    return df


def label_heads(scores: pd.DataFrame) -> list[str]:
    """Each row's type by `THRESHOLDS`: the strongest content type that clears, else the sink, else mixed."""
    labels = []
    for row in scores.itertuples(index=False):
        cleared = {t: getattr(row, t) for t in CONTENT_TYPES if getattr(row, t) >= THRESHOLDS[t]}
        if cleared:
            labels.append(max(cleared, key=lambda t: cleared[t]))
        elif row.first_token >= THRESHOLDS["first_token"]:
            labels.append("first_token")
        else:
            labels.append(MIXED)
    return labels


def _bos_id(loaded: LoadedModel) -> int:
    tok = loaded.tokenizer
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    if bos is None:
        raise ExplorerError("This tokenizer has no <|endoftext|> token to prepend.")
    return int(bos)


def _vocab(loaded: LoadedModel) -> int:
    return min(int(loaded.model.config.vocab_size), len(loaded.tokenizer))


def make_probes(
    loaded: LoadedModel, prepend_bos: bool = False, seed: int = 0, n_seqs: int = N_SEQS
) -> Probes:
    """Prose tokenised by the model's tokenizer, and `n_seqs` random spans repeated twice."""
    start = int(prepend_bos)
    prefix = [_bos_id(loaded)] if prepend_bos else []
    prose = (prefix + list(loaded.tokenizer(PROSE)["input_ids"]))[: loaded.n_ctx]
    span = min(SPAN, (loaded.n_ctx - start) // 2)
    specials = np.asarray(loaded.tokenizer.all_special_ids, dtype=np.int64)
    candidates = np.setdiff1d(np.arange(_vocab(loaded)), specials)
    block = np.random.default_rng(seed).choice(candidates, size=(n_seqs, span))
    repeated = np.concatenate([np.full((n_seqs, start), prefix[0] if prefix else 0), block, block], axis=1)
    return Probes(np.asarray([prose], np.int64), repeated.astype(np.int64), span, start)


def patterns_for(loaded: LoadedModel, ids: np.ndarray, progress: Progress | None = None) -> np.ndarray:
    """Attention for a batch of token ids: [batch, pos] -> [batch, layer, head, query, key].

    With `progress`, one sequence per forward pass, each reported (a large model takes seconds
    per sequence); without, the batch in one pass."""
    import torch

    model = loaded.model
    device = next(model.parameters()).device
    batches = [ids] if progress is None else [ids[i : i + 1] for i in range(len(ids))]
    out = []
    for n, batch in enumerate(batches):
        if progress is not None:
            progress(n / len(batches), f"Attention on probe {n + 1} of {len(batches)} …")
        with torch.inference_mode():
            run = model(torch.as_tensor(batch, device=device), output_attentions=True, use_cache=False)
        out.append(torch.stack(run.attentions, dim=1).float().cpu().numpy())
    return np.concatenate(out)


def head_scores(
    loaded: LoadedModel,
    analysis: Analysis | None = None,
    prepend_bos: bool = False,
    seed: int = 0,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Every head's scores and label (see `head_scores_from_patterns`) measured on the model.

    analysis: when given, previous_token, first_token and entropy are measured on its text
    instead of the built-in prose (induction and duplicate_token always use random repeated
    tokens, which ordinary text rarely contains). prepend_bos applies to the built-in probes.
    """
    probes = make_probes(loaded, prepend_bos, seed)
    prose: np.ndarray | CausalPattern
    if analysis is not None:
        prose = analysis.pattern  # every head's every row, a layer at a time
    else:
        prose = patterns_for(loaded, probes.prose)
    repeated = patterns_for(loaded, probes.repeated, progress)
    return head_scores_from_patterns(prose, repeated, probes.span, probes.start)


def _repeated_words(loaded: LoadedModel, n: int = 12, seed: int = 0) -> str:
    """n uncommon-enough whole words from the vocabulary, so the text is not memorised prose."""
    tok = loaded.tokenizer
    pieces = tok.convert_ids_to_tokens(list(range(_vocab(loaded))))
    words = sorted(
        {p[1:] for p in pieces if p.startswith("Ġ") and p[1:].isalpha() and p[1:].islower() and len(p) > 4}
    )
    if len(words) < n:
        words = sorted({p for p in pieces if p.isalpha()})
    chosen = np.random.default_rng(seed).choice(len(words), size=min(n, len(words)), replace=False)
    return " ".join(words[int(i)] for i in chosen)


def probe_for(label: str, loaded: LoadedModel) -> str:
    """A prompt on which a head of this type shows its pattern clearly."""
    if label not in LABELS:
        raise ExplorerError(f"Unknown head type {label!r}: expected one of {', '.join(LABELS)}.")
    if label in ("induction", "duplicate_token"):
        words = _repeated_words(loaded)
        return f"{words}\n{words}"  # the newline keeps the two copies tokenised alike
    return PROSE.split(". One night")[0] + "."


__all__ = [
    "DESCRIPTIONS",
    "LABELS",
    "NAMES",
    "PROSE",
    "SCORE_COLUMNS",
    "THRESHOLDS",
    "Probes",
    "display_name",
    "head_scores",
    "head_scores_from_patterns",
    "label_heads",
    "make_probes",
    "patterns_for",
    "probe_for",
]
