"""CausalPattern: the lower triangle stored, indexed as the square it stands for."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.model.pattern import CausalPattern, row_starts

N_LAYER, N_HEAD, N_POS = 3, 4, 7
AHEAD = np.triu(np.ones((N_POS, N_POS), dtype=bool), k=1)


@pytest.fixture(scope="module")
def square() -> np.ndarray:
    """[layer, head, query, key] with distinct values on and below the diagonal, zeros above."""
    rng = np.random.default_rng(0)
    values = rng.random((N_LAYER, N_HEAD, N_POS, N_POS)).astype(np.float32) + 0.5
    return values * np.tri(N_POS, dtype=np.float32)


@pytest.fixture(scope="module")
def pattern(square) -> CausalPattern:
    return CausalPattern.from_square(square)


def test_it_stores_only_the_triangle(pattern, square):
    assert pattern.packed.shape == (N_LAYER, N_HEAD, N_POS * (N_POS + 1) // 2)
    assert pattern.nbytes < 0.6 * square.nbytes
    assert pattern.shape == square.shape and pattern.dtype == np.float32 and len(pattern) == N_LAYER
    np.testing.assert_array_equal(row_starts(4), [0, 1, 3, 6, 10])


def test_the_whole_array_is_the_square(pattern, square):
    np.testing.assert_array_equal(np.asarray(pattern), square)
    assert np.asarray(pattern, dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize(
    "index",
    [
        1,
        -1,
        (1, 2),
        (1, 2, 3),
        (1, 2, -1),
        (1, 2, 3, 2),
        (slice(None),),
        (slice(1, None), 0),
        (0, slice(1, 3), 2, slice(0, 2)),
        (slice(None), slice(None), 3, slice(None)),
        (slice(None), slice(None), slice(None, 4), slice(None, 4)),
        (slice(None), slice(None), slice(1, None)),
        (slice(None), 1, -1),
        ([0, 2],),
        ([0, 2], [1, 3]),
        (Ellipsis, 2),
        (Ellipsis, AHEAD),
        (None, 0),
    ],
)
def test_indexing_matches_the_square(pattern, square, index):
    got, want = pattern[index], square[index]
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_what_is_above_the_diagonal_is_dropped(square):
    noisy = square + np.triu(np.ones((N_POS, N_POS), dtype=np.float32), k=1)
    np.testing.assert_array_equal(np.asarray(CausalPattern.from_square(noisy)), square)


def test_a_head_is_a_new_array(pattern, square):
    head = pattern[0, 0]
    head[:] = -1
    np.testing.assert_array_equal(pattern[0, 0], square[0, 0])


def test_packed_rows_must_fit_the_length():
    with pytest.raises(ValueError, match="packed must be"):
        CausalPattern(np.zeros((1, 1, 5), dtype=np.float32), 3)


@pytest.mark.parametrize("storage", [np.float32, np.uint16, np.uint8])
def test_a_head_at_a_time_stores_what_a_layer_at_once_does(square, storage):
    square = square / square.sum(-1, keepdims=True)  # rows of attention weights, within [0, 1]
    by_layer, by_head = (
        CausalPattern.empty(*square.shape[:3], storage),
        CausalPattern.empty(*square.shape[:3], storage),
    )
    for layer in range(N_LAYER):
        by_layer.set_layer(layer, square[layer])
        for head in range(N_HEAD):
            by_head.set_head(layer, head, square[layer, head])
    np.testing.assert_array_equal(by_head.packed, by_layer.packed)
    # Exact in float32; quantized within half a step of the model's values.
    assert np.abs(np.asarray(by_head) - square).max() <= by_head.step + 1e-7
    assert (by_head.step == 0) == (storage is np.float32)


def test_a_head_may_come_strided_or_in_another_dtype(square):
    pattern = CausalPattern.empty(1, 1, N_POS)
    pattern.set_head(0, 0, np.asfortranarray(square[0, 0]).astype(np.float64))
    np.testing.assert_array_equal(pattern[0, 0], square[0, 0])


def test_one_layer_is_indexed_as_its_square(pattern, square):
    from explorer.model.pattern import LayerPattern

    one = LayerPattern(pattern, 2)
    assert one.shape == square.shape[1:] and one.ndim == 3 and len(one) == N_HEAD
    assert one.nbytes == pattern.packed[2].nbytes < 0.6 * square[2].nbytes
    np.testing.assert_array_equal(np.asarray(one), square[2])
    np.testing.assert_array_equal(one[1], square[2, 1])
    np.testing.assert_array_equal(one[:, 5], square[2, :, 5])
    np.testing.assert_array_equal(one[3, 4], square[2, 3, 4])
