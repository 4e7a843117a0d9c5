"""Reconstruction pretext tasks: context-encoder inpainting, colorization, denoising autoencoder.

Pure losses (arrays in, scalar out) and the objectives that wire them to networks and views.

* ``masked_l2_loss``: Pathak et al. 2016's ``L_rec = ||M * (x - F((1 - M) * x))||^2``. Normalised
  (our choice) as the mean squared error over each image's hidden values, then averaged over
  images: ``mean_b [ sum_{h,w,c} M (x - F)^2 / (C * sum_{h,w} M) ]``. Pixels outside the mask do
  not enter; every image weighs the same whatever its hole size, so the mean over devices of
  per-device losses is the global batch's loss.
* ``discriminator_loss`` / ``generator_adversarial_loss``: Pathak et al.'s
  ``L_adv = max_D E[log D(x) + log(1 - D(F((1 - M) * x)))]`` with ``D = sigmoid(logits)``,
  written as minimised cross entropies averaged over the patch logits. The generator uses the
  non-saturating ``-log D(fake)`` by default (as DCGAN, whose training recipe Pathak et al.
  follow); ``saturating=True`` gives the literal ``log(1 - D(fake))``.
* ``colorization_classification_loss``: Zhang et al. 2016's multinomial cross entropy
  ``-sum_{h,w} v(Z_hw) sum_q Z_hwq log Zhat_hwq`` against soft-encoded ab targets, averaged over
  pixels instead of summed; ``rebalance_weights`` gives their class rebalancing
  ``w ~ ((1 - lambda) p~ + lambda / Q)^-1`` normalised to ``E_p~[w] = 1`` (lambda = 0.5,
  ``p~`` the empirical bin distribution smoothed with a Gaussian of sigma 5).
  ``colorization_regression_loss`` is the L2 regression option (Larsson et al. 2016/2017
  compare both; classification gave them the better features).
* ``denoising_loss``: squared error of the reconstruction of the clean input (Vincent et al.
  2008, 2010), optionally weighting corrupted and clean values differently (their
  "emphasised" denoising); mean over values.

Objectives:

* ``inpainting``: with ``lambda_adv > 0`` the discriminator is a parameter group
  (``params['discriminator']``, its own Adam). The loss is ``main + discriminator loss``: the
  main loss sees the discriminator's parameters under ``stop_gradient`` and the discriminator's
  loss sees the real and inpainted images under it, so one gradient gives each network what
  training it alone would, and both step simultaneously against the other's pre-step
  parameters. ``metrics['loss']`` is the main loss.
* ``colorization``: the running bin distribution for rebalancing is its state
  (``ColorizationState``).
* ``denoising_autoencoder``: its network follows ``model.encoder``. A Gaussian encoder
  (``vae_conv``) is decoded from its latent code (posterior mean, ``model.vae_decoder``) and
  trained by ``-log p(x | decode(mean(x~)))`` (``likelihood``, ``gaussian_std``); any other
  encoder's ``model.decoder.feature_layer`` map is decoded to sigmoid outputs trained by
  ``denoising_loss``. ``corrupted_weight`` / ``clean_weight`` weight the values in both.

Inpainting, colorization and the feature-map denoising autoencoder read the encoder's
``model.decoder.feature_layer`` map through ``ssljax.models.decoders.ReconstructionNetwork``;
the encoder's variables sit where ``checkpoint_eval.encoder_of`` looks for them.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Mapping

import chex
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssljax.objectives import latent
from ssljax.objectives.base import (
    LossAux,
    LossContext,
    Objective,
    Outputs,
    ParamGroup,
    Run,
    UpdateContext,
    check_choice,
    check_int,
    check_range,
)
from ssljax.objectives.registry import register
from ssljax.views import corruptions

LOSS_KINDS = ("classification", "regression")
AB_SCALE = 100.0  # regression targets are ab / AB_SCALE
DISCRIMINATOR = latent.DISCRIMINATOR  # the params key of a discriminator (a ParamGroup)


# ---------------------------------------------------------------------------
# Pure losses
# ---------------------------------------------------------------------------


def masked_l2_loss(images: chex.Array, reconstruction: chex.Array, mask: chex.Array) -> chex.Array:
    """Mean over images of the mean squared error over each image's hidden values.

    Args:
      images: ``[B, H, W, C]`` originals ``x``.
      reconstruction: ``[B, H, W, C]`` network output ``F((1 - M) * x)``.
      mask: ``[B, H, W, 1]`` (or ``[B, H, W, C]``), 1 where a value was hidden.

    Returns:
      ``mean_b sum(M (x - F)^2) / (number of hidden values of image b)``; an image with an
      empty mask contributes 0.
    """
    chex.assert_rank([images, reconstruction, mask], 4)
    chex.assert_equal_shape([images, reconstruction])
    mask = jnp.broadcast_to(mask.astype(jnp.float32), images.shape)
    sq = mask * (images.astype(jnp.float32) - reconstruction.astype(jnp.float32)) ** 2
    per_image = jnp.sum(sq, axis=(1, 2, 3)) / jnp.maximum(jnp.sum(mask, axis=(1, 2, 3)), 1.0)
    return jnp.mean(per_image)


def denoising_loss(
    images: chex.Array,
    reconstruction: chex.Array,
    corrupted: chex.Array | None = None,
    *,
    corrupted_weight: float = 1.0,
    clean_weight: float = 1.0,
) -> chex.Array:
    """Mean over values of ``w (x - r)^2``, ``w`` = ``corrupted_weight`` where ``corrupted``.

    With both weights 1 (or ``corrupted=None``) this is the plain mean squared error.
    """
    chex.assert_rank([images, reconstruction], 4)
    chex.assert_equal_shape([images, reconstruction])
    sq = (images.astype(jnp.float32) - reconstruction.astype(jnp.float32)) ** 2
    if corrupted is not None:
        c = jnp.broadcast_to(corrupted.astype(jnp.float32), images.shape)
        sq = sq * (corrupted_weight * c + clean_weight * (1.0 - c))
    return jnp.mean(sq)


def discriminator_loss(real_logits: chex.Array, fake_logits: chex.Array) -> chex.Array:
    """``-mean log D(real) - mean log(1 - D(fake))`` with ``D = sigmoid(logits)``."""
    return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def generator_adversarial_loss(fake_logits: chex.Array, *, saturating: bool = False) -> chex.Array:
    """``-mean log D(fake)`` (non-saturating) or ``mean log(1 - D(fake))`` (saturating)."""
    if saturating:
        return -jnp.mean(jax.nn.softplus(fake_logits))
    return jnp.mean(jax.nn.softplus(-fake_logits))


def colorization_classification_loss(
    logits: chex.Array, targets: chex.Array, weights: chex.Array | None = None
) -> chex.Array:
    """Mean over pixels of ``v * (-sum_q Z_q log softmax(logits)_q)``.

    Args:
      logits: ``[..., Q]`` predicted bin logits.
      targets: ``[..., Q]`` target distributions ``Z`` (soft or one-hot encodings).
      weights: ``[...]`` per-pixel weights ``v`` (class rebalancing), or None for 1.
    """
    chex.assert_equal_shape([logits, targets])
    ce = -jnp.sum(targets * jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1), axis=-1)
    if weights is not None:
        ce = ce * weights
    return jnp.mean(ce)


def colorization_regression_loss(
    prediction: chex.Array, ab: chex.Array, *, scale: float = AB_SCALE
) -> chex.Array:
    """Mean squared error between ``prediction [..., 2]`` and ``ab / scale``."""
    chex.assert_equal_shape([prediction, ab])
    return jnp.mean((prediction.astype(jnp.float32) - ab / scale) ** 2)


def smooth_distribution(p: chex.Array, centers, sigma: float) -> chex.Array:
    """Spreads each bin's mass over the bins with a Gaussian of ``sigma`` (ab units).

    Bin ``i`` gives bin ``j`` the fraction ``K_ij / sum_j' K_ij'`` of its mass with
    ``K_ij = exp(-|c_i - c_j|^2 / (2 sigma^2))``, so the result still sums to 1.
    ``sigma = 0`` returns ``p``.
    """
    if sigma <= 0:
        return p
    c = np.asarray(centers, np.float64)
    d2 = np.sum((c[:, None, :] - c[None, :, :]) ** 2, axis=-1)
    k = np.exp(-d2 / (2.0 * sigma**2))
    k = (k / k.sum(axis=1, keepdims=True)).astype(np.float32)
    return p @ jnp.asarray(k)


def rebalance_weights(
    prior: chex.Array, centers, *, lam: float = 0.5, sigma: float = 5.0
) -> chex.Array:
    """Zhang et al.'s class-rebalancing weights ``[Q]``.

    ``w_q ~ 1 / ((1 - lam) p~_q + lam / Q)`` with ``p~`` the ``sigma``-smoothed ``prior``,
    scaled so that ``sum_q p~_q w_q = 1``. ``lam = 1`` gives all ones.
    """
    q = prior.shape[-1]
    p = smooth_distribution(prior / jnp.sum(prior), centers, sigma)
    w = 1.0 / ((1.0 - lam) * p + lam / q)
    return w / jnp.sum(p * w)


def ab_histogram(bins: chex.Array, num_bins: int) -> chex.Array:
    """Fraction of pixels in each bin: ``[num_bins]`` from integer ``bins [...]``."""
    counts = jnp.zeros((num_bins,), jnp.float32).at[bins.reshape(-1)].add(1.0)
    return counts / bins.size


def corruption_weights(
    corrupted: chex.Array, *, corrupted_weight: float = 1.0, clean_weight: float = 1.0
) -> chex.Array:
    """Per-value weights ``corrupted_weight`` where ``corrupted`` is 1, else ``clean_weight``
    (the weighting ``denoising_loss`` applies)."""
    c = corrupted.astype(jnp.float32)
    return corrupted_weight * c + clean_weight * (1.0 - c)


# ---------------------------------------------------------------------------
# Shared pieces of the objectives
# ---------------------------------------------------------------------------


def view_image_shape(run: Run, augment: bool) -> tuple[int, int, int]:
    """``(H, W, C)`` of the views: the dataset's images, at ``augment.output_size`` when
    they are augmented."""
    h, w, c = run.facts.image_shape
    size = run.augment.get("output_size") if augment and run.augment is not None else None
    if size is not None:
        h, w = (size, size) if isinstance(size, int) else size
    return int(h), int(w), int(c)


def decoder_settings(run: Run):
    """``run.model.decoder`` (the ``ConvDecoder`` of a feature map), ``{}`` if absent."""
    return run.model.get("decoder") or {}


def build_reconstruction_model(
    run: Run, axis_name, *, out_channels: int, output_activation: str, output_size=None
):
    """``ReconstructionNetwork``: ``run.model``'s encoder + a ``ConvDecoder``."""
    from ssljax.models.decoders import ConvDecoder, ReconstructionNetwork
    from ssljax.models.network import build_encoder_from_config, dtype_from_name

    dec = decoder_settings(run)
    upsample = dec.get("upsample")
    decoder = ConvDecoder(
        widths=tuple(int(w) for w in dec.get("widths", (64, 32))),
        upsample=None if upsample is None else tuple(int(u) for u in upsample),
        out_channels=int(out_channels),
        channel_fc=bool(dec.get("channel_fc", False)),
        kernel_size=int(dec.get("kernel_size", 3)),
        norm=str(dec.get("norm", "batch")),
        output_activation=output_activation,
        axis_name=axis_name,
        dtype=dtype_from_name(run.dtype),
    )
    return ReconstructionNetwork(
        encoder_module=build_encoder_from_config(run, axis_name),
        decoder=decoder,
        feature_layer=str(dec.get("feature_layer", "block4")),
        output_size=None if output_size is None else tuple(int(s) for s in output_size),
    )


