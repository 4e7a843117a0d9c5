"""ResNet v1 encoders (He et al., 2016) in Flax linen, NHWC.

Layout follows the common torchvision configuration so parameter counts
match it exactly (without the final classifier):

* convolutions have no bias and torch-style symmetric padding;
* bottleneck blocks put the stride on the 3x3 convolution (the "v1.5"
  placement), not on the first 1x1 convolution as in the original paper;
* a projection shortcut (1x1 conv with the block's stride + BatchNorm) is
  used whenever the block changes the spatial size or channel count,
  otherwise the shortcut is the identity.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from ssljax.models.layers import batch_norm, conv_fn, global_avg_pool

Array = Any
Dtype = Any

STEMS = ("cifar", "imagenet")
BLOCKS = ("basic", "bottleneck")
BASE_WIDTHS = (64, 128, 256, 512)
BOTTLENECK_EXPANSION = 4


def _conv(
    features: int, kernel: int, stride: int, dtype: Dtype, name: str, chunk: int = 0
) -> nn.Conv:
    """Bias-free square convolution with torch-style padding ``kernel // 2``.

    ``chunk`` is the number of images per convolution call (``layers.batch_chunked_conv``).
    """
    pad = kernel // 2
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        use_bias=False,
        dtype=dtype,
        param_dtype=jnp.float32,
        kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
        conv_general_dilated=conv_fn(chunk),
        name=name,
    )


def _check_choice(kind: str, value: Any, choices: Sequence[str]) -> None:
    """Raises ValueError if ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ValueError(f"Unknown ResNet {kind} {value!r}; valid choices are {list(choices)}.")


class _Shortcut(nn.Module):
    """Identity, or 1x1 conv + BN projection when the shape changes."""

    features: int
    stride: int
    axis_name: str | None
    dtype: Dtype
    conv_batch_chunk: int = 0

    @nn.compact
    def __call__(self, x: Array, *, train: bool) -> Array:
        """Maps ``[B, H, W, C_in] -> [B, ceil(H/stride), ceil(W/stride), features]``."""
        if self.stride == 1 and x.shape[-1] == self.features:
            return x
        x = _conv(self.features, 1, self.stride, self.dtype, "conv", self.conv_batch_chunk)(x)
        return batch_norm(train, self.axis_name, self.dtype, name="bn")(x)


class _ResidualBlock(nn.Module):
    """Fields and output stage shared by the ResNet blocks."""

    features: int
    stride: int = 1
    zero_init_residual: bool = False
    axis_name: str | None = None
    dtype: Dtype = jnp.float32
    conv_batch_chunk: int = 0

    def _conv(self, features: int, kernel: int, stride: int, name: str) -> nn.Conv:
        """A bias-free convolution of this block (see the module-level ``_conv``)."""
        return _conv(features, kernel, stride, self.dtype, name, self.conv_batch_chunk)

    def _residual_output(
        self, x: Array, y: Array, out_features: int, bn_name: str, *, train: bool
    ) -> Array:
        """``relu(BN(y) + shortcut(x))`` for the block input ``x`` and last conv output ``y``.

        The BN scale starts at zero when ``zero_init_residual`` is set, so the
        block initially reduces to its shortcut. Called from the subclass's
        compact ``__call__``; creates the ``bn_name`` and ``'shortcut'`` submodules.
        """
        last_scale = nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones
        y = batch_norm(train, self.axis_name, self.dtype, last_scale, name=bn_name)(y)
        shortcut = _Shortcut(
            out_features,
            self.stride,
            self.axis_name,
            self.dtype,
            self.conv_batch_chunk,
            name="shortcut",
        )(x, train=train)
        return nn.relu(y + shortcut)


class BasicBlock(_ResidualBlock):
    """Two 3x3 convolutions; output has ``features`` channels."""

    @nn.compact
    def __call__(self, x: Array, *, train: bool) -> Array:
        """Maps ``[B, H, W, C] -> [B, ceil(H/stride), ceil(W/stride), features]``."""
        y = self._conv(self.features, 3, self.stride, "conv1")(x)
        y = nn.relu(batch_norm(train, self.axis_name, self.dtype, name="bn1")(y))
        y = self._conv(self.features, 3, 1, "conv2")(y)
        return self._residual_output(x, y, self.features, "bn2", train=train)


class BottleneckBlock(_ResidualBlock):
    """1x1 reduce -> 3x3 (strided) -> 1x1 expand; output has ``4 * features`` channels."""

    @nn.compact
    def __call__(self, x: Array, *, train: bool) -> Array:
        """Maps ``[B, H, W, C] -> [B, ceil(H/stride), ceil(W/stride), 4 * features]``."""
        out_features = self.features * BOTTLENECK_EXPANSION
        y = self._conv(self.features, 1, 1, "conv1")(x)
        y = nn.relu(batch_norm(train, self.axis_name, self.dtype, name="bn1")(y))
        y = self._conv(self.features, 3, self.stride, "conv2")(y)
        y = nn.relu(batch_norm(train, self.axis_name, self.dtype, name="bn2")(y))
        y = self._conv(out_features, 1, 1, "conv3")(y)
        return self._residual_output(x, y, out_features, "bn3", train=train)


