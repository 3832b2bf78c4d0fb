"""One forward pass with hooks on the real modules: attention, Q/K/V and the residual stream.

Hooks on `transformer.h[L].attn.c_attn` give Q, K and V exactly as the model computed them;
nothing of GPT-2 is re-implemented here.

What is kept depends on its size (`keep_plan`). While everything fits `KEEP_BYTES`, every array
is kept in float32, as captured. Beyond (gpt2-medium and larger at long prompts), the analysis
keeps the residual stream in float32 and the pattern for drawing (float32 while it fits, else
quantized: see pattern.py); Q/K/V, the contexts, attn_out and resid_mid, and the exact pattern of
a layer, are computed again from resid[L] by the model's own block when asked for (recompute.py).

The residual stream stays float32 because it is what every number computed again starts from:
a layer's Q/K/V and pattern equal the model's only from its exact input. The pattern needs only
what it is drawn as (a uint8 level is a heatmap colour); its exact values come back per layer.

The pass itself holds little beyond that (gpt2-medium at 1,024 tokens: 300 MB kept, ~150 MB
more at the peak, the model's own two attention squares and a layer's inputs): each layer's
attention weights are packed as they come out of its attn module and handed back to the block
without them (it would hold them through its MLP); the pass runs on a thread of its own
(`OwnThread`) and hands malloc's free heap back before a layer's attention (heap.py).
"""

from __future__ import annotations

import reprlib
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explorer.errors import ExplorerError
from explorer.model.heap import OwnThread, release_free_heap, resident_bytes
from explorer.model.loading import LoadedModel, ModelWeights
from explorer.model.pattern import CausalPattern
from explorer.model.recompute import LayerArrays, LayerStack, Recompute

# The most an analysis keeps beyond the residual stream: gpt2 keeps everything up to 1,024 tokens
# (570 MB), gpt2-medium up to 512. Beyond, the pattern alone is kept within PATTERN_BYTES: as
# uint16 or uint8 where float32 does not fit (gpt2-medium at 1,024 tokens: 201 MB as uint8, where
# float32 would be 806 MB; gpt2-xl 630 MB); the exact values are computed again per layer.
KEEP_BYTES = 768 * 2**20
PATTERN_BYTES = 256 * 2**20
Array = np.ndarray | LayerStack  # kept, or computed again per layer

# How whitespace and control characters are drawn so that a reader can see them.
_VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}
# Shown as escapes: controls, format characters (zero-width, direction marks and isolates, BOM),
# other spaces and separators, private-use and unassigned code points.
_INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Cn", "Cs"})


def display_token(raw: bytes) -> str:
    """A token's text with its whitespace made visible; bytes that are no whole UTF-8 show as hex."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(f"\\x{b:02x}" for b in raw)
    out = []
    for ch in text:
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif unicodedata.category(ch) in _INVISIBLE:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out) or "∅"


_BYTE_DECODER: dict[str, int] | None = None


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet back to bytes (the inverse of its bytes_to_unicode)."""
    global _BYTE_DECODER
    if _BYTE_DECODER is None:
        bs = (
            list(range(ord("!"), ord("~") + 1))
            + list(range(ord("¡"), ord("¬") + 1))
            + list(range(ord("®"), ord("ÿ") + 1))
        )
        cs = bs[:]
        n = 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        _BYTE_DECODER = {chr(c): b for b, c in zip(bs, cs, strict=True)}
    return _BYTE_DECODER


def token_bytes(tokenizer: Any, token_id: int) -> bytes:
    piece = tokenizer.convert_ids_to_tokens(int(token_id))
    if piece in tokenizer.all_special_tokens:
        return piece.encode()
    decoder = _byte_decoder()
    if all(ch in decoder for ch in piece):
        return bytes(decoder[ch] for ch in piece)
    return tokenizer.decode([int(token_id)]).encode("utf-8", "replace")


def display_tokens(tokenizer: Any, ids: Any) -> tuple[str, ...]:
    return tuple(display_token(token_bytes(tokenizer, int(i))) for i in ids)


