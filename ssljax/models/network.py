"""Composition of an encoder with the heads an objective asks for."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class SSLNetwork(nn.Module):
    """An encoder followed by an optional projection head.

    ``__call__(x, train=...)`` returns ``{'features': [B, D]}`` and, when a projector is set,
    ``'projection': [B, P]``. Parameters live under ``'encoder'`` and ``'projector'``, so the
    encoder's variables can be cut out of a checkpoint for evaluation.
    """

    encoder: nn.Module
    projector: nn.Module | None = None

    def __call__(self, x: jnp.ndarray, *, train: bool) -> dict[str, jnp.ndarray]:
        features = self.encoder(x, train=train)
        out = {"features": features}
        if self.projector is not None:
            out["projection"] = self.projector(features, train=train)
        return out


def dtype_from_name(name: str) -> Any:
    """Maps a config string to a JAX dtype; unknown names fail with the valid choices."""
    choices = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
    if name not in choices:
        raise ValueError(f"unknown dtype {name!r}; choose one of {sorted(choices)}")
    return choices[name]


def build_encoder_from_config(config, axis_name: str | None) -> nn.Module:
    """Builds the encoder named by ``config.model.encoder`` with its keyword arguments."""
    from ssljax.models import build_encoder

    from ssljax.models.layers import resolve_conv_batch_chunk

    kwargs = dict(config.model.get("encoder_kwargs", {}))
    kwargs.setdefault(
        "conv_batch_chunk", resolve_conv_batch_chunk(config.model.get("conv_batch_chunk", -1))
    )
    return build_encoder(
        config.model.encoder,
        axis_name=axis_name,
        dtype=dtype_from_name(config.get("dtype", "float32")),
        **kwargs,
    )


def build_projector_from_config(config, axis_name: str | None) -> nn.Module:
    """Builds the projection MLP described by ``config.model.projector``."""
    from ssljax.models import MLPHead

    proj = config.model.projector
    return MLPHead(
        hidden_dims=tuple(proj.hidden_dims),
        output_dim=proj.output_dim,
        use_bn=proj.get("use_bn", True),
        axis_name=axis_name,
        dtype=dtype_from_name(config.get("dtype", "float32")),
    )


def encoder_variables(variables: dict) -> dict:
    """Cuts the encoder's collections out of an ``SSLNetwork``'s variables."""
    return {col: tree["encoder"] for col, tree in variables.items() if "encoder" in tree}
