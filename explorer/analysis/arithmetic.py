"""The attention arithmetic for one layer, head and query token, step by step, on arrays.

Every step is computed again from the captured inputs and the model's weights, and carries its
largest absolute difference from the tensor the model itself produced, so the numbers on screen
are provably the model's. Step names are the fields of `Breakdown`; `STEPS` describes each once
and the UI derives its labels from it.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType

import numpy as np
import pandas as pd

from explorer.errors import ExplorerError
from explorer.model.capture import Analysis, display_tokens, layer_norm


@dataclass(frozen=True)
class Step:
    name: str  # a field of Breakdown
    title: str
    formula: str
    explanation: str


STEPS: tuple[Step, ...] = (
    Step(
        "x",
        "Residual stream x_i",
        "x_i = embeddings + earlier blocks",
        "What position i carries into this layer: its token and position embeddings plus every earlier block's output.",
    ),
    Step(
        "ln_1",
        "Layer norm",
        "LN(x_i) = γ·(x_i − μ)/σ + β",
        "Each position is normalised before attention, so the scale of x does not swamp the projections.",
    ),
    Step(
        "q",
        "Query Q_i",
        "Q_i = LN(x_i)·W_Q + b_Q",
        "What token i is looking for. One slice of c_attn's output per head.",
    ),
    Step(
        "k",
        "Keys K_j",
        "K_j = LN(x_j)·W_K + b_K",
        "What each token j offers to be found by. Compared against the query.",
    ),
    Step(
        "scores",
        "Scores Q_i·K_j",
        "s_ij = Q_i · K_j",
        "The dot product: large when query and key point the same way.",
    ),
    Step(
        "scaled",
        "Scaled by 1/√d_k",
        "s_ij / √d_k",
        "Dividing by √d_k keeps the scores in a range where softmax is not saturated.",
    ),
    Step(
        "masked",
        "Causal mask",
        "s_ij = −∞ for j > i",
        "A token may not look at tokens after it: those scores become −∞, so softmax gives them 0.",
    ),
    Step(
        "pattern",
        "Softmax: the attention row",
        "a_ij = exp(s_ij) / Σ_j exp(s_ij)",
        "Scores become weights that are ≥ 0 and sum to 1: how much token i attends to each j.",
    ),
    Step("v", "Values V_j", "V_j = LN(x_j)·W_V + b_V", "What each token j hands over if attended to."),
    Step("weighted", "Weighted values a_ij·V_j", "a_ij · V_j", "Each value scaled by its attention weight."),
    Step(
        "context",
        "Context C_i",
        "C_i = Σ_j a_ij · V_j",
        "This head's output for token i: a weighted average of the values.",
    ),
    Step(
        "heads_concat",
        "All heads concatenated",
        "[C_i^0 | C_i^1 | … | C_i^h]",
        "Every head of the layer computes its own C_i; they are laid side by side.",
    ),
    Step(
        "attn_out",
        "Output projection W_O",
        "A_i = [C_i^0 | … ]·W_O + b_O",
        "c_proj mixes the heads back into the residual stream's space.",
    ),
    Step(
        "resid_mid",
        "Residual add",
        "H_i = x_i + A_i",
        "Attention adds to the stream rather than replacing it.",
    ),
    Step(
        "block_out",
        "MLP and residual",
        "x'_i = H_i + MLP(LN(H_i))",
        "The feed-forward network works on each position alone and adds its result: the block's output.",
    ),
    Step(
        "logits",
        "Layer norm, LM head, softmax",
        "p = softmax(LN_f(x'_i)·W_Eᵀ)",
        "The stream decoded into next-token probabilities: the model's answer after the last layer, "
        "and a 'logit lens' guess after any earlier one.",
    ),
)
STEP_NAMES = tuple(step.name for step in STEPS)


@dataclass(frozen=True, eq=False)
class Breakdown:
    layer: int
    head: int
    query: int
    tokens: tuple[str, ...]  # [pos]
    scaling: float  # 1/√d_k (and 1/(layer+1) where the config scales by layer)
    x: np.ndarray  # [d_model]
    ln_1: np.ndarray  # [d_model]
    q: np.ndarray  # [d_head]
    k: np.ndarray  # [pos, d_head]
    scores: np.ndarray  # [pos]
    scaled: np.ndarray  # [pos]
    masked: np.ndarray  # [pos], −inf after the query
    pattern: np.ndarray  # [pos]
    v: np.ndarray  # [pos, d_head]
    weighted: np.ndarray  # [pos, d_head]
    context: np.ndarray  # [d_head]
    heads_concat: np.ndarray  # [d_model]
    attn_out: np.ndarray  # [d_model]
    resid_mid: np.ndarray  # [d_model]
    block_out: np.ndarray  # [d_model]
    logits: pd.DataFrame  # top-k: token, token_id, logit, prob
    is_final: bool  # the last layer: `logits` is the model's prediction, not a lens
    deviation: Mapping[str, float | None]  # step name -> max |ours − model's|, None: no model tensor
    dtype: str = "float32"  # the model's weights: the deviations are against its numbers in this dtype

    def table(self) -> pd.DataFrame:
        """The attention row as one table: key token, score, scaled, masked, weight."""
        n = self.query + 1
        return pd.DataFrame(
            {
                "key": list(range(n)),
                "token": list(self.tokens[:n]),
                "score": self.scores[:n],
                "scaled": self.scaled[:n],
                "weight": self.pattern[:n],
            }
        )


assert set(STEP_NAMES) <= {f.name for f in fields(Breakdown)}, "every step is a field"


def gelu(x: np.ndarray, kind: str) -> np.ndarray:
    if kind in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))
    if kind == "gelu":
        from math import erf

        return 0.5 * x * (1.0 + np.vectorize(erf)(x / np.sqrt(2.0)))
    if kind == "relu":
        return np.maximum(x, 0.0)
    raise ExplorerError(f"The activation {kind!r} is not supported by the breakdown.")


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _dev(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(ours, np.float64) - np.asarray(theirs, np.float64))))


def check_indices(analysis: Analysis, layer: int, head: int, query: int) -> tuple[int, int, int]:
    for name, value, top in (
        ("layer", layer, analysis.n_layer),
        ("head", head, analysis.n_head),
        ("query token", query, analysis.n_pos),
    ):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 0 <= value < top:
            raise ExplorerError(
                f"The {name} must be a whole number from 0 to {top - 1} (got {reprlib.repr(value)})."
            )
    return int(layer), int(head), int(query)


def decode(analysis: Analysis, residual: np.ndarray, top_k: int = 10) -> tuple[pd.DataFrame, np.ndarray]:
    """Final layer norm, LM head and softmax on one residual vector: (top-k table, all logits)."""
    if not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or top_k < 1:
        raise ExplorerError(
            f"The number of top tokens must be a whole number ≥ 1 (got {reprlib.repr(top_k)})."
        )
    w = analysis.weights
    normed = layer_norm(residual.astype(np.float64), w.ln_f_w, w.ln_f_b, w.eps)
    # float32 as the model does it: upcasting the unembedding would copy 309 MB for gpt2.
    logits = (w.unembed @ normed.astype(np.float32)).astype(np.float64)
    if w.lm_head_b is not None:
        logits = logits + w.lm_head_b
    probs = softmax(logits)
    top = np.argsort(-logits)[:top_k]
    table = pd.DataFrame(
        {
            "token": list(display_tokens(analysis.tokenizer, top)),
            "token_id": top,
            "logit": logits[top].astype(np.float32),
            "prob": probs[top].astype(np.float32),
        }
    )
    return table, logits


def breakdown(analysis: Analysis, layer: int, head: int, query: int, top_k: int = 10) -> Breakdown:
    """Every step of attention for (layer, head, query), recomputed and checked."""
    layer, head, query = check_indices(analysis, layer, head, query)
    w = analysis.weights
    lw = w.layers[layer]
    d_model = lw.c_proj_w.shape[0]
    dh = w.d_head
    f64 = np.float64

    x_all = analysis.resid[layer].astype(f64)  # [pos, d_model]
    ln_all = layer_norm(x_all, lw.ln_1_w, lw.ln_1_b, w.eps)
    cols = slice(head * dh, (head + 1) * dh)
    wq, wk, wv = (lw.c_attn_w[:, i * d_model : (i + 1) * d_model][:, cols] for i in range(3))
    bq, bk, bv = (lw.c_attn_b[i * d_model : (i + 1) * d_model][cols] for i in range(3))
    q_all = ln_all @ wq + bq
    k = ln_all @ wk + bk
    v = ln_all @ wv + bv
    q = q_all[query]

    scores = k @ q
    scaled = scores * lw.scaling
    masked = np.where(np.arange(len(scores)) > query, -np.inf, scaled)
    pattern = softmax(masked)
    weighted = pattern[:, None] * v
    context = weighted.sum(0)

    # The model's own arrays for this layer: kept, or computed again by its block from x.
    model = analysis.layer(layer)
    # The other heads' contexts are the model's: this step is about this head's.
    heads_concat = model.context[:, query].astype(f64).copy()  # [head, d_head]
    heads_concat[head] = context
    heads_concat = heads_concat.reshape(-1)
    attn_out = heads_concat @ lw.c_proj_w + lw.c_proj_b
    resid_mid = x_all[query] + attn_out
    hidden = layer_norm(resid_mid, lw.ln_2_w, lw.ln_2_b, w.eps) @ lw.fc_w + lw.fc_b
    block_out = resid_mid + gelu(hidden, w.activation) @ lw.fc_proj_w + lw.fc_proj_b

    top, logits = decode(analysis, block_out, top_k)
    is_final = layer == analysis.n_layer - 1

    deviation = {
        "x": 0.0,
        "ln_1": None,
        "q": _dev(q, model.q[head, query]),
        "k": _dev(k, model.k[head]),
        "scores": None,
        "scaled": None,
        "masked": None,
        "pattern": _dev(pattern, model.pattern[head, query]),  # the exact row, not a quantized one
        "v": _dev(v, model.v[head]),
        "weighted": None,
        "context": _dev(context, model.context[head, query]),
        "heads_concat": _dev(heads_concat, model.context[:, query].reshape(-1)),
        "attn_out": _dev(attn_out, model.attn_out[query]),
        "resid_mid": _dev(resid_mid, model.resid_mid[query]),
        "block_out": _dev(block_out, analysis.resid[layer + 1, query]),
        "logits": _dev(logits, analysis.logits_at(query)) if is_final else None,
    }
    as32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return Breakdown(
        layer=layer,
        head=head,
        query=query,
        tokens=analysis.tokens,
        scaling=float(lw.scaling),
        x=as32(x_all[query]),
        ln_1=as32(ln_all[query]),
        q=as32(q),
        k=as32(k),
        scores=as32(scores),
        scaled=as32(scaled),
        masked=as32(masked),
        pattern=as32(pattern),
        v=as32(v),
        weighted=as32(weighted),
        context=as32(context),
        heads_concat=as32(heads_concat),
        attn_out=as32(attn_out),
        resid_mid=as32(resid_mid),
        block_out=as32(block_out),
        logits=top,
        is_final=is_final,
        deviation=MappingProxyType(deviation),
        dtype=analysis.dtype,
    )


__all__ = ["STEPS", "STEP_NAMES", "Breakdown", "Step", "breakdown", "decode"]
