"""Shared building blocks for the encoders and heads.

Conventions used throughout ``ssljax.models``:

* images are NHWC (``[B, H, W, C]``);
* parameters are always stored in float32, the ``dtype`` argument only sets
  the compute dtype of convolutions, dense layers and normalisation;
* BatchNorm keeps its running statistics in the ``'batch_stats'`` collection
  and, when ``axis_name`` is set, averages batch statistics across the named
  mapped axis (``jax.shard_map`` / ``jax.pmap``).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

Array = Any
Dtype = Any
Initializer = Callable[..., Array]

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def batch_norm(
    train: bool,
    axis_name: str | None,
    dtype: Dtype = jnp.float32,
    scale_init: Initializer = nn.initializers.ones,
    name: str | None = None,
) -> nn.BatchNorm:
    """Returns the BatchNorm layer used by every module in ``ssljax.models``.

    Must be called inside a compact ``__call__`` (or ``setup``) so that the
    returned layer is bound to the calling module.

    Args:
      train: if True, normalise with the statistics of the current batch and
        update the running averages (requires ``mutable=['batch_stats']``);
        if False, normalise with the running averages.
      axis_name: mapped axis over which batch statistics are averaged in
        training mode, or None for per-device statistics. Only used when
        ``train`` is True, so evaluation and ``init(..., train=False)`` work
        outside any mapped context.
      dtype: compute dtype of the normalised output (params stay float32).
      scale_init: initialiser of the scale ``gamma`` (``zeros`` for the
        zero-init-residual trick).
      name: optional explicit submodule name.

    Returns:
      An ``nn.BatchNorm`` mapping ``[..., C] -> [..., C]``.
    """
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        axis_name=axis_name,
        dtype=dtype,
        param_dtype=jnp.float32,
        scale_init=scale_init,
        name=name,
    )


def global_avg_pool(x: Array) -> Array:
    """Averages a feature map over its spatial axes: ``[B, H, W, C] -> [B, C]``."""
    if x.ndim != 4:
        raise ValueError(f"global_avg_pool expects a [B, H, W, C] array, got shape {x.shape}.")
    return jnp.mean(x, axis=(1, 2))


def adaptive_bin_edges(size: int, grid: int) -> list[tuple[int, int]]:
    """Half-open ``[start, end)`` index ranges of adaptive pooling bins.

    Bin ``i`` covers ``floor(i * size / grid)`` up to ``ceil((i + 1) * size / grid)``,
    so bins may overlap by one element when ``size`` is not a multiple of
    ``grid`` and are never empty.

    Args:
      size: length of the axis being pooled (> 0).
      grid: number of bins (> 0).

    Returns:
      ``grid`` pairs of Python ints.
    """
    return [
        ((i * size) // grid, math.ceil((i + 1) * size / grid)) for i in range(grid)
    ]


def spatial_pool(x: Array, grid: int) -> Array:
    """Adaptive average pooling to a ``grid x grid`` grid, then flatten.

    Args:
      x: ``[B, H, W, C]`` feature map, or ``[B, D]`` features which are
        returned unchanged.
      grid: number of bins per spatial axis; ``grid=1`` is global average
        pooling.

    Returns:
      ``[B, grid * grid * C]`` (flattened in ``(row, column, channel)``
      order), or the input itself when it is 2-D.
    """
    if x.ndim == 2:
        return x
    if x.ndim != 4:
        raise ValueError(
            f"spatial_pool expects a [B, H, W, C] or [B, D] array, got shape {x.shape}."
        )
    if not isinstance(grid, int) or grid < 1:
        raise ValueError(f"grid must be a positive int, got {grid!r}.")
    batch, height, width, channels = x.shape
    if grid == 1:
        return global_avg_pool(x)
    rows = []
    for r0, r1 in adaptive_bin_edges(height, grid):
        cells = [
            jnp.mean(x[:, r0:r1, c0:c1, :], axis=(1, 2))
            for c0, c1 in adaptive_bin_edges(width, grid)
        ]
        rows.append(jnp.stack(cells, axis=1))  # [B, grid, C]
    pooled = jnp.stack(rows, axis=1)  # [B, grid, grid, C]
    return pooled.reshape(batch, grid * grid * channels)