@dataclass(frozen=True, eq=False)
class Analysis:
    """Everything one forward pass shows. Float arrays are float32 and on the CPU."""

    text: str
    tokens: tuple[str, ...]  # display strings, whitespace visible
    token_ids: np.ndarray  # [pos] int64
    spans: tuple[tuple[int, int], ...]  # each token's character span in `text`
    pattern: CausalPattern  # [layer, head, query, key] attention after softmax, kept as its lower triangle
    q: Array  # [layer, head, pos, d_head]
    k: Array  # [layer, head, pos, d_head]
    v: Array  # [layer, head, pos, d_head]
    context: Array  # [layer, head, pos, d_head] Σ_j a_ij V_j, the input of W_O
    attn_out: Array  # [layer, pos, d_model] the attention block's output (after W_O)
    resid_mid: Array  # [layer, pos, d_model] x + attention, the input of ln_2
    resid: np.ndarray  # [layer + 1, pos, d_model] resid[0] embeddings, resid[L + 1] after block L
    last_logits: np.ndarray  # [vocab] the model's own next-token logits after the last position
    truncated: int  # tokens cut from the end to fit the context window
    model_name: str
    weights: ModelWeights
    tokenizer: Any = field(repr=False)  # to name tokens in tables (top-k, logit lens)
    dtype: str = "float32"  # the weights' dtype, which the model computed in
    recompute: Recompute | None = field(default=None, repr=False)  # None: every array is kept

    def layer(self, layer: int) -> LayerArrays:
        """Layer `layer`'s attention arrays, exact: kept, or computed again by the model's block."""
        if self.recompute is not None:
            return self.recompute.layer(layer)
        kept = (self.q, self.k, self.v, self.context, self.attn_out, self.resid_mid)
        q, k, v, context, attn_out, resid_mid = (np.asarray(a[layer]) for a in kept)
        return LayerArrays(q, k, v, context, self.exact_pattern(layer), attn_out, resid_mid)

    def exact_pattern(self, layer: int, head: int | None = None) -> np.ndarray:
        """[head, query, key] (or one head's [query, key]) float32 as the model computed it,
        whatever precision `pattern` keeps."""
        index = (layer,) if head is None else (layer, head)
        if getattr(self.pattern, "exact", True) or self.recompute is None:
            return np.asarray(self.pattern[index])
        exact = self.recompute.layer(layer).pattern
        return np.asarray(exact) if head is None else exact[head]

    def pattern_row(self, layer: int, query: int) -> np.ndarray:
        """[head, key] float32: one query's attention in every head of a layer, exact."""
        if getattr(self.pattern, "exact", True) or self.recompute is None:
            return np.asarray(self.pattern[layer, :, query])
        return self.recompute.layer(layer).pattern[:, query]

    @property
    def keeps_all(self) -> bool:
        """Every layer's arrays kept; False when a large analysis computes layers again on demand."""
        return self.recompute is None

    @property
    def nbytes(self) -> int:
        """The bytes this analysis holds: its arrays, the pattern and the layers computed again."""
        arrays = [value for value in vars(self).values() if isinstance(value, np.ndarray)]
        again = self.recompute.nbytes if self.recompute is not None else 0
        pattern = 0 if isinstance(self.pattern, np.ndarray) else self.pattern.nbytes  # ndarray: counted
        return int(sum(a.nbytes for a in arrays) + pattern + again)

    @property
    def n_layer(self) -> int:
        return int(self.pattern.shape[0])

    @property
    def n_head(self) -> int:
        return int(self.pattern.shape[1])

    @property
    def n_pos(self) -> int:
        return int(self.pattern.shape[2])

    def logits_at(self, pos: int) -> np.ndarray:
        """[vocab] logits at one position (negative counts from the end).

        The last position's are the model's own; the others are decoded from the captured
        residual stream the way the model decodes it (ln_f, then the LM head, in float32), on
        demand: all of them would be 206 MB for gpt2 at 1024 tokens, and few are ever read.
        """
        pos = range(self.n_pos)[pos]
        if pos == self.n_pos - 1:
            return self.last_logits
        return unembed(self.weights, self.resid[-1, pos][None])[0]

    @property
    def logits(self) -> np.ndarray:
        """[pos, vocab] logits at every position, computed on demand (see `logits_at`)."""
        out = unembed(self.weights, self.resid[-1])
        out[-1] = self.last_logits
        return out


def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis, in the dtype of `x`."""
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def unembed(weights: ModelWeights, hidden: np.ndarray) -> np.ndarray:
    """[n, vocab] logits from [n, d_model] rows of the last block's output: ln_f and the LM head
    in float32, as the model computes them."""
    w = weights
    normed = layer_norm(np.asarray(hidden, dtype=np.float32), w.ln_f_w, w.ln_f_b, w.eps)
    logits = normed.astype(np.float32) @ w.unembed.T
    if w.lm_head_b is not None:
        logits += w.lm_head_b
    return logits


def _spans(tokenizer: Any, text: str, ids: list[int]) -> tuple[tuple[int, int], ...]:
    """Each token's character span in `text`, from the byte lengths of byte-level BPE tokens."""
    char_at = np.zeros(len(text.encode("utf-8")) + 1, dtype=np.int64)  # byte offset -> char offset
    offset = 0
    for i, ch in enumerate(text):
        n = len(ch.encode("utf-8"))
        char_at[offset + 1 : offset + n + 1] = i + 1
        offset += n
    spans, start = [], 0
    for token_id in ids:
        end = min(start + len(token_bytes(tokenizer, token_id)), len(char_at) - 1)
        spans.append((int(char_at[start]), int(char_at[end])))
        start = end
    return tuple(spans)


