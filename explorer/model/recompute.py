"""One layer's attention arrays computed again, on demand, from the captured residual stream.

A large model's analysis keeps the residual stream (float32) and the pattern, not Q/K/V, the
contexts or the attention outputs of every layer (for gpt2-xl at 1,024 tokens those would be
1.9 GB): layer L's are exactly what the model's own block L computes from resid[L], its input,
and computing them again costs less than a block of the forward pass. A few layers are kept
(least recently used dropped), so that the clicks of one layer reuse them.

The block's modules are called through `.forward`, which runs their own code but skips hooks:
`analyze` registers hooks on the shared model while it captures, and a recompute on another
thread must not fire them. Reading the parameters in eval mode under inference_mode is safe
from several threads; nothing of GPT-2 is re-implemented (the attention is transformers' own
`eager_attention_forward`, as the model calls it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from explorer.model.heap import release_free_heap
from explorer.model.pattern import CausalPattern, LayerPattern

KEPT_LAYERS = 2  # layers computed again and kept: the breakdown and the head detail of one layer
HEADS_AT_ONCE = 4


@dataclass(frozen=True, eq=False)
class LayerArrays:
    """What block `layer`'s attention computes, float32 and read-only."""

    q: np.ndarray  # [head, pos, d_head]
    k: np.ndarray  # [head, pos, d_head]
    v: np.ndarray  # [head, pos, d_head]
    context: np.ndarray  # [head, pos, d_head] Σ_j a_ij V_j, the input of W_O
    pattern: np.ndarray | LayerPattern  # [head, query, key] after softmax, zeros above the diagonal
    attn_out: np.ndarray  # [pos, d_model] after W_O
    resid_mid: np.ndarray  # [pos, d_model] x + attention

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in fields(self))


def _numpy(x: Any) -> np.ndarray:
    out = x.detach().float().cpu().numpy()
    out.flags.writeable = False
    return out


def attention_layer(model: Any, layer: int, x: np.ndarray) -> LayerArrays:
    """Block `layer`'s attention on its input x [pos, d_model], run by the model's own modules."""
    import torch
    from transformers.models.gpt2.modeling_gpt2 import eager_attention_forward

    block = model.transformer.h[layer]
    attn = block.attn
    param = next(model.parameters())
    with torch.inference_mode():
        hidden = torch.from_numpy(np.array(x, dtype=np.float32)).to(param.device, param.dtype)[None]
        t = hidden.shape[1]
        parts = attn.c_attn.forward(block.ln_1.forward(hidden)).split(attn.split_size, dim=2)
        q, k, v = (p.view(1, t, -1, attn.head_dim).transpose(1, 2) for p in parts)  # [1, head, pos, d_head]
        # The causal mask as the model adds it: 0 where a key may be seen, the dtype's minimum after.
        future = torch.ones(t, t, dtype=torch.bool, device=param.device).triu(1)
        mask = torch.zeros(t, t, dtype=param.dtype, device=param.device)
        mask = mask.masked_fill(future, torch.finfo(param.dtype).min)[None, None]
        # A few heads at a time: the scores, the masked scores and the softmax of every head at
        # once would be 3 × 105 MB for gpt2-xl at 1,024 tokens; each head is computed alone anyway.
        n_head = q.shape[1]
        # The exact pattern is kept as its float32 lower triangle; each head's square is freed
        # (and the heap handed back) before the next few are computed.
        triangle = CausalPattern.empty(1, n_head, t, np.float32)
        contexts = []
        for h in range(0, n_head, HEADS_AT_ONCE):
            heads = slice(h, h + HEADS_AT_ONCE)
            if attn.reorder_and_upcast_attn:
                c, p = attn._upcast_and_reordered_attn(q[:, heads], k[:, heads], v[:, heads], mask)
            else:
                c, p = eager_attention_forward(
                    attn, q[:, heads], k[:, heads], v[:, heads], mask, dropout=0.0, scaling=attn.scaling
                )
            contexts.append(c)
            for i, square in enumerate(p[0].float().cpu().numpy()):
                triangle.set_head(0, h + i, square)
            del p, square
            release_free_heap()
        triangle.packed.flags.writeable = False
        context = torch.cat(contexts, dim=2)  # [1, pos, head, d_head]
        merged = context.reshape(1, t, -1).contiguous()  # [1, pos, head * d_head]
        attn_out = attn.c_proj.forward(merged)  # resid_dropout is the identity in eval mode
        return LayerArrays(
            q=_numpy(q[0]),
            k=_numpy(k[0]),
            v=_numpy(v[0]),
            context=_numpy(merged[0].view(t, -1, attn.head_dim).transpose(0, 1)),
            pattern=LayerPattern(triangle),
            attn_out=_numpy(attn_out[0]),
            resid_mid=_numpy((attn_out + hidden)[0]),
        )


class Recompute:
    """Layers computed again from `resid` [layer + 1, pos, d_model], the last few kept."""

    def __init__(self, model: Any, resid: np.ndarray, capacity: int = KEPT_LAYERS) -> None:
        self.model = model
        self.resid = resid
        self.capacity = capacity
        self._kept: OrderedDict[int, LayerArrays] = OrderedDict()
        self._lock = threading.Lock()  # one recompute at a time: sessions share an analysis
        self.computed = 0  # layers computed, for tests

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(arrays.nbytes for arrays in self._kept.values())

    def layer(self, layer: int) -> LayerArrays:
        with self._lock:
            if (found := self._kept.get(layer)) is not None:
                self._kept.move_to_end(layer)
                return found
            arrays = attention_layer(self.model, layer, self.resid[layer])
            self.computed += 1
            self._kept[layer] = arrays
            while len(self._kept) > self.capacity:
                self._kept.popitem(last=False)
            return arrays


class LayerStack:
    """One field of LayerArrays over every layer, indexed like the array it stands for:
    `analysis.q[layer, head]` gives [pos, d_head], computing that layer only; indexing several
    layers (or `np.asarray`) computes each of them in turn. Read-only, as the values are the model's."""

    dtype = np.dtype(np.float32)

    def __init__(self, source: Recompute, name: str, shape: tuple[int, ...]) -> None:
        self.source = source
        self.name = name
        self.shape = shape
        self.ndim = len(shape)

    def __len__(self) -> int:
        return self.shape[0]

    def _layer(self, layer: int) -> np.ndarray:
        return getattr(self.source.layer(layer), self.name)

    def __getitem__(self, index: Any) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        first, rest = (index[0], index[1:]) if index else (slice(None), ())
        if isinstance(first, (int, np.integer)):
            return self._layer(range(len(self))[first])[rest]
        if isinstance(first, slice) or (isinstance(first, (list, np.ndarray)) and np.ndim(first) == 1):
            layers = range(len(self))[first] if isinstance(first, slice) else np.arange(len(self))[first]
            picked = [self._layer(int(layer))[rest] for layer in layers]
            return np.stack(picked) if picked else np.empty((0, *self.shape[1:]), np.float32)[rest]
        return np.asarray(self)[index]  # Ellipsis, None or boolean masks: every layer first

    def __setitem__(self, index: Any, value: Any) -> None:
        raise ValueError(
            f"assignment destination is read-only: {self.name} is the model's own, computed again"
        )

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


__all__ = ["KEPT_LAYERS", "LayerArrays", "LayerStack", "Recompute", "attention_layer"]