_BLOCK_CLASSES = {"basic": BasicBlock, "bottleneck": BottleneckBlock}


class ResNet(nn.Module):
    """ResNet v1 encoder returning globally average-pooled features.

    Stage ``i`` (0-based) has ``stage_sizes[i]`` blocks of base width
    ``64 * 2**i * width_multiplier`` (times 4 at the output of bottleneck
    blocks); every stage after the first halves the spatial size in its first
    block. The stem width is ``64 * width_multiplier``.

    Stems:
      * ``'cifar'``: 3x3 conv, stride 1 -> BN -> ReLU (no max-pool).
      * ``'imagenet'``: 7x7 conv, stride 2 -> BN -> ReLU -> 3x3 max-pool, stride 2.

    Sown intermediates (collection ``'intermediates'``): ``'stem'``,
    ``'block1'`` ... ``'blockN'`` (one per stage, ``[B, H_i, W_i, C_i]``) and
    ``'pooled'`` (``[B, D]``).

    Attributes:
      stage_sizes: number of blocks in each stage.
      block: ``'basic'`` or ``'bottleneck'``.
      width_multiplier: multiplies every channel count.
      stem: ``'cifar'`` or ``'imagenet'``.
      zero_init_residual: initialise the last BN scale of every residual
        branch to zero so each block starts as (projected) identity.
      axis_name: mapped axis for cross-replica BatchNorm, or None.
      dtype: compute dtype (params stay float32).
      conv_batch_chunk: images per convolution call (0: the whole batch); see
        ``layers.batch_chunked_conv``. Parameters and results do not depend on it.
    """

    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    block: str = "basic"
    width_multiplier: int = 1
    stem: str = "imagenet"
    zero_init_residual: bool = False
    axis_name: str | None = None
    dtype: Dtype = jnp.float32
    conv_batch_chunk: int = 0

    def __post_init__(self) -> None:
        _check_choice("stem", self.stem, STEMS)
        _check_choice("block", self.block, BLOCKS)
        if len(self.stage_sizes) > len(BASE_WIDTHS):
            raise ValueError(
                f"At most {len(BASE_WIDTHS)} stages are supported, got stage_sizes={tuple(self.stage_sizes)}."
            )
        if self.width_multiplier < 1:
            raise ValueError(f"width_multiplier must be >= 1, got {self.width_multiplier}.")
        super().__post_init__()

    @property
    def output_dim(self) -> int:
        """Size ``D`` of the pooled feature vector."""
        expansion = BOTTLENECK_EXPANSION if self.block == "bottleneck" else 1
        return BASE_WIDTHS[len(self.stage_sizes) - 1] * self.width_multiplier * expansion

    def _stem(self, x: Array, train: bool) -> Array:
        """Applies the input stem: ``[B, H, W, C] -> [B, H', W', 64 * width_multiplier]``."""
        width = BASE_WIDTHS[0] * self.width_multiplier
        if self.stem == "cifar":
            x = _conv(width, 3, 1, self.dtype, "stem_conv", self.conv_batch_chunk)(x)
            return nn.relu(batch_norm(train, self.axis_name, self.dtype, name="stem_bn")(x))
        x = _conv(width, 7, 2, self.dtype, "stem_conv", self.conv_batch_chunk)(x)
        x = nn.relu(batch_norm(train, self.axis_name, self.dtype, name="stem_bn")(x))
        return nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))

    @nn.compact
    def __call__(self, x: Array, *, train: bool) -> Array:
        """Encodes ``[B, H, W, C]`` images into ``[B, output_dim]`` features."""
        if x.ndim != 4:
            raise ValueError(f"ResNet expects [B, H, W, C] images, got shape {x.shape}.")
        block_cls = _BLOCK_CLASSES[self.block]
        x = self._stem(x.astype(self.dtype), train)
        self.sow("intermediates", "stem", x)
        for stage, num_blocks in enumerate(self.stage_sizes):
            features = BASE_WIDTHS[stage] * self.width_multiplier
            for b in range(num_blocks):
                x = block_cls(
                    features=features,
                    stride=2 if (stage > 0 and b == 0) else 1,
                    zero_init_residual=self.zero_init_residual,
                    axis_name=self.axis_name,
                    dtype=self.dtype,
                    conv_batch_chunk=self.conv_batch_chunk,
                    name=f"stage{stage + 1}_block{b + 1}",
                )(x, train=train)
            self.sow("intermediates", f"block{stage + 1}", x)
        x = global_avg_pool(x)
        self.sow("intermediates", "pooled", x)
        return x


ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block="basic")
ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block="bottleneck")