def clean_images(rng, images, run: Run, augment: bool) -> jax.Array:
    """Float images in [0, 1]; augmented once with ``run.augment`` if ``augment``."""
    from ssljax.views.augment import make_views, to_float

    if augment:
        (x,) = make_views(rng, images, run.augment, num_views=1)
        return x
    return to_float(images)


def apply_network(params, model_state, x, *, model):
    """The network in train mode on ``x``: ``(outputs, new_model_state)``."""
    return model.apply({"params": params, **model_state}, x, train=True, mutable=list(model_state))


def check_decoder(run: Run, objective_name: str, image_shape) -> None:
    """One-line errors for encoders and decoder settings a reconstruction cannot use."""
    from ssljax.models import encoder_layer_names
    from ssljax.models.decoders import DECODER_NORMS
    from ssljax.models.network import build_encoder_from_config

    if run.model.get("patches") is not None:
        raise ValueError(
            f"objective {objective_name!r} decodes an encoder feature map; remove "
            "config.model.patches"
        )
    dec = decoder_settings(run)
    norm = dec.get("norm", "batch")
    if norm not in DECODER_NORMS:
        raise ValueError(f"model.decoder.norm={norm!r} is invalid; choose one of {DECODER_NORMS}")
    widths = tuple(dec.get("widths", (64, 32)))
    upsample = dec.get("upsample")
    if upsample is not None and len(tuple(upsample)) != len(widths):
        raise ValueError(
            f"model.decoder.upsample={tuple(upsample)} needs one factor per width "
            f"of model.decoder.widths={widths}"
        )
    encoder = build_encoder_from_config(run, None)
    sample = jax.ShapeDtypeStruct((1,) + tuple(image_shape), jnp.float32)
    variables = jax.eval_shape(
        lambda x: encoder.init(jax.random.PRNGKey(0), x, train=False), sample
    )
    maps = [n for n in encoder_layer_names(encoder, variables, sample) if n != "pooled"]
    layer = dec.get("feature_layer", "block4")
    if layer not in maps:
        raise ValueError(
            f"model.decoder.feature_layer={layer!r} is invalid; choose one of the "
            f"encoder's feature maps {maps}"
        )


