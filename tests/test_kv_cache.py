"""BlockCache: DynamicCache's keys and values, held in buffers that grow a block at a time."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from explorer import GenerationSession
from explorer.model.kv_cache import BlockCache, capacity

N_LAYER, MAX_LEN, GROW = 2, 20, 4


def states(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values for n new positions: [batch 1, head 3, n, d_head 5]."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, n, 5, generator=gen), torch.randn(1, 3, n, 5, generator=gen)


def feed(cache, sizes: list[int]) -> None:
    for step, n in enumerate(sizes):
        for layer in range(N_LAYER):
            cache.update(*states(n, seed=100 * step + layer), layer)


def assert_same(ours: BlockCache, theirs: DynamicCache) -> None:
    assert ours.get_seq_length() == theirs.get_seq_length()
    for a, b in zip(ours.layers, theirs.layers, strict=True):
        torch.testing.assert_close(a.keys, b.keys, rtol=0, atol=0)
        torch.testing.assert_close(a.values, b.values, rtol=0, atol=0)


@pytest.mark.parametrize(("n_pos", "expected"), [(1, 4), (4, 4), (5, 8), (17, 20), (20, 20), (23, 23)])
def test_capacity_rounds_up_to_a_block_within_the_context(n_pos, expected):
    assert capacity(n_pos, MAX_LEN, GROW) == expected


def test_updates_return_what_dynamic_cache_returns():
    ours, theirs = BlockCache(N_LAYER, MAX_LEN, GROW), DynamicCache()
    for step, n in enumerate([3, 1, 1, 2, 1]):
        for layer in range(N_LAYER):
            k, v = states(n, seed=100 * step + layer)
            got, want = ours.update(k, v, layer), theirs.update(k, v, layer)
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert_same(ours, theirs)


def test_buffers_grow_a_block_at_a_time_and_keys_are_views_of_them():
    cache = BlockCache(N_LAYER, MAX_LEN, GROW)
    sizes, buffers = [], []
    for step, n in enumerate([3] + [1] * 8):
        for layer in range(N_LAYER):
            cache.update(*states(n, seed=step), layer)
        layer0 = cache.layers[0]
        assert layer0.keys.data_ptr() == layer0.key_buffer.data_ptr()
        sizes.append(layer0.key_buffer.shape[-2])
        buffers.append(layer0.key_buffer)
    assert sizes == [4, 4, 8, 8, 8, 8, 12, 12, 12]  # 3 → 11 positions
    # Within a block the buffer is the same tensor: one new position is written in place.
    pairs = zip(buffers[:-1], buffers[1:], sizes[:-1], sizes[1:], strict=True)
    assert all(a is b for a, b, s, t in pairs if s == t)


def test_crop_then_update_matches_dynamic_cache():
    ours, theirs = BlockCache(N_LAYER, MAX_LEN, GROW), DynamicCache()
    for cache in (ours, theirs):
        feed(cache, [5, 1, 1, 1])
        cache.crop(-3)
    assert_same(ours, theirs)
    for cache in (ours, theirs):
        feed(cache, [1, 2])
    assert_same(ours, theirs)


def test_keys_replaced_from_outside_are_copied_into_new_buffers():
    ours, theirs = BlockCache(N_LAYER, MAX_LEN, GROW), DynamicCache()
    for cache in (ours, theirs):
        feed(cache, [3])
        cache.batch_repeat_interleave(2)  # new tensors, outside our buffers
        for layer in range(N_LAYER):
            k, v = states(1, seed=7)
            cache.update(k.repeat(2, 1, 1, 1), v.repeat(2, 1, 1, 1), layer)
    assert_same(ours, theirs)


def test_generation_session_keeps_its_cache_in_blocks(tiny):
    session = GenerationSession(tiny, "When Mary and John went to the store", seed=1)
    for _ in range(5):
        session.step()
    layer = session._cache.layers[0]
    assert isinstance(session._cache, BlockCache)
    assert layer.keys.shape[-2] == len(session.ids)
    assert layer.key_buffer.shape[-2] == capacity(len(session.ids), tiny.n_ctx)
