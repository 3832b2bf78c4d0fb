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
