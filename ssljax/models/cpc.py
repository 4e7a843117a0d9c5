"""Contrastive Predictive Coding on patch grids: context network and linear critics.

CPC (van den Oord et al. 2018) and CPC v2 (Henaff et al. 2020) on images:

1. a patch encoder maps each patch of a grid to ``z[i, j]`` (``PatchGridEncoder``);
2. an autoregressive context network summarises the rows at or above row ``i`` into
   ``c[i, j]`` (a PixelCNN-style stack of row-causal convolutions, ``ContextNetwork``);
3. one linear map per offset predicts the embedding ``k`` rows below:
   ``zhat[i + k, j] = W_k c[i, j]`` for ``k = 1 .. K`` (``CPCNetwork``), scored against
   the true ``z[i + k, j]`` among the other patches by InfoNCE
   (``ssljax.objectives.cpc.cpc_loss``).

"Predicting in every direction" (CPC v2): the same context network and ``W_k`` run on the
grid rotated by 0, 90, 180 and 270 degrees (``jnp.rot90`` over the grid axes, counter-
clockwise), so the predictions go top->bottom, right->left, bottom->top and left->right in
the original image.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

Array = Any
Dtype = Any

# Rotations (multiples of 90 degrees, counter-clockwise) used for 1, 2 or 4 directions.
ROTATIONS = {1: (0,), 2: (0, 2), 4: (0, 1, 2, 3)}
DIRECTION_NAMES = {0: "top_to_bottom", 1: "right_to_left", 2: "bottom_to_top", 3: "left_to_right"}


class RowCausalConv(nn.Module):
    """A convolution whose output at row ``i`` only reads input rows ``<= i``.

    Equivalent to a PixelCNN mask that zeroes the kernel rows below the centre: the kernel is
    ``rows x cols`` and the input is padded with ``rows - 1`` rows on top and none below
    (``cols // 2`` columns on each side, ``cols`` odd), so output row ``i`` sees input rows
    ``i - rows + 1 .. i`` and the columns ``j - cols // 2 .. j + cols // 2``.
    """

    features: int
    kernel_size: Sequence[int] = (2, 3)
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kh, kw = (int(k) for k in self.kernel_size)
        if kh < 1 or kw < 1 or kw % 2 == 0:
            raise ValueError(
                f"RowCausalConv kernel_size {tuple(self.kernel_size)}: need rows >= 1 and an "
                "odd number of columns"
            )
        return nn.Conv(
            self.features,
            (kh, kw),
            padding=((kh - 1, 0), (kw // 2, kw // 2)),
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name="conv",
        )(x)


class ContextNetwork(nn.Module):
    """PixelCNN-style autoregressive network over a patch grid ``[B, rows, cols, D]``.

    ``Dense(width)`` (a 1x1 convolution), then ``num_blocks`` residual blocks
    ``h + Dense(relu(RowCausalConv(relu(LayerNorm(h)))))``, then a final LayerNorm. Every
    operation is per position or row-causal, so the context ``c[:, i]`` depends only on the
    inputs ``z[:, :i + 1]`` (tested). LayerNorm, not BatchNorm: examples never interact.

    Attributes:
      width: channels of the context ``c``.
      num_blocks: residual blocks (each widens the receptive field by ``rows - 1`` rows).
      kernel_size: ``(rows, cols)`` of the row-causal convolutions.
      dtype: compute dtype (params stay float32).
    """

    width: int = 256
    num_blocks: int = 2
    kernel_size: Sequence[int] = (2, 3)
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, grid: Array) -> Array:
        if grid.ndim != 4:
            raise ValueError(f"ContextNetwork expects a [B, rows, cols, D] grid, got {grid.shape}")
        dense = lambda name: nn.Dense(  # noqa: E731
            self.width, dtype=self.dtype, param_dtype=jnp.float32, name=name
        )
        layer_norm = lambda name: nn.LayerNorm(  # noqa: E731
            dtype=self.dtype, param_dtype=jnp.float32, name=name
        )
        h = dense("input")(grid.astype(self.dtype))
        for b in range(1, self.num_blocks + 1):
            y = nn.relu(layer_norm(f"block{b}_ln")(h))
            y = RowCausalConv(self.width, self.kernel_size, self.dtype, name=f"block{b}_conv")(y)
            y = dense(f"block{b}_out")(nn.relu(y))
            h = h + y
        return layer_norm("output_ln")(h)


class CPCNetwork(nn.Module):
    """Patch-grid encoder + context network + one linear critic ``W_k`` per offset.

    ``__call__(x, train=...)`` takes ``[B, H, W, C]`` images or ``[B, rows, cols, p, p, C]``
    patches and returns a dict:

    * ``'features'`` ``[B, D]``: grid-averaged patch embeddings (what evaluation reads);
    * ``'grid'`` ``[B, rows, cols, D]``: the patch embeddings ``z``;
    * ``'predictions'``: one ``[K, B, rows', cols', D]`` array per direction, where entry
      ``k - 1`` at ``(b, i, j)`` is ``W_k c[b, i, j]`` on that direction's rotated grid;
    * ``'targets'``: the rotated grids ``[B, rows', cols', D]``, one per direction.

    The encoder's variables live under ``'encoder'`` (cut out for evaluation), the context
    network's under ``'context'`` and the critics' (``kernel [width, K, D]``, no bias) under
    ``'critics'``; all directions share them.

    Attributes:
      encoder: a ``PatchGridEncoder`` (anything with ``__call__(x, train, return_grid)``).
      context: the autoregressive network, e.g. ``ContextNetwork``.
      prediction_steps: ``K``, the largest row offset predicted.
      directions: 1 (top->bottom), 2 (+ bottom->top) or 4 (+ right->left, left->right).
      dtype: compute dtype of the critics.
    """

    encoder: nn.Module
    context: nn.Module
    prediction_steps: int = 3
    directions: int = 4
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, *, train: bool) -> dict[str, Array]:
        if self.directions not in ROTATIONS:
            raise ValueError(
                f"directions={self.directions!r} is invalid; choose one of {sorted(ROTATIONS)}"
            )
        grid = self.encoder(x, train=train, return_grid=True)
        critics = nn.DenseGeneral(
            (self.prediction_steps, grid.shape[-1]),
            use_bias=False,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name="critics",
        )
        predictions, targets = [], []
        for rotation in ROTATIONS[self.directions]:
            z = jnp.rot90(grid, k=rotation, axes=(1, 2))
            zhat = critics(self.context(z))  # [B, rows, cols, K, D]
            predictions.append(jnp.moveaxis(zhat, -2, 0))
            targets.append(z)
        return {
            "features": jnp.mean(grid, axis=(1, 2)),
            "grid": grid,
            "predictions": tuple(predictions),
            "targets": tuple(targets),
        }
