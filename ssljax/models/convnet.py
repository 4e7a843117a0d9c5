"""A small, fast convolutional encoder for 28x28 / 32x32 images."""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from ssljax.models.layers import batch_norm, conv_fn, global_avg_pool

Array = Any
Dtype = Any


NORMS = ("batch", "layer")


class ConvNet(nn.Module):
    """Plain stack of ``Conv -> Norm -> ReLU`` layers, then global average pooling.

    Downsampling uses stride-2 convolutions rather than max-pooling (cheaper
    backward pass on XLA CPU). Convolutions have no bias and use symmetric
    ``kernel_size // 2`` padding, so a stride-``s`` layer maps ``H`` to
    ``ceil(H / s)``.

    Sown intermediates (collection ``'intermediates'``): ``'block1'`` ...
    ``'blockN'`` (``[B, H_i, W_i, widths[i]]``, one per layer) and
    ``'pooled'`` (``[B, widths[-1]]``).

    Attributes:
      widths: output channels of each layer.
      strides: stride of each layer (same length as ``widths``).
      kernel_size: square kernel size of every convolution.
      axis_name: mapped axis for cross-replica BatchNorm, or None.
      dtype: compute dtype (params stay float32).
      norm: ``"batch"`` (BatchNorm ``bn{i}``, running statistics in ``'batch_stats'``) or
        ``"layer"`` (LayerNorm ``ln{i}`` over the channels of each position: no batch
        statistics, so examples never interact, as CPC v2 (Henaff et al. 2020) requires).
      conv_batch_chunk: images per convolution call (0: the whole batch); see
        ``layers.batch_chunked_conv``. Parameters and results do not depend on it.
    """

    widths: Sequence[int] = (32, 64, 128, 256)
    strides: Sequence[int] = (1, 2, 2, 2)
    kernel_size: int = 3
    axis_name: str | None = None
    dtype: Dtype = jnp.float32
    conv_batch_chunk: int = 0
    norm: str = "batch"

    @nn.compact
    def __call__(self, x: Array, *, train: bool) -> Array:
        """Encodes ``[B, H, W, C]`` images into ``[B, widths[-1]]`` features."""
        if len(self.widths) != len(self.strides):
            raise ValueError(
                f"widths {tuple(self.widths)} and strides {tuple(self.strides)} "
                "must have the same length."
            )
        if x.ndim != 4:
            raise ValueError(f"ConvNet expects [B, H, W, C] images, got shape {x.shape}.")
        if self.norm not in NORMS:
            raise ValueError(f"unknown ConvNet norm {self.norm!r}; choose one of {NORMS}")
        pad = self.kernel_size // 2
        x = x.astype(self.dtype)
        for i, (width, stride) in enumerate(zip(self.widths, self.strides)):
            x = nn.Conv(
                width,
                (self.kernel_size, self.kernel_size),
                strides=(stride, stride),
                padding=((pad, pad), (pad, pad)),
                use_bias=False,
                dtype=self.dtype,
                param_dtype=jnp.float32,
                conv_general_dilated=conv_fn(self.conv_batch_chunk),
                name=f"conv{i + 1}",
            )(x)
            if self.norm == "layer":
                x = nn.LayerNorm(dtype=self.dtype, param_dtype=jnp.float32, name=f"ln{i + 1}")(x)
            else:
                x = batch_norm(train, self.axis_name, self.dtype, name=f"bn{i + 1}")(x)
            x = nn.relu(x)
            self.sow("intermediates", f"block{i + 1}", x)
        x = global_avg_pool(x)
        self.sow("intermediates", "pooled", x)
        return x
