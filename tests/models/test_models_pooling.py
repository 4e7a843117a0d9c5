"""Tests for ``ssljax.models.layers.spatial_pool``."""

import math

import numpy as np
import pytest

from ssljax.models import spatial_pool
from ssljax.models.layers import adaptive_bin_edges


def _numpy_adaptive_pool(x: np.ndarray, grid: int) -> np.ndarray:
    """Reference: explicit loops over output cells, [B, H, W, C] -> [B, grid*grid*C]."""
    b, h, w, c = x.shape
    out = np.zeros((b, grid, grid, c), dtype=np.float64)
    for i in range(grid):
        r0, r1 = math.floor(i * h / grid), math.ceil((i + 1) * h / grid)
        for j in range(grid):
            c0, c1 = math.floor(j * w / grid), math.ceil((j + 1) * w / grid)
            total = np.zeros((b, c))
            for r in range(r0, r1):
                for s in range(c0, c1):
                    total += x[:, r, s, :]
            out[:, i, j, :] = total / ((r1 - r0) * (c1 - c0))
    return out.reshape(b, grid * grid * c)


def _grid_4x4() -> np.ndarray:
    """[1, 4, 4, 1] array with values 0..15 in row-major order."""
    return np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)


def test_grid1_is_global_mean():
    x = _grid_4x4()
    np.testing.assert_allclose(np.asarray(spatial_pool(x, 1)), [[7.5]])


def test_grid2_on_4x4_hand_computed():
    x = _grid_4x4()
    # Quadrants: top-left {0,1,4,5}, top-right {2,3,6,7},
    # bottom-left {8,9,12,13}, bottom-right {10,11,14,15}.
    np.testing.assert_allclose(np.asarray(spatial_pool(x, 2)), [[2.5, 4.5, 10.5, 12.5]])


def test_grid2_channel_order_is_row_col_channel():
    x = np.concatenate([_grid_4x4(), -_grid_4x4()], axis=-1)  # [1, 4, 4, 2]
    expected = [[2.5, -2.5, 4.5, -4.5, 10.5, -10.5, 12.5, -12.5]]
    np.testing.assert_allclose(np.asarray(spatial_pool(x, 2)), expected)


def test_bin_edges_non_divisible():
    # 7 rows into 2 bins: [0, 4) and [3, 7) -- the middle row is shared.
    assert adaptive_bin_edges(7, 2) == [(0, 4), (3, 7)]
    assert adaptive_bin_edges(4, 2) == [(0, 2), (2, 4)]


@pytest.mark.parametrize("shape,grid", [((2, 7, 7, 3), 2), ((1, 7, 5, 2), 3), ((2, 3, 3, 1), 4)])
def test_non_divisible_matches_numpy_reference(shape, grid):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    got = np.asarray(spatial_pool(x, grid))
    assert got.shape == (shape[0], grid * grid * shape[-1])
    np.testing.assert_allclose(got, _numpy_adaptive_pool(x, grid), rtol=1e-5, atol=1e-6)


def test_2d_input_passes_through():
    x = np.arange(6.0).reshape(2, 3)
    assert spatial_pool(x, 3) is x


@pytest.mark.parametrize("bad", [np.zeros((2, 3, 4)), np.zeros((1, 2, 3, 4, 5))])
def test_bad_rank_raises(bad):
    with pytest.raises(ValueError, match="spatial_pool"):
        spatial_pool(bad, 1)


def test_bad_grid_raises():
    with pytest.raises(ValueError, match="grid"):
        spatial_pool(np.zeros((1, 4, 4, 1)), 0)
