"""Direct logit attribution: which parts of the residual stream push the predicted token.

The stream at a position is a sum, H_i = embed_i + Σ_L (Σ_h head_{L,h} + b_O^L + MLP_L), and
what the model does to it before the logits is nearly linear: ln_f subtracts the mean (linear),
divides by the stream's std (one number), scales by γ and adds β, then the LM head takes a dot
product with the token's row of W_U. With the std frozen at the real stream's value every part
gets its own share of the logit,

    share(part) = (part − mean(part)) / σ · (γ ⊙ W_U[token]),

and the shares plus β · W_U[token] add up to the model's own logit. Everything is read from
what `analyze` captured: a head's part is its context C_i^h times its rows of W_O (c_proj), an
MLP's is resid[L + 1] − resid_mid[L]. Where a large model's analysis keeps only the residual
stream, a layer's contexts and values are computed again by its block (Analysis.layer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from explorer.analysis.ablation import head_name
from explorer.errors import ExplorerError
from explorer.model.capture import Analysis, display_tokens
from explorer.model.loading import Progress

KINDS = ("embed", "head", "attn_bias", "mlp")  # the `kind` column's values, in stream order


@dataclass(frozen=True, eq=False)
class Attribution:
    """Each part's share of one logit (or of a logit difference) at one position."""

    parts: pd.DataFrame  # one row per part: component, kind, layer, head, contribution (float64)
    sources: np.ndarray  # [layer, head, key] float32: each head's share through each key; 0 past `position`
    position: int  # the query position, from 0
    token_id: int
    token: str  # its display string, whitespace visible
    versus_id: int | None  # the token subtracted, if any
    versus: str | None
    logit: float  # the model's logit of `token` at `position`, minus that of `versus`
    bias: float  # β · W_U[token] (and the LM head's bias, if any): the share of no part
    deviation: float  # |Σ contribution + bias − logit|: how far the parts are from the model's number

    @property
    def heads(self) -> np.ndarray:
        """[layer, head] float32: the heads' shares as a grid."""
        rows = self.parts[self.parts["kind"] == "head"]
        grid = np.zeros(self.sources.shape[:2], dtype=np.float32)
        grid[rows["layer"].to_numpy(), rows["head"].to_numpy()] = rows["contribution"].to_numpy(np.float32)
        return grid

    def top(self, n: int = 10) -> pd.DataFrame:
        """The n parts with the largest |contribution|, largest first."""
        order = self.parts["contribution"].abs().sort_values(ascending=False, kind="stable").index
        return self.parts.loc[order[:n]].reset_index(drop=True)


@dataclass(frozen=True)
class _Readout:
    """The direction a part is read along: the logit of a part x is x · direction."""

    position: int
    token_id: int
    versus_id: int | None
    direction: np.ndarray  # [d_model] float64: γ ⊙ (W_U[token] − W_U[versus]) / σ, mean removed
    bias: float
    logit: float


def _token_id(analysis: Analysis, token: int | str, what: str) -> int:
    vocab = analysis.weights.unembed.shape[0]
    if isinstance(token, (int, np.integer)) and not isinstance(token, bool):
        if not 0 <= int(token) < vocab:
            raise ExplorerError(f"The {what} token id must be from 0 to {vocab - 1} (got {token}).")
        return int(token)
    if isinstance(token, str) and token:
        text = token.replace("␣", " ")  # the display form of a space, as tables show it
        ids = analysis.tokenizer(text)["input_ids"]
        if len(ids) == 1:
            return int(ids[0])
        hint = (
            ""
            if text.startswith(" ")
            else f" (words inside a sentence usually start with a space: ' {text}')"
        )
        raise ExplorerError(f"The {what} token {token!r} is {len(ids)} tokens, not one{hint}.")
    raise ExplorerError(f"The {what} token must be a token id or one token's text (got {token!r}).")


def _position(analysis: Analysis, position: int) -> int:
    n = analysis.n_pos
    if isinstance(position, bool) or not isinstance(position, (int, np.integer)) or not -n <= position < n:
        raise ExplorerError(
            f"The position must be from 0 to {n - 1}, or negative from the end (got {position!r})."
        )
    return int(position) % n


