"""Composition of an encoder with the heads an objective asks for."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class SSLNetwork(nn.Module):
    """An encoder followed by an optional projection head and an optional predictor.

    ``__call__(x, train=...)`` returns ``{'features': [B, D]}``, plus ``'projection': [B, P]``
    when a projector is set and ``'prediction'`` when a predictor is set (BYOL, SimSiam) and
    ``predict`` is True. A target network is the same module applied to other parameters with
    ``predict=False``. Parameters live under ``'encoder'``, ``'projector'`` and
    ``'predictor'``, so the encoder's variables can be cut out of a checkpoint for evaluation.
    """

    encoder: nn.Module
    projector: nn.Module | None = None
    predictor: nn.Module | None = None

    def __call__(
        self, x: jnp.ndarray, *, train: bool, predict: bool = True
    ) -> dict[str, jnp.ndarray]:
        features = self.encoder(x, train=train)
        out = {"features": features}
        if self.projector is not None:
            out["projection"] = self.projector(features, train=train)
            if self.predictor is not None and (predict or self.is_initializing()):
                out["prediction"] = self.predictor(out["projection"], train=train)
        return out


def dtype_from_name(name: str) -> Any:
    """Maps a config string to a JAX compute dtype; unknown names fail with the valid choices.

    float16 is not offered: without loss scaling its 5 exponent bits underflow small
    gradients (bfloat16 keeps float32's range).
    """
    choices = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
    if name not in choices:
        raise ValueError(f"unknown dtype {name!r}; choose one of {sorted(choices)}")
    return choices[name]


def build_encoder_from_config(config, axis_name: str | None) -> nn.Module:
    # ``config``: an experiment config or an objectives.Run (both have .model and .dtype).
    """Builds the encoder named by ``config.model.encoder`` with its keyword arguments.

    With a ``config.model.patches`` entry (``size``, ``stride``) the encoder is applied to
    every patch of a grid and wrapped in ``ssljax.models.patches.PatchGridEncoder`` (CPC).
    """
    from ssljax.models import build_encoder
    from ssljax.models.layers import resolve_conv_batch_chunk

    kwargs = dict(config.model.get("encoder_kwargs", {}))
    kwargs.setdefault(
        "conv_batch_chunk", resolve_conv_batch_chunk(config.model.get("conv_batch_chunk", -1))
    )
    encoder = build_encoder(
        config.model.encoder,
        axis_name=axis_name,
        dtype=dtype_from_name(getattr(config, "dtype", None) or "float32"),
        **kwargs,
    )
    patches = config.model.get("patches")
    if patches is None:
        return encoder
    from ssljax.models.patches import PatchGridEncoder

    return PatchGridEncoder(
        encoder=encoder, patch_size=int(patches.size), patch_stride=int(patches.stride)
    )


def build_projector_from_config(config, axis_name: str | None, key: str = "projector") -> nn.Module:
    """Builds the MLP described by ``config.model[key]`` (``'projector'`` or ``'predictor'``)."""
    from ssljax.models import MLPHead

    proj = config.model[key]
    return MLPHead(
        hidden_dims=tuple(proj.hidden_dims),
        output_dim=proj.output_dim,
        use_bn=proj.get("use_bn", True),
        bn_on_output=proj.get("bn_on_output", False),
        output_bias=proj.get("output_bias", True),
        axis_name=axis_name,
        dtype=dtype_from_name(getattr(config, "dtype", None) or "float32"),
    )


def encoder_variables(variables: dict) -> dict:
    """Cuts the encoder's collections out of an ``SSLNetwork``'s variables."""
    return {col: tree["encoder"] for col, tree in variables.items() if "encoder" in tree}
