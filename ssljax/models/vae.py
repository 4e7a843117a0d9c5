"""Latent-variable models: a Gaussian convolutional encoder, a deconvolutional decoder, and
the total-correlation discriminator of FactorVAE.

Architecture defaults are those of Locatello et al. 2019 (Table 1 of "Challenging Common
Assumptions in the Unsupervised Learning of Disentangled Representations", the architecture
of Higgins et al.'s beta-VAE for 64x64 images):

=============================================  ==============================================
encoder ``VAEEncoder``                         decoder ``VAEDecoder``
=============================================  ==============================================
input 64x64xC                                  input 10 latents
conv 32, 4x4, stride 2, ReLU  (block1, 32x32)  FC 256, ReLU
conv 32, 4x4, stride 2, ReLU  (block2, 16x16)  FC 4x4x64, ReLU
conv 64, 4x4, stride 2, ReLU  (block3, 8x8)    upconv 64, 4x4, stride 2, ReLU  (8x8)
conv 64, 4x4, stride 2, ReLU  (block4, 4x4)    upconv 32, 4x4, stride 2, ReLU  (16x16)
FC 256, ReLU                  (fc)             upconv 32, 4x4, stride 2, ReLU  (32x32)
FC 2x10: means and log-variances (mean)        upconv C, 4x4, stride 2 -> 64x64xC logits
=============================================  ==============================================

All convolutions have biases and no normalisation layers, with TensorFlow's ``'SAME'``
padding, as in disentanglement_lib's ``conv_encoder``/``deconv_decoder``. One difference worth
knowing: that code uses 2x2 kernels in the encoder's two 64-channel layers while the paper's
table says 4x4; we follow the table (``kernel_sizes`` changes it). The transposed convolutions
compute exactly Flax's ``nn.ConvTranspose(padding='SAME')`` with the same ``kernel``/``bias``
parameters (the kernel is not flipped as in TF's ``conv2d_transpose``; for learned weights this
is only a relabelling), but, for layers with 8 or more output channels, as ``stride**2``
ordinary stride-1 convolutions, one per output phase, interleaved (``SubpixelConvTranspose``).
On XLA CPU (2 shared cores, batch 64) the input-dilated convolution ``nn.ConvTranspose`` lowers
to took 0.11 / 0.26 / 1.00 s forward+backward for the decoder's 64-, 32- and 32-channel layers,
the phase form 0.007 / 0.07 / 0.22 s; for the 1-channel output layer the phase form is slower
(0.9 s against 0.05 s), so that layer keeps ``lax.conv_transpose``.

The encoder follows the encoder contract of ``ssljax.models``: ``encoder.apply(variables,
images, train=...)`` returns ``[B, latent_dim]`` features, here the posterior means (the
representation the disentanglement metrics score), and it sows ``'block1'`` ... ``'block4'``,
``'fc'`` and ``'mean'`` into ``'intermediates'``, so ``extract_features`` and the linear probe
can read any layer. ``encoder.posterior`` gives ``(mean, log_var)``. Parameters: ``conv1`` ...
``conv4``, ``dense`` (FC 256), ``mean_head``, ``log_var_head``.

``VAENetwork`` holds the encoder under ``'encoder'`` (where ``checkpoint_eval.encoder_of``
looks) and the decoder under ``'decoder'``; its ``encode``/``decode`` methods are what the
objectives in ``ssljax.objectives.latent`` call.

``TCDiscriminator`` is FactorVAE's density-ratio critic (Kim & Mnih 2018, appendix A): six
fully connected layers of 1000 units with LeakyReLU(0.2), then two logits (class 0: a sample of
q(z), class 1: a sample of the product of its marginals).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from ssljax.models.layers import conv_fn

Array = Any
Dtype = Any

TRANSPOSE_METHODS = ("auto", "phases", "dilated")
PHASES_MIN_FEATURES = 8


class VAEEncoder(nn.Module):
    """Convolutional Gaussian encoder ``q(z | x) = N(mean(x), diag(exp(log_var(x))))``.

    Attributes:
      widths: channels of the stride-``strides`` convolutions.
      kernel_sizes: square kernel of each convolution.
      strides: stride of each convolution.
      hidden: units of the fully connected layer after the convolutions.
      latent_dim: number of latents (``mean`` and ``log_var`` each have this many).
      axis_name: accepted for the encoder interface; unused (no cross-device layers).
      dtype: compute dtype (params stay float32).
      conv_batch_chunk: images per convolution call (see ``layers.batch_chunked_conv``);
        results do not depend on it.
    """

    widths: Sequence[int] = (32, 32, 64, 64)
    kernel_sizes: Sequence[int] = (4, 4, 4, 4)
    strides: Sequence[int] = (2, 2, 2, 2)
    hidden: int = 256
    latent_dim: int = 10
    axis_name: str | None = None
    dtype: Dtype = jnp.float32
    conv_batch_chunk: int = 0

    @nn.compact
    def posterior(self, x: Array, *, train: bool) -> tuple[Array, Array]:
        """``(mean, log_var)``, each ``[B, latent_dim]`` (float32), of ``[B, H, W, C]`` images."""
        del train  # no layer behaves differently in training
        if not len(self.widths) == len(self.kernel_sizes) == len(self.strides):
            raise ValueError(
                f"widths {tuple(self.widths)}, kernel_sizes "
                f"{tuple(self.kernel_sizes)} and strides {tuple(self.strides)} "
                "must have the same length"
            )
        if x.ndim != 4:
            raise ValueError(f"VAEEncoder expects [B, H, W, C] images, got shape {x.shape}")
        x = x.astype(self.dtype)
        for i, (width, k, s) in enumerate(zip(self.widths, self.kernel_sizes, self.strides)):
            x = nn.Conv(
                width,
                (k, k),
                strides=(s, s),
                padding="SAME",
                dtype=self.dtype,
                param_dtype=jnp.float32,
                conv_general_dilated=conv_fn(self.conv_batch_chunk),
                name=f"conv{i + 1}",
            )(x)
            x = nn.relu(x)
            self.sow("intermediates", f"block{i + 1}", x)
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(
            nn.Dense(self.hidden, dtype=self.dtype, param_dtype=jnp.float32, name="dense")(x)
        )
        self.sow("intermediates", "fc", x)
        mean = nn.Dense(
            self.latent_dim, dtype=self.dtype, param_dtype=jnp.float32, name="mean_head"
        )(x).astype(jnp.float32)
        log_var = nn.Dense(
            self.latent_dim, dtype=self.dtype, param_dtype=jnp.float32, name="log_var_head"
        )(x).astype(jnp.float32)
        self.sow("intermediates", "mean", mean)
        return mean, log_var

    def __call__(self, x: Array, *, train: bool) -> Array:
        """The posterior means ``[B, latent_dim]`` (the representation)."""
        return self.posterior(x, train=train)[0]


def phase_taps(kernel_size: int, stride: int) -> list[tuple[int, int, int]]:
    """For each output phase ``r`` of a 'SAME' transposed convolution: ``(first_tap,
    num_taps, input_offset)``.

    ``lax.conv_transpose(x, w, (s,), 'SAME')`` (no kernel flip) is the cross-correlation of the
    ``s``-dilated input padded by ``pad_a`` in front, so output ``o = s m + r`` sums
    ``w[t] x[(o + t - pad_a) / s]`` over the taps ``t`` where that index is an integer: taps
    ``first_tap, first_tap + s, ...`` reading inputs ``m + input_offset, m + input_offset + 1,
    ...``.
    """
    pad_len = kernel_size + stride - 2
    pad_a = kernel_size - 1 if stride > kernel_size - 1 else -(-pad_len // 2)
    phases = []
    for r in range(stride):
        taps = [t for t in range(kernel_size) if (r + t - pad_a) % stride == 0]
        first = taps[0] if taps else 0
        phases.append((first, len(taps), (r + first - pad_a) // stride))
    return phases


class SubpixelConvTranspose(nn.Module):
    """``nn.ConvTranspose(features, (k, k), (s, s), padding='SAME')`` computed per output phase.

    Same parameters (``kernel [k, k, C_in, features]``, ``bias [features]``, same
    initialisers) and the same result up to float rounding. ``method='phases'``: each of the
    ``s * s`` output phases is a 'VALID' stride-1 convolution of the padded input with the
    kernel taps that reach it, and the phases are interleaved into the ``s``-times larger
    output. ``method='dilated'``: ``lax.conv_transpose`` (what ``nn.ConvTranspose`` runs).
    ``'auto'``: phases when ``features >= PHASES_MIN_FEATURES`` (faster on XLA CPU, see the
    module docstring), else dilated.
    """

    features: int
    kernel_size: int = 4
    stride: int = 2
    method: str = "auto"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k, s = int(self.kernel_size), int(self.stride)
        b, h, w, c = x.shape
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (k, k, c, self.features), jnp.float32
        )
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
        x = x.astype(self.dtype)
        kernel = kernel.astype(self.dtype)
        if self.method not in TRANSPOSE_METHODS:
            raise ValueError(
                f"method={self.method!r} is invalid; choose one of {TRANSPOSE_METHODS}"
            )
        method = self.method
        if method == "auto":
            method = "phases" if self.features >= PHASES_MIN_FEATURES else "dilated"
        if method == "dilated":
            y = lax.conv_transpose(
                x, kernel, (s, s), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
            return y + bias.astype(self.dtype)
        taps = phase_taps(k, s)
        pad = k + 1
        xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        rows = []
        for first_r, num_r, off_r in taps:
            cols = []
            for first_c, num_c, off_c in taps:
                if num_r == 0 or num_c == 0:
                    cols.append(jnp.zeros((b, h, w, self.features), self.dtype))
                    continue
                window = xp[
                    :,
                    pad + off_r : pad + off_r + h + num_r - 1,
                    pad + off_c : pad + off_c + w + num_c - 1,
                    :,
                ]
                sub = kernel[first_r::s, first_c::s][:num_r, :num_c]
                cols.append(
                    lax.conv_general_dilated(
                        window, sub, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
                    )
                )
            rows.append(jnp.stack(cols, axis=3))  # [B, h, w, s_c, F]
        y = jnp.stack(rows, axis=2)  # [B, h, s_r, w, s_c, F]
        y = y.reshape(b, h * s, w * s, self.features)
        return y + bias.astype(self.dtype)


class VAEDecoder(nn.Module):
    """Latents ``[B, D]`` -> ``[B, H, W, out_channels]`` logits (or means), mirroring the encoder.

    ``H = W = start_shape[0] * 2 ** (len(widths) + 1)`` for stride 2 (64 by default).

    Attributes:
      hidden: units of the first fully connected layer.
      start_shape: ``(h, w, C)`` of the map the second fully connected layer is reshaped to.
      widths: channels of the ReLU transposed convolutions (the last, linear one has
        ``out_channels``).
      kernel_size: square kernel of every transposed convolution.
      stride: stride of every transposed convolution.
      out_channels: channels of the output.
      dtype: compute dtype.
    """

    hidden: int = 256
    start_shape: Sequence[int] = (4, 4, 64)
    widths: Sequence[int] = (64, 32, 32)
    kernel_size: int = 4
    stride: int = 2
    out_channels: int = 1
    dtype: Dtype = jnp.float32

    def output_size(self) -> tuple[int, int]:
        """``(H, W)`` of the decoded images."""
        factor = self.stride ** (len(self.widths) + 1)
        return int(self.start_shape[0]) * factor, int(self.start_shape[1]) * factor

    @nn.compact
    def __call__(self, z: Array, *, train: bool = False) -> Array:
        del train
        if z.ndim != 2:
            raise ValueError(f"VAEDecoder expects [B, D] latents, got shape {z.shape}")
        h, w, c = (int(s) for s in self.start_shape)
        x = nn.relu(
            nn.Dense(self.hidden, dtype=self.dtype, param_dtype=jnp.float32, name="fc1")(
                z.astype(self.dtype)
            )
        )
        x = nn.relu(nn.Dense(h * w * c, dtype=self.dtype, param_dtype=jnp.float32, name="fc2")(x))
        x = x.reshape(x.shape[0], h, w, c)
        k, s = self.kernel_size, self.stride
        for i, width in enumerate(self.widths):
            x = SubpixelConvTranspose(width, k, s, dtype=self.dtype, name=f"upconv{i + 1}")(x)
            x = nn.relu(x)
        x = SubpixelConvTranspose(self.out_channels, k, s, dtype=self.dtype, name="output")(x)
        return x.astype(jnp.float32)


class VAENetwork(nn.Module):
    """A Gaussian encoder and a decoder (VAE, beta-VAE, FactorVAE, beta-TCVAE, autoencoders).

    ``__call__(x, train=...)`` encodes and decodes the posterior means (deterministically):
    ``{'features': mean, 'mean', 'log_var', 'logits'}``. The objectives sample latents
    themselves between ``encode`` and ``decode`` (``ssljax.objectives.latent.reparameterize``).

    Attributes:
      encoder: a module with ``posterior(x, train=...) -> (mean, log_var)`` (``VAEEncoder``).
      decoder: ``VAEDecoder``.
    """

    encoder: nn.Module
    decoder: nn.Module

    def encode(self, x: Array, *, train: bool = False) -> tuple[Array, Array]:
        """``(mean, log_var)`` of ``q(z | x)``."""
        return self.encoder.posterior(x, train=train)

    def decode(self, z: Array, *, train: bool = False) -> Array:
        """Decoder output (logits for a Bernoulli likelihood) of latents ``[B, D]``."""
        return self.decoder(z, train=train)

    def __call__(self, x: Array, *, train: bool) -> dict[str, Array]:
        mean, log_var = self.encode(x, train=train)
        return {
            "features": mean,
            "mean": mean,
            "log_var": log_var,
            "logits": self.decode(mean, train=train),
        }


class TCDiscriminator(nn.Module):
    """FactorVAE's discriminator: ``[B, D]`` latents -> ``[B, 2]`` logits.

    Attributes:
      hidden: units of each LeakyReLU layer (Kim & Mnih: six of 1000).
      negative_slope: LeakyReLU slope (0.2, as TF's ``leaky_relu`` default that
        disentanglement_lib uses).
    """

    hidden: Sequence[int] = (1000,) * 6
    negative_slope: float = 0.2

    @nn.compact
    def __call__(self, z: Array) -> Array:
        if z.ndim != 2:
            raise ValueError(f"TCDiscriminator expects [B, D] latents, got shape {z.shape}")
        x = z.astype(jnp.float32)
        for i, units in enumerate(self.hidden):
            x = nn.leaky_relu(nn.Dense(int(units), name=f"fc{i + 1}")(x), self.negative_slope)
        return nn.Dense(2, name="logits")(x)
