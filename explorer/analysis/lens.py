"""The logit lens: what the model would predict if it stopped after each layer.

The residual stream after the embedding and after every block is decoded the way the last one
is: final layer norm, LM head, softmax. Early layers' guesses show how the answer forms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from explorer.errors import ExplorerError
from explorer.model.capture import Analysis, display_tokens, layer_norm
from explorer.model.loading import Progress

# Logits decoded per matmul: keeps one chunk near 64 MB whatever the vocabulary.
CHUNK_LOGITS = 2**24


@dataclass(frozen=True, eq=False)
class LogitLens:
    tokens: tuple[str, ...]  # [pos] the input tokens
    layer_names: tuple[str, ...]  # [layer + 1] "embed", "L0", "L1", …: after which block
    top_ids: np.ndarray  # [layer + 1, pos, top_k] int64, most likely first
    top_probs: np.ndarray  # [layer + 1, pos, top_k] float32
    top_tokens: np.ndarray  # [layer + 1, pos, top_k] display strings (object array)
    next_probs: (
        np.ndarray
    )  # [layer + 1, pos] float32, the probability of the actual next input token; NaN at the end

    def at(self, pos: int) -> pd.DataFrame:
        """The top-k guesses at one position, layer by layer: layer, rank, token, token_id, prob."""
        n_rows, n_pos, k = self.top_ids.shape
        if not 0 <= pos < n_pos:
            raise ExplorerError(f"The position must be from 0 to {n_pos - 1} (got {pos}).")
        return pd.DataFrame(
            {
                "layer": np.repeat(self.layer_names, k),
                "rank": np.tile(np.arange(k), n_rows),
                "token": self.top_tokens[:, pos].ravel(),
                "token_id": self.top_ids[:, pos].ravel(),
                "prob": self.top_probs[:, pos].ravel(),
            }
        )


def logit_lens(analysis: Analysis, top_k: int = 5, progress: Progress | None = None) -> LogitLens:
    """Decode analysis.resid [layer + 1, pos, d_model] through ln_f and the LM head; `progress`
    hears after each chunk of rows (gpt2-xl's 49 layers of a 32-position window take seconds)."""
    w = analysis.weights
    n_rows, n_pos, d_model = analysis.resid.shape
    vocab = w.unembed.shape[0]
    top_k = max(1, min(int(top_k), vocab))
    flat = layer_norm(analysis.resid.reshape(-1, d_model), w.ln_f_w, w.ln_f_b, w.eps).astype(np.float32)
    # The token each position should predict; the last has none (the -1 is never read).
    nexts = np.tile(np.append(analysis.token_ids[1:], -1), n_rows)

    top_ids = np.empty((len(flat), top_k), dtype=np.int64)
    top_probs = np.empty((len(flat), top_k), dtype=np.float32)
    next_probs = np.full(len(flat), np.nan, dtype=np.float32)
    step = max(1, CHUNK_LOGITS // vocab)
    for begin in range(0, len(flat), step):
        rows = slice(begin, begin + step)
        logits = flat[rows] @ w.unembed.T  # a transposed view: no 150 MB copy of gpt2's LM head
        if w.lm_head_b is not None:
            logits += w.lm_head_b
        logits -= logits.max(-1, keepdims=True)
        probs = np.exp(logits, out=logits)
        probs /= probs.sum(-1, keepdims=True)
        part = np.argpartition(-probs, top_k - 1, axis=-1)[:, :top_k]
        part_probs = np.take_along_axis(probs, part, -1)
        order = np.argsort(-part_probs, axis=-1, kind="stable")
        top_ids[rows] = np.take_along_axis(part, order, -1)
        top_probs[rows] = np.take_along_axis(part_probs, order, -1)
        has_next = np.flatnonzero(nexts[rows] >= 0)
        next_probs[rows][has_next] = probs[has_next, nexts[rows][has_next]]
        if progress is not None:
            done = min(begin + step, len(flat))
            progress(done / len(flat), f"Logit lens: {done} of {len(flat)} positions × layers decoded …")

    unique, inverse = np.unique(top_ids, return_inverse=True)
    names = np.asarray(display_tokens(analysis.tokenizer, unique), dtype=object)
    shape = (n_rows, n_pos, top_k)
    return LogitLens(
        tokens=analysis.tokens,
        layer_names=("embed", *(f"L{i}" for i in range(n_rows - 1))),
        top_ids=top_ids.reshape(shape),
        top_probs=top_probs.reshape(shape),
        top_tokens=names[inverse.reshape(-1)].reshape(shape),
        next_probs=next_probs.reshape(n_rows, n_pos),
    )


__all__ = ["LogitLens", "logit_lens"]
