"""The generation session's KV cache: transformers' DynamicCache, its keys and values kept in
buffers with room to spare.

DynamicCache appends a token with `torch.cat`: every step makes a new copy of every layer's
keys and values, one position longer than the last. The freed copies are a little too small for
the next ones, so over a long session the process keeps blocks that nothing reuses (RSS grew
~100 MB per 100 steps in the app's server with GPT-2 small), and each step copies the whole
cache (75 MB at 1024 tokens). Here each layer writes the new positions into spare room and hands
the attention a view of the positions filled; the buffers grow `GROW_BY` positions at a time.
On the CPU each buffer is memory mapped on its own: its pages become resident as positions are
written, and an outgrown buffer goes back to the system at once rather than leaving a hole in
malloc's heap that the next, longer one does not fit.
"""

from __future__ import annotations

import math
import mmap
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

GROW_BY = 128  # positions added to a layer's buffers when they are full


def capacity(n_pos: int, max_len: int, grow_by: int = GROW_BY) -> int:
    """Positions the buffers hold once `n_pos` are cached: `n_pos` rounded up to a multiple of
    `grow_by`, but no more than `max_len` (the context window) unless `n_pos` itself is."""
    return max(n_pos, min(-(-n_pos // grow_by) * grow_by, max_len))


def _buffer(like: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """An uninitialised tensor of `shape` with `like`'s dtype and device: on the CPU, a private
    anonymous memory map of its own, unmapped when the tensor is freed."""
    if like.device.type != "cpu":
        return like.new_empty(shape)
    n_bytes = max(1, math.prod(shape)) * like.element_size()
    if hasattr(mmap, "MAP_ANONYMOUS"):
        memory = mmap.mmap(-1, n_bytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    else:  # Windows: -1 is already anonymous memory
        memory = mmap.mmap(-1, n_bytes)
    return torch.frombuffer(memory, dtype=like.dtype)[: math.prod(shape)].view(shape)


class BlockLayer(DynamicLayer):
    """One layer's keys and values, [batch, head, pos, d_head], as views of larger buffers.

    `keys` and `values` stay what DynamicLayer's are (the filled positions), so its
    `get_seq_length` and `crop` (a view of the first positions) work unchanged.
    """

    def __init__(self, max_len: int, grow_by: int = GROW_BY) -> None:
        super().__init__()
        self.max_len, self.grow_by = max_len, grow_by
        self.key_buffer: torch.Tensor | None = None
        self.value_buffer: torch.Tensor | None = None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start = self.get_seq_length()
        end = start + key_states.shape[-2]
        if not self._has_room(key_states, end):
            self._grow(key_states, value_states, start, end)
        assert self.key_buffer is not None and self.value_buffer is not None
        self.key_buffer[..., start:end, :] = key_states
        self.value_buffer[..., start:end, :] = value_states
        self.keys = self.key_buffer[..., :end, :]
        self.values = self.value_buffer[..., :end, :]
        return self.keys, self.values

    def _has_room(self, key_states: torch.Tensor, end: int) -> bool:
        """Whether the buffers hold the cached positions (keys not replaced from outside, by
        reorder_cache say) and have room up to `end`."""
        buffer = self.key_buffer
        if buffer is None or buffer.shape[-2] < end or buffer.shape[:-2] != key_states.shape[:-2]:
            return False
        return self.keys is not None and (self.keys.numel() == 0 or self.keys.data_ptr() == buffer.data_ptr())

    def _grow(self, key_states: torch.Tensor, value_states: torch.Tensor, start: int, end: int) -> None:
        size = capacity(end, self.max_len, self.grow_by)
        self.key_buffer = _buffer(key_states, (*key_states.shape[:-2], size, key_states.shape[-1]))
        self.value_buffer = _buffer(value_states, (*value_states.shape[:-2], size, value_states.shape[-1]))
        if start:
            assert self.keys is not None and self.values is not None
            self.key_buffer[..., :start, :] = self.keys
            self.value_buffer[..., :start, :] = self.values

    def reset(self) -> None:
        super().reset()
        self.key_buffer = self.value_buffer = None


class BlockCache(DynamicCache):
    """A DynamicCache of BlockLayers, one per layer of a model with context window `max_len`."""

    def __init__(self, n_layer: int, max_len: int, grow_by: int = GROW_BY) -> None:
        super().__init__()
        self.layers = [BlockLayer(max_len, grow_by) for _ in range(n_layer)]
        self.layer_class_to_replicate = None  # all layers exist already
