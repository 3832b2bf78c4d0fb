"""Attention patterns kept as their causal lower triangle: GPT-2's mask makes every weight above
the diagonal exactly 0, so only query ≥ key is stored, at half the memory of the square
(302 MB instead of 604 MB for GPT-2 small at 1024 tokens).

A large model's triangle can also be kept quantized, for what it is drawn as: uint16 in steps of
1/65535 (every 4-decimal value on a hover is right) or uint8 in steps of 1/255 (a heatmap cell's
colour). Indexing always gives float32; `exact` says whether those are the model's own numbers.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np


def _per_head(index: tuple) -> bool:
    """Whether `index` picks layers and heads (ints, slices, 1-D lists or arrays), then at most
    a query and a key as ints or slices: what can be answered without expanding every head."""

    def plain(i: Any) -> bool:
        return isinstance(i, (int, np.integer, slice))

    def heads(i: Any) -> bool:
        return plain(i) or (isinstance(i, (list, np.ndarray)) and np.ndim(i) == 1)

    return len(index) <= 4 and all(map(heads, index[:2])) and all(map(plain, index[2:]))


# How a triangle may be kept: float32 as the model computed it, or quantized to this many levels.
STORAGE = {np.dtype(np.float32): 1, np.dtype(np.uint16): 65535, np.dtype(np.uint8): 255}


def row_starts(n_pos: int) -> np.ndarray:
    """[n_pos + 1] where each query's row starts in the packed triangle (row q holds keys 0..q)."""
    return np.concatenate([[0], np.cumsum(np.arange(1, n_pos + 1))])


