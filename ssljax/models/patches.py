"""Patch grids: cut images into overlapping square patches and encode every patch (CPC).

Contrastive Predictive Coding on images (van den Oord et al. 2018; Henaff et al. 2020) sees an
image as a grid of overlapping patches, ``x[i, j] = image[i*s : i*s + p, j*s : j*s + p]`` for
patch size ``p`` and stride ``s``, and encodes each patch on its own. With ``H`` image rows the
grid has ``(H - p) // s + 1`` rows (pixels past the last full patch are not used); e.g.
28x28 with p=8, s=4 -> 6x6; 32x32 with p=8, s=4 -> 7x7; 256x256 with p=64, s=32 -> 7x7.

``PatchGridEncoder`` wraps any registered encoder (``[N, p, p, C] -> [N, D]``) into an image
encoder ``[B, H, W, C] -> [B, D]`` (the mean of the patch features over the grid), so the
linear evaluation of a CPC checkpoint calls it on full images exactly like any other encoder.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

Array = Any

INTERMEDIATES = "intermediates"


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive int")
    return int(value)


def patch_grid_shape(height: int, width: int, size: int, stride: int) -> tuple[int, int]:
    """``(rows, cols)`` of the grid of ``size x size`` patches at ``stride`` in an image.

    Raises a one-line ValueError naming the values when a patch does not fit in the image.
    """
    size = _positive_int("patch size", size)
    stride = _positive_int("patch stride", stride)
    if size > height or size > width:
        raise ValueError(
            f"patch size {size} is larger than the {height}x{width} images; "
            f"use a patch size <= {min(height, width)}"
        )
    return (height - size) // stride + 1, (width - size) // stride + 1


def extract_patches(images: Array, size: int, stride: int) -> Array:
    """Cuts ``[B, H, W, C]`` images into ``[B, rows, cols, size, size, C]`` patches.

    ``out[:, r, c] == images[:, r*stride : r*stride + size, c*stride : c*stride + size]``;
    one gather with indices fixed at trace time.
    """
    if images.ndim != 4:
        raise ValueError(f"extract_patches expects [B, H, W, C] images, got shape {images.shape}")
    rows, cols = patch_grid_shape(images.shape[1], images.shape[2], size, stride)
    r = (np.arange(rows) * stride)[:, None] + np.arange(size)[None, :]  # [rows, size]
    c = (np.arange(cols) * stride)[:, None] + np.arange(size)[None, :]  # [cols, size]
    # Index arrays broadcast to [rows, cols, size, size]; they sit on adjacent axes 1 and 2,
    # so the result keeps the batch first and the channels last.
    return images[:, r[:, None, :, None], c[None, :, None, :], :]


class PatchGridEncoder(nn.Module):
    """Applies ``encoder`` to every patch of a grid and averages the features over the grid.

    Input: ``[B, H, W, C]`` images (cut here with ``extract_patches``) or already cut patches
    ``[B, rows, cols, p, p, C]`` (CPC's training views, which may be augmented per patch).
    All patches go through ``encoder`` as one batch ``[B * rows * cols, p, p, C]``.

    Returns ``[B, D]`` pooled features, or the grid ``[B, rows, cols, D]`` when
    ``return_grid``. Sows ``'grid'`` ``[B, rows, cols, D]`` and ``'pooled'`` ``[B, D]`` into
    ``'intermediates'``; the wrapped encoder's own per-patch intermediates are not kept
    (its ``'intermediates'`` collection is immutable inside), so ``extract_features``
    sees exactly these two layers. The wrapped encoder's variables live under ``'encoder'``.

    Attributes:
      encoder: any module mapping ``[N, p, p, C]`` to ``[N, D]`` with a ``train`` keyword.
      patch_size: patch side ``p`` in pixels.
      patch_stride: step ``s`` between neighbouring patches in pixels.
    """

    encoder: nn.Module
    patch_size: int
    patch_stride: int

    @nn.compact
    def __call__(self, x: Array, *, train: bool, return_grid: bool = False) -> Array:
        if x.ndim == 4:
            patches = extract_patches(x, self.patch_size, self.patch_stride)
        elif x.ndim == 6:
            if x.shape[3:5] != (self.patch_size, self.patch_size):
                raise ValueError(
                    f"patches of shape {x.shape[3:5]} do not match patch_size {self.patch_size}"
                )
            patches = x
        else:
            raise ValueError(
                "PatchGridEncoder expects [B, H, W, C] images or [B, rows, cols, p, p, C] "
                f"patches, got shape {x.shape}"
            )
        b, rows, cols = patches.shape[:3]
        flat = patches.reshape((b * rows * cols,) + patches.shape[3:])
        encode = nn.map_variables(
            lambda module, y: module.encoder(y, train=train), INTERMEDIATES, mutable=False
        )
        features = encode(self, flat)
        grid = features.reshape(b, rows, cols, features.shape[-1])
        pooled = jnp.mean(grid, axis=(1, 2))
        self.sow(INTERMEDIATES, "grid", grid)
        self.sow(INTERMEDIATES, "pooled", pooled)
        return grid if return_grid else pooled