def _minus(values: np.ndarray, token_id: int, versus_id: int | None) -> np.ndarray:
    """values[token] − values[versus] in float64 (values[token] alone without a versus)."""
    out = np.asarray(values[token_id], dtype=np.float64)
    return out if versus_id is None else out - values[versus_id]


def _readout(
    analysis: Analysis, position: int, token: int | str | None, versus: int | str | None
) -> _Readout:
    w = analysis.weights
    pos = _position(analysis, position)
    logits = analysis.logits_at(pos)
    token_id = int(np.argmax(logits)) if token is None else _token_id(analysis, token, "target")
    versus_id = None if versus is None else _token_id(analysis, versus, "compared")
    if versus_id == token_id:
        raise ExplorerError("The compared token is the target itself: pick another one to compare against.")
    row = _minus(w.unembed, token_id, versus_id)
    logit = float(_minus(logits, token_id, versus_id))
    lm_bias = 0.0 if w.lm_head_b is None else float(_minus(w.lm_head_b, token_id, versus_id))
    stream = analysis.resid[-1, pos].astype(np.float64)
    sigma = np.sqrt(stream.var() + w.eps)  # ln_f's scale, frozen at the real stream's value
    direction = w.ln_f_w * row / sigma
    # (x − mean x) · d = x · (d − mean d): the mean removal moves onto the direction, once.
    return _Readout(
        pos, token_id, versus_id, direction - direction.mean(), float(w.ln_f_b @ row) + lm_bias, logit
    )


def _head_readers(analysis: Analysis, direction: np.ndarray) -> np.ndarray:
    """[layer, head, d_head] float64: W_O^h · direction, so that a head's share is C^h · reader."""
    w = analysis.weights
    return np.stack([layer.c_proj_w @ direction for layer in w.layers]).reshape(
        analysis.n_layer, w.n_head, w.d_head
    )


def _via_keys(analysis: Analysis, layer: int, heads: slice, readers: np.ndarray, pos: int) -> np.ndarray:
    """[head, key ≤ pos] float64: a_ij · (V_j · reader), each head's share through each key j."""
    values = analysis.v[layer, heads, : pos + 1].astype(np.float64)  # [head, key, d_head]
    weights = analysis.pattern_row(layer, pos)[heads, : pos + 1]  # exact, even where kept quantized
    return weights * np.einsum("hkd,hd->hk", values, readers)


