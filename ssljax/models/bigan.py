"""BiGAN / ALI networks: an encoder E(x), a generator G(z) and a joint discriminator D(x, z).

Donahue, Krahenbuhl & Darrell 2017 (BiGAN) and Dumoulin et al. 2017 (ALI) train an encoder
``E: x -> z`` beside a GAN generator ``G: z -> x``; a discriminator sees pairs and tells the
encoder's ``(x, E(x))`` from the generator's ``(G(z), z)``. At the optimum ``E`` inverts
``G``, and ``E`` is the learned representation. Donahue & Simonyan 2019 (BigBiGAN) add unary
scores ``s_x(x)`` and ``s_z(z)`` beside the joint score ``s_xz(x, z)``.

* ``BiGANNetwork``: the run's encoder (``ssljax.models.build_encoder``: pooled features
  ``[B, F]``), a Dense head to the latent ``z = E(x)`` ``[B, latent_dim]``, and the generator
  (a ``ConvDecoder`` from a ``[B, latent_dim]`` vector through ``start_shape`` to the images,
  sigmoid output in [0, 1]). Its variables sit under ``'encoder'`` exactly as in
  ``SSLNetwork`` (``params['encoder']``, ``batch_stats['encoder']``) and ``network.encoder``
  is the plain encoder module, so ``ssljax.evaluation.checkpoint_eval.encoder_of`` cuts the
  encoder out for linear evaluation. ``axis_name`` reaches the BatchNorm layers of encoder
  and generator through their own attributes (cross-replica statistics in the train step).
* ``JointDiscriminator``: a ConvNet on ``x`` (stride-2 ``Conv(4x4) -> LeakyReLU(0.2)``, no
  BatchNorm: every example is scored alone, so the parameter group has no state and device
  counts cannot change a score), an MLP on ``z``, and a joint MLP on their concatenation to
  one logit; with ``unary=True`` also linear heads on the two branches (BigBiGAN's ``s_x``
  and ``s_z``).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

Array = Any
Dtype = Any

DISCRIMINATOR_NORMS = ("none", "layer")


class BiGANNetwork(nn.Module):
    """Encoder ``E`` with a latent head, and generator ``G``.

    ``__call__(x, train=..., prior_z=None, reconstruct=False)`` returns ``{'features': [B,
    F], 'z': [B, latent_dim]}`` (the encoder's pooled features and ``E(x)``), plus
    ``'generated': G(prior_z) [B', H, W, C]`` when ``prior_z`` is given, and with
    ``reconstruct=True`` also ``'reconstruction': G(E(x)) [B, H, W, C]`` (one generator pass
    over both latents). ``encode(x, train)`` and ``generate(z, train)``
    are the two halves (``module.apply(variables, x, method='encode')``). Initialising through
    ``__call__`` creates the generator's variables too.

    Attributes:
      encoder: the run's encoder, images ``[B, H, W, C]`` -> pooled features ``[B, F]``.
      generator: latents ``[B, latent_dim]`` -> images; a ``ConvDecoder`` with ``start_shape``
        and ``output_size`` the images' ``(H, W)``.
      latent_dim: dimension of ``z``.
    """

    encoder: nn.Module
    generator: nn.Module
    latent_dim: int = 64

    def setup(self):
        self.latent_head = nn.Dense(int(self.latent_dim), param_dtype=jnp.float32)

    def encode_features(self, x: Array, *, train: bool = False) -> tuple[Array, Array]:
        """``(pooled features [B, F], E(x) [B, latent_dim])``, both float32."""
        features = self.encoder(x, train=train)
        if features.ndim != 2:
            raise ValueError(
                f"BiGANNetwork needs an encoder with pooled [B, F] features, got {features.shape}"
            )
        features = features.astype(jnp.float32)
        return features, self.latent_head(features).astype(jnp.float32)

    def encode(self, x: Array, *, train: bool = False) -> Array:
        """``E(x)``: ``[B, H, W, C]`` images in [0, 1] -> ``[B, latent_dim]``."""
        return self.encode_features(x, train=train)[1]

    def generate(self, z: Array, *, train: bool = False) -> Array:
        """``G(z)``: ``[B, latent_dim]`` -> ``[B, H, W, C]`` images (float32)."""
        if z.ndim != 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(
                f"generate expects latents [B, {self.latent_dim}], got shape {tuple(z.shape)}"
            )
        return self.generator(z, train=train).astype(jnp.float32)

    def __call__(
        self, x: Array, *, train: bool, prior_z: Array | None = None, reconstruct: bool = False
    ) -> dict:
        features, z = self.encode_features(x, train=train)
        out = {"features": features, "z": z}
        if prior_z is None and self.is_initializing():
            prior_z = jnp.zeros((x.shape[0], self.latent_dim), jnp.float32)
        if reconstruct:
            if prior_z is None:
                raise ValueError("BiGANNetwork(reconstruct=True) needs prior_z")
            # One generator pass over both batches: its BatchNorm sees G(z) and G(E(x)) as one.
            both = self.generate(jnp.concatenate([prior_z, z], axis=0), train=train)
            out["generated"] = both[: prior_z.shape[0]]
            out["reconstruction"] = both[prior_z.shape[0] :]
        elif prior_z is not None:
            out["generated"] = self.generate(prior_z, train=train)
        return out


def _flat_size(image_shape: Sequence[int]) -> int:
    return int(math.prod(int(s) for s in image_shape))


def pack_pair(x: Array, z: Array) -> Array:
    """``[B, H*W*C + D]``: images flattened and latents, side by side (the one-array input
    ``JointDiscriminator`` is initialised on as a parameter group)."""
    return jnp.concatenate([x.reshape(x.shape[0], -1), z.reshape(z.shape[0], -1)], axis=1)


class JointDiscriminator(nn.Module):
    """``D(x, z)``: scores of image-latent pairs, ``{'joint': [B]}`` (+ ``'x'``, ``'z'``).

    ``__call__(x, z)`` takes images ``[B, H, W, C]`` and latents ``[B, latent_dim]``, or one
    packed array ``[B, H*W*C + latent_dim]`` (``pack_pair``) with ``z=None``. Branches:
    ``F(x)``: stride-2 ``Conv(4x4) -> [LayerNorm] -> LeakyReLU`` per ``x_widths``, flattened;
    ``H(z)``: ``Dense -> LeakyReLU`` per ``z_hidden``; ``J``: ``Dense -> LeakyReLU`` per
    ``joint_hidden`` on ``[F(x), H(z)]``, then one logit ``s_xz``. With ``unary`` also
    ``s_x = w_x . F(x)`` and ``s_z = w_z . H(z)`` (Donahue & Simonyan 2019).

    Attributes:
      image_shape: ``(H, W, C)`` of the images (unpacks the packed input).
      latent_dim: dimension of ``z``.
      x_widths: channels of the image branch's convolutions.
      z_hidden: units of the latent branch's layers (may be empty: ``H(z) = z``).
      joint_hidden: units of the joint MLP's layers.
      unary: also return the unary scores.
      norm: ``'none'`` or ``'layer'`` (LayerNorm after each convolution); never BatchNorm.
      negative_slope: the LeakyReLU slope.
    """

    image_shape: Sequence[int]
    latent_dim: int
    x_widths: Sequence[int] = (32, 64)
    z_hidden: Sequence[int] = (256,)
    joint_hidden: Sequence[int] = (256,)
    unary: bool = False
    norm: str = "none"
    negative_slope: float = 0.2

    @nn.compact
    def __call__(self, x: Array, z: Array | None = None) -> dict:
        if self.norm not in DISCRIMINATOR_NORMS:
            raise ValueError(
                f"unknown discriminator norm {self.norm!r}; choose one of {DISCRIMINATOR_NORMS}"
            )
        shape = tuple(int(s) for s in self.image_shape)
        size = _flat_size(shape)
        if z is None:
            if x.ndim != 2 or x.shape[1] != size + self.latent_dim:
                raise ValueError(
                    f"JointDiscriminator expects a packed [B, {size + self.latent_dim}] input "
                    f"(images {shape} and {self.latent_dim} latents), got {tuple(x.shape)}"
                )
            x, z = x[:, :size].reshape((x.shape[0],) + shape), x[:, size:]
        if x.shape[1:] != shape or z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"JointDiscriminator expects images [B, {', '.join(map(str, shape))}] and "
                f"latents [B, {self.latent_dim}], got {tuple(x.shape)} and {tuple(z.shape)}"
            )
        act = lambda h: nn.leaky_relu(h, self.negative_slope)  # noqa: E731
        hx = x.astype(jnp.float32)
        for i, width in enumerate(self.x_widths):
            hx = nn.Conv(
                int(width), (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)), name=f"x_conv{i + 1}"
            )(hx)
            if self.norm == "layer":
                hx = nn.LayerNorm(name=f"x_ln{i + 1}")(hx)
            hx = act(hx)
        hx = hx.reshape(hx.shape[0], -1)
        hz = z.astype(jnp.float32)
        for i, units in enumerate(self.z_hidden):
            hz = act(nn.Dense(int(units), name=f"z_fc{i + 1}")(hz))
        h = jnp.concatenate([hx, hz], axis=1)
        for i, units in enumerate(self.joint_hidden):
            h = act(nn.Dense(int(units), name=f"joint_fc{i + 1}")(h))
        out = {"joint": nn.Dense(1, name="joint_logit")(h)[:, 0]}
        if self.unary:
            out["x"] = nn.Dense(1, name="x_logit")(hx)[:, 0]
            out["z"] = nn.Dense(1, name="z_logit")(hz)[:, 0]
        return out
