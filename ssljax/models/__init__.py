"""Encoders, heads and feature-extraction utilities.

Every encoder maps ``[B, H, W, C]`` NHWC images to ``[B, D]`` pooled
features via ``module.apply(variables, x, train=...)``, where ``variables``
holds the ``'params'`` and ``'batch_stats'`` collections. Encoders sow their
block outputs into the ``'intermediates'`` collection under ``'stem'``
(ResNet only), ``'block1'`` ... ``'blockN'`` and ``'pooled'``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssljax.models.convnet import ConvNet
from ssljax.models.critics import BilinearCritic, ConcatCritic, DIMNetwork, SeparableCritic
from ssljax.models.decoders import ConvDecoder, PatchDiscriminator, ReconstructionNetwork
from ssljax.models.heads import MLPHead
from ssljax.models.layers import batch_norm, spatial_pool
from ssljax.models.pretext_heads import PretextClassifier
from ssljax.models.resnet import ResNet, ResNet18, ResNet50
from ssljax.models.transformer import PixelNetwork, PixelTransformer
from ssljax.models.vae import TCDiscriminator, VAEDecoder, VAEEncoder, VAENetwork

Array = Any

ENCODERS: dict[str, Callable[..., nn.Module]] = {
    "convnet": ConvNet,
    "resnet18": ResNet18,
    "resnet50": ResNet50,
    "vae_conv": VAEEncoder,
    "pixel_transformer": PixelTransformer,
}

INTERMEDIATES = "intermediates"


def build_encoder(
    name: str, *, axis_name: str | None = None, dtype: Any = jnp.float32, **kwargs: Any
) -> nn.Module:
    """Constructs the encoder registered in ``ENCODERS`` under ``name``.

    Args:
      name: key of ``ENCODERS``.
      axis_name: mapped axis for cross-replica BatchNorm, or None.
      dtype: compute dtype.
      **kwargs: further module attributes (e.g. ``stem='cifar'``).

    Returns:
      An unbound Flax module.
    """
    if name not in ENCODERS:
        raise ValueError(f"Unknown encoder {name!r}; known encoders are {sorted(ENCODERS)}.")
    return ENCODERS[name](axis_name=axis_name, dtype=dtype, **kwargs)


def _without_intermediates(variables: Mapping[str, Any]) -> dict[str, Any]:
    """Drops a stale ``'intermediates'`` collection so sown values do not accumulate."""
    return {k: v for k, v in variables.items() if k != INTERMEDIATES}


def _sown_outputs(
    module: nn.Module, variables: Mapping[str, Any], images: Array
) -> dict[str, Array]:
    """Runs ``module`` in eval mode and returns ``{name: last sown value}`` in sow order."""
    _, state = module.apply(
        _without_intermediates(variables), images, train=False, mutable=[INTERMEDIATES]
    )
    sown = state.get(INTERMEDIATES, {})
    return {name: values[-1] for name, values in sown.items()}


def encoder_layer_names(
    module: nn.Module, variables: Mapping[str, Any], sample_input: Array
) -> list[str]:
    """Names the encoder sows, in forward order (e.g. ``['block1', ..., 'pooled']``).

    Only shapes are traced (``jax.eval_shape``), nothing is computed.

    Args:
      module: encoder module.
      variables: its variables (``'params'``, ``'batch_stats'``).
      sample_input: ``[B, H, W, C]`` example (an array or ``ShapeDtypeStruct``).
    """
    names: list[str] = []

    def trace(v: Mapping[str, Any], x: Array) -> None:
        # Read the names while tracing: returning the dict through
        # ``eval_shape`` would flatten it and sort the keys alphabetically.
        names.extend(_sown_outputs(module, v, x))

    jax.eval_shape(trace, variables, sample_input)
    return names


def extract_features(
    module: nn.Module,
    variables: Mapping[str, Any],
    images: Array,
    *,
    layer: str = "pooled",
    grid: int = 1,
) -> Array:
    """Features of a sown layer, pooled to vectors.

    Args:
      module: encoder module.
      variables: its variables (``'params'``, ``'batch_stats'``).
      images: ``[B, H, W, C]`` inputs.
      layer: sown name, e.g. ``'block3'`` or ``'pooled'``.
      grid: 4-D feature maps are adaptively average pooled to
        ``grid x grid`` (see ``spatial_pool``); ignored for 2-D features.

    Returns:
      ``[B, D]`` features (``D = grid * grid * C`` for feature maps).
    """
    sown = _sown_outputs(module, variables, images)
    if layer not in sown:
        raise ValueError(f"Unknown layer {layer!r}; available layers are {list(sown)}.")
    return spatial_pool(sown[layer], grid)


def extract_layers(
    module: nn.Module,
    variables: Mapping[str, Any],
    images: Array,
    *,
    layers: Sequence[str],
    grid: int = 1,
) -> Array:
    """Features of several sown layers from ONE pass of the network, each pooled as
    ``extract_features`` pools it, concatenated in the order of ``layers``: ``[B, sum D]``."""
    sown = _sown_outputs(module, variables, images)
    missing = [name for name in layers if name not in sown]
    if missing:
        raise ValueError(f"Unknown layer {missing[0]!r}; available layers are {list(sown)}.")
    return jnp.concatenate([spatial_pool(sown[name], grid) for name in layers], axis=-1)


__all__ = [
    "PixelNetwork",
    "PixelTransformer",
    "ConvNet",
    "ConvDecoder",
    "ENCODERS",
    "MLPHead",
    "PatchDiscriminator",
    "PretextClassifier",
    "ResNet",
    "ResNet18",
    "ResNet50",
    "ReconstructionNetwork",
    "batch_norm",
    "build_encoder",
    "encoder_layer_names",
    "extract_features",
    "extract_layers",
    "spatial_pool",
    "BilinearCritic",
    "ConcatCritic",
    "DIMNetwork",
    "SeparableCritic",
    "TCDiscriminator",
    "VAEDecoder",
    "VAEEncoder",
    "VAENetwork",
]