def _sources(
    analysis: Analysis, readers: np.ndarray, pos: int, progress: Progress | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """([layer, head, key] float32 shares, zero past `pos`; [layer, head, d_head] contexts and
    [layer, d_model] resid_mid at `pos`).

    One layer at a time keeps the float64 copy small, and a layer computed again (see
    Analysis.recompute) is computed once for all three: in one pass over the layers, as only the
    last few are kept (gpt2-xl at 1,024 tokens: ~0.4 s a layer). `progress` hears of each layer."""
    out = np.zeros((analysis.n_layer, analysis.n_head, analysis.n_pos), dtype=np.float32)
    contexts = np.empty((analysis.n_layer, analysis.n_head, analysis.weights.d_head), dtype=np.float64)
    mids = np.empty((analysis.n_layer, analysis.resid.shape[-1]), dtype=np.float64)
    for layer in range(analysis.n_layer):
        if progress is not None and not analysis.keeps_all:
            progress(layer / analysis.n_layer, f"Layer {layer} of {analysis.n_layer} computed again …")
        out[layer, :, : pos + 1] = _via_keys(analysis, layer, slice(None), readers[layer], pos)
        contexts[layer] = analysis.context[layer, :, pos]
        mids[layer] = analysis.resid_mid[layer, pos]
    return out, contexts, mids


def _parts(
    analysis: Analysis,
    readers: np.ndarray,
    direction: np.ndarray,
    contexts: np.ndarray,
    mids: np.ndarray,
    pos: int,
) -> pd.DataFrame:
    w = analysis.weights
    heads = np.einsum("lhd,lhd->lh", contexts, readers)
    rows = [("embed", "embed", -1, -1, float(analysis.resid[0, pos] @ direction))]
    for layer in range(analysis.n_layer):
        mlp_out = analysis.resid[layer + 1, pos].astype(np.float64) - mids[layer]
        rows += [(head_name(layer, h), "head", layer, h, float(v)) for h, v in enumerate(heads[layer])]
        rows += [
            (f"L{layer} attn bias", "attn_bias", layer, -1, float(w.layers[layer].c_proj_b @ direction)),
            (f"L{layer} MLP", "mlp", layer, -1, float(mlp_out @ direction)),
        ]
    df = pd.DataFrame(rows, columns=["component", "kind", "layer", "head", "contribution"])
    return df.astype({"layer": np.int64, "head": np.int64, "contribution": np.float64})


def logit_attribution(
    analysis: Analysis,
    position: int = -1,
    token: int | str | None = None,
    *,
    versus: int | str | None = None,
) -> pd.DataFrame:
    """Each part of the residual stream's direct share of `token`'s logit at `position`, one row
    per part: component, kind, layer, head (−1 where not a head), contribution. The shares plus
    `df.attrs["bias"]` (the final layer norm's bias term) add up to `df.attrs["logit"]`, the
    model's own; `df.attrs` also names the token, the position and `deviation`. See `attribute`
    for the same with each head's share through every key position (what the app draws)."""
    found = attribute(analysis, position, token, versus=versus)
    parts = found.parts.copy()
    parts.attrs = {
        key: getattr(found, key)
        for key in ("position", "token_id", "token", "versus_id", "versus", "logit", "bias", "deviation")
    }
    return parts


def attribute(
    analysis: Analysis,
    position: int = -1,
    token: int | str | None = None,
    *,
    versus: int | str | None = None,
    progress: Progress | None = None,
) -> Attribution:
    """Each part of the residual stream's direct share of `token`'s logit at `position`, and
    each head's share through every key position (`sources`).

    Parts, in stream order: "embed" (token and position embeddings as one row, as the captured
    stream holds them), then per layer L every head "L{L}H{h}" (C^h · W_O^h), "L{L} attn bias"
    (c_proj's bias) and "L{L} MLP". `token` is an id or one token's text, the model's top
    prediction at `position` if None; with `versus` the shares are of logit(token) − logit(versus),
    e.g. " Mary" versus " John". The shares plus `bias` give the model's logit (`deviation`).
    `progress` hears of each layer a large analysis computes again.
    """
    r = _readout(analysis, position, token, versus)
    readers = _head_readers(analysis, r.direction)
    sources, contexts, mids = _sources(analysis, readers, r.position, progress)
    parts = _parts(analysis, readers, r.direction, contexts, mids, r.position)
    names = display_tokens(
        analysis.tokenizer, [r.token_id] if r.versus_id is None else [r.token_id, r.versus_id]
    )
    return Attribution(
        parts=parts,
        sources=sources,
        position=r.position,
        token_id=r.token_id,
        token=names[0],
        versus_id=r.versus_id,
        versus=names[1] if r.versus_id is not None else None,
        logit=r.logit,
        bias=r.bias,
        deviation=abs(float(parts["contribution"].sum()) + r.bias - r.logit),
    )


def head_source_attribution(
    analysis: Analysis,
    layer: int,
    head: int,
    position: int = -1,
    token: int | str | None = None,
    *,
    versus: int | str | None = None,
) -> pd.DataFrame:
    """One head's share of the logit split by the key it came through: a_ij · (V_j W_O^h) read
    like `logit_attribution`. Columns key, token, pattern (a_ij), contribution; the contributions
    add up to the head's row in `logit_attribution(...).parts`."""
    if not (0 <= layer < analysis.n_layer and 0 <= head < analysis.n_head):
        raise ExplorerError(
            f"There is no head {head_name(layer, head)}: layers go 0–{analysis.n_layer - 1}, "
            f"heads 0–{analysis.n_head - 1}."
        )
    r = _readout(analysis, position, token, versus)
    w = analysis.weights
    rows = slice(head * w.d_head, (head + 1) * w.d_head)
    reader = w.layers[layer].c_proj_w[rows] @ r.direction  # [d_head]: W_O^h · direction
    keys = slice(0, r.position + 1)
    return pd.DataFrame(
        {
            "key": np.arange(r.position + 1, dtype=np.int64),
            "token": list(analysis.tokens[keys]),
            "pattern": analysis.pattern_row(layer, r.position)[head, keys],
            "contribution": _via_keys(analysis, layer, slice(head, head + 1), reader[None], r.position)[0],
        }
    )


__all__ = ["KINDS", "Attribution", "head_source_attribution", "logit_attribution"]