class CausalPattern:
    """[layer, head, query, key] attention after softmax, stored as the lower triangle.

    Index it like the square array it stands for: `p[layer, head]` gives [query, key],
    `p[layer]` [head, query, key] and `p[layer, head, query]` [key], as new float32 arrays with
    the zeros above the diagonal filled in. Only the layers and heads asked for are expanded;
    `np.asarray(p)` (and indexing with `...`, None or arrays past the head axis) expands all of them.
    """

    def __init__(self, packed: np.ndarray, n_pos: int) -> None:
        if packed.ndim != 3 or packed.shape[-1] != n_pos * (n_pos + 1) // 2:
            raise ValueError(f"packed must be [layer, head, {n_pos * (n_pos + 1) // 2}], got {packed.shape}")
        if packed.dtype not in STORAGE:
            raise ValueError(f"packed must be one of {', '.join(map(str, STORAGE))}, got {packed.dtype}")
        self.packed = packed  # [layer, head, query ≥ key], row after row
        self.starts = row_starts(n_pos)

    @classmethod
    def empty(cls, n_layer: int, n_head: int, n_pos: int, storage: Any = np.float32) -> CausalPattern:
        """Room for every layer, kept as `storage`: float32 (exact), uint16 or uint8 (quantized)."""
        return cls(np.empty((n_layer, n_head, n_pos * (n_pos + 1) // 2), dtype=storage), n_pos)

    @property
    def exact(self) -> bool:
        """Whether the values are the model's float32 ones, not quantized."""
        return self.packed.dtype == np.float32

    @property
    def step(self) -> float:
        """The largest error of a value: half a quantization step (0 when exact)."""
        return 0.0 if self.exact else 0.5 / STORAGE[self.packed.dtype]

    @classmethod
    def from_square(cls, square: np.ndarray) -> CausalPattern:
        """From [layer, head, query, key]; whatever is above the diagonal is dropped."""
        out = cls.empty(*square.shape[:3])
        for layer in range(square.shape[0]):
            out.set_layer(layer, square[layer])
        return out

    @property
    def shape(self) -> tuple[int, int, int, int]:
        n_layer, n_head, n_pos = *self.packed.shape[:2], len(self.starts) - 1
        return (int(n_layer), int(n_head), n_pos, n_pos)

    ndim = 4
    dtype = np.dtype(np.float32)

    @property
    def nbytes(self) -> int:
        return int(self.packed.nbytes)

    def __len__(self) -> int:
        return self.shape[0]

    @cached_property
    def _lower(self) -> np.ndarray:
        """[query ≥ key] where each kept value sits in a flattened [query, key] square, row after row."""
        n_pos = len(self.starts) - 1
        index = np.flatnonzero(np.tri(n_pos, dtype=bool))
        return index.astype(np.int32) if n_pos * n_pos < 2**31 else index

    def set_layer(self, layer: int, square: Any) -> None:
        """Store one layer from its [head, query, key] square, a head at a time."""
        for head in range(self.packed.shape[1]):
            self.set_head(layer, head, square[head])

    def set_head(self, layer: int, head: int, square: Any) -> None:
        """Store one head from its [query, key] square. Quantized storage is picked and rounded in
        a float32 buffer of one head's triangle (2 MB at 1,024 tokens): a layer's at once would
        be 34 MB for gpt2-medium beside the square it comes from."""
        row = self.packed[layer, head]
        flat = np.ascontiguousarray(square, dtype=np.float32).reshape(-1)
        if self.exact:
            np.take(flat, self._lower, out=row)
            return
        picked = np.take(flat, self._lower)
        picked *= STORAGE[row.dtype]
        row[:] = np.rint(picked, out=picked)

    def raw(self, layer: int) -> np.ndarray:
        """[head, query, key] of one layer as kept (quantized levels, or float32), zeros above the
        diagonal: block maxima taken on these need the small result dequantized only."""
        packed, starts = self.packed[layer], self.starts
        n_pos = len(starts) - 1
        out = np.zeros((len(packed), n_pos, n_pos), dtype=packed.dtype)
        for q in range(n_pos):
            out[:, q, : q + 1] = packed[:, starts[q] : starts[q + 1]]
        return out

    @property
    def levels(self) -> int:
        """What a stored value is divided by to give the attention weight (1 when exact)."""
        return STORAGE[self.packed.dtype]

    def _values(self, packed: np.ndarray) -> np.ndarray:
        """Packed values as float32, dequantized where they are kept quantized."""
        if self.exact:
            return packed
        return packed.astype(np.float32) * np.float32(1 / STORAGE[packed.dtype])

    def _square(self, packed: np.ndarray) -> np.ndarray:
        """[..., query ≥ key] packed rows to [..., query, key] with zeros above the diagonal."""
        n_pos, starts = len(self.starts) - 1, self.starts
        out = np.zeros((*packed.shape[:-1], n_pos, n_pos), dtype=np.float32)
        for q in range(n_pos):
            out[..., q, : q + 1] = self._values(packed[..., starts[q] : starts[q + 1]])
        return out

    def __getitem__(self, index: Any) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        if not _per_head(index):
            return np.asarray(self)[index]
        picked = self.packed[index[:2]]  # [..., query ≥ key] for the layers and heads asked for
        rest = index[2:]
        if rest and isinstance(rest[0], (int, np.integer)):
            q = range(self.shape[2])[rest[0]]
            row = np.zeros((*picked.shape[:-1], self.shape[3]), dtype=np.float32)
            row[..., : q + 1] = self._values(picked[..., self.starts[q] : self.starts[q + 1]])
            return row[(..., *rest[1:])]
        query_key = (*rest, slice(None), slice(None))[:2]
        return self._square(picked)[(..., *query_key)]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self._square(self.packed)
        return out if dtype is None else out.astype(dtype)


class LayerPattern:
    """[head, query, key] of one layer of a CausalPattern, indexed like the square it stands for:
    `p[head]` gives [query, key], `p[:, query]` [head, key], `np.asarray(p)` every head (each a
    new float32 array). A layer computed again keeps its exact pattern this way, at half the
    memory of the square (34 MB instead of 67 for gpt2-medium at 1,024 tokens)."""

    ndim = 3
    dtype = np.dtype(np.float32)

    def __init__(self, pattern: CausalPattern, layer: int = 0) -> None:
        self.pattern = pattern
        self.layer = layer

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.pattern.shape[1:]

    @property
    def nbytes(self) -> int:
        return int(self.pattern.packed[self.layer].nbytes)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        return self.pattern[(self.layer, *index)]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.pattern[self.layer]
        return out if dtype is None else out.astype(dtype)