def as_tuple(value):
    """Lists (JSON configs) as tuples; other values unchanged."""
    return tuple(value) if isinstance(value, list) else value


def renamed_keys(objective_config, renames: Mapping[str, str]) -> dict:
    """The items of ``objective_config`` with the stored names in ``renames`` replaced."""
    if objective_config is None:
        return {}
    items = dict(
        objective_config.to_dict() if hasattr(objective_config, "to_dict") else objective_config
    )
    for old, new in renames.items():
        if old in items:
            if new in items:
                raise ValueError(
                    f"objective.{old} is the stored name of objective.{new}; give "
                    f"only objective.{new}"
                )
            items[new] = items.pop(old)
    return items


def check_unit(key: str, value) -> None:
    """``0 < value < 1``."""
    check_range(key, value, low=0.0, high=1.0, low_open=True, high_open=True)


# ---------------------------------------------------------------------------
# Inpainting (Pathak et al. 2016)
# ---------------------------------------------------------------------------


@register
@dataclasses.dataclass(frozen=True)
class Inpainting(Objective):
    """Context encoder: ``lambda_rec * L_rec + lambda_adv * L_adv`` of a hidden region.

    Attributes:
      mask: 'central' (one hole), 'random_block' or 'random_region' (``MASK_KINDS``).
      hole_size: the central hole's side (int) or ``(height, width)``; 0: half of each side.
      num_blocks, block_size: random blocks; ``block_size`` 0: a quarter of the shorter side.
      region_fraction, region_scale: the random region's hidden fraction and smoothness
        (pixels per noise cell).
      fill_value: what hidden pixels show, one number or one per channel.
      lambda_rec, lambda_adv: weights of the masked L2 and the adversarial term (0: no
        discriminator).
      saturating: the generator's literal ``log(1 - D(fake))`` instead of ``-log D(fake)``.
      disc_widths: the ``PatchDiscriminator``'s stride-2 layer widths.
      disc_learning_rate, disc_beta1: the discriminator's Adam (DCGAN: 2e-4, 0.5).
      augment: augment the images once with ``config.augment`` before masking.
    """

    name: ClassVar[str] = "inpainting"
    description: ClassVar[str] = (
        "Context-encoder inpainting: masked L2 + optional adversarial term (Pathak et al. 2016)"
    )

    mask: str = "random_region"
    hole_size: int | tuple[int, int] = 0
    num_blocks: int = 4
    block_size: int = 0
    region_fraction: float = 0.25
    region_scale: float = 4.0
    fill_value: float | tuple[float, ...] = 0.5
    lambda_rec: float = 0.999
    lambda_adv: float = 0.001
    saturating: bool = False
    disc_widths: tuple[int, ...] = (32, 64)
    disc_learning_rate: float = 2e-4
    disc_beta1: float = 0.5
    augment: bool = False

    def __post_init__(self):
        for key in ("hole_size", "fill_value", "disc_widths"):
            object.__setattr__(self, key, as_tuple(getattr(self, key)))
        check_choice("mask", self.mask, corruptions.MASK_KINDS)
        sides = self.hole_size if isinstance(self.hole_size, tuple) else (self.hole_size,)
        if len(sides) not in (1, 2):
            raise ValueError(
                f"objective.hole_size={self.hole_size!r} is invalid; valid: an int "
                "or (height, width)"
            )
        for side in sides:
            check_int("hole_size", side, low=0)
        check_int("num_blocks", self.num_blocks)
        check_int("block_size", self.block_size, low=0)
        check_unit("region_fraction", self.region_fraction)
        check_range("region_scale", self.region_scale, low=1.0)
        if self.lambda_rec < 0 or self.lambda_adv < 0 or self.lambda_rec + self.lambda_adv <= 0:
            raise ValueError(
                f"objective.lambda_rec={self.lambda_rec} and objective.lambda_adv="
                f"{self.lambda_adv} are invalid; valid: both >= 0, not both 0"
            )
        for width in self.disc_widths:
            check_int("disc_widths", width)
        check_range("disc_learning_rate", self.disc_learning_rate, low=0.0, low_open=True)
        check_range("disc_beta1", self.disc_beta1, low=0.0, high=1.0, high_open=True)

    def image_shape(self, run: Run) -> tuple[int, int, int]:
        return view_image_shape(run, self.augment)

    def mask_settings(self, run: Run) -> dict:
        """``corruptions.sample_masks`` keywords; 0 sizes resolved against the views."""
        h, w, _ = self.image_shape(run)
        return dict(
            kind=self.mask,
            hole_size=self.hole_size or (h // 2, w // 2),
            num_blocks=int(self.num_blocks),
            block_size=int(self.block_size or min(h, w) // 4),
            fraction=float(self.region_fraction),
            scale=float(self.region_scale),
        )

    def check(self, run):
        h, w, c = self.image_shape(run)
        s = self.mask_settings(run)
        if self.mask == "central":
            hole = s["hole_size"]
            hh, hw = (hole, hole) if isinstance(hole, int) else hole
            if not (1 <= hh < h and 1 <= hw < w):
                raise ValueError(
                    f"objective.hole_size={hole!r} is invalid for {h}x{w} images; "
                    f"valid: 1..{min(h, w) - 1}"
                )
        elif self.mask == "random_block" and not 1 <= s["block_size"] <= min(h, w):
            raise ValueError(
                f"objective.block_size={s['block_size']} is invalid for {h}x{w} "
                f"images; valid: 1..{min(h, w)}"
            )
        if isinstance(self.fill_value, tuple) and len(self.fill_value) not in (1, c):
            raise ValueError(
                f"objective.fill_value={self.fill_value} is invalid for {c}-channel "
                f"images; valid: one number or {c}"
            )
        check_decoder(run, self.name, (h, w, c))

    def build_model(self, run, axis_name):
        """Encoder + decoder to the input's channels, sigmoid output in [0, 1]."""
        return build_reconstruction_model(
            run, axis_name, out_channels=run.facts.channels, output_activation="sigmoid"
        )

    def discriminator(self):
        """The ``PatchDiscriminator`` of ``disc_widths``."""
        from ssljax.models.decoders import PatchDiscriminator

        return PatchDiscriminator(widths=tuple(int(w) for w in self.disc_widths))

    def discriminator_optimizer(self) -> optax.GradientTransformation:
        """Adam with DCGAN's beta1 = 0.5 at ``disc_learning_rate``, constant."""
        return optax.adam(float(self.disc_learning_rate), b1=float(self.disc_beta1))

    def param_groups(self, run):
        if self.lambda_adv <= 0:
            return {}
        return {
            DISCRIMINATOR: ParamGroup(
                self.discriminator(), (1,) + self.image_shape(run), self.discriminator_optimizer()
            )
        }

    def make_views(self, rng, images, run):
        """``(masked input, original, mask)``: ``[B, H, W, C]``, ``[B, H, W, C]``,
        ``[B, H, W, 1]``."""
        image_rng, mask_rng = jax.random.split(rng)
        x = clean_images(image_rng, images, run, self.augment)
        b, h, w, _ = x.shape
        masks = corruptions.sample_masks(mask_rng, b, h, w, **self.mask_settings(run))
        return corruptions.apply_mask(x, masks, self.fill_value), x, masks

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        """``lambda_rec * L_rec + lambda_adv * L_adv``, plus the discriminator's loss.

        The generator term sees the inpainted image ``M * F + (1 - M) * x`` through the
        current discriminator (its parameters under ``stop_gradient``); the discriminator's
        loss compares the real ``x`` with the inpainted image under ``stop_gradient``. The
        returned value is their sum; ``metrics['loss']`` the generator's loss alone.
        """
        del rng
        inputs, images, masks = views
        net_params, disc_params = latent.split_param_group(params)
        out, new_state = apply_network(net_params, model_state, inputs, model=ctx.model)
        recon = out["reconstruction"]
        rec = masked_l2_loss(images, recon, masks)
        loss = self.lambda_rec * rec
        metrics = {"rec_loss": rec}
        disc_loss = 0.0
        if self.lambda_adv > 0:
            disc = self.discriminator()
            fake = masks * recon + (1.0 - masks) * images
            adv = generator_adversarial_loss(
                disc.apply({"params": jax.lax.stop_gradient(disc_params)}, fake),
                saturating=self.saturating,
            )
            loss = loss + self.lambda_adv * adv
            both = jax.lax.stop_gradient(jnp.concatenate([images, fake], axis=0))
            real_logits, fake_logits = jnp.split(
                disc.apply({"params": disc_params}, both), 2, axis=0
            )
            disc_loss = discriminator_loss(real_logits, fake_logits)
            metrics.update(
                adv_loss=adv,
                disc_loss=disc_loss,
                disc_real_accuracy=jnp.mean((real_logits > 0).astype(jnp.float32)),
                disc_fake_accuracy=jnp.mean((fake_logits < 0).astype(jnp.float32)),
            )
        metrics["loss"] = loss
        return loss + disc_loss, LossAux(metrics, new_state, Outputs(embedding=out["features"]))


# ---------------------------------------------------------------------------
# Denoising autoencoder (Vincent et al. 2008, 2010)
# ---------------------------------------------------------------------------


def corrupt(
    rng, x: chex.Array, *, noise: str, noise_stddev: float, drop_prob: float
) -> tuple[chex.Array, chex.Array]:
    """``(corrupted x, corrupted-mask [B, H, W, 1])``; Gaussian noise corrupts every value."""
    if noise == "gaussian":
        noisy = corruptions.gaussian_noise(rng, x, stddev=float(noise_stddev))
        return noisy, jnp.ones(x.shape[:3] + (1,), x.dtype)
    if noise == "masking":
        return corruptions.masking_noise(rng, x, drop_prob=float(drop_prob))
    raise ValueError(
        f"objective.noise={noise!r} is invalid; choose one of {corruptions.NOISE_KINDS}"
    )


@register
@dataclasses.dataclass(frozen=True)
class DenoisingAutoencoder(Objective):
    """Reconstruct the clean image from a corrupted one; the network follows
    ``model.encoder`` (module docstring): a Gaussian encoder's latent code, or a feature map.

    Attributes:
      noise: 'gaussian' (every value, ``noise_stddev``, clipped to [0, 1]) or 'masking'
        (each pixel zeroed with ``drop_prob``).
      noise_stddev: the Gaussian noise's standard deviation.
      drop_prob: the masking noise's probability.
      corrupted_weight, clean_weight: weights of corrupted and clean values in the loss
        (Vincent et al. 2010's emphasised denoising; 1/1: plain).
      likelihood, gaussian_std: ``-log p(x | z)`` of the latent-code network
        (``ssljax.objectives.latent``); the feature-map network is trained by squared error
        and leaves them at their defaults.
      augment: augment the images once with ``config.augment`` before the corruption.
    """

    name: ClassVar[str] = "denoising_autoencoder"
    description: ClassVar[str] = (
        "Denoising autoencoder: Gaussian or masking noise, a latent-code "
        "or feature-map decoder (Vincent et al. 2008)"
    )

    noise: str = "gaussian"
    noise_stddev: float = 0.3
    drop_prob: float = 0.25
    corrupted_weight: float = 1.0
    clean_weight: float = 1.0
    likelihood: str = "bernoulli"
    gaussian_std: float = latent.DEFAULT_GAUSSIAN_STD
    augment: bool = False

    def __post_init__(self):
        check_choice("noise", self.noise, corruptions.NOISE_KINDS)
        check_range("noise_stddev", self.noise_stddev, low=0.0, low_open=True)
        check_unit("drop_prob", self.drop_prob)
        check_range("corrupted_weight", self.corrupted_weight, low=0.0)
        check_range("clean_weight", self.clean_weight, low=0.0)
        check_choice("likelihood", self.likelihood, latent.LIKELIHOODS)
        check_range("gaussian_std", self.gaussian_std, low=0.0, low_open=True)

    def image_shape(self, run: Run) -> tuple[int, int, int]:
        return view_image_shape(run, self.augment)

    def check(self, run):
        shape = self.image_shape(run)
        if latent.has_gaussian_encoder(run):
            latent.check_latent_model(run, self.name, shape[:2])
            return
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for key in ("likelihood", "gaussian_std"):
            if getattr(self, key) != defaults[key]:
                raise ValueError(
                    f"objective.{key}={getattr(self, key)!r} is invalid with "
                    f"model.encoder={run.model.encoder!r} (a feature map decoded by squared "
                    f"error); valid: a Gaussian encoder {latent.gaussian_encoder_names()}, or "
                    f"the default {defaults[key]!r}"
                )
        check_decoder(run, self.name, shape)

    def build_model(self, run, axis_name):
        """A Gaussian encoder + ``VAEDecoder`` (logits), or the encoder's feature map +
        ``ConvDecoder`` (sigmoid output in [0, 1])."""
        if latent.has_gaussian_encoder(run):
            return latent.build_latent_model(run, axis_name)
        return build_reconstruction_model(
            run, axis_name, out_channels=run.facts.channels, output_activation="sigmoid"
        )

    def make_views(self, rng, images, run):
        """``(corrupted, clean, corrupted-mask)``."""
        image_rng, noise_rng = jax.random.split(rng)
        x = clean_images(image_rng, images, run, self.augment)
        noisy, corrupted = corrupt(
            noise_rng, x, noise=self.noise, noise_stddev=self.noise_stddev, drop_prob=self.drop_prob
        )
        return noisy, x, corrupted

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        del rng
        if latent.has_gaussian_encoder(ctx.run):
            return self.latent_code_loss(params, model_state, views, ctx)
        return self.feature_map_loss(params, model_state, views, ctx)

    def latent_code_loss(self, params, model_state, views, ctx: LossContext):
        """``mean_b -sum w log p(x | decode(mean(x~)))`` (``w``: ``corruption_weights``)."""
        noisy, images, corrupted = views
        mean, _ = latent.encode(params, model_state, noisy, model=ctx.model)
        decoded = latent.decode(params, model_state, mean, model=ctx.model)
        weights = corruption_weights(
            corrupted, corrupted_weight=self.corrupted_weight, clean_weight=self.clean_weight
        )
        rec = jnp.mean(
            -latent.weighted_log_likelihood(
                images, decoded, weights, likelihood=self.likelihood, gaussian_std=self.gaussian_std
            )
        )
        metrics = {"loss": rec, "reconstruction": rec}
        return rec, LossAux(metrics, model_state, Outputs(embedding=mean))

    def feature_map_loss(self, params, model_state, views, ctx: LossContext):
        """``denoising_loss`` of the reconstruction of the corrupted input against the clean
        one."""
        noisy, images, corrupted = views
        out, new_state = apply_network(params, model_state, noisy, model=ctx.model)
        loss = denoising_loss(
            images,
            out["reconstruction"],
            corrupted,
            corrupted_weight=self.corrupted_weight,
            clean_weight=self.clean_weight,
        )
        metrics = {"loss": loss, "mse": jnp.mean((images - out["reconstruction"]) ** 2)}
        return loss, LossAux(metrics, new_state, Outputs(embedding=out["features"]))


# ---------------------------------------------------------------------------
# Colorization (Zhang et al. 2016; Larsson et al. 2016, 2017)
# ---------------------------------------------------------------------------


@flax.struct.dataclass
class ColorizationState:
    """The running distribution of the training pixels over the ab bins (rebalancing)."""

    ab_prior: jax.Array


@flax.struct.dataclass
class ColorizationOutputs(Outputs):
    """Also the batch's histogram over the ab bins (averaged over micro-batches)."""

    ab_histogram: jax.Array | None = None


@register
@dataclasses.dataclass(frozen=True)
class Colorization(Objective):
    """ab from lightness: rebalanced cross entropy over ab bins, or ab regression.

    Attributes:
      ab_loss: 'classification' (bins of the ab grid) or 'regression' (L2 on ab / 100).
        Stored configs call it ``loss`` (``RENAMED_KEYS``).
      ab_grid: the bins' spacing in ab units (only in-gamut bins are kept).
      soft_neighbors, soft_sigma: soft targets over the nearest bins with a Gaussian of sigma.
      class_rebalance: weight pixels by the rebalancing of the running bin distribution.
      rebalance_lambda: the uniform mixture's weight lambda in the rebalancing.
      prior_momentum: momentum of the running bin distribution.
      target_stride: the ab target is mean-pooled by this factor.
      augment: augment the images once with ``config.augment`` first.
    """

    name: ClassVar[str] = "colorization"
    description: ClassVar[str] = (
        "Colorization: ab bins from lightness with class rebalancing "
        "(Zhang et al. 2016; Larsson et al. 2017)"
    )
    # Stored configs' names of fields: ``loss`` would hide the method of the same name.
    RENAMED_KEYS: ClassVar[Mapping[str, str]] = {"loss": "ab_loss"}

    ab_loss: str = "classification"
    ab_grid: float = 10.0
    soft_neighbors: int = 5
    soft_sigma: float = 5.0
    class_rebalance: bool = True
    rebalance_lambda: float = 0.5
    prior_momentum: float = 0.99
    target_stride: int = 1
    augment: bool = False

    @classmethod
    def from_config(cls, objective_config):
        """``Objective.from_config`` after renaming the stored configs' keys."""
        return super().from_config(renamed_keys(objective_config, cls.RENAMED_KEYS))

    def __post_init__(self):
        check_choice("ab_loss", self.ab_loss, LOSS_KINDS)
        check_range("ab_grid", self.ab_grid, low=0.0, low_open=True)
        check_int("soft_neighbors", self.soft_neighbors, low=1)
        q = len(self.centers())
        if self.soft_neighbors > q:
            raise ValueError(
                f"objective.soft_neighbors={self.soft_neighbors} is invalid; valid: "
                f"1..{q} (the bins of ab_grid={self.ab_grid:g})"
            )
        check_range("soft_sigma", self.soft_sigma, low=0.0, low_open=True)
        check_range("rebalance_lambda", self.rebalance_lambda, low=0.0, high=1.0)
        check_range("prior_momentum", self.prior_momentum, low=0.0, high=1.0, high_open=True)
        check_int("target_stride", self.target_stride)

    def centers(self) -> np.ndarray:
        """The in-gamut ab bin centres ``[Q, 2]``."""
        return corruptions.ab_bin_centers(float(self.ab_grid))

    @property
    def rebalancing(self) -> bool:
        """Whether the loss weights pixels by a running bin distribution (the state)."""
        return self.ab_loss == "classification" and bool(self.class_rebalance)

    def image_shape(self, run: Run) -> tuple[int, int, int]:
        return view_image_shape(run, self.augment)

    def check(self, run):
        """RGB data only; target strides dividing the image size; a usable decoder."""
        facts = run.facts
        if facts.channels != 3:
            raise ValueError(
                f"objective 'colorization' needs RGB images, but dataset "
                f"{facts.name!r} is grayscale ({facts.channels} channel); choose "
                "an RGB dataset such as cifar10"
            )
        h, w, c = self.image_shape(run)
        stride = int(self.target_stride)
        if h % stride or w % stride:
            raise ValueError(
                f"objective.target_stride={stride} is invalid; valid: an int >= 1 "
                f"dividing the {h}x{w} image size"
            )
        check_decoder(run, self.name, (h, w, c))

    def build_model(self, run, axis_name):
        """Encoder + decoder to ``Q`` bin logits (classification) or 2 ab values (regression)."""
        h, w, _ = self.image_shape(run)
        stride = int(self.target_stride)
        channels = len(self.centers()) if self.ab_loss == "classification" else 2
        return build_reconstruction_model(
            run,
            axis_name,
            out_channels=channels,
            output_activation="none",
            output_size=(h // stride, w // stride),
        )

    def init_state(self, params, model_state, run):
        """A uniform running bin distribution when rebalancing, else None."""
        del params, model_state, run
        if not self.rebalancing:
            return None
        q = len(self.centers())
        return ColorizationState(ab_prior=jnp.full((q,), 1.0 / q, jnp.float32))

    def make_views(self, rng, images, run):
        """``(grey input, ab target)``: the image with ``a = b = 0`` as RGB, and its ab
        channels.

        The input keeps the image format the encoder is evaluated on (RGB in [0, 1]) but holds
        only the lightness L (Zhang et al. feed L alone). The ab target is mean-pooled by
        ``target_stride`` (Zhang et al. predict at a quarter of the input resolution).
        """
        x = clean_images(rng, images, run, self.augment)
        lab = corruptions.rgb_to_lab(x)
        grey = corruptions.lab_to_rgb(
            jnp.concatenate([lab[..., :1], jnp.zeros_like(lab[..., 1:])], axis=-1)
        )
        ab = corruptions.downsample_mean(lab[..., 1:], int(self.target_stride))
        return grey, ab

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        """Rebalanced cross entropy over ab bins (or ab regression); bin accuracy as a metric."""
        del rng
        grey, ab = views
        out, new_state = apply_network(params, model_state, grey, model=ctx.model)
        pred = out["reconstruction"]
        if self.ab_loss == "regression":
            loss = colorization_regression_loss(pred, ab)
            error = jnp.mean(jnp.sqrt(jnp.sum((pred * AB_SCALE - ab) ** 2, axis=-1) + 1e-12))
            metrics = {"loss": loss, "ab_error": error}
            return loss, LossAux(metrics, new_state, ColorizationOutputs(embedding=out["features"]))
        centers = self.centers()
        targets = corruptions.encode_ab_soft(
            ab, centers, num_neighbors=int(self.soft_neighbors), sigma=float(self.soft_sigma)
        )
        hard = corruptions.encode_ab_hard(ab, centers)
        weights, histogram = None, None
        if self.rebalancing:
            table = rebalance_weights(
                ctx.state.ab_prior, centers, lam=self.rebalance_lambda, sigma=self.soft_sigma
            )
            weights = table[hard]
            histogram = ab_histogram(hard, len(centers))
        loss = colorization_classification_loss(pred, targets, weights)
        accuracy = jnp.mean((jnp.argmax(pred, axis=-1) == hard).astype(jnp.float32))
        metrics = {"loss": loss, "bin_accuracy": accuracy}
        outputs = ColorizationOutputs(embedding=out["features"], ab_histogram=histogram)
        return loss, LossAux(metrics, new_state, outputs)

    def update_state(self, state, outputs: ColorizationOutputs, ctx: UpdateContext):
        """``prior <- m * prior + (1 - m) * (global batch's bin histogram)``."""
        if not self.rebalancing:
            return state
        hist = outputs.ab_histogram
        if ctx.axis_name is not None:
            hist = jax.lax.pmean(hist, ctx.axis_name)
        m = self.prior_momentum
        return state.replace(ab_prior=m * state.ab_prior + (1.0 - m) * hist)