def clean_text(text: str) -> str:
    """`text` as valid Unicode: surrogate pairs joined, lone surrogates (not encodable) made U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def tokenize(loaded: LoadedModel, text: str, max_tokens: int | None = None) -> tuple[list[int], int]:
    """Token ids for `text`, cut to the context window; returns (ids, tokens cut)."""
    if not isinstance(text, str) or not text.strip():
        raise ExplorerError("The prompt is empty: type some text to analyze.")
    if max_tokens is not None and (
        not isinstance(max_tokens, (int, np.integer)) or isinstance(max_tokens, bool) or max_tokens < 0
    ):
        raise ExplorerError(
            f"The token limit must be a whole number ≥ 1, or 0 for none (got {reprlib.repr(max_tokens)})."
        )
    ids = list(loaded.tokenizer(clean_text(text))["input_ids"])
    if not ids:
        raise ExplorerError("The prompt produced no tokens.")
    limit = min(loaded.n_ctx, max_tokens or loaded.n_ctx)
    return ids[:limit], max(0, len(ids) - limit)


def keep_plan(n_layer: int, n_head: int, d_model: int, n_pos: int, keep_bytes: int = KEEP_BYTES) -> Any:
    """(whether every array is kept, the pattern's storage dtype) for an analysis of this shape.

    Everything is kept while it fits `keep_bytes`. Beyond, only the pattern (and the residual
    stream, always): in float32 while that fits `min(keep_bytes, PATTERN_BYTES)`, else uint16
    (every 4-decimal value right), else uint8 (the colour of a heatmap cell: what it is drawn as;
    the hover of the head detail and the breakdown read the exact values computed again).
    """
    triangle = n_layer * n_head * n_pos * (n_pos + 1) // 2
    per_layer = 6 * n_layer * n_pos * d_model  # q, k, v, context, attn_out, resid_mid
    if 4 * (triangle + per_layer) <= keep_bytes:
        return True, np.dtype(np.float32)
    for storage in (np.float32, np.uint16):
        if triangle * np.dtype(storage).itemsize <= min(keep_bytes, PATTERN_BYTES):
            return False, np.dtype(storage)
    return False, np.dtype(np.uint8)


def analyze(
    loaded: LoadedModel, text: str, max_tokens: int | None = None, *, keep_bytes: int = KEEP_BYTES
) -> Analysis:
    """Run the model once on `text` and capture attention, Q/K/V and the residual stream.

    Text longer than the context window (or `max_tokens`) is cut; `truncated` says by how much.
    `keep_bytes` bounds what is kept beyond the residual stream (see `keep_plan`).
    """
    import torch

    ids, cut = tokenize(loaded, text, max_tokens)
    text = clean_text(text)  # the spans index the text the tokenizer saw
    if cut:
        text = loaded.tokenizer.decode(ids)
    model = loaded.model
    cfg = model.config
    n_layer, n_head, d_model = cfg.n_layer, cfg.n_head, cfg.n_embd
    d_head, t = d_model // n_head, len(ids)
    keep_all, storage = keep_plan(n_layer, n_head, d_model, t, keep_bytes)

    # Preallocated once: each hook copies its layer in, so the model's own tensors are freed
    # layer by layer and only one copy of the attention exists, its causal lower triangle
    # (302 MB for gpt2 at 1024 tokens, where the square would be 604 MB).
    pattern = CausalPattern.empty(n_layer, n_head, t, storage)
    resid = np.empty((n_layer + 1, t, d_model), dtype=np.float32)
    if keep_all:
        qkv = np.empty((3, n_layer, n_head, t, d_head), dtype=np.float32)
        context = np.empty((n_layer, n_head, t, d_head), dtype=np.float32)
        attn_out = np.empty((n_layer, t, d_model), dtype=np.float32)
        resid_mid = np.empty((n_layer, t, d_model), dtype=np.float32)

    def forward() -> np.ndarray:
        with torch.inference_mode():
            device = next(model.parameters()).device
            # Only the last position's logits: the others are decoded on demand (Analysis.logits_at).
            out = model(torch.tensor([ids], device=device), use_cache=False, logits_to_keep=1)
            return out.logits[0, -1].float().cpu().numpy().copy()

    worker = OwnThread(forward)
    # The model is shared: a forward pass on another thread (a generation step) runs these hooks
    # too, and must neither write into this analysis nor lose its attention weights.
    ours = worker.is_current

    def heads(x: Any) -> np.ndarray:  # [1, pos, d_model] -> [head, pos, d_head]
        return x[0].detach().float().reshape(t, n_head, d_head).transpose(0, 1).cpu().numpy()

    def on_c_attn(layer: int):
        def hook(module: Any, args: Any, out: Any) -> None:
            if not ours():
                return
            for n, part in enumerate(out.split(d_model, dim=-1)):
                qkv[n, layer] = heads(part)

        return hook

    # What the analysis holds once done; the free space the MLPs leave in malloc's heap (~150 MB,
    # fragmented, so free() does not return it) would stay resident beneath each layer's
    # attention squares (two at once, 128 MB for gpt2-medium at 1,024 tokens). It is handed back
    # before a layer's attention once it and what is kept so far exceed what the analysis will
    # hold: earlier layers' peaks stay below the last one's anyway, and reusing the heap spares
    # faulting it in again.
    kept_bytes = resid.nbytes + pattern.nbytes
    start = resident_bytes()

    def on_attn_in(module: Any, args: Any) -> None:
        now = resident_bytes()
        if ours() and start is not None and now is not None and now - start > kept_bytes:
            release_free_heap()

    def on_attn(layer: int):
        def hook(module: Any, args: Any, out: Any) -> Any:
            if not ours():
                return None
            if keep_all:
                attn_out[layer] = out[0][0].detach().float().cpu().numpy()
            weights = out[1][0].detach()  # [head, query, key]: the model's own softmax
            for head in range(n_head):  # a head at a time: a half-precision model's in float32 too
                pattern.set_head(layer, head, weights[head].float().cpu().numpy())
            # The block holds what attn returns until it ends, through its MLP: handed back
            # without the weights, the square is freed as soon as it is packed.
            return (out[0], None, *out[2:])

        return hook

    def on_c_proj_in(layer: int):
        def hook(module: Any, args: Any) -> None:
            if not ours():
                return
            context[layer] = heads(args[0])

        return hook

    def on_ln_2_in(layer: int):
        def hook(module: Any, args: Any) -> None:
            if not ours():
                return
            resid_mid[layer] = args[0][0].detach().float().cpu().numpy()

        return hook

    def on_block(layer: int):
        def hook(module: Any, args: Any, out: Any) -> None:
            if not ours():
                return
            hidden = out[0] if isinstance(out, tuple) else out
            resid[layer + 1] = hidden[0].detach().float().cpu().numpy()

        return hook

    def on_first_block_in(module: Any, args: Any) -> None:
        if not ours():
            return
        resid[0] = args[0][0].detach().float().cpu().numpy()

    handles = []
    try:
        for layer, block in enumerate(model.transformer.h):
            handles += [
                block.attn.register_forward_hook(on_attn(layer)),
                block.register_forward_hook(on_block(layer)),
            ]
            if not keep_all:
                handles.append(block.attn.register_forward_pre_hook(on_attn_in))
            else:
                handles += [
                    block.attn.c_attn.register_forward_hook(on_c_attn(layer)),
                    block.attn.c_proj.register_forward_pre_hook(on_c_proj_in(layer)),
                    block.ln_2.register_forward_pre_hook(on_ln_2_in(layer)),
                ]
        handles.append(model.transformer.h[0].register_forward_pre_hook(on_first_block_in))
        last_logits = worker()
    finally:
        for handle in handles:
            handle.remove()
    if not keep_all:
        release_free_heap()  # what the last layers freed: the analysis now holds the rest

    recompute = None
    if keep_all:
        arrays: dict[str, Array] = dict(
            q=qkv[0], k=qkv[1], v=qkv[2], context=context, attn_out=attn_out, resid_mid=resid_mid
        )
    else:
        recompute = Recompute(model, resid)
        by_head, by_pos = (n_layer, n_head, t, d_head), (n_layer, t, d_model)
        arrays = {
            name: LayerStack(recompute, name, by_head if name in ("q", "k", "v", "context") else by_pos)
            for name in ("q", "k", "v", "context", "attn_out", "resid_mid")
        }
    return Analysis(
        text=text,
        tokens=display_tokens(loaded.tokenizer, ids),
        token_ids=np.asarray(ids, dtype=np.int64),
        spans=_spans(loaded.tokenizer, text, ids),
        pattern=pattern,
        resid=resid,
        last_logits=last_logits,
        truncated=cut,
        model_name=loaded.name,
        weights=loaded.weights,
        tokenizer=loaded.tokenizer,
        dtype=loaded.dtype,
        recompute=recompute,
        **arrays,  # type: ignore[arg-type]
    )
