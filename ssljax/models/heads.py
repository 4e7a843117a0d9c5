"""Projection / prediction heads."""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from ssljax.models.layers import batch_norm

Array = Any
Dtype = Any


class MLPHead(nn.Module):
    """MLP projection head in the style of SimCLR.

    Layout: for each entry of ``hidden_dims`` a ``Dense -> [BN] -> ReLU``
    layer, then an output ``Dense`` optionally followed by BN. A Dense layer
    has no bias when a BatchNorm follows it, and the output Dense none when
    ``output_bias`` is False (BYOL's reference MLP).

    Submodule names: ``hidden{i}`` / ``hidden{i}_bn`` (1-based) and
    ``output`` / ``output_bn``.

    Attributes:
      hidden_dims: widths of the hidden layers (may be empty: linear head).
      output_dim: width of the output.
      use_bn: BatchNorm after each hidden Dense.
      bn_on_output: BatchNorm after the output Dense.
      output_bias: bias on the output Dense (when no BatchNorm follows it).
      axis_name: mapped axis for cross-replica BatchNorm, or None.
      dtype: compute dtype (params stay float32).
    """

    hidden_dims: Sequence[int] = (2048,)
    output_dim: int = 128
    use_bn: bool = True
    bn_on_output: bool = False
    output_bias: bool = True
    axis_name: str | None = None
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, *, train: bool) -> Array:
        """Maps ``[B, D_in] -> [B, output_dim]``."""
        if x.ndim != 2:
            raise ValueError(f"MLPHead expects [B, D] inputs, got shape {x.shape}.")
        x = x.astype(self.dtype)
        for i, width in enumerate(self.hidden_dims):
            x = nn.Dense(
                width,
                use_bias=not self.use_bn,
                dtype=self.dtype,
                param_dtype=jnp.float32,
                name=f"hidden{i + 1}",
            )(x)
            if self.use_bn:
                x = batch_norm(train, self.axis_name, self.dtype, name=f"hidden{i + 1}_bn")(x)
            x = nn.relu(x)
        x = nn.Dense(
            self.output_dim,
            use_bias=self.output_bias and not self.bn_on_output,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name="output",
        )(x)
        if self.bn_on_output:
            x = batch_norm(train, self.axis_name, self.dtype, name="output_bn")(x)
        return x
