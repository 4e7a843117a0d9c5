"""Decoders from encoder feature maps back to images, a patch discriminator, and their network.

``ConvDecoder`` turns a ``[B, h, w, C]`` feature map (or a ``[B, D]`` vector, reshaped through a
Dense layer to ``start_shape``, e.g. a VAE latent) into ``[B, H, W, out_channels]``: one stage
per entry of ``widths``, each a nearest-neighbour upsampling by ``upsample[i]`` followed by a
``Conv -> Norm -> ReLU`` (resize-convolution, our choice over Pathak et al.'s transposed
convolutions: it avoids checkerboard artefacts and runs as plain convolutions), then a final
convolution to ``out_channels``; when the result is not ``output_size`` it is resized
bilinearly to it. An optional channel-wise fully connected layer on the input map
(Pathak et al. 2016, section 3.1: per channel a dense map between all ``h * w`` positions, then
a 1x1 convolution to mix channels) lets every output position see the whole context.

``PatchDiscriminator`` is a small DCGAN-style critic: strided ``Conv -> LeakyReLU(0.2)``
layers and a final convolution to one logit per patch (no normalisation, so it has no state
and examples never interact).

``ReconstructionNetwork`` runs an encoder and decodes the map of one of its sown layers. The
encoder's variables sit under ``'encoder'`` exactly as in ``SSLNetwork`` (``params['encoder']``,
``batch_stats['encoder']``), so ``ssljax.evaluation.checkpoint_eval.encoder_of`` cuts out the
plain encoder, and ``network.encoder`` is that plain encoder module.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssljax.models.layers import batch_norm

Array = Any
Dtype = Any

DECODER_NORMS = ("batch", "layer", "none")
OUTPUT_ACTIVATIONS = ("none", "sigmoid", "tanh")


class ChannelWiseDense(nn.Module):
    """Pathak et al.'s channel-wise fully connected layer: ``[B, h, w, C] -> [B, h, w, C]``.

    Channel ``c`` of the output is ``x[:, :, :, c]`` (flattened over positions) times its own
    ``[h*w, h*w]`` matrix plus a bias; channels do not mix (``C * (h*w)^2`` weights instead of a
    dense layer's ``(C*h*w)^2``).
    """

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        b, h, w, c = x.shape
        n = h * w
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(batch_axis=(0,)), (c, n, n), jnp.float32
        )
        bias = self.param("bias", nn.initializers.zeros, (c, n), jnp.float32)
        flat = x.reshape(b, n, c).astype(self.dtype)
        out = jnp.einsum("bnc,cnm->bmc", flat, kernel.astype(self.dtype))
        out = out + bias.T.astype(self.dtype)
        return out.reshape(b, h, w, c)


def _norm(kind: str, train: bool, axis_name, dtype, name: str):
    if kind == "batch":
        return batch_norm(train, axis_name, dtype, name=name)
    if kind == "layer":
        return nn.LayerNorm(dtype=dtype, param_dtype=jnp.float32, name=name)
    return lambda x: x


def upsample_nearest(x: Array, factor: int) -> Array:
    """Repeats every position ``factor`` times along height and width."""
    if factor == 1:
        return x
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


class ConvDecoder(nn.Module):
    """Feature map (or vector) -> image-shaped output; see the module docstring.

    Attributes:
      widths: channels of each upsampling stage (may be empty).
      upsample: factor of each stage (default 2 for every stage).
      out_channels: channels of the output (3 for RGB, Q logits for colorization bins).
      output_size: ``(H, W)`` of the output; None keeps the size the stages produce. The call
        argument ``output_size`` overrides it.
      start_shape: ``(h, w, C)`` a ``[B, D]`` input is mapped to by a Dense layer (VAE use).
      channel_fc: apply ``ChannelWiseDense`` + 1x1 convolution + ReLU to the input map first.
      kernel_size: square kernel of every convolution.
      norm: ``'batch'``, ``'layer'`` or ``'none'`` after each stage's convolution.
      output_activation: ``'none'``, ``'sigmoid'`` (images in [0, 1]) or ``'tanh'``.
      axis_name: mapped axis for cross-replica BatchNorm, or None.
      dtype: compute dtype (params stay float32).
    """

    widths: Sequence[int] = (64, 32)
    upsample: Sequence[int] | None = None
    out_channels: int = 3
    output_size: Sequence[int] | None = None
    start_shape: Sequence[int] | None = None
    channel_fc: bool = False
    kernel_size: int = 3
    norm: str = "batch"
    output_activation: str = "none"
    axis_name: str | None = None
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, z: Array, *, train: bool, output_size: Sequence[int] | None = None) -> Array:
        if self.norm not in DECODER_NORMS:
            raise ValueError(f"unknown decoder norm {self.norm!r}; choose one of {DECODER_NORMS}")
        if self.output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"unknown output_activation {self.output_activation!r}; "
                f"choose one of {OUTPUT_ACTIVATIONS}"
            )
        factors = tuple(self.upsample) if self.upsample is not None else (2,) * len(self.widths)
        if len(factors) != len(self.widths):
            raise ValueError(
                f"upsample {factors} and widths {tuple(self.widths)} must have the same length"
            )
        x = z.astype(self.dtype)
        if x.ndim == 2:
            if self.start_shape is None:
                raise ValueError("a [B, D] decoder input needs start_shape=(h, w, C)")
            h, w, c = (int(s) for s in self.start_shape)
            x = nn.Dense(h * w * c, dtype=self.dtype, param_dtype=jnp.float32, name="project")(x)
            x = nn.relu(x.reshape(x.shape[0], h, w, c))
        elif x.ndim != 4:
            raise ValueError(f"ConvDecoder expects [B, h, w, C] or [B, D] inputs, got {z.shape}")
        pad = self.kernel_size // 2
        conv = lambda width, name, bias: nn.Conv(  # noqa: E731
            width,
            (self.kernel_size, self.kernel_size),
            padding=((pad, pad), (pad, pad)),
            use_bias=bias,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name=name,
        )
        if self.channel_fc:
            x = ChannelWiseDense(dtype=self.dtype, name="channel_fc")(x)
            x = nn.Conv(
                x.shape[-1], (1, 1), dtype=self.dtype, param_dtype=jnp.float32, name="channel_mix"
            )(x)
            x = nn.relu(x)
        for i, (width, factor) in enumerate(zip(self.widths, factors)):
            x = upsample_nearest(x, int(factor))
            x = conv(width, f"conv{i + 1}", self.norm == "none")(x)
            x = _norm(self.norm, train, self.axis_name, self.dtype, f"norm{i + 1}")(x)
            x = nn.relu(x)
        x = conv(self.out_channels, "output", True)(x)
        size = output_size if output_size is not None else self.output_size
        if size is not None:
            size = tuple(int(s) for s in size)
            if x.shape[1:3] != size:
                x = jax.image.resize(x, (x.shape[0], *size, x.shape[-1]), method="linear")
        if self.output_activation == "sigmoid":
            x = nn.sigmoid(x)
        elif self.output_activation == "tanh":
            x = jnp.tanh(x)
        return x


class PatchDiscriminator(nn.Module):
    """``[B, H, W, C]`` images -> ``[B, h, w]`` real/fake logits, one per receptive field.

    Attributes:
      widths: channels of the stride-2 ``Conv(4x4) -> LeakyReLU(0.2)`` layers.
      dtype: compute dtype.
    """

    widths: Sequence[int] = (32, 64)
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if x.ndim != 4:
            raise ValueError(f"PatchDiscriminator expects [B, H, W, C] images, got {x.shape}")
        x = x.astype(self.dtype)
        for i, width in enumerate(self.widths):
            x = nn.Conv(
                width,
                (4, 4),
                strides=(2, 2),
                padding=((1, 1), (1, 1)),
                dtype=self.dtype,
                param_dtype=jnp.float32,
                name=f"conv{i + 1}",
            )(x)
            x = nn.leaky_relu(x, 0.2)
        x = nn.Conv(
            1,
            (3, 3),
            padding=((1, 1), (1, 1)),
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name="logits",
        )(x)
        return x[..., 0].astype(jnp.float32)


class ReconstructionNetwork(nn.Module):
    """An encoder whose ``feature_layer`` map is decoded: ``{'features', 'reconstruction'}``.

    ``features`` is the encoder's own output (pooled ``[B, D]``, what the collapse monitors
    see); ``reconstruction`` is ``decoder(map of feature_layer)`` at ``output_size`` (default:
    the input's height and width).

    The encoder is applied as a function of its variables with the ``'intermediates'``
    collection mutable, so the sown map is available whatever collections the caller made
    mutable (Flax's ``init`` and plain ``apply`` do not collect intermediates). Its variables
    are created as this module's ``'encoder'`` entries of ``params`` and ``batch_stats`` and
    so have exactly the layout of an encoder submodule named ``'encoder'``.

    Attributes:
      encoder_module: the encoder (accessible as ``.encoder``).
      decoder: a ``ConvDecoder``.
      feature_layer: the sown layer to decode (``'block4'``, ...).
      output_size: ``(H, W)`` of the reconstruction, or None for the input size.
    """

    encoder_module: nn.Module
    decoder: nn.Module
    feature_layer: str = "block4"
    output_size: Sequence[int] | None = None

    @property
    def encoder(self) -> nn.Module:
        """The plain encoder (unbound), as ``checkpoint_eval.encoder_of`` expects."""
        return self.encoder_module.clone(parent=None)

    @nn.compact
    def __call__(self, x: Array, *, train: bool) -> dict[str, Array]:
        enc = self.encoder
        # Flax also calls these initialisers under apply (shapes only) to check the stored
        # variables; only init computes them.
        params = self.param("encoder", lambda rng: enc.init(rng, x, train=False)["params"])
        stats = None
        if self.is_initializing() or self.has_variable("batch_stats", "encoder"):
            # BatchNorm statistics do not depend on the key; LayerNorm encoders have none.
            def initial_stats():
                return enc.init(jax.random.PRNGKey(0), x, train=False).get("batch_stats")

            if jax.eval_shape(initial_stats) is not None:
                stats = self.variable("batch_stats", "encoder", initial_stats)
        variables = {"params": params}
        if stats is not None:
            variables["batch_stats"] = stats.value
        features, sown = enc.apply(
            variables, x, train=train, mutable=["batch_stats", "intermediates"]
        )
        if (
            train
            and stats is not None
            and not self.is_initializing()
            and self.is_mutable_collection("batch_stats")
        ):
            stats.value = sown["batch_stats"]
        layers = {k: v[-1] for k, v in sown.get("intermediates", {}).items()}
        if self.feature_layer not in layers:
            raise ValueError(
                f"unknown decoder feature_layer {self.feature_layer!r}; the "
                f"encoder sows {list(layers)}"
            )
        size = self.output_size if self.output_size is not None else x.shape[1:3]
        reconstruction = self.decoder(layers[self.feature_layer], train=train, output_size=size)
        return {"features": features, "reconstruction": reconstruction}
